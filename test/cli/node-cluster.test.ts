/**
 * `synod node` in three real processes on loopback with file storage: they form a cluster,
 * `synod status --json` reports it, the leader is SIGKILLed and another takes over, writes
 * keep working, `--join` adds a fourth node, and each operator error gives one line and a
 * non-zero exit code. Waits are bounded polls of `synod status`, never fixed sleeps.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { connect } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { freePort, SYNOD_CLI, until } from '../helpers/node-processes.js';

const CLI = SYNOD_CLI;
const dir = mkdtempSync(path.join(tmpdir(), 'synod-cli-'));
const secretFile = path.join(dir, 'cluster.key');
writeFileSync(secretFile, 'a-test-secret-of-enough-length-123\n');
const children: ChildProcess[] = [];

function synod(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
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

function status(cluster: string[]): NodeStatus[] {
  const r = synod([
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
  return (JSON.parse(r.stdout) as { nodes: NodeStatus[] }).nodes.filter(
    (n) => n.role !== undefined,
  );
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
    const formed = await until('a leader with three voters', () => {
      const s = status(all);
      const leader = s.find((n) => n.role === 'leader');
      return s.length === 3 && leader && leader.voters.length === 3 ? s : undefined;
    });
    const leader = formed.find((n) => n.role === 'leader') as NodeStatus;
    t.equal(formed.filter((n) => n.role === 'leader').length, 1, `one leader: ${leader.id}`);
    t.ok(
      formed.every((n) => n.term === leader.term),
      'all in one term',
    );

    const client = await connect(all, { secret: 'a-test-secret-of-enough-length-123' });
    t.teardown(() => client.disconnect());
    const put1 = await client.put('k1', 'v1');
    t.equal(put1.outcome, 'ok', 'a write before the failure');

    procs.get(leader.id)?.kill('SIGKILL');
    const rest = all.filter((a) => !a.startsWith(`${leader.id}=`));
    const after = await until('a new leader', () => {
      const s = status(rest);
      const l = s.find((n) => n.role === 'leader' && n.id !== leader.id);
      return l && l.term > leader.term ? l : undefined;
    });
    t.not(after.id, leader.id, `new leader ${after.id} in term ${after.term}`);
    const put2 = await client.put('k2', 'v2');
    t.equal(put2.outcome, 'ok', 'writes continue with two of three');

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
    const joined = await until('d to join as a voter', () => {
      const s = status(rest);
      const l = s.find((n) => n.role === 'leader');
      return l?.voters.includes('d') ? s : undefined;
    });
    t.ok(joined.find((n) => n.role === 'leader')?.voters.includes('d'), 'd is a voter');
    const withD = await until('d applied the writes', () => {
      const s = status([...rest, `d=ws://127.0.0.1:${dPort}`]);
      const d = s.find((n) => n.id === 'd');
      return d && d.revision >= 2 ? d : undefined;
    });
    t.ok(withD.revision >= 2, `d caught up to revision ${withD.revision}`);
  },
);

t.test('operator errors: one line and a non-zero exit code', async (t) => {
  const port = await freePort();
  const blocker = createServer().listen(port, '127.0.0.1');
  t.teardown(() => blocker.close());
  await new Promise((r) => blocker.once('listening', r));
  const inUse = synod([
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

  const other = synod([
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

  const unreachable = synod(['status', '--cluster', `ws://127.0.0.1:${port + 1}`]);
  t.not(unreachable.code, 0);
  t.match(
    unreachable.stderr,
    /^synod: nothing listens at ws:\/\/127\.0\.0\.1:\d+ \(connection refused\)\n$/,
  );

  const badSecret = path.join(dir, 'short.key');
  writeFileSync(badSecret, 'short');
  const short = synod(['status', '--cluster', 'ws://127.0.0.1:1', '--secret-file', badSecret]);
  t.equal(short.code, 2);
  t.match(short.stderr, /use at least 16/);
  const usage = synod(['node', '--id', 'q']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--data is required/);
  t.notMatch(usage.stderr, /\n\s+at /, 'no stack trace without --verbose');
});
