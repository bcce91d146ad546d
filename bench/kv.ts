/**
 * `npm run bench -- kv [--transport=ws|memory] [--backend=raft|paxos] [--seconds=S] [--clients=N]
 * [--runs=R]`: read throughput and latency per read level on a 3-node KV cluster.
 *
 * - `--transport=ws` (default): three `synod node` processes on loopback (file storage, the
 *   cluster secret, the WebSocket transport), started the way test/cli/node-cluster.test.ts
 *   starts them; this process is the client, connected with `connect([...bare URLs], {secret})`.
 * - `--transport=memory`: the same three nodes in this process on the in-memory transport
 *   (every message still msgpack-encoded), as measured before the WebSocket run existed.
 *
 * Each run: N closed-loop clients read 32 keys of 64 B for S seconds at one level, with no
 * writes running (so `strong` pays one read-index round per batch of reads and `session` never
 * waits). The levels of one run are measured back to back and the runs repeated, so load on the
 * shared machine hits every level alike. Baselines, measured in the same run:
 * - `eventual` spread over the three nodes: every other level's throughput and p50 is a ratio of it;
 * - `eventual` against one node only: the "eventual scales with the number of nodes" ratio.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedCluster } from '../actors/kv/embedded.js';
import type { ReadOptions } from '../actors/kv/messages.js';
import { systemClock } from '../lib/clock.js';
import { KvClient } from '../lib/kv-client/client.js';
import { connect, type RemoteKvClient } from '../lib/kv-client/connect.js';
import { runWorkload } from '../lib/kv-client/workload.js';
import { Random } from '../lib/random.js';
import { type BenchMain, type Measurement, report, summarize } from './harness.js';
import { freePort } from './lib/procs.js';

function opt(argv: string[], name: string, fallback: string): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    if (a === `--${name}` && argv[i + 1] !== undefined) return argv[i + 1] as string;
  }
  return fallback;
}

// ------------------------------------------------------------------ process cluster launcher

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = ['--import', 'tsx', path.join(ROOT, 'test/helpers/synod-cli.ts')];

export interface ProcessCluster {
  readonly ids: readonly string[];
  /** Bare `ws://127.0.0.1:port` URLs, in `ids` order. */
  readonly urls: readonly string[];
  readonly secret: string;
  readonly secretFile: string;
  /** A client connected to every node (bare URLs, ids read from the handshake). */
  readonly client: RemoteKvClient;
  /** The leader all nodes agreed on when the cluster was ready. */
  readonly leader: string;
  /** SIGKILLs one node's process. */
  kill(id: string): void;
  /** SIGTERMs every node, waits for them to exit, removes the data directories. */
  stop(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts `n` `synod node` processes on loopback (`--protocol raft|paxos`), waits until every
 * node's KV service is ready and all name the same leader (bounded by `readyTimeoutMs`), and
 * returns them with a connected client. A node's stderr tail is in the error if it dies.
 */
export async function startProcessCluster(
  options: { n?: number; protocol?: 'raft' | 'paxos'; readyTimeoutMs?: number } = {},
): Promise<ProcessCluster> {
  const n = options.n ?? 3;
  const protocol = options.protocol ?? 'raft';
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-kv-bench-'));
  const secret = `bench-secret-${process.pid}-0123456789abcdef`;
  const secretFile = path.join(dir, 'cluster.key');
  writeFileSync(secretFile, `${secret}\n`);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const ports = await Promise.all(ids.map(freePort));
  const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
  const procs = new Map<string, ChildProcess>();
  const stderr = new Map<string, string>();
  let failed: Error | undefined;
  let stopping = false;
  ids.forEach((id, i) => {
    const peers = ids.flatMap((p, j) => (j === i ? [] : [`${p}=${urls[j]}`])).join(',');
    const child = spawn(
      process.execPath,
      [
        ...CLI,
        'node',
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
        '--protocol',
        protocol,
        '--log-level',
        'warn',
      ],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (d: Buffer) =>
      stderr.set(id, `${stderr.get(id) ?? ''}${d.toString()}`.slice(-2000)),
    );
    child.once('exit', (code, signal) => {
      procs.delete(id);
      if (!stopping)
        failed ??= new Error(
          `node ${id} exited (${code ?? signal}): ${stderr.get(id) ?? '(no output)'}`,
        );
    });
    procs.set(id, child);
  });
  let client: RemoteKvClient | undefined;
  const stop = async (): Promise<void> => {
    stopping = true;
    await client?.disconnect().catch(() => undefined);
    await Promise.all(
      [...procs.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  try {
    // connect() succeeds as soon as one listed node answers (it learns the others from that
    // node's member list), so wait explicitly until the client knows all n members; the loop
    // below then waits until every one of them answers and is ready.
    while (!client) {
      if (failed) throw failed;
      let known: readonly string[] = [];
      try {
        const c = await connect(urls, { secret, timeoutMs: 3000, discoverTimeoutMs: 2000 });
        known = c.nodes;
        if (ids.every((id) => c.nodes.includes(id))) client = c;
        else await c.disconnect();
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      if (client) break;
      if (Date.now() > deadline)
        throw new Error(
          `the client knows only ${known.join(', ') || 'no node'} of ${ids.join(', ')}`,
        );
      await sleep(200);
    }
    for (;;) {
      if (failed) throw failed;
      const st = await Promise.all(ids.map((id) => (client as RemoteKvClient).status(id)));
      const leaders = new Set(st.map((s) => (s.outcome === 'ok' ? s.value.leader : undefined)));
      const ready = st.every((s) => s.outcome === 'ok' && s.value.ready);
      const [leader] = leaders;
      if (ready && leaders.size === 1 && leader !== undefined) {
        // one write through the leader: the cluster commits in this term
        const w = await client.put('__bench_ready', String(Date.now()));
        if (w.outcome === 'ok')
          return {
            ids,
            urls,
            secret,
            secretFile,
            client,
            leader,
            kill: (id) => procs.get(id)?.kill('SIGKILL'),
            stop,
          };
      }
      if (Date.now() > deadline)
        throw new Error(`the cluster was not ready in time: ${JSON.stringify(st)}`);
      await sleep(200);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

// ------------------------------------------------------------------ the benchmark

const LEVELS: { name: string; read: ReadOptions }[] = [
  { name: 'eventual', read: { level: 'eventual' } },
  { name: 'prefix', read: { level: 'prefix' } },
  { name: 'session', read: { level: 'session' } },
  { name: 'bounded(100ms)', read: { level: 'bounded', maxLagMs: 100 } },
  { name: 'bounded(10 versions)', read: { level: 'bounded', maxLagVersions: 10 } },
  { name: 'strong', read: { level: 'strong' } },
];
/** Same as `eventual`, but every client reads from the first node only. */
const ONE_NODE = 'eventual, one node';

interface Target {
  nodes: readonly string[];
  leader: string;
  describe: string;
  client(i: number, readNode: string): KvClient;
  stop(): Promise<void>;
}

async function memoryTarget(backend: 'raft' | 'paxos'): Promise<Target> {
  const cluster = await startEmbeddedCluster({ backend, clock: systemClock, seed: 7 });
  const leader = await cluster.ready();
  return {
    nodes: cluster.nodes,
    leader,
    describe: `backend ${backend}, 3 nodes in this process (in-memory transport, msgpack on every message)`,
    client: (_i, readNode) =>
      new KvClient({ system: cluster.clientSystem, nodes: cluster.nodes, readNode }),
    stop: () => cluster.stop(),
  };
}

async function wsTarget(backend: 'raft' | 'paxos'): Promise<Target> {
  const pc = await startProcessCluster({ protocol: backend });
  const clients: KvClient[] = [];
  return {
    nodes: pc.ids,
    leader: pc.leader,
    describe: `backend ${backend}, 3 \`synod node\` processes on loopback (WebSocket transport, HMAC auth, file storage); the clients share one WebSocket actor system in the bench process, connected by bare URLs`,
    client: (_i, readNode) => {
      const c = new KvClient({ system: pc.client.system, nodes: pc.client.nodes, readNode });
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) await c.close();
      await pc.stop();
    },
  };
}

export const main: BenchMain = async (argv) => {
  const transport = opt(argv, 'transport', 'ws');
  if (transport !== 'ws' && transport !== 'memory')
    throw new Error(`--transport must be ws or memory, got "${transport}"`);
  const backend = opt(argv, 'backend', 'raft');
  if (backend !== 'raft' && backend !== 'paxos')
    throw new Error(`--backend must be raft or paxos, got "${backend}"`);
  const seconds = Number(opt(argv, 'seconds', '2'));
  const clients = Number(opt(argv, 'clients', '24'));
  const runs = Number(opt(argv, 'runs', '3'));
  const loadBefore = loadavg();
  const target = transport === 'ws' ? await wsTarget(backend) : await memoryTarget(backend);
  const random = new Random(11);
  const loader = target.client(0, target.leader);
  for (let k = 0; k < 32; k++) {
    const w = await loader.put(`k${k}`, `v${k}`.padEnd(64, 'x'));
    if (w.outcome !== 'ok') throw new Error(`loading k${k}: ${JSON.stringify(w)}`);
  }
  // Clients are made once per level and reused across runs (their sessions stay warm).
  const names = [ONE_NODE, ...LEVELS.map((l) => l.name)];
  const pool = new Map<string, KvClient[]>();
  for (const name of names)
    pool.set(
      name,
      Array.from({ length: clients }, (_, i) =>
        target.client(
          i,
          name === ONE_NODE
            ? (target.nodes[0] as string)
            : (target.nodes[i % target.nodes.length] as string),
        ),
      ),
    );
  const tput = new Map<string, number[]>();
  const p50 = new Map<string, number[]>();
  const p99 = new Map<string, number[]>();
  const failedReads = new Map<string, Record<string, number>>();
  const push = (m: Map<string, number[]>, k: string, v: number) => {
    const arr = m.get(k) ?? [];
    arr.push(v);
    m.set(k, arr);
  };
  const levels = [{ name: ONE_NODE, read: { level: 'eventual' } as ReadOptions }, ...LEVELS];
  // one short warm-up pass (JIT, connections, background read indexes)
  for (const l of levels)
    await runWorkload(
      {
        clients,
        keys: 32,
        mix: { read: 1, write: 0, cas: 0 },
        valueSize: 64,
        durationMs: 300,
        read: l.read,
      },
      (i) => pool.get(l.name)?.[i] as KvClient,
      systemClock,
      random,
    );
  for (let r = 0; r < runs; r++) {
    for (const l of levels) {
      const rep = await runWorkload(
        {
          clients,
          keys: 32,
          mix: { read: 1, write: 0, cas: 0 },
          valueSize: 64,
          durationMs: seconds * 1000,
          read: l.read,
        },
        (i) => pool.get(l.name)?.[i] as KvClient,
        systemClock,
        random,
      );
      if (rep.ops.read.failed + rep.ops.read.indeterminate > 0) {
        const f = failedReads.get(l.name) ?? {};
        for (const [code, count] of Object.entries(rep.errors)) f[code] = (f[code] ?? 0) + count;
        failedReads.set(l.name, f);
      }
      push(tput, l.name, rep.ops.read.opsPerSec);
      push(p50, l.name, rep.ops.read.latencyMs.p50);
      push(p99, l.name, rep.ops.read.latencyMs.p99);
    }
  }
  const leader = target.leader;
  const describe = target.describe;
  await target.stop();
  const loadAfter = loadavg();
  const base = { name: 'eventual (3 nodes)', runs: tput.get('eventual') ?? [] };
  const baseP50 = { name: 'eventual (3 nodes)', runs: p50.get('eventual') ?? [] };
  const ms: Measurement[] = [];
  ms.push(summarize(`reads/s at ${ONE_NODE}`, 'reads/s', 'higher', tput.get(ONE_NODE) ?? []));
  for (const l of LEVELS) {
    const isBase = l.name === 'eventual';
    ms.push(
      summarize(
        `reads/s at ${l.name}`,
        'reads/s',
        'higher',
        tput.get(l.name) ?? [],
        isBase ? { name: ONE_NODE, runs: tput.get(ONE_NODE) ?? [] } : base,
      ),
    );
    ms.push(
      summarize(
        `read p50 at ${l.name}`,
        'ms',
        'lower',
        p50.get(l.name) ?? [],
        isBase ? undefined : baseP50,
      ),
    );
    ms.push(summarize(`read p99 at ${l.name}`, 'ms', 'lower', p99.get(l.name) ?? []));
  }
  const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const notes = [
    `${describe}; leader ${leader}`,
    `${clients} closed-loop readers (spread over the 3 nodes; "${ONE_NODE}": all on ${target.nodes[0]}), 32 keys of 64 B, ${seconds} s per level, ${runs} runs, levels interleaved within each run; no concurrent writes`,
    `ratios: reads/s and p50 of each level against eventual over 3 nodes; eventual over 3 nodes against ${ONE_NODE} (the scaling ratio; every process shares the same 2 cores, so it cannot show machine scaling)`,
    `load average (1, 5, 15 min) before: ${fmtLoad(loadBefore)}; after: ${fmtLoad(loadAfter)}`,
  ];
  if (failedReads.size > 0)
    notes.push(`failed reads by code: ${JSON.stringify(Object.fromEntries(failedReads))}`);
  return report('kv', ms, notes);
};
