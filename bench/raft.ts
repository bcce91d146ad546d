/**
 * `npm run bench -- raft [--seconds=S] [--runs=N] [--trials=N] [--process-runs=N]
 * [--process-seconds=S] [--processes=0]`: Raft throughput and latency.
 *
 * (a) a 3-node cluster in one process on the in-memory transport (every envelope still
 *     msgpack-encoded), memory stores, 1 / 16 / 256 concurrent clients proposing writes
 *     to the leader: committed writes/s (each resolved after commit and local apply) and
 *     p50/p99 latency. Baseline: the same writes applied to the bare state machine with
 *     no replication (the ceiling of the apply path).
 * (c) failover: time from stopping the leader's whole actor system (in-process stand-in
 *     for SIGKILL) to the first write accepted by a new leader, default timeouts.
 */
import path from 'node:path';
import { RaftNode } from '../actors/raft/raft-node.js';
import { ActorSystem } from '../lib/actor-system.js';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import type { StateMachine } from '../lib/replicated-log.js';
import { openMemoryDataDir } from '../lib/storage/data-dir.js';
import { MemoryDisk } from '../lib/storage/memory-disk.js';
import { MemoryNetwork } from '../transports/memory/memory-network.js';
import {
  type BenchMain,
  loadNote,
  type Measurement,
  percentile,
  report,
  summarize,
} from './harness.js';
import { repoRoot } from './lib/procs.js';
import { measureRaftProcesses } from './lib/raft-processes.js';

type Op = { k: string; v: number };

class Kv implements StateMachine<Op, boolean> {
  data = new Map<string, number>();
  apply(op: Op): boolean {
    this.data.set(op.k, op.v);
    return true;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.data]));
  }
  restore(image: Uint8Array): void {
    this.data = new Map(JSON.parse(new TextDecoder().decode(image)) as [string, number][]);
  }
}

interface Cluster {
  ids: string[];
  systems: Map<string, ActorSystem>;
  nodes: Map<string, RaftNode<Op, boolean>>;
  disks: Map<string, MemoryDisk>;
  network: MemoryNetwork;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function startCluster(seed: number): Promise<Cluster> {
  const ids = ['n1', 'n2', 'n3'];
  const network = new MemoryNetwork({ clock: systemClock, random: new Random(seed) });
  const c: Cluster = { ids, systems: new Map(), nodes: new Map(), disks: new Map(), network };
  for (const id of ids) {
    const disk = new MemoryDisk();
    c.disks.set(id, disk);
    startNode(c, id, seed);
  }
  return c;
}

function startNode(c: Cluster, id: string, seed: number): void {
  const system = new ActorSystem({
    nodeId: id,
    logger: silentLogger,
    random: new Random(seed * 31 + id.charCodeAt(1)),
    transport: c.network.connect(id),
  });
  const disk = c.disks.get(id) as MemoryDisk;
  const node = new RaftNode<Op, boolean>({
    storage: () => openMemoryDataDir(disk),
    stateMachine: () => new Kv(),
    bootstrap: c.ids,
    snapshotEvery: 50_000,
    keepEntries: 5_000,
  });
  system.spawn('raft', node);
  c.systems.set(id, system);
  c.nodes.set(id, node);
}

export async function leaderOf(c: Cluster, timeoutMs = 5000, except?: string): Promise<string> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    for (const [id, n] of c.nodes) {
      if (id === except || !n.started) continue;
      if (n.inspectCore()?.role === 'leader') return id;
    }
    await sleep(2);
  }
  throw new Error('no leader elected');
}

export async function stopCluster(c: Cluster): Promise<void> {
  for (const s of c.systems.values()) await s.shutdown().catch(() => {});
}

/** `clients` closed loops proposing writes for `seconds`; returns writes/s and latencies. */
export async function load(
  c: Cluster,
  clients: number,
  seconds: number,
): Promise<{ rate: number; lat: number[] }> {
  const leader = await leaderOf(c);
  const node = c.nodes.get(leader) as RaftNode<Op, boolean>;
  const lat: number[] = [];
  let done = 0;
  let stop = false;
  const start = performance.now();
  const loops = Array.from({ length: clients }, async (_, i) => {
    let seq = 0;
    const clientId = `b${clients}-${i}`;
    const k = `k${i % 64}`;
    while (!stop) {
      const t0 = performance.now();
      seq++;
      await node.propose({ clientId, seq, op: { k, v: seq } });
      lat.push(performance.now() - t0);
      done++;
    }
  });
  await sleep(seconds * 1000);
  stop = true;
  const elapsed = (performance.now() - start) / 1000;
  const counted = done;
  await Promise.all(loops);
  return { rate: counted / elapsed, lat };
}

function bareApply(seconds: number): number {
  const kv = new Kv();
  const end = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) kv.apply({ k: `k${i % 64}`, v: n++ });
  }
  return n / seconds;
}

async function failover(trials: number): Promise<number[]> {
  const out: number[] = [];
  for (let t = 0; t < trials; t++) {
    const c = await startCluster(1000 + t);
    const l = await leaderOf(c);
    const ln = c.nodes.get(l) as RaftNode<Op, boolean>;
    await ln.propose({ clientId: 'f', seq: 1, op: { k: 'x', v: 1 } });
    await sleep(100 + (t % 5) * 13);
    const t0 = performance.now();
    c.network.disconnect(l);
    await c.systems.get(l)?.shutdown();
    c.nodes.delete(l);
    // first write accepted (committed and applied) by a new leader
    let seq = 1;
    for (;;) {
      const nl = await leaderOf(c, 10_000, l);
      try {
        const n = c.nodes.get(nl) as RaftNode<Op, boolean>;
        await n.propose(
          { clientId: 'f2', seq: ++seq, op: { k: 'x', v: seq } },
          { timeoutMs: 1000 },
        );
        break;
      } catch {
        await sleep(1);
      }
    }
    out.push(performance.now() - t0);
    await stopCluster(c);
  }
  return out;
}

/** `--name=value` (the bench dispatcher takes bare words for benchmark names). */
function arg(argv: string[], name: string, dflt: number): number {
  const a = argv.find((x) => x.startsWith(`${name}=`));
  return a ? Number(a.slice(name.length + 1)) : dflt;
}

export const main: BenchMain = async (argv) => {
  const seconds = arg(argv, '--seconds', 3);
  const runs = arg(argv, '--runs', 3);
  const trials = arg(argv, '--trials', 20);
  const only = arg(argv, '--clients', 0);
  const measurements: Measurement[] = [];
  const baseline = { name: 'bare state machine apply (no replication)', runs: [bareApply(0.5)] };
  for (const clients of only > 0 ? [only] : [1, 16, 256]) {
    const rates: number[] = [];
    const cpus: number[] = [];
    const lat: number[] = [];
    for (let r = 0; r < runs; r++) {
      const c = await startCluster(r + 1);
      await leaderOf(c);
      await sleep(200);
      const u0 = process.cpuUsage();
      const res = await load(c, clients, seconds);
      const u = process.cpuUsage(u0);
      rates.push(res.rate);
      // Process CPU (all three nodes, the network and the clients) per committed write: less
      // sensitive than writes/s to how much of a core a loaded machine gives the process.
      if (res.lat.length > 0) cpus.push((u.user + u.system) / res.lat.length);
      for (const x of res.lat) lat.push(x);
      await stopCluster(c);
    }
    lat.sort((a, b) => a - b);
    const m = summarize(
      `(a) in-process 3 nodes, ${clients} clients: committed writes/s`,
      'writes/s',
      'higher',
      rates,
      clients === 256 ? baseline : undefined,
      clients === 256 ? '≥ 100,000 writes/s' : undefined,
    );
    m.extra = { p50ms: percentile(lat, 50), p99ms: percentile(lat, 99), samples: lat.length };
    measurements.push(m);
    measurements.push(
      summarize(`(a) ${clients} clients: latency p50`, 'ms', 'lower', [percentile(lat, 50)]),
      summarize(`(a) ${clients} clients: latency p99`, 'ms', 'lower', [percentile(lat, 99)]),
    );
    if (cpus.length > 0) {
      measurements.push(
        summarize(
          `(a) ${clients} clients: process CPU per committed write`,
          'µs',
          'lower',
          cpus,
          undefined,
          clients === 256 ? '≤ 10 µs (100,000 writes/s on one core)' : undefined,
        ),
      );
    }
  }
  if (trials > 0) {
    const fo = await failover(trials);
    const sorted = [...fo].sort((a, b) => a - b);
    const f = summarize(
      `(c) in-process failover: leader stopped → first write by a new leader (p50 of ${trials})`,
      'ms',
      'lower',
      [percentile(sorted, 50)],
      undefined,
      'p50 ≤ 450 ms',
    );
    f.extra = { p99ms: percentile(sorted, 99), trials: fo };
    measurements.push(f, summarize('(c) failover p99', 'ms', 'lower', [percentile(sorted, 99)]));
  }
  const notes = [
    loadNote(),
    '(a) uses memory stores (no fsync).',
    '(c) stops the leader actor system in-process (a stand-in for SIGKILL); default timeouts: heartbeat 50 ms, election 150–300 ms.',
  ];
  // (b) three `synod node` processes over WebSockets with file storage and fsync, and SIGKILL
  // failover between processes (bench/lib/raft-processes.ts); `--processes=0` skips it.
  let images: { title: string; file: string }[] | undefined;
  if (arg(argv, '--processes', 1) !== 0) {
    const plotFile = path.join(repoRoot, 'benchmarks', 'raft-processes-latency.svg');
    const p = await measureRaftProcesses({
      levels: [1, 16, 256],
      durationMs: arg(argv, '--process-seconds', 10) * 1000,
      trials,
      // Three fresh clusters by default, so (b) reports a median and a spread like (a).
      runs: Math.max(1, arg(argv, '--process-runs', 3)),
      plotFile,
    });
    for (const m of p.measurements) measurements.push({ ...m, name: `(b) ${m.name}` });
    notes.push(
      '(b) three `synod node` processes on loopback (dist/ build), WebSockets with the cluster secret, file storage with fsync; the closed-loop generator (bench/lib/loadgen.ts) runs in the benchmark process with 100-byte puts.',
      ...p.notes,
    );
    images = [
      { title: '(b) put latency per concurrency level', file: path.relative(repoRoot, plotFile) },
    ];
  }
  const rep = report('raft', measurements, notes);
  if (images) rep.images = images;
  return rep;
};
