/**
 * Raft over WebSockets in three real `synod node` processes with file storage (fsync on):
 * they elect a leader, take writes, the leader is SIGKILLed, a new leader is elected and
 * takes more writes, the old leader restarts from its data directory, and every write that
 * was acknowledged to the client is then present on all three nodes — read from each node's
 * own state machine (`eventual` reads with forwarding off, so the node itself answers).
 *
 * Waits are bounded polls of observable node state (the KV status of each node), never
 * fixed sleeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { StatusValue } from '../../actors/kv/messages.js';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';

const CLI = ['--import', 'tsx', path.resolve('test/helpers/synod-cli.ts')];
const SECRET = 'three-processes-secret-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'synod-raft3-'));
const secretFile = path.join(dir, 'cluster.key');
writeFileSync(secretFile, `${SECRET}\n`);
const children = new Set<ChildProcess>();

t.teardown(() => {
  for (const c of children) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function startNode(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [...CLI, 'node', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', () => {});
  child.stdout?.on('data', () => {});
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Polls `probe` (each call a round trip to the nodes) until it yields, within `ms`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 90_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function statusOf(client: RemoteKvClient, id: string): Promise<StatusValue | undefined> {
  const r = await client.status(id);
  return r.outcome === 'ok' ? r.value : undefined;
}

t.test('three processes: SIGKILL the leader, restart it, no acknowledged write lost', async (t) => {
  const ids = ['a', 'b', 'c'];
  const ports = await Promise.all(ids.map(freePort));
  const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
  const argsOf = (id: string) => {
    const i = ids.indexOf(id);
    const peers = ids.flatMap((p, j) => (j === i ? [] : [`${p}=${url(j)}`])).join(',');
    return [
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
    ];
  };
  const procs = new Map<string, ChildProcess>();
  for (const id of ids) procs.set(id, startNode(argsOf(id)));
  const all = ids.map((id, i) => `${id}=${url(i)}`);
  const client = await connect(all, { secret: SECRET, timeoutMs: 10_000 });
  t.teardown(() => client.disconnect());

  const leaderAmong = async (among: string[]) => {
    const st = await Promise.all(among.map((id) => statusOf(client, id)));
    const leaders = new Set(st.map((s) => s?.leader));
    const leader = st[0]?.leader;
    // every asked node answers and names the same leader, which is one of them
    return st.every((s) => s !== undefined) &&
      leaders.size === 1 &&
      leader !== undefined &&
      among.includes(leader)
      ? leader
      : undefined;
  };
  const first = await until('the three nodes to agree on a leader', () => leaderAmong(ids));
  t.ok(first, `leader ${first} elected`);

  const acked = new Map<string, string>();
  const write = async (key: string, value: string) => {
    const r = await client.put(key, value);
    if (r.outcome === 'ok') acked.set(key, value);
    return r.outcome;
  };
  for (let i = 0; i < 20; i++) await write(`before-${i}`, `v${i}`);
  t.equal(acked.size, 20, 'all 20 writes before the failure acknowledged');

  const killed = procs.get(first) as ChildProcess;
  killed.kill('SIGKILL');
  await exited(killed);
  const rest = ids.filter((id) => id !== first);
  const second = await until('a new leader among the survivors', () => leaderAmong(rest));
  t.not(second, first, `new leader ${second} after SIGKILL of ${first}`);

  let after = 0;
  for (let i = 0; i < 20; i++) if ((await write(`after-${i}`, `w${i}`)) === 'ok') after++;
  t.ok(after >= 1, `${after} of 20 writes after the failover acknowledged`);

  procs.set(first, startNode(argsOf(first)));
  const target = (await statusOf(client, second))?.commitIndex ?? 0;
  await until(`every node to apply up to index ${target}`, async () => {
    const st = await Promise.all(ids.map((id) => statusOf(client, id)));
    return st.every((s) => s !== undefined && s.appliedIndex >= target) ? true : undefined;
  });
  t.pass(`${first} restarted and all three applied index ${target}`);

  for (const id of ids) {
    const missing: string[] = [];
    for (const [key, value] of acked) {
      const r = await client.get(key, { level: 'eventual', forward: false, node: id });
      if (r.outcome !== 'ok' || r.servedBy !== id || r.value.value !== value) missing.push(key);
    }
    t.same(missing, [], `${id} holds all ${acked.size} acknowledged writes`);
  }
});
