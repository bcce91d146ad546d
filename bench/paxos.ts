/**
 * `npm run bench -- paxos [--repeats=N] [--seconds=S] [--clients=1,16,256] [--nodes=3]
 * [--warmup=S] [--settle=S] [--only=paxos|raft] [--processes=N] [--process-seconds=S]
 * [--process-only]`:
 * Multi-Paxos committed writes/s and p50/p99 commit latency with 1, 16 and 256 closed-loop
 * clients, on a cluster of actor systems in one process (in-memory transport with msgpack
 * encoding, memory disks), side by side with Raft (actors/raft RaftNode) on the same
 * transport, storage, state machine and clients, in the same run. Raft is the baseline.
 *
 * `--processes=N` (default 0: off) adds Raft's case (b) side by side: three `synod node`
 * processes on loopback (WebSockets, file storage, fsync), `--protocol paxos` against the
 * default Raft, with the same KV clients and closed loop as bench/raft.ts (bench/lib/
 * raft-processes.ts, failover trials off), N rounds alternating the order (R P, P R, ...).
 * `--process-only` skips the in-process rows (and their warm-up): with `--processes=3
 * --clients=256` it measures only case (b) at 256 clients, for iterating; such a partial run is
 * printed, not saved over benchmarks/results/paxos.json.
 */

import v8 from 'node:v8';
import vm from 'node:vm';
import { KvStateMachine } from '../actors/paxos/kv-machine.js';
import { openMemoryPaxosStorage, startMultiPaxosNode } from '../actors/paxos/multi-paxos-node.js';
import { RaftNode } from '../actors/raft/raft-node.js';
import { ActorSystem } from '../lib/actor-system.js';
import { systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import { ProposeError, type ReplicatedLog } from '../lib/replicated-log.js';
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
import type { LevelResult } from './lib/loadgen.js';
import { measureRaftProcesses } from './lib/raft-processes.js';

export type Kind = 'paxos' | 'raft';

export interface Cluster {
  logs: Map<string, ReplicatedLog>;
  systems: ActorSystem[];
  network: MemoryNetwork;
  stop(): Promise<void>;
}

export async function startCluster(kind: Kind, n: number, seed: number): Promise<Cluster> {
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const network = new MemoryNetwork({ clock: systemClock, random: new Random(seed) });
  const logs = new Map<string, ReplicatedLog>();
  const systems: ActorSystem[] = [];
  const stops: (() => Promise<void>)[] = [];
  for (const id of ids) {
    const system = new ActorSystem({
      nodeId: id,
      clock: systemClock,
      random: new Random(seed * 31 + systems.length),
      transport: network.connect(id),
      logger: silentLogger,
    });
    systems.push(system);
    const disk = new MemoryDisk();
    if (kind === 'paxos') {
      const node = startMultiPaxosNode({
        system,
        members: ids,
        stateMachine: new KvStateMachine(),
        storage: await openMemoryPaxosStorage(disk),
        snapshotEvery: 10_000,
        window: 512,
        maxPending: 100_000,
        proposeTimeoutMs: 3_000,
      });
      logs.set(id, node.log);
      stops.push(() => node.stop());
    } else {
      const raft = new RaftNode({
        storage: () => openMemoryDataDir(disk),
        stateMachine: () => new KvStateMachine(),
        bootstrap: ids,
        requestTimeoutMs: 3_000,
      });
      system.spawn('raft', raft);
      logs.set(id, raft);
    }
  }
  return {
    logs,
    systems,
    network,
    async stop() {
      for (const s of stops) await s();
      for (const s of systems) await s.shutdown();
    },
  };
}

export async function leaderOf(cluster: Cluster, timeoutMs = 10_000): Promise<ReplicatedLog> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    for (const [id, log] of cluster.logs) {
      let leader: string | undefined;
      log.leader$.subscribe((l) => (leader = l)).unsubscribe();
      if (leader === id) return log;
    }
    if (performance.now() > deadline) throw new Error('no leader elected');
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface RunResult {
  opsPerSec: number;
  p50: number;
  p99: number;
  /** Proposals retried after NotLeader / Dropped / Timeout (leader changes). */
  retries: number;
  /** Retries by error code. */
  codes: Record<string, number>;
  /**
   * CPU time of this process (all nodes and clients) per committed write, in µs: less
   * sensitive to a loaded machine than writes/s, which also depend on the CPU share we got.
   */
  cpuUsPerWrite: number;
}

let clientEpoch = 0;

async function closedLoop(cluster: Cluster, clients: number, ms: number): Promise<RunResult> {
  let log = await leaderOf(cluster);
  const epoch = clientEpoch++;
  const latencies: number[] = [];
  let stop = false;
  let done = 0;
  let retries = 0;
  const codes: Record<string, number> = {};
  const warmupEnd = performance.now() + Math.min(300, ms / 4);
  const client = async (i: number) => {
    let seq = 0;
    while (!stop) {
      seq++;
      const t0 = performance.now();
      for (;;) {
        try {
          await log.propose({
            clientId: `b${epoch}-${i}`,
            seq,
            op: { f: 'write', key: `k${i % 64}`, value: seq },
          });
          break;
        } catch (err) {
          if (!(err instanceof ProposeError)) throw err;
          if (stop) break;
          // NotLeader/Dropped: not applied; Timeout: maybe applied. Retrying the same
          // (clientId, seq) is safe either way: sessions apply it at most once.
          retries++;
          codes[err.code] = (codes[err.code] ?? 0) + 1;
          const hinted =
            err.leaderHint !== undefined ? cluster.logs.get(err.leaderHint) : undefined;
          log = hinted ?? (await leaderOf(cluster));
        }
      }
      const t1 = performance.now();
      if (t0 >= warmupEnd && !stop) {
        latencies.push(t1 - t0);
        done++;
      }
    }
  };
  const all = Array.from({ length: clients }, (_, i) => client(i));
  await new Promise((r) => setTimeout(r, Math.min(300, ms / 4)));
  const start = performance.now();
  const doneAtStart = done;
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, ms));
  const cpu = process.cpuUsage(cpu0);
  const writes = done - doneAtStart;
  stop = true;
  const secs = (performance.now() - start) / 1000;
  await Promise.all(all);
  latencies.sort((a, b) => a - b);
  return {
    opsPerSec: done / secs,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    retries,
    codes,
    cpuUsPerWrite: writes > 0 ? (cpu.user + cpu.system) / writes : Number.NaN,
  };
}

function arg(argv: string[], name: string, fallback: string): string {
  return argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
}

/**
 * A full garbage collection before each measured cluster: otherwise a cluster pays for
 * collecting the previous cluster's heap (a stopped Multi-Paxos cluster leaves more behind
 * than a Raft one, so whichever protocol ran after Multi-Paxos paid more).
 */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  gc?.();
}

export const main: BenchMain = async (argv) => {
  const repeats = Number(arg(argv, 'repeats', '5'));
  const seconds = Number(arg(argv, 'seconds', '2'));
  const nodes = Number(arg(argv, 'nodes', '3'));
  const clientCounts = arg(argv, 'clients', '1,16,256').split(',').map(Number);
  const results: Record<Kind, Map<number, RunResult[]>> = { paxos: new Map(), raft: new Map() };
  // --only=paxos|raft runs one side (for profiling: node --cpu-prof); the ratio needs both.
  const only = arg(argv, 'only', '');
  const kinds = (['paxos', 'raft'] as const).filter((k) => only === '' || k === only);
  // Fairness (session 8). A fresh process runs everything cold (the JIT, the codec, the actor
  // runtime, shared by both), and a fresh *cluster* is costlier per write for its first second
  // or so (its tables and retained values grow, and get promoted, before the first snapshot):
  // both protocols show it, Multi-Paxos longer. So:
  // - both protocols are warmed before anything is measured, interleaved (paxos, raft, paxos,
  //   raft: `--warmup` seconds each in total, at the largest client count), so neither gets
  //   the whole JIT warm-up of the code they share;
  // - every measured cluster first runs `--settle` seconds at the largest client count,
  //   unmeasured, so both are measured past their per-cluster start-up;
  // - a full GC before every measured cluster, so none pays for collecting its predecessor;
  // - rounds alternate the order (P R R P P R ...), and the result is the median of the
  //   rounds, with the median of the per-round ratios (each round's two clusters ran back to
  //   back, so a round's ratio is less exposed to the machine's load drifting between rounds).
  const warmup = Number(arg(argv, 'warmup', '3'));
  const settle = Number(arg(argv, 'settle', '1'));
  const maxClients = Math.max(...clientCounts);
  // --process-only: only the 3-process rows (with --processes=N), e.g. `--processes=3
  // --process-only --clients=256` while iterating on case (b).
  const processOnly = argv.includes('--process-only');
  if (processOnly && Number(arg(argv, 'processes', '0')) <= 0) {
    throw new Error('--process-only needs --processes=N (N ≥ 1 rounds of the 3-process rows)');
  }
  if (warmup > 0 && !processOnly) {
    for (let w = 0; w < 2; w++) {
      for (const kind of kinds) {
        const cluster = await startCluster(kind, nodes, 1000 + w);
        try {
          await closedLoop(cluster, maxClients, (warmup * 1000) / 2);
        } finally {
          await cluster.stop();
        }
      }
    }
  }
  for (let r = 0; r < (processOnly ? 0 : repeats); r++) {
    for (const kind of r % 2 === 0 ? kinds : [...kinds].reverse()) {
      collectGarbage();
      const cluster = await startCluster(kind, nodes, 1 + r);
      try {
        await leaderOf(cluster);
        await new Promise((r) => setTimeout(r, 300)); // let elections settle
        if (settle > 0) await closedLoop(cluster, maxClients, settle * 1000);
        for (const c of clientCounts) {
          const res = await closedLoop(cluster, c, seconds * 1000);
          const list = results[kind].get(c) ?? [];
          list.push(res);
          results[kind].set(c, list);
        }
      } finally {
        await cluster.stop();
      }
    }
  }
  const measurements: Measurement[] = [];
  for (const c of processOnly ? [] : clientCounts) {
    const px = results.paxos.get(c) ?? [];
    const rf = results.raft.get(c) ?? [];
    measurements.push(
      summarize(
        `Multi-Paxos committed writes, ${nodes} nodes, ${c} client(s)`,
        'writes/s',
        'higher',
        px.map((x) => x.opsPerSec),
        { name: `Raft, same setup`, runs: rf.map((x) => x.opsPerSec) },
        'within 20% of Raft (ratio ≥ 0.8)',
      ),
      summarize(
        `Multi-Paxos p50 commit latency, ${c} client(s)`,
        'ms',
        'lower',
        px.map((x) => x.p50),
        { name: 'Raft p50', runs: rf.map((x) => x.p50) },
      ),
      summarize(
        `Multi-Paxos p99 commit latency, ${c} client(s)`,
        'ms',
        'lower',
        px.map((x) => x.p99),
        { name: 'Raft p99', runs: rf.map((x) => x.p99) },
      ),
      summarize(
        `Multi-Paxos CPU per committed write (whole process), ${c} client(s)`,
        'µs',
        'lower',
        px.map((x) => x.cpuUsPerWrite),
        { name: 'Raft CPU per write', runs: rf.map((x) => x.cpuUsPerWrite) },
      ),
    );
    if (px.length > 0 && px.length === rf.length) {
      measurements.push(
        summarize(
          `Per-round ratio Multi-Paxos / Raft writes/s, ${c} client(s)`,
          'ratio',
          'higher',
          px.map((x, i) => x.opsPerSec / (rf[i] as RunResult).opsPerSec),
          undefined,
          '≥ 0.8',
        ),
        summarize(
          `Per-round ratio Raft / Multi-Paxos CPU per write, ${c} client(s)`,
          'ratio',
          'higher',
          px.map((x, i) => (rf[i] as RunResult).cpuUsPerWrite / x.cpuUsPerWrite),
        ),
      );
    }
  }
  const processNotes: string[] = [];
  const processRounds = Number(arg(argv, 'processes', '0'));
  if (processRounds > 0) {
    measurements.push(
      ...(await threeProcesses(
        processRounds,
        Number(arg(argv, 'process-seconds', '5')),
        clientCounts,
        processNotes,
      )),
    );
  }
  const retryNote = (['paxos', 'raft'] as const)
    .map((k) => {
      const all = [...results[k].values()].flat();
      const byCode: Record<string, number> = {};
      for (const r of all)
        for (const [c, n] of Object.entries(r.codes)) byCode[c] = (byCode[c] ?? 0) + n;
      const detail = Object.entries(byCode)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ');
      return `${k}: ${all.reduce((a, r) => a + r.retries, 0)} retried proposals${detail ? ` (${detail})` : ''}`;
    })
    .join(', ');
  const inProcessNotes = processOnly
    ? []
    : [
        `Client retries after NotLeader/Dropped/Timeout (leader changes under load): ${retryNote}.`,
        `${nodes} nodes in one process, in-memory transport (msgpack-encoded envelopes), memory disks (no fsync); closed-loop clients proposing writes to the leader; ${seconds} s per point, each fresh cluster first running ${settle} s unmeasured at ${maxClients} clients; ${repeats} rounds (the order of the two protocols alternating, P R R P ...), medians of the rounds, and the median of the per-round ratios; both protocols warmed ${warmup} s each, interleaved, before anything is measured.`,
      ];
  const rep = report('paxos', measurements, [...inProcessNotes, ...processNotes, loadNote()]);
  if (processOnly) rep.partial = '--process-only: the in-process rows were not measured';
  return rep;
};

/**
 * Raft's case (b) for both protocols: three `synod node` processes (WebSockets, file storage
 * with fsync), the KV clients and closed loop of bench/raft.ts, `rounds` rounds alternating the
 * order. Rows: Multi-Paxos writes/s and p50/p99 with Raft's from the same round as baseline.
 */
async function threeProcesses(
  rounds: number,
  seconds: number,
  levels: number[],
  notes: string[],
): Promise<Measurement[]> {
  const runs: Record<Kind, LevelResult[][]> = {
    paxos: levels.map(() => []),
    raft: levels.map(() => []),
  };
  for (let r = 0; r < rounds; r++) {
    const order: Kind[] = r % 2 === 0 ? ['raft', 'paxos'] : ['paxos', 'raft'];
    for (const kind of order) {
      const res = await measureRaftProcesses({
        levels,
        durationMs: seconds * 1000,
        trials: 0,
        runs: 1,
        ...(kind === 'paxos' ? { nodeArgs: ['--protocol', 'paxos'] } : {}),
        log: (line) => console.log(`[3 processes, ${kind}] ${line}`),
      });
      res.levels.forEach((l, i) => {
        runs[kind][i]?.push(...l);
      });
    }
  }
  const out: Measurement[] = [];
  levels.forEach((c, i) => {
    const px = runs.paxos[i] as LevelResult[];
    const rf = runs.raft[i] as LevelResult[];
    out.push(
      summarize(
        `3 processes, WS + fsync: Multi-Paxos committed writes, ${c} client(s)`,
        'writes/s',
        'higher',
        px.map((x) => x.write.opsPerSec),
        { name: 'Raft, same processes and clients', runs: rf.map((x) => x.write.opsPerSec) },
        // the issue's target holds for every cluster the Raft benchmark measures, this one too
        'within 20% of Raft (ratio ≥ 0.8)',
      ),
      summarize(
        `3 processes: Multi-Paxos p50 write latency, ${c} client(s)`,
        'ms',
        'lower',
        px.map((x) => x.write.p50),
        { name: 'Raft p50', runs: rf.map((x) => x.write.p50) },
      ),
      summarize(
        `3 processes: Multi-Paxos p99 write latency, ${c} client(s)`,
        'ms',
        'lower',
        px.map((x) => x.write.p99),
        { name: 'Raft p99', runs: rf.map((x) => x.write.p99) },
      ),
    );
    const errors = (rs: LevelResult[]) => rs.reduce((a, x) => a + x.write.errors, 0);
    if (errors(px) + errors(rf) > 0)
      notes.push(
        `3 processes, ${c} clients: failed writes not counted: Multi-Paxos ${errors(px)}, Raft ${errors(rf)}`,
      );
  });
  notes.push(
    `3 processes (--processes=${rounds}): three \`synod node\` processes on loopback (dist/ build), WebSockets with the cluster secret, file storage with fsync, \`--protocol paxos\` against the default Raft; the closed-loop KV clients of bench/raft.ts (bench/lib/loadgen.ts, 100-byte puts) in the benchmark process; ${seconds} s per level; ${rounds} round(s), the order alternating (R P, P R, ...); medians of the rounds.`,
  );
  return out;
}
