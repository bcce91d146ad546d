/**
 * The backup benchmark's deployed case: three `synod node` processes (WebSockets, file
 * storage, fsync on) and a separate `synod backup full --cluster` process, as an operator
 * runs it. 16 closed-loop writers put 1 KB values the whole time; the write p99 is taken in
 * alternating phases — no agent at all, and while one `synod backup full` runs (it joins as
 * a learner, catches up, writes the full backup and leaves), in the order AB, BA, AB, … so the
 * machine's load drifts over both alike. What the cluster pays is the learner's AppendEntries
 * stream; the agent's chunking, hashing and compression run in its own process (at the CLI's
 * default `--nice 10`).
 *
 * The nodes run with `--snapshot-every 1000000` (NODE_SNAPSHOT_EVERY): with the default 10,000
 * a node snapshot of the whole state falls in some phases and not others, and which phase held
 * one decided the p99 comparison (measured: benchmarks/backup.md, "what the nodes do in each
 * phase"). Without node snapshots the agent catches up from the log (every entry since the
 * start), which costs the leader more than one InstallSnapshot would: the comparison is, if
 * anything, against the backup.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { percentile } from '../harness.js';
import { cpuMsOf, ensureBuiltCli } from './procs.js';
import { SynodProcessCluster } from './synod-cluster.js';

export interface BackupProcessLatency {
  /** Write p99 (ms) per phase without an agent. */
  idle: number[];
  /** Write p99 (ms) per phase while `synod backup full --cluster` ran. */
  during: number[];
  nIdle: number;
  nDuring: number;
  /** Wall time of each `synod backup full` process (ms). */
  backupMs: number[];
  /**
   * CPU time (user + system) of the three node processes per acknowledged write (µs), per
   * phase: what the cluster pays per write, nearly independent of the machine's load.
   */
  nodeCpuUsPerWriteIdle: number[];
  nodeCpuUsPerWriteDuring: number[];
  /**
   * CPU time (user + system, ms) of each `synod backup full` process (its `/proc` stat polled
   * every 20 ms until it exits): what the cluster's nodes share the cores with.
   */
  agentCpuMs: number[];
  /**
   * Entries each `synod backup full` process applied: its "log archive up to index N" minus the
   * previous one's (the first from index 0). With `agentCpuMs`, the agent's CPU per entry.
   */
  agentEntries: number[];
}

const WRITERS = 16;
/** Above any run's write count: no node snapshot inside a measured phase (see above). */
export const NODE_SNAPSHOT_EVERY = 1_000_000;

export async function backupProcessLatency(
  base: string,
  keys: number,
  rounds: number,
  log: (line: string) => void = () => {},
): Promise<BackupProcessLatency> {
  const dir = path.join(base, 'process-cluster');
  const repo = path.join(base, 'process-repo');
  const bin = ensureBuiltCli(log);
  // SYNOD_BENCH_NODE_FLAGS: node flags for the node processes (e.g. --cpu-prof --cpu-prof-dir=D).
  const nodeFlags = (process.env.SYNOD_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const cluster = await SynodProcessCluster.start({
    dir,
    log,
    nodeArgs: () => ['--snapshot-every', String(NODE_SNAPSHOT_EVERY)],
    ...(nodeFlags.length > 0 ? { nodeFlags: () => nodeFlags } : {}),
  });
  const ids = cluster.peerSpecs().map((p) => p.slice(0, p.indexOf('=')));
  /** CPU ms of every node process so far (undefined where /proc is unreadable). */
  const nodeCpu = (): number | undefined => {
    let sum = 0;
    for (const id of ids) {
      const ms = cpuMsOf(cluster.pid(id));
      if (ms === undefined) return undefined;
      sum += ms;
    }
    return sum;
  };
  const { clients, close } = await cluster.clients(WRITERS, { timeoutMs: 30_000 });
  try {
    const val = 'v'.repeat(1000);
    const key = (i: number) => `bench/${String(i).padStart(8, '0')}`;
    let next = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (next < keys) {
          const r = await c.put(key(next++), val);
          if (r.outcome !== 'ok') throw new Error(`preload put failed: ${JSON.stringify(r)}`);
        }
      }),
    );
    /** Writes until `stop()` says so; returns the sorted latencies of acknowledged puts. */
    const write = async (stop: () => boolean): Promise<number[]> => {
      const lat: number[] = [];
      let k = 0;
      await Promise.all(
        clients.map(async (c) => {
          while (!stop()) {
            const t0 = performance.now();
            const r = await c.put(key(k++ % keys), val);
            if (r.outcome === 'ok') lat.push(performance.now() - t0);
          }
        }),
      );
      return lat.sort((a, b) => a - b);
    };
    const secretFile = path.join(dir, 'cluster.key');
    const out: BackupProcessLatency = {
      idle: [],
      during: [],
      nIdle: 0,
      nDuring: 0,
      backupMs: [],
      nodeCpuUsPerWriteIdle: [],
      nodeCpuUsPerWriteDuring: [],
      agentCpuMs: [],
      agentEntries: [],
    };
    let archivedTo = 0;
    const perWrite = (cpu0: number | undefined, writes: number): number => {
      const cpu1 = nodeCpu();
      return cpu0 === undefined || cpu1 === undefined || writes === 0
        ? Number.NaN
        : ((cpu1 - cpu0) * 1000) / writes;
    };
    /** One phase while a `synod backup full --cluster` process runs; returns its wall time. */
    const backupPhase = async (r: number): Promise<number> => {
      let done = false;
      const t0 = performance.now();
      const cpuDuring = nodeCpu();
      let wall = 0;
      let agentCpu = Number.NaN;
      const backup = new Promise<void>((resolve, reject) => {
        const child = execFile(
          process.execPath,
          [
            bin,
            'backup',
            'full',
            '--cluster',
            cluster.peerSpecs().join(','),
            '--secret-file',
            secretFile,
            '--repo',
            repo,
            '--agent-id',
            `bench-agent-${r}`,
          ],
          { timeout: 300_000 },
          (err, stdout, stderr) => {
            clearInterval(poll);
            const m = /log archive up to index (\d+)/.exec(stdout);
            const to = m ? Number(m[1]) : Number.NaN;
            out.agentEntries.push(to - archivedTo);
            if (m) archivedTo = to;
            done = true;
            wall = performance.now() - t0;
            if (err) reject(new Error(`synod backup full failed: ${err.message}\n${stderr}`));
            else resolve();
          },
        );
        const poll = setInterval(() => {
          agentCpu = cpuMsOf(child.pid) ?? agentCpu;
        }, 20);
      });
      const during = await write(() => done);
      await backup;
      out.backupMs.push(wall);
      out.agentCpuMs.push(agentCpu);
      out.nodeCpuUsPerWriteDuring.push(perWrite(cpuDuring, during.length));
      out.during.push(percentile(during, 99));
      out.nDuring += during.length;
      return during.length;
    };
    /** One phase of `ms` with no agent at all. */
    const idlePhase = async (ms: number): Promise<number> => {
      const end = performance.now() + ms;
      const cpuIdle = nodeCpu();
      const idle = await write(() => performance.now() >= end);
      out.nodeCpuUsPerWriteIdle.push(perWrite(cpuIdle, idle.length));
      out.idle.push(percentile(idle, 99));
      out.nIdle += idle.length;
      return idle.length;
    };
    for (let r = 0; r < rounds; r++) {
      // AB, BA, AB, …: a "without" phase that comes first lasts as long as the last backup.
      let nDuring: number;
      let nIdle: number;
      if (r % 2 === 0) {
        nDuring = await backupPhase(r);
        nIdle = await idlePhase(out.backupMs[out.backupMs.length - 1] as number);
      } else {
        nIdle = await idlePhase(out.backupMs[out.backupMs.length - 1] as number);
        nDuring = await backupPhase(r);
      }
      log(
        `round ${r + 1} (${r % 2 === 0 ? 'backup first' : 'backup second'}): backup ${Math.round(out.backupMs[r] as number)} ms (agent CPU ${Math.round(out.agentCpuMs[r] as number)} ms, ${out.agentEntries[r]} entries), p99 during ${out.during[r]?.toFixed(1)} ms (${nDuring} writes, nodes ${out.nodeCpuUsPerWriteDuring[r]?.toFixed(0)} CPU µs/write), without ${out.idle[r]?.toFixed(1)} ms (${nIdle}, ${out.nodeCpuUsPerWriteIdle[r]?.toFixed(0)} µs/write)`,
      );
    }
    return out;
  } finally {
    await close().catch(() => undefined);
    await cluster.stop();
    await rm(repo, { recursive: true, force: true });
  }
}
