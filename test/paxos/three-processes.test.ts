/**
 * `synod node --protocol paxos` in three real processes on loopback with file storage: they
 * elect a distinguished proposer, `synod status --json` reports the Paxos state, the KV
 * client writes through it, the leader is SIGKILLed mid-traffic and another takes over, the
 * old leader restarts from its data directory and catches up, and every write that was
 * acknowledged is then present on all three replicas. Operator errors specific to Paxos
 * (static membership, another protocol's data directory) give one line and an exit code.
 * Waits are bounded polls of `synod status` or the client's own retries, never fixed sleeps.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { connect } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import {
  freePort,
  NodeProcesses,
  runSynod,
  TEST_SECRET as secret,
  until,
} from '../helpers/node-processes.js';

const ids = ['a', 'b', 'c'];
const nodes = await NodeProcesses.create(ids);
t.teardown(() => nodes.close());
const { dir, secretFile } = nodes;

/** `synod status --json`, run without blocking this process (its KV client keeps its links). */
async function status(cluster: string[]): Promise<NodeStatus[]> {
  const r = await runSynod([
    'status',
    '--cluster',
    cluster.join(','),
    '--secret-file',
    secretFile,
    '--json',
    '--timeout-ms',
    '1500',
  ]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.out) as { nodes: NodeStatus[] }).nodes.filter((n) => n.role !== undefined);
}

/** Ballots `round.node` are ordered by round, then node id (1.b is above 1.a). */
function ballotAbove(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const [ra, ...na] = a.split('.');
  const [rb, ...nb] = b.split('.');
  const d = Number(ra) - Number(rb);
  return d > 0 || (d === 0 && na.join('.') > nb.join('.'));
}

t.test(
  'three Paxos processes elect, write, survive SIGKILL of the leader and its restart, and keep every acknowledged write',
  async (t) => {
    nodes.startAll(() => ['--protocol', 'paxos']);
    const all = ids.map((id) => `${id}=${nodes.node(id).url}`);

    const formed = await until(
      'a distinguished proposer known to all three',
      async () => {
        const s = await status(all);
        const leader = s.find((n) => n.role === 'leader');
        return s.length === 3 && leader && s.every((n) => n.leader === leader.id) ? s : undefined;
      },
      90_000,
    );
    const leader = formed.find((n) => n.role === 'leader') as NodeStatus;
    t.equal(formed.filter((n) => n.role === 'leader').length, 1, `one leader: ${leader.id}`);
    t.ok(
      formed.every((n) => n.protocol === 'paxos' && n.paxos !== undefined),
      'status reports the Paxos state of every node',
    );
    t.ok(
      formed.every((n) => n.paxos?.distinguished === leader.id),
      'every node names the same distinguished proposer',
    );
    t.ok(
      formed.every((n) => n.term === leader.term),
      `every acceptor promised the leader's ballot round ${leader.term}`,
    );
    t.match(
      leader.paxos?.ballot,
      new RegExp(`^${leader.term}\\.${leader.id}$`),
      'ballot round.node',
    );
    t.same(leader.voters, ids, 'static members');

    const client = await connect(all, { secret, timeoutMs: 30_000 });
    t.teardown(() => client.disconnect());
    const acked = new Map<string, string>();
    const put = async (key: string, value: string): Promise<void> => {
      const r = await client.put(key, value);
      if (r.outcome === 'ok') acked.set(key, value);
    };

    for (let i = 0; i < 20; i++) await put(`before-${i}`, `v${i}`);
    t.equal(acked.size, 20, 'twenty writes acknowledged before the failure');
    const cli = await runSynod([
      'kv',
      'put',
      'via-cli',
      'yes',
      '--cluster',
      all.join(','),
      '--secret-file',
      secretFile,
    ]);
    t.equal(cli.code, 0, `synod kv put against the Paxos cluster: ${cli.out.trim()}`);
    if (cli.code === 0) acked.set('via-cli', 'yes');

    // Writes keep flowing from four concurrent writers while the leader is SIGKILLed.
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) await put(`during-${w}-${i}`, `w${w}.${i}`);
    });
    await until('some concurrent writes', () => (acked.size >= 40 ? true : undefined), 90_000);
    await nodes.kill(leader.id);
    const rest = all.filter((a) => !a.startsWith(`${leader.id}=`));
    const after = await until(
      'a new distinguished proposer',
      async () => {
        const s = await status(rest);
        const l = s.find((n) => n.role === 'leader' && n.id !== leader.id);
        return l && ballotAbove(l.paxos?.ballot, leader.paxos?.ballot) ? l : undefined;
      },
      90_000,
    );
    t.not(after.id, leader.id, `new leader ${after.id} with ballot ${after.paxos?.ballot}`);
    const ackedAtFailover = acked.size;
    await until(
      'writes acknowledged by the new leader',
      () => (acked.size >= ackedAtFailover + 20 ? true : undefined),
      90_000,
    );
    stop = true;
    await Promise.all(writers);
    for (let i = 0; i < 10; i++) await put(`after-${i}`, `a${i}`);
    t.ok(acked.size >= 70, `${acked.size} writes acknowledged in all`);

    // Restart the old leader from its data directory: it catches up and follows.
    nodes.start(leader.id);
    const target = Math.max(...(await status(rest)).map((n) => n.commitIndex));
    const caughtUp = await until(
      'all three applied what was chosen before the restart',
      async () => {
        const s = await status(all);
        return s.length === 3 && s.every((n) => n.appliedIndex >= target && n.leader === after.id)
          ? s
          : undefined;
      },
      90_000,
    );
    t.ok(
      caughtUp.every((n) => n.appliedIndex >= target),
      `every replica applied slot ${target}: ${caughtUp.map((n) => `${n.id}=${n.appliedIndex}`).join(' ')}`,
    );

    // Every acknowledged write, read from each replica's own state (a read that fails for
    // transport reasons is retried: only a wrong or missing value counts as lost).
    for (const id of ids) {
      const missing: string[] = [];
      for (const [key, value] of acked) {
        let r = await client.get(key, { level: 'eventual', node: id });
        for (let i = 0; i < 5 && (r.outcome !== 'ok' || r.servedBy !== id); i++)
          r = await client.get(key, { level: 'eventual', node: id });
        if (r.outcome !== 'ok' || r.servedBy !== id)
          t.fail(
            `could not read ${key} from ${id}: ${r.outcome === 'ok' ? r.servedBy : r.error.code}`,
          );
        else if (r.value.value !== value) missing.push(key);
      }
      t.same(missing, [], `${id} holds all ${acked.size} acknowledged writes`);
    }
    const revisions = new Set((await status(all)).map((n) => n.revision));
    t.equal(revisions.size, 1, `one revision on all three (${[...revisions].join(',')})`);
  },
);

t.test('Paxos operator errors: one line and a non-zero exit code', async (t) => {
  const port = await freePort();
  const join = await runSynod([
    'node',
    '--protocol',
    'paxos',
    '--id',
    'x',
    '--listen',
    `127.0.0.1:${port}`,
    '--join',
    `ws://127.0.0.1:${port + 1}`,
    '--data',
    path.join(dir, 'x'),
  ]);
  t.not(join.code, 0);
  t.match(join.err, /^synod: Multi-Paxos membership is static.*\n$/);

  // A Raft data directory is refused by a Paxos node, and the other way round.
  const rdir = path.join(dir, 'r');
  mkdirSync(path.join(rdir, 'raft'), { recursive: true });
  const wrong = await runSynod([
    'node',
    '--protocol',
    'paxos',
    '--id',
    'r',
    '--listen',
    '127.0.0.1:0',
    '--data',
    rdir,
  ]);
  t.equal(wrong.code, 1);
  t.match(wrong.err, /^synod: data directory .* holds Raft state \(raft\/\).*--protocol raft/);
  // The member set of a data directory is fixed: restarting node a with other peers is refused.
  const changed = await runSynod([
    'node',
    '--protocol',
    'paxos',
    '--id',
    'a',
    '--listen',
    '127.0.0.1:0',
    '--peers',
    'b=ws://127.0.0.1:1,z=ws://127.0.0.1:2',
    '--data',
    path.join(dir, 'a'),
    '--secret-file',
    secretFile,
  ]);
  t.equal(changed.code, 1);
  t.match(changed.err, /^synod: Multi-Paxos membership is static: .*members a, b, c, not a, b, z/);
  const pdir = path.join(dir, 'p');
  mkdirSync(path.join(pdir, 'paxos'), { recursive: true });
  const back = await runSynod(['node', '--id', 'p', '--listen', '127.0.0.1:0', '--data', pdir]);
  t.equal(back.code, 1);
  t.match(back.err, /holds Multi-Paxos state \(paxos\/\).*--protocol paxos/);
});
