/**
 * `synod node --protocol gossip` in real processes on loopback with file storage: three
 * replicas form a leaderless keyspace, this test process writes through `connectLeaderless`
 * (W = quorum registers and counter increments), one node is SIGKILLed while writes go on and
 * is restarted from its data directory; then every replica holds the same state (equal Merkle
 * roots in every key range, no hint left) and every acknowledged write is read back at R = all
 * through each node. A fourth node joins with `--join` (one URL) and the others learn its URL.
 * The refusals: consensus-only flags, a changed keyspace, another protocol's data directory.
 * Waits are bounded polls of observable state, never fixed sleeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { InspectResult, ReplicaMessage } from '../../actors/gossip/replica.js';
import type { ReplicaSnapshot } from '../../actors/gossip/replica-node.js';
import type { Replies } from '../../lib/actor.js';
import { connectLeaderless } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { freePort, runSynod, SYNOD_CLI, TEST_SECRET, until } from '../helpers/node-processes.js';

const WAIT_MS = 120_000;
const dir = mkdtempSync(path.join(tmpdir(), 'synod-gossip-'));
const secretFile = path.join(dir, 'cluster.key');
writeFileSync(secretFile, `${TEST_SECRET}\n`);
const children: ChildProcess[] = [];
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
});

function startNode(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [...SYNOD_CLI, 'node', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', () => {});
  child.stdout?.on('data', () => {});
  children.push(child);
  return child;
}

t.test('three gossip processes: SIGKILL and restart lose no acknowledged write', async (t) => {
  const ids = ['a', 'b', 'c'];
  const ports = await Promise.all(ids.map(() => freePort()));
  const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
  const all = ids.map((id, i) => `${id}=${url(i)}`);
  const argsOf = (i: number) => [
    '--protocol',
    'gossip',
    '--key-types',
    'pn/=pn',
    '--id',
    ids[i] as string,
    '--listen',
    `127.0.0.1:${ports[i]}`,
    '--peers',
    all.filter((_, j) => j !== i).join(','),
    '--data',
    path.join(dir, ids[i] as string),
    '--secret-file',
    secretFile,
  ];
  const procs = ids.map((_, i) => startNode(argsOf(i)));
  t.teardown(() => {
    for (const p of procs) p.kill('SIGKILL');
  });

  const kv = await connectLeaderless(all, { secret: TEST_SECRET, timeoutMs: 10_000 });
  t.teardown(() => kv.disconnect());
  const ask = <T>(node: string, msg: object) =>
    kv.system
      .ask(`${node}/gossip`, msg as ReplicaMessage & Replies<T>, 3000)
      .then((v) => v as T)
      .catch(() => undefined);
  const formed = (nodes: string[]) =>
    until(
      `${nodes.join(', ')} ready, each seeing ${nodes.length} alive members`,
      async () => {
        const snaps = await Promise.all(
          nodes.map((n) => ask<ReplicaSnapshot>(n, { type: 'replica-snapshot' })),
        );
        return snaps.every(
          (s) =>
            s?.ready &&
            s.members.filter((m) => m.state === 'alive' && nodes.includes(m.id)).length ===
              nodes.length,
        )
          ? true
          : undefined;
      },
      WAIT_MS,
      300,
    );
  await formed(ids);

  const acked = new Map<string, string>();
  let increments = 0;
  let maybe = 0;
  const write = async (i: number) => {
    const key = `k${i % 12}`;
    const value = `v${i}`;
    const r = await kv.put(key, value, { w: 'quorum' });
    if (r.outcome === 'ok') acked.set(key, value);
    const c = await kv.increment('pn/c', 1, { w: 'quorum' });
    if (c.outcome === 'ok') increments++;
    else if (c.outcome === 'indeterminate') maybe++;
    return r.outcome;
  };
  for (let i = 0; i < 24; i++) t.equal(await write(i), 'ok', `write ${i} with all three up`);

  procs[1]?.kill('SIGKILL');
  await new Promise((r) => procs[1]?.once('exit', r));
  let okDuring = 0;
  for (let i = 24; i < 48; i++) if ((await write(i)) === 'ok') okDuring++;
  t.ok(okDuring > 0, `writes at W = quorum go on with b killed (${okDuring} of 24 acknowledged)`);

  procs[1] = startNode(argsOf(1));
  await formed(ids);

  // Converged: one ring, one Merkle root per key range across the replicas, no hint left.
  const converged = await until(
    'equal Merkle roots at every replica',
    async () => {
      const res = await Promise.all(
        ids.map((n) => ask<InspectResult>(n, { type: 'replica-inspect' })),
      );
      if (res.some((r) => r === undefined)) return undefined;
      const rs = res as InspectResult[];
      if (new Set(rs.map((r) => r.ring)).size !== 1 || rs.some((r) => r.hints > 0))
        return undefined;
      const roots = new Map<number, Set<string>>();
      for (const r of rs)
        for (const [seg, root] of r.roots) roots.set(seg, (roots.get(seg) ?? new Set()).add(root));
      return [...roots.values()].every((s) => s.size === 1) ? rs : undefined;
    },
    WAIT_MS,
    500,
  );
  t.same(
    converged.map((r) => r.keys),
    [13, 13, 13],
    'every replica holds the 12 registers and the counter (N = 3 of 3 nodes)',
  );

  for (const node of ids) {
    for (const [key, value] of acked) {
      const r = await kv.get(key, { r: 'all', node });
      t.same(
        r.outcome === 'ok' ? r.value.siblings : r,
        [value],
        `${key} = ${value} at R = all through ${node}`,
      );
    }
    const c = await kv.get('pn/c', { r: 'all', node });
    const count = c.outcome === 'ok' ? (c.value.crdt as number) : -1;
    t.ok(
      count >= increments && count <= increments + maybe,
      `the counter through ${node} (${count}) counts the ${increments} acknowledged increments (+ at most ${maybe} indeterminate)`,
    );
  }

  // `synod kv` in its own process against the leaderless keyspace.
  const cli = ['--cluster', all.join(','), '--secret-file', secretFile, '--protocol', 'gossip'];
  const put = await runSynod(['kv', 'put', 'cli/k', 'hello', '--w', 'all', ...cli], 60_000);
  t.equal(put.code, 0, `synod kv put --protocol gossip: ${put.err}`);
  t.match(put.out, /^ok, 3 acks/);
  const get = await runSynod(['kv', 'get', 'cli/k', '--r', 'all', ...cli], 60_000);
  t.equal(get.out.trim(), 'hello', 'synod kv get reads it back');
  const incr = await runSynod(['kv', 'incr', 'pn/cli', '2', '--w', 'all', ...cli], 60_000);
  t.equal(incr.code, 0, `synod kv incr: ${incr.err}`);
  const counted = await runSynod(['kv', 'get', 'pn/cli', '--r', 'all', ...cli], 60_000);
  t.equal(counted.out.trim(), '2', 'synod kv get prints the counter');
  // Another process's put reads the key first and replaces what it read; a --blind one does
  // not read, so it is a concurrent sibling.
  const again = await runSynod(['kv', 'put', 'cli/k', 'world', '--w', 'all', ...cli], 60_000);
  t.equal(again.code, 0, `a second put from another process: ${again.err}`);
  const replaced = await runSynod(['kv', 'get', 'cli/k', '--r', 'all', ...cli], 60_000);
  t.equal(replaced.out.trim(), 'world', 'it replaced the value it read (no sibling)');
  const blind = await runSynod(['kv', 'put', 'cli/k', 'x', '--blind', '--w', 'all', ...cli]);
  t.equal(blind.code, 0, `a --blind put: ${blind.err}`);
  const both = await runSynod(['kv', 'get', 'cli/k', '--r', 'all', ...cli], 60_000);
  t.same(
    both.out.trim().split('\n').sort(),
    ['(2 siblings in conflict)', 'world', 'x'],
    'a --blind put is a sibling of what it did not read',
  );
  const del = await runSynod(['kv', 'del', 'cli/k', '--w', 'all', ...cli], 60_000);
  t.equal(del.code, 0, `synod kv del: ${del.err}`);
  const gone = await runSynod(['kv', 'get', 'cli/k', '--r', 'all', ...cli], 60_000);
  t.equal(gone.out.trim(), '(absent)', 'del read both siblings and deleted them (a tombstone)');
  const cas = await runSynod(['kv', 'cas', 'cli/k', 'x', '--expect', 'hello', ...cli], 60_000);
  t.equal(cas.code, 2, 'kv cas is refused on a leaderless keyspace');
  t.match(cas.err, /not available on a leaderless keyspace/);

  // A fourth node joins through one member's URL; every node learns it (SWIM) and dials it.
  const portD = await freePort();
  startNode([
    '--protocol',
    'gossip',
    '--key-types',
    'pn/=pn',
    '--id',
    'd',
    '--listen',
    `127.0.0.1:${portD}`,
    '--join',
    url(0),
    '--data',
    path.join(dir, 'd'),
    '--secret-file',
    secretFile,
  ]);
  const withD = await connectLeaderless([...all, `d=ws://127.0.0.1:${portD}`], {
    secret: TEST_SECRET,
  });
  t.teardown(() => withD.disconnect());
  const status = await until(
    'every node sees d alive and knows its URL',
    async () => {
      const ss = await Promise.all(
        [...ids, 'd'].map((n) =>
          withD.system
            .ask(`${n}/admin`, { type: 'node.status' } as never, 3000)
            .then((s) => s as NodeStatus)
            .catch(() => undefined),
        ),
      );
      return ss.every(
        (s) =>
          s?.gossip?.ready === true &&
          Object.values(s.gossip.members).filter((m) => m === 'alive').length === 4 &&
          Object.keys(s.members).length === 4,
      )
        ? (ss as NodeStatus[])
        : undefined;
    },
    WAIT_MS,
    500,
  );
  t.same(
    status.map((s) => [s.protocol, s.role, s.gossip?.ring.length]),
    [...ids, 'd'].map(() => ['gossip', 'replica', 4]),
    'synod status shows four leaderless replicas on one ring',
  );
  const rd = await withD.get('k0', { r: 'all', node: 'd' });
  t.same(rd.outcome === 'ok' ? rd.value.siblings : rd, [acked.get('k0')], 'read through d');
});

t.test('what does not apply to a leaderless node is refused before it starts', async (t) => {
  const port = await freePort();
  const base = ['node', '--protocol', 'gossip', '--listen', `127.0.0.1:${port}`];
  const flag = await runSynod([
    ...base,
    '--id',
    'x',
    '--data',
    path.join(dir, 'x1'),
    '--snapshot-every',
    '5',
  ]);
  t.equal(flag.code, 2, 'exit 2');
  t.match(flag.err, /--snapshot-every does not apply to --protocol gossip/);
  const types = await runSynod([
    ...base,
    '--id',
    'x',
    '--data',
    path.join(dir, 'x1'),
    '--key-types',
    'c=int',
  ]);
  t.match(types.err, /--key-types "c=int": expected PREFIX=TYPE/);
  const notGossip = await runSynod(['node', '--id', 'x', '--data', 'x', '--replicas', '2']);
  t.match(notGossip.err, /--replicas is a setting of the leaderless store/);
  // a data directory of another keyspace shape (written by the first test's node a)
  const changed = await runSynod([
    ...base,
    '--data',
    path.join(dir, 'a'),
    '--replicas',
    '2',
    '--id',
    'a',
  ]);
  t.equal(changed.code, 1);
  t.match(changed.err, /SYNOD_ERR_GOSSIP_KEYSPACE_CHANGED|--replicas 3/);
});
