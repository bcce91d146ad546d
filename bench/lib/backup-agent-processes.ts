/**
 * The backup benchmark's standing-agent case, the deployment docs/backup.md recommends: three
 * `synod node` processes (as bench/lib/backup-processes.ts starts them: WebSockets, file
 * storage, fsync on, `--snapshot-every` NODE_SNAPSHOT_EVERY) and one long-running
 * `synod backup agent` process (the real CLI at its defaults: `--nice 10`, LZ4 repository on
 * the same disk as the nodes' data) that joins as a learner, catches up, archives the log and
 * takes the full backups its schedule asks for (`synod backup schedule --full '@every Ns'`).
 * 16 closed-loop writers put 1 KB values over the preloaded keys the whole time.
 *
 * The issue's measure, in the same minutes: every write acknowledged while the agent runs
 * (after it printed "caught up", before it is stopped) is classified by its [start, end]
 * against the agent's backup windows (its `--json` lines' `requestedAt` … `endedAt`, wall
 * clock, ms): **during** when it overlaps a backup, **after** when it does not but overlaps
 * the `afterMs` following a backup's end (what a backup leaves behind: the learner's
 * acknowledgement backlog, the garbage of its capture), **idle** otherwise (the agent following
 * and archiving, no backup running or just ended). Backups and idle stretches alternate every
 * few seconds, so load drift hits every class alike. The ratio is p99(idle) / p99(during), and
 * also with the after class counted as during; the write rate (acknowledged writes per second)
 * is compared the same way ("without slowing writes").
 *
 * Also the agent's own cost when idle: **no agent** phases (before the agent starts, between
 * rounds, after it stops; the agent's start-up and catch-up, and its stop, are excluded from
 * every class) against the idle class. A no-agent phase and an agent phase alternate:
 * N0 A1 N1 A2 N2 … so each agent phase has a no-agent phase on both sides.
 *
 * An agent phase ends right after its `backupsPerRound`-th backup ended (the next one is due
 * a period later), so no write is left overlapping a backup whose end was not seen.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { percentile } from '../harness.js';
import { NODE_SNAPSHOT_EVERY } from './backup-processes.js';
import { cpuMsOf, ensureBuiltCli, type Proc, startProc } from './procs.js';
import { SynodProcessCluster } from './synod-cluster.js';

export interface AgentProcessOptions {
  /** Preloaded keys (1 KB values): the state each full backup holds. */
  keys: number;
  /** Agent phases (each with its no-agent phase before it; one more no-agent phase at the end). */
  rounds: number;
  /** The schedule's period (s): `--full '@every <every>s'`. */
  everyS: number;
  /** Backups whose end ends an agent phase. */
  backupsPerRound: number;
  /** Length of each no-agent phase (ms). */
  noAgentMs: number;
  /** Writes starting (or running) this long after a backup's end are the "after" class (ms). */
  afterMs: number;
  /** Extra `synod backup agent` arguments (e.g. ['--nice', '0']), after the defaults. */
  agentArgs?: string[];
  /** A command prefix for the agent process (e.g. ['ionice', '-c3']). */
  agentWrapper?: string[];
  /** Where the repository goes (default `base`, the nodes' disk). */
  repoBase?: string;
  log?: (line: string) => void;
}

export interface AgentPhase {
  /**
   * Write p99 (ms) of the writes that overlapped a backup, of those in the `afterMs` after one
   * (and no backup), of both together, and of the rest.
   */
  during: number;
  after: number;
  duringOrAfter: number;
  idle: number;
  nDuring: number;
  nAfter: number;
  nIdle: number;
  /** Writes in the agent's start-up/catch-up and stop (in no class). */
  nExcluded: number;
  /** Wall time of each backup (requested → manifest written, ms). */
  backupMs: number[];
  /**
   * Share of each backup's bytes reused from the agent's last full (its `reusedBytes`; NaN
   * from an agent that does not report it, before session 14).
   */
  reusedShare: number[];
  /** Share of the measured time a backup ran. */
  backupShare: number;
  /** From starting the process to its "caught up" line (ms). */
  catchUpMs: number;
  /** CPU (user + system, ms) of the agent process while measured, per second measured. */
  agentCpuMsPerS: number;
  /**
   * The agent's CPU (ms) in the backup windows (sampled, `split.during`) per backup, and that
   * less what it spends following in the same time (at the idle class's rate).
   */
  agentCpuMsPerBackup: number;
  agentExtraCpuMsPerBackup: number;
  /** Node processes' CPU (µs) per acknowledged write while measured. */
  nodeCpuUsPerWrite: number;
  /**
   * Sampled every 100 ms while measured, each sample attributed to the backups (during) or
   * not (idle): what the nodes and the agent spent, and the disk, in each class.
   */
  split: { during: ClassSample; after: ClassSample; idle: ClassSample };
}

/** Rates over the samples of one class (CPU from /proc/<pid>/stat, disk from /proc/diskstats). */
export interface ClassSample {
  seconds: number;
  writesPerS: number;
  nodeCpuUsPerWrite: number;
  agentCpuMsPerS: number;
  /** The machine's CPU time in iowait, ms per s (all CPUs, /proc/stat). */
  iowaitMsPerS: number;
  /** Bytes written to the disk holding the data (MB/s) and its weighted I/O time (ms/s). */
  diskWriteMbPerS: number;
  diskQueueMsPerS: number;
}

export interface NoAgentPhase {
  p99: number;
  n: number;
  nodeCpuUsPerWrite: number;
}

export interface AgentProcessLatency {
  phases: AgentPhase[];
  noAgent: NoAgentPhase[];
  /** p99 over all writes of each class, every round pooled. */
  pooled: { during: number; after: number; duringOrAfter: number; idle: number; noAgent: number };
  /** Largest node log index reached (entries); node snapshots start at NODE_SNAPSHOT_EVERY. */
  lastIndex: number;
}

interface Write {
  /** Wall clock (ms since the epoch) when the put was sent and when it was acknowledged. */
  s: number;
  e: number;
  ms: number;
}

interface Window {
  requestedAt: number;
  endedAt: number;
  /** `reusedBytes / bytes` of the backup, when the agent reports them. */
  reused: number;
}

const WRITERS = 16;

export async function backupAgentProcessLatency(
  base: string,
  o: AgentProcessOptions,
): Promise<AgentProcessLatency> {
  const log = o.log ?? (() => {});
  const dir = path.join(base, 'agent-cluster');
  const repo = path.join(o.repoBase ?? base, `agent-repo-${process.pid}`);
  const bin = ensureBuiltCli(log);
  const nodeFlags = (process.env.SYNOD_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const cluster = await SynodProcessCluster.start({
    dir,
    log,
    nodeArgs: () => ['--snapshot-every', String(NODE_SNAPSHOT_EVERY)],
    ...(nodeFlags.length > 0 ? { nodeFlags: () => nodeFlags } : {}),
  });
  const ids = cluster.peerSpecs().map((p) => p.slice(0, p.indexOf('=')));
  const nodeCpu = (): number => {
    let sum = 0;
    for (const id of ids) sum += cpuMsOf(cluster.pid(id)) ?? Number.NaN;
    return sum;
  };
  const secretFile = path.join(dir, 'cluster.key');
  const synod = (args: string[]): string =>
    execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  synod(['backup', 'init', '--repo', repo]);
  synod(['backup', 'schedule', '--repo', repo, '--full', `@every ${o.everyS}s`]);
  const { clients, close } = await cluster.clients(WRITERS, { timeoutMs: 30_000 });
  let agent: Proc | undefined;
  try {
    const val = 'v'.repeat(1000);
    const key = (i: number) => `bench/${String(i).padStart(8, '0')}`;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      clients.map(async (c) => {
        while (next < o.keys) {
          const r = await c.put(key(next++), val);
          if (r.outcome !== 'ok') throw new Error(`preload put failed: ${JSON.stringify(r)}`);
        }
      }),
    );
    log(`preloaded ${o.keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    /** Writes until `stop()`; every acknowledged put with its wall-clock interval. */
    let k = 0;
    let acked = 0;
    const write = async (stop: () => boolean): Promise<Write[]> => {
      const out: Write[] = [];
      await Promise.all(
        clients.map(async (c) => {
          while (!stop()) {
            const s = Date.now();
            const p0 = performance.now();
            const r = await c.put(key(k++ % o.keys), val);
            if (r.outcome === 'ok') {
              out.push({ s, e: Date.now(), ms: performance.now() - p0 });
              acked++;
            }
          }
        }),
      );
      return out;
    };
    const disk = diskOf(dir);
    const sample = (agentPid: number | undefined, writes: number): Sample => ({
      t: Date.now(),
      node: nodeCpu(),
      agent: cpuMsOf(agentPid) ?? Number.NaN,
      writes,
      ...systemCounters(disk),
    });
    const p99 = (ws: Write[]) =>
      percentile(
        ws.map((w) => w.ms).sort((a, b) => a - b),
        99,
      );
    const all = {
      during: [] as Write[],
      after: [] as Write[],
      idle: [] as Write[],
      noAgent: [] as Write[],
    };
    const result: AgentProcessLatency = {
      phases: [],
      noAgent: [],
      pooled: { during: 0, after: 0, duringOrAfter: 0, idle: 0, noAgent: 0 },
      lastIndex: 0,
    };
    const noAgentPhase = async (): Promise<void> => {
      const end = performance.now() + o.noAgentMs;
      const c0 = nodeCpu();
      const ws = await write(() => performance.now() >= end);
      const ph = {
        p99: p99(ws),
        n: ws.length,
        nodeCpuUsPerWrite: ((nodeCpu() - c0) * 1000) / ws.length,
      };
      result.noAgent.push(ph);
      for (const w of ws) all.noAgent.push(w);
      log(
        `no agent: write p99 ${ph.p99.toFixed(1)} ms (${ph.n} writes, nodes ${ph.nodeCpuUsPerWrite.toFixed(0)} CPU µs/write)`,
      );
    };
    const agentPhase = async (r: number): Promise<void> => {
      const windows: Window[] = [];
      let ended = 0;
      let measuring = false;
      const wrap = o.agentWrapper ?? [];
      const [cmd, ...pre] = [...wrap, process.execPath] as unknown as [string, ...string[]];
      const started = performance.now();
      agent = startProc(`agent-${r}`, cmd, [
        ...pre,
        bin,
        'backup',
        'agent',
        '--cluster',
        cluster.peerSpecs().join(','),
        '--secret-file',
        secretFile,
        '--repo',
        repo,
        '--json',
        ...(o.agentArgs ?? []),
      ]);
      const proc = agent;
      let stopWriting = false;
      let doneMeasuring: () => void = () => {};
      const measured = new Promise<void>((resolve) => {
        doneMeasuring = resolve;
      });
      let measureStart = Number.POSITIVE_INFINITY;
      // Every backup the agent reports (a line each): its window.
      const onLine = (line: string): void => {
        let j: {
          event?: string;
          requestedAt?: string;
          endedAt?: string;
          msg?: string;
          bytes?: number;
          reusedBytes?: number;
        };
        try {
          j = JSON.parse(line) as typeof j;
        } catch {
          return;
        }
        if (j.event === 'backup-failed') log(`agent: ${j.msg}`);
        if ((j.event === 'backup' || j.event === 'backup-failed') && j.requestedAt && j.endedAt) {
          const w = {
            requestedAt: Date.parse(j.requestedAt),
            endedAt: Date.parse(j.endedAt),
            reused: j.bytes ? (j.reusedBytes ?? 0) / j.bytes : Number.NaN,
          };
          windows.push(w);
          if (measuring && w.endedAt > measureStart && ++ended >= o.backupsPerRound) {
            stopWriting = true;
            doneMeasuring();
          }
        }
      };
      let partial = '';
      proc.child.stdout?.on('data', (buf: Buffer) => {
        const parts = (partial + buf.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const l of parts) onLine(l);
      });
      // Writes go on from the agent's start: those before "caught up" are excluded.
      let caughtUpWall = Number.POSITIVE_INFINITY;
      const writing = write(() => stopWriting);
      const deadline = 120_000 + o.everyS * 1000 * (o.backupsPerRound + 2);
      let cpuAgent0 = 0;
      let cpuNodes0 = 0;
      let p0 = 0;
      let catchUpMs = 0;
      const samples: Sample[] = [];
      let sampler: NodeJS.Timeout | undefined;
      try {
        await proc.waitFor(/caught up at index/, 600_000);
        caughtUpWall = Date.now();
        catchUpMs = performance.now() - started;
        measureStart = caughtUpWall;
        measuring = true;
        // Backups that ended between the "caught up" line and now count too.
        ended = windows.filter((w) => w.endedAt > measureStart).length;
        cpuAgent0 = cpuMsOf(proc.child.pid) ?? Number.NaN;
        cpuNodes0 = nodeCpu();
        p0 = performance.now();
        samples.push(sample(proc.child.pid, acked));
        sampler = setInterval(() => samples.push(sample(proc.child.pid, acked)), 100);
        if (ended >= o.backupsPerRound) stopWriting = true;
        else
          await Promise.race([
            measured,
            proc.exited().then((x) => {
              throw new Error(`the agent exited (${JSON.stringify(x)}):\n${proc.tail()}`);
            }),
            new Promise((_, reject) =>
              setTimeout(
                () => reject(new Error(`no ${o.backupsPerRound} backups within ${deadline} ms`)),
                deadline,
              ).unref(),
            ),
          ]);
      } finally {
        stopWriting = true;
        if (sampler) clearInterval(sampler);
      }
      samples.push(sample(proc.child.pid, acked));
      const stopWall = Date.now();
      const seconds = (performance.now() - p0) / 1000;
      const agentCpu = (cpuMsOf(proc.child.pid) ?? Number.NaN) - cpuAgent0;
      const nodeCpuMs = nodeCpu() - cpuNodes0;
      const ws = await writing;
      await proc.stop(30_000);
      agent = undefined;
      const inPhase = ws.filter((w) => w.s >= caughtUpWall && w.e <= stopWall);
      const during: Write[] = [];
      const after: Write[] = [];
      const idle: Write[] = [];
      for (const w of inPhase) {
        if (windows.some((b) => w.e >= b.requestedAt && w.s <= b.endedAt)) during.push(w);
        else if (windows.some((b) => w.e > b.endedAt && w.s <= b.endedAt + o.afterMs))
          after.push(w);
        else idle.push(w);
      }
      const counted = windows.filter((b) => b.endedAt > caughtUpWall);
      const busy = counted.reduce(
        (s, b) => s + Math.min(b.endedAt, stopWall) - Math.max(b.requestedAt, caughtUpWall),
        0,
      );
      const ph: AgentPhase = {
        during: p99(during),
        after: p99(after),
        duringOrAfter: p99([...during, ...after]),
        idle: p99(idle),
        nDuring: during.length,
        nAfter: after.length,
        nIdle: idle.length,
        nExcluded: ws.length - inPhase.length,
        backupMs: counted.map((b) => b.endedAt - b.requestedAt),
        reusedShare: counted.map((b) => b.reused),
        backupShare: busy / Math.max(1, stopWall - caughtUpWall),
        catchUpMs,
        agentCpuMsPerS: agentCpu / seconds,
        nodeCpuUsPerWrite: (nodeCpuMs * 1000) / inPhase.length,
        split: splitSamples(samples, windows, o.afterMs),
        agentCpuMsPerBackup: 0,
        agentExtraCpuMsPerBackup: 0,
      };
      const { during: sd, idle: si } = ph.split;
      const nb = Math.max(1, ph.backupMs.length);
      ph.agentCpuMsPerBackup = (sd.agentCpuMsPerS * sd.seconds) / nb;
      ph.agentExtraCpuMsPerBackup = ((sd.agentCpuMsPerS - si.agentCpuMsPerS) * sd.seconds) / nb;
      result.phases.push(ph);
      for (const w of during) all.during.push(w);
      for (const w of after) all.after.push(w);
      for (const w of idle) all.idle.push(w);
      log(
        `agent round ${r + 1}: caught up in ${(ph.catchUpMs / 1000).toFixed(1)} s; write p99 during a backup ${ph.during.toFixed(1)} ms (${ph.nDuring} writes), after ${ph.after.toFixed(1)} ms (${ph.nAfter}, within ${o.afterMs} ms of a backup's end), idle ${ph.idle.toFixed(1)} ms (${ph.nIdle}); ${ph.backupMs.length} backups of ${ph.backupMs.map((x) => Math.round(x)).join(', ')} ms (reused ${ph.reusedShare.map((x) => `${Math.round(x * 100)} %`).join(', ')}; ${(ph.backupShare * 100).toFixed(0)} % of ${seconds.toFixed(1)} s); agent ${ph.agentCpuMsPerS.toFixed(0)} CPU ms/s (${ph.agentCpuMsPerBackup.toFixed(0)} ms per backup window, ${ph.agentExtraCpuMsPerBackup.toFixed(0)} above following), nodes ${ph.nodeCpuUsPerWrite.toFixed(0)} CPU µs/write; ${ph.nExcluded} writes excluded (catch-up, stop)`,
      );
      for (const [name, c] of Object.entries(ph.split))
        log(
          `  ${name}: ${c.seconds.toFixed(1)} s, ${c.writesPerS.toFixed(0)} writes/s, nodes ${c.nodeCpuUsPerWrite.toFixed(0)} CPU µs/write, agent ${c.agentCpuMsPerS.toFixed(0)} CPU ms/s, iowait ${c.iowaitMsPerS.toFixed(0)} ms/s, disk ${c.diskWriteMbPerS.toFixed(1)} MB/s written, queue ${c.diskQueueMsPerS.toFixed(0)} ms/s`,
        );
    };
    for (let r = 0; r < o.rounds; r++) {
      await noAgentPhase();
      await agentPhase(r);
    }
    await noAgentPhase();
    result.pooled = {
      during: p99(all.during),
      after: p99(all.after),
      duringOrAfter: p99([...all.during, ...all.after]),
      idle: p99(all.idle),
      noAgent: p99(all.noAgent),
    };
    const st = await cluster.statuses();
    result.lastIndex = Math.max(0, ...st.map((s) => s.commitIndex));
    if (result.lastIndex >= NODE_SNAPSHOT_EVERY)
      log(
        `warning: the log reached ${result.lastIndex} entries: node snapshots (every ${NODE_SNAPSHOT_EVERY}) fell in the measurement`,
      );
    return result;
  } finally {
    const a = agent as Proc | undefined;
    if (a) await a.stop(5000);
    await close().catch(() => undefined);
    await cluster.stop();
    await rm(repo, { recursive: true, force: true });
  }
}

interface Sample {
  t: number;
  node: number;
  agent: number;
  writes: number;
  iowait: number;
  sectorsWritten: number;
  queueMs: number;
}

/**
 * Each interval between two samples goes to `during` when it overlaps a backup window, else
 * to `after` when it overlaps the `afterMs` after one, else to `idle`.
 */
function splitSamples(samples: Sample[], windows: Window[], afterMs: number): AgentPhase['split'] {
  const acc = () => ({ ms: 0, node: 0, agent: 0, writes: 0, iowait: 0, sectors: 0, queue: 0 });
  const d = acc();
  const f = acc();
  const i = acc();
  for (let n = 1; n < samples.length; n++) {
    const a = samples[n - 1] as Sample;
    const b = samples[n] as Sample;
    const c = windows.some((w) => b.t >= w.requestedAt && a.t <= w.endedAt)
      ? d
      : windows.some((w) => b.t > w.endedAt && a.t <= w.endedAt + afterMs)
        ? f
        : i;
    c.ms += b.t - a.t;
    c.node += b.node - a.node;
    c.agent += b.agent - a.agent;
    c.writes += b.writes - a.writes;
    c.iowait += b.iowait - a.iowait;
    c.sectors += b.sectorsWritten - a.sectorsWritten;
    c.queue += b.queueMs - a.queueMs;
  }
  const out = (c: ReturnType<typeof acc>): ClassSample => {
    const s = c.ms / 1000;
    return {
      seconds: s,
      writesPerS: c.writes / s,
      nodeCpuUsPerWrite: (c.node * 1000) / c.writes,
      agentCpuMsPerS: c.agent / s,
      iowaitMsPerS: c.iowait / s,
      diskWriteMbPerS: (c.sectors * 512) / 1048576 / s,
      diskQueueMsPerS: c.queue / s,
    };
  };
  return { during: out(d), after: out(f), idle: out(i) };
}

/** The block device (as named in /proc/diskstats) that holds `dir`, if it can be found. */
function diskOf(dir: string): string | undefined {
  try {
    const dev = statSync(dir).dev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
    for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (Number(f[0]) === major && Number(f[1]) === minor) return f[2];
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/** The machine's iowait (ms, all CPUs) and the disk's sectors written and weighted I/O ms. */
function systemCounters(disk: string | undefined): {
  iowait: number;
  sectorsWritten: number;
  queueMs: number;
} {
  let iowait = Number.NaN;
  let sectorsWritten = Number.NaN;
  let queueMs = Number.NaN;
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
    iowait = (Number(cpu[5]) * 1000) / 100;
    if (disk) {
      for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f[2] !== disk) continue;
        sectorsWritten = Number(f[9]);
        queueMs = Number(f[13]);
      }
    }
  } catch {
    // not Linux
  }
  return { iowait, sectorsWritten, queueMs };
}
