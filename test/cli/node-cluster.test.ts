/**
 * `synod node` in three real processes on loopback with file storage: they form a cluster,
 * `synod status --json` reports it, the leader is SIGKILLed and another takes over, writes
 * keep working, `--join` adds a fourth node, and each operator error gives one line and a
 * non-zero exit code. Waits are bounded polls of `synod status`, never fixed sleeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { connect } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { freePort, runSynod, SYNOD_CLI, until } from '../helpers/node-processes.js';

const CLI = SYNOD_CLI;
/**
 * Bound of each wait on the cluster. Every probe starts a `synod status` process (seconds each on
 * a loaded machine), so a minute is a handful of probes: the waits allow two.
 */
const WAIT_MS = 120_000;
const dir = mkdtempSync(path.join(tmpdir(), 'synod-cli-'));
const secretFile = path.join(dir, 'cluster.key');
writeFileSync(secretFile, 'a-test-secret-of-enough-length-123\n');
const children: ChildProcess[] = [];

/**
 * Runs the CLI without blocking this process (spawnSync would stall the event loop for the
 * seconds a CLI takes to start, and the test's own KV client would miss its heartbeats: the
 * nodes then drop its connections, a cause of this test's flakiness on a loaded machine).
 */
async function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runSynod(args, 60_000);
  return { code: r.code ?? -1, stdout: r.out, stderr: r.err };
}

function startNode(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [...CLI, 'node', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', () => {});
  child.stdout?.on('data', () => {});
  children.push(child);
  return child;
}

type Entry = NodeStatus | { id: string; state: 'unreachable'; url?: string; error: string };

/** Every entry of `synod status --json` (answering nodes and unreachable ones); [] on failure. */
async function statusAll(cluster: string[]): Promise<Entry[]> {
  const r = await synod([
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
  return (JSON.parse(r.stdout) as { nodes: Entry[] }).nodes;
}

/** The nodes that answered. */
async function status(cluster: string[]): Promise<NodeStatus[]> {
  return (await statusAll(cluster)).filter((n): n is NodeStatus => 'role' in n);
}

/** `synod kv …` against the cluster. */
function kv(args: string[], cluster: string[]) {
  return synod(['kv', ...args, '--cluster', cluster.join(','), '--secret-file', secretFile]);
}

t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
});

t.test(
  'three processes form a cluster, survive SIGKILL of the leader, and --join adds a fourth',
  async (t) => {
    const ids = ['a', 'b', 'c'];
    const ports = await Promise.all(ids.map(freePort));
    const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
    const procs = new Map<string, ChildProcess>();
    ids.forEach((id, i) => {
      const peers = ids.flatMap((p, j) => (j === i ? [] : [`${p}=${url(j)}`])).join(',');
      procs.set(
        id,
        startNode([
          '--id',
          id,
          '--listen',
          `127.0.0.1:${ports[i]}`,
          '--peers',
          peers,
          '--data',
          path.join(dir, id),
          '--secret-file',
          secretFile,
        ]),
      );
    });
    const all = ids.map((id, i) => `${id}=${url(i)}`);
    // Under load the first election may split and a node may still be campaigning at a
    // higher term when the first leader appears: wait until all three agree on one leader.
    const formed = await until(
      'three nodes agreeing on one leader with three voters',
      async () => {
        const s = await status(all);
        const leader = s.find((n) => n.role === 'leader');
        const agreed =
          leader !== undefined &&
          leader.voters.length === 3 &&
          s.every((n) => n.term === leader.term && n.leader === leader.id);
        return s.length === 3 && agreed ? s : undefined;
      },
      WAIT_MS,
    );
    const leader = formed.find((n) => n.role === 'leader') as NodeStatus;
    t.equal(formed.filter((n) => n.role === 'leader').length, 1, `one leader: ${leader.id}`);
    t.same(
      formed.filter((n) => n.id !== leader.id).map((n) => n.role),
      ['follower', 'follower'],
      'the two others follow it, in its term',
    );

    const client = await connect(all, { secret: 'a-test-secret-of-enough-length-123' });
    t.teardown(() => client.disconnect());
    const put1 = await client.put('k1', 'v1');
    t.equal(put1.outcome, 'ok', 'a write before the failure');

    procs.get(leader.id)?.kill('SIGKILL');
    const rest = all.filter((a) => !a.startsWith(`${leader.id}=`));
    const after = await until(
      'a new leader',
      async () => {
        const s = await status(rest);
        const l = s.find((n) => n.role === 'leader' && n.id !== leader.id);
        return l && l.term > leader.term ? l : undefined;
      },
      WAIT_MS,
    );
    t.not(after.id, leader.id, `new leader ${after.id} in term ${after.term}`);
    const put2 = await client.put('k2', 'v2');
    t.equal(put2.outcome, 'ok', 'writes continue with two of three');

    // The killed node listed by id: reported unreachable under its id and URL.
    const killedUrl = url(ids.indexOf(leader.id));
    const withDown = await statusAll(all);
    const down = withDown.find((n) => n.id === leader.id);
    t.match(
      down,
      { id: leader.id, state: 'unreachable', url: killedUrl, error: String },
      `status --json reports ${leader.id} unreachable ${JSON.stringify(down)}`,
    );
    t.notOk(down && 'role' in down, 'with no role');
    t.equal(withDown.filter((n) => 'role' in n).length, 2, 'and the two others answering');

    // All three bare URLs, one of them down: kv put/get work; status names the down one by id.
    const bare = ids.map((_, i) => url(i));
    const put3 = await kv(['put', 'k3', 'v3'], bare);
    t.equal(put3.code, 0, `synod kv put with a listed node down exits 0 ${put3.stderr}`);
    const get3 = await kv(['get', 'k3'], bare);
    t.equal(get3.code, 0, `synod kv get with a listed node down exits 0 ${get3.stderr}`);
    t.equal(get3.stdout.trim(), 'v3', 'and reads the write');
    const bareStatus = await statusAll(bare);
    t.match(
      bareStatus.find((n) => n.id === leader.id),
      { id: leader.id, state: 'unreachable', url: killedUrl, error: /nothing listens/ },
      `status with bare URLs names the down node by its member id ${JSON.stringify(bareStatus)}`,
    );
    t.notOk(
      bareStatus.some((n) => n.id === killedUrl),
      'and does not list it a second time by URL',
    );

    const dPort = await freePort();
    startNode([
      '--id',
      'd',
      '--listen',
      `127.0.0.1:${dPort}`,
      '--join',
      rest[0]!.split('=')[1]!,
      '--data',
      path.join(dir, 'd'),
      '--secret-file',
      secretFile,
    ]);
    const joined = await until(
      'd to join as a voter',
      async () => {
        const s = await status(rest);
        const l = s.find((n) => n.role === 'leader');
        return l?.voters.includes('d') ? s : undefined;
      },
      WAIT_MS,
    );
    t.ok(joined.find((n) => n.role === 'leader')?.voters.includes('d'), 'd is a voter');
    const withD = await until(
      'd applied the writes',
      async () => {
        const s = await status([...rest, `d=ws://127.0.0.1:${dPort}`]);
        const d = s.find((n) => n.id === 'd');
        return d && d.revision >= 2 ? d : undefined;
      },
      WAIT_MS,
    );
    t.ok(withD.revision >= 2, `d caught up to revision ${withD.revision}`);
    // Asked without d in --cluster: status finds d from the members and reports it correctly.
    const found = await until(
      'status lists d as a follower',
      async () => {
        const s = await statusAll(rest);
        const d = s.find((n) => n.id === 'd');
        return d && 'role' in d && d.role === 'follower' ? s : undefined;
      },
      WAIT_MS,
    );
    const d = found.find((n) => n.id === 'd') as NodeStatus;
    t.equal(d.url, `ws://127.0.0.1:${dPort}`, 'd is listed with its own URL');
    t.ok(d.voters.includes('d'), 'd counts itself among the voters');
    t.equal(found.filter((n) => n.id === 'd').length, 1, 'd is listed once');
    t.match(
      found.find((n) => n.id === leader.id),
      { state: 'unreachable', url: killedUrl },
      `the killed ${leader.id} is still a member, reported unreachable`,
    );
  },
);

t.test('operator errors: one line and a non-zero exit code', async (t) => {
  const port = await freePort();
  const blocker = createServer().listen(port, '127.0.0.1');
  t.teardown(() => blocker.close());
  await new Promise((r) => blocker.once('listening', r));
  const inUse = await synod([
    'node',
    '--id',
    'x',
    '--listen',
    `127.0.0.1:${port}`,
    '--data',
    path.join(dir, 'x'),
    '--secret-file',
    secretFile,
  ]);
  t.equal(inUse.code, 1);
  t.match(inUse.stderr, /^synod: cannot listen on .*choose another --listen port\n$/);

  const other = await synod([
    'node',
    '--id',
    'a',
    '--cluster',
    'prod',
    '--listen',
    '127.0.0.1:0',
    '--data',
    path.join(dir, 'a'),
    '--secret-file',
    secretFile,
  ]);
  t.equal(other.code, 1);
  t.match(other.stderr, /^synod: data directory .* belongs to cluster "synod", not "prod"/);

  const unreachable = await synod(['status', '--cluster', `ws://127.0.0.1:${port + 1}`]);
  t.not(unreachable.code, 0);
  t.match(
    unreachable.stderr,
    /^synod: nothing listens at ws:\/\/127\.0\.0\.1:\d+ \(connection refused\): is the node running, and is that its address and port\?\n$/,
  );

  const badSecret = path.join(dir, 'short.key');
  writeFileSync(badSecret, 'short');
  const short = await synod([
    'status',
    '--cluster',
    'ws://127.0.0.1:1',
    '--secret-file',
    badSecret,
  ]);
  t.equal(short.code, 2);
  t.match(short.stderr, /use at least 16/);
  const usage = await synod(['node', '--id', 'q']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--data is required/);
  t.notMatch(usage.stderr, /\n\s+at /, 'no stack trace without --verbose');
});
