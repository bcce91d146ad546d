/**
 * Raft over three real processes (`synod node`: WebSocket transport, file storage, fsync on):
 *
 * - committed writes/s and p50/p99/p999 latency at C concurrent clients (default 1, 16, 256),
 *   through the KV client (each put resolves after commit and apply on the leader);
 *   baseline measured in the same run: a bare write + fdatasync loop on the same disk (what a
 *   durable log without group commit manages);
 * - failover: SIGKILL the leader, then time until the first write accepted by a new leader
 *   (probes on both survivors, retried every few ms), restart the killed node and wait until
 *   all three agree again; `trials` times (default 20).
 *
 * `measureRaftProcesses` is called by bench/raft-processes.ts and meant for bench/raft.ts.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Measurement, summarize } from '../harness.js';
import { describe, type LevelResult, runLevel } from './loadgen.js';
import { sleep } from './procs.js';
import { latencyHistogramSvg } from './svg.js';
import { SynodProcessCluster } from './synod-cluster.js';
import { synodTarget } from './targets.js';

export interface RaftProcessOptions {
  levels?: number[];
  durationMs?: number;
  /** Failover trials (0 skips failover). */
  trials?: number;
  /** Repetitions of each throughput level (median and spread over them). */
  runs?: number;
  /** Base directory for the data (default: the OS temp dir; same disk as the repo here). */
  dir?: string;
  /** Where to write the latency plot (repo-relative path is returned); none when undefined. */
  plotFile?: string;
  log?: (line: string) => void;
  /**
   * Extra `synod node` arguments for every node, e.g. ['--protocol', 'paxos'] (bench/paxos.ts
   * `--processes`: the same three processes, clients and loop with Multi-Paxos nodes).
   */
  nodeArgs?: string[];
}

export interface RaftProcessResult {
  measurements: Measurement[];
  notes: string[];
  levels: LevelResult[][];
  failoverMs: number[];
  plot?: string;
}

/** Sequential write + fdatasync of `bytes`-byte records for `ms`: records per second. */
export function rawFsyncRate(dir: string, ms = 2000, bytes = 150): number {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `fsync-baseline-${process.pid}.bin`);
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(bytes, 7);
  let n = 0;
  const t0 = performance.now();
  try {
    while (performance.now() - t0 < ms) {
      writeSync(fd, buf);
      fdatasyncSync(fd);
      n++;
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return (n * 1000) / (performance.now() - t0);
}

function percentileOf(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** One failover trial on a running cluster: ms from SIGKILL of the leader to the first accepted write. */
async function failoverTrial(
  cluster: SynodProcessCluster,
  trial: number,
): Promise<{ ms: number; from: string; to: string }> {
  const leader = await cluster.waitForLeader(30_000, { caughtUp: true });
  const survivors = cluster.ids.filter((id) => id !== leader.id);
  const probes = survivors.map((s) =>
    cluster.client([s], {
      timeoutMs: 200,
      attemptTimeoutMs: 200,
      retryBackoffMs: { base: 2, max: 5 },
    }),
  );
  // Warm the probes' sessions (a first write per session registers it).
  await Promise.all(probes.map((p) => p.put(`failover/warm/${trial}`, 'x')));
  const t0 = performance.now();
  await cluster.kill(leader.id, 'SIGKILL');
  const found: { winner?: { ms: number; to: string } } = {};
  const deadline = t0 + 30_000;
  await Promise.all(
    probes.map(async (p, i) => {
      let n = 0;
      while (!found.winner && performance.now() < deadline) {
        const r = await p.put(`failover/${trial}`, `probe-${i}-${n++}`);
        if (r.outcome === 'ok' && r.servedBy !== leader.id) {
          const ms = performance.now() - t0;
          const prev = found.winner as { ms: number } | undefined;
          if (!prev || ms < prev.ms) found.winner = { ms, to: r.servedBy };
          return;
        }
        await sleep(2);
      }
    }),
  );
  for (const p of probes) await p.close();
  const winner = found.winner;
  if (!winner)
    throw new Error(`failover trial ${trial}: no new leader accepted a write within 30 s`);
  await cluster.startNode(leader.id);
  await cluster.waitForLeader(60_000, { caughtUp: true });
  return { ms: winner.ms, from: leader.id, to: winner.to };
}

export async function measureRaftProcesses(
  options: RaftProcessOptions = {},
): Promise<RaftProcessResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const levels = options.levels ?? [1, 16, 256];
  const durationMs = options.durationMs ?? 10_000;
  const trials = options.trials ?? 20;
  const runs = Math.max(1, options.runs ?? 1);
  const base = options.dir ?? path.join(os.tmpdir(), `synod-bench-raft-${process.pid}`);
  const results: LevelResult[][] = levels.map(() => []);
  const baselineRuns: number[] = [];
  const failoverMs: number[] = [];
  const notes: string[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const bl = rawFsyncRate(base);
      baselineRuns.push(bl);
      log(`raw write+fdatasync on the data disk: ${Math.round(bl)}/s`);
      // SYNOD_BENCH_NODE_FLAGS: extra `node` flags for the three node processes, e.g.
      // "--cpu-prof --cpu-prof-dir=/tmp/p" to profile them (as in bench/lib/backup-processes.ts).
      const nodeFlags = (process.env.SYNOD_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
      const cluster = await SynodProcessCluster.start({
        dir: path.join(base, `run${run}`),
        log,
        ...(nodeFlags.length > 0 ? { nodeFlags: () => nodeFlags } : {}),
        ...(options.nodeArgs ? { nodeArgs: () => options.nodeArgs as string[] } : {}),
      });
      try {
        for (let i = 0; i < levels.length; i++) {
          const r = await runLevel(synodTarget(cluster, 'synod 3 processes'), {
            clients: levels[i] as number,
            durationMs,
            writesOnly: true,
          });
          log(describe(r));
          results[i]?.push(r);
        }
        if (run === 0 && trials > 0) {
          for (let t = 0; t < trials; t++) {
            const f = await failoverTrial(cluster, t);
            failoverMs.push(f.ms);
            log(
              `failover ${t + 1}/${trials}: ${f.from} killed, ${f.to} accepted a write after ${f.ms.toFixed(0)} ms`,
            );
          }
        }
      } finally {
        await cluster.stop();
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const measurements: Measurement[] = [];
  levels.forEach((c, i) => {
    const rs = results[i] as LevelResult[];
    const target = c === 256 ? '≥ 15,000 writes/s at 256 clients' : undefined;
    measurements.push(
      summarize(
        `3 processes, WS + fsync, ${c} client${c === 1 ? '' : 's'}: writes/s`,
        'writes/s',
        'higher',
        rs.map((r) => r.write.opsPerSec),
        { name: 'raw write+fdatasync loop, same disk', runs: baselineRuns },
        target,
      ),
    );
    for (const [p, key] of [
      ['p50', 'p50'],
      ['p99', 'p99'],
    ] as const) {
      measurements.push(
        summarize(
          `3 processes, ${c} client${c === 1 ? '' : 's'}: write latency ${p}`,
          'ms',
          'lower',
          rs.map((r) => r.write[key]),
        ),
      );
    }
    const cpu = rs[0]?.write.cpuUsPerOp;
    if (cpu)
      notes.push(
        `${c} clients, CPU µs per committed write: ${Object.entries(cpu)
          .map(([k, v]) => `${k} ${Math.round(v)}`)
          .join(', ')}`,
      );
    const errors = rs.reduce((a, r) => a + r.write.errors, 0);
    if (errors > 0)
      notes.push(
        `${c} clients: ${errors} failed writes (${JSON.stringify(rs.map((r) => r.write.errorCodes))}), not counted`,
      );
  });
  if (failoverMs.length > 0) {
    const m50 = summarize(
      `failover (SIGKILL leader → first write accepted by a new leader), p50 of ${failoverMs.length}`,
      'ms',
      'lower',
      [percentileOf(failoverMs, 50)],
      undefined,
      'p50 ≤ 450 ms (default timeouts: heartbeat 50 ms, election 150–300 ms)',
    );
    m50.extra = { trialsMs: failoverMs.map((v) => Math.round(v)) };
    measurements.push(
      m50,
      summarize(`failover p99 of ${failoverMs.length}`, 'ms', 'lower', [
        percentileOf(failoverMs, 99),
      ]),
    );
    notes.push(
      `failover trials (ms): ${failoverMs.map((v) => Math.round(v)).join(', ')}; each: SIGKILL the leader, probe both survivors with puts (200 ms attempts, 2–5 ms backoff), stop at the first write a new leader accepts, restart the killed node on its data and wait until all three agree and have applied the commit index`,
    );
  }
  let plot: string | undefined;
  if (options.plotFile) {
    const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];
    const svg = latencyHistogramSvg({
      title: 'Synod Raft, 3 processes over WebSockets, fsync on: put latency',
      subtitle: `closed loop, 100-byte values, ${durationMs / 1000} s per level, ${new Date().toISOString().slice(0, 16)}Z, load average ${os.loadavg()[0]?.toFixed(1)}`,
      series: levels.map((c, i) => ({
        name: `${c} client${c === 1 ? '' : 's'}`,
        latenciesMs: (results[i] as LevelResult[])[0]?.write.latenciesMs ?? new Float64Array(),
        color: colors[i % colors.length] as string,
      })),
    });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(options.plotFile, svg);
    plot = options.plotFile;
  }
  return { measurements, notes, levels: results, failoverMs, ...(plot ? { plot } : {}) };
}
