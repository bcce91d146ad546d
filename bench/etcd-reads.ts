/**
 * `npm run bench -- etcd-reads [--rounds=8] [--phase=3]`: the one-client linearizable-read
 * target of #13 (Synod ≥ 2× etcd's reads/s at one client), measured interleaved.
 *
 * At one client, reads/s = 1 / mean latency, and on a shared machine the load drifts by more
 * between two 10-second phases than the difference being measured. So both clusters (3 `synod
 * node` processes, 3 etcd members: the same set-up as `npm run bench -- etcd`) stay up, and
 * short phases of one-client gets alternate between them (`--rounds` rounds, each measuring both,
 * the order swapped every round); each round gives a ratio of two phases a few seconds apart.
 * Reported: reads/s of each (median over rounds), the median of the per-round ratios, latency
 * percentiles, and CPU per get of the server processes (from /proc, load-independent).
 * The cluster not being measured is idle but up (Synod's idle ticks cost its nodes a few % of
 * a core, etcd's less), which slightly favours etcd.
 *
 * `--awake`: a diagnostic for where a quiet machine's hop latency goes. Every phase is run
 * twice, once as usual and once with one `nice -n 19` busy-loop process per CPU running (a CPU
 * that is never idle never halts, so a message to a process on it does not wait for the CPU to
 * wake; the niced loops yield to every real process), the order alternating per round. It
 * reports each side's reads/s awake/asleep; the usual rows use the phases without the loops.
 * On this VM (idle vCPUs halt at once: `haltpoll.guest_halt_poll_ns=0`) a large awake/asleep
 * ratio on a quiet machine says the one-client gap is wake-up latency, not Synod's code.
 *
 * Synod's client witnesses its reads at one client (docs/kv.md, "Witnessed reads": 3 hops in
 * series instead of 4). `--witness-ab` adds a third side to every round: a second Synod client on
 * the same cluster with `witnessReads: false` (the batched ReadIndex round, as before witnesses),
 * and reports witnessed/batched latency and CPU per get, alternated within each round.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchMain, median, percentile, report, summarize } from './harness.js';
import { boolFlag, numFlag } from './lib/args.js';
import { EtcdCluster, ensureEtcd } from './lib/etcd-cluster.js';
import type { KvClientSet } from './lib/loadgen.js';
import { benchValue, keyName } from './lib/loadgen.js';
import { cpuMsOf } from './lib/procs.js';
import { SynodProcessCluster } from './lib/synod-cluster.js';
import { etcdTarget, synodTarget } from './lib/targets.js';

const log = (l: string): void => console.log(l);
const KEYS = 1000;

interface Phase {
  opsPerSec: number;
  mean: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  /** Server CPU µs per get (all three processes). */
  cpuUs: number;
}

interface Side {
  name: string;
  set: KvClientSet;
  cpu: () => number;
}

async function phase(side: Side, ms: number): Promise<Phase> {
  // A short unrecorded warm-up after the other side's phase.
  const w0 = performance.now();
  while (performance.now() - w0 < 200) await side.set.get(0, keyName(1));
  const lat: number[] = [];
  let errors = 0;
  const c0 = side.cpu();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < ms) {
    const s = performance.now();
    try {
      await side.set.get(0, keyName((n++ * 7) % KEYS));
      lat.push(performance.now() - s);
    } catch {
      errors++;
    }
  }
  const elapsed = performance.now() - t0;
  const cpuUs = lat.length ? ((side.cpu() - c0) * 1000) / lat.length : Number.NaN;
  lat.sort((a, b) => a - b);
  let sum = 0;
  for (const v of lat) sum += v;
  return {
    opsPerSec: (lat.length * 1000) / elapsed,
    mean: lat.length ? sum / lat.length : Number.NaN,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    p999: percentile(lat, 99.9),
    errors,
    cpuUs,
  };
}

/** One `nice -n 19` busy loop per CPU, stopped (SIGSTOP) until `awake(true)`. */
class Keepers {
  private readonly procs: ChildProcess[] = [];
  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const p = spawn('nice', ['-n', '19', process.execPath, '-e', 'for (;;) {}'], {
        stdio: 'ignore',
      });
      p.kill('SIGSTOP');
      this.procs.push(p);
    }
  }
  awake(on: boolean): void {
    for (const p of this.procs) p.kill(on ? 'SIGCONT' : 'SIGSTOP');
  }
  stop(): void {
    for (const p of this.procs) {
      p.kill('SIGKILL');
      p.kill('SIGCONT');
    }
  }
}

export const main: BenchMain = async (argv) => {
  const rounds = Math.max(1, numFlag(argv, 'rounds', 8));
  const phaseMs = numFlag(argv, 'phase', 3) * 1000;
  const keepers = boolFlag(argv, 'awake') ? new Keepers(os.cpus().length) : undefined;
  const witnessAb = boolFlag(argv, 'witness-ab');
  const awakeRuns = new Map<string, { asleep: number; awake: number }[]>([
    ['synod', []],
    ['etcd', []],
  ]);
  const base = path.join(os.tmpdir(), `synod-etcd-reads-${process.pid}`);
  const bins = ensureEtcd(log);
  const synod = await SynodProcessCluster.start({ dir: path.join(base, 'synod'), log });
  let etcd: EtcdCluster | undefined;
  const sets: KvClientSet[] = [];
  const results = new Map<string, Phase[]>([
    ['synod', []],
    ['etcd', []],
    ['synod-batched', []],
  ]);
  try {
    etcd = await EtcdCluster.start({ dir: path.join(base, 'etcd'), bins, log });
    const leader = await etcd.leaderEndpoint();
    if (!leader) throw new Error('etcd has no leader');
    const etcdCluster = etcd;
    const synodSet = await synodTarget(synod).open(1);
    sets.push(synodSet);
    const etcdSet = await etcdTarget([leader], 'etcd').open(1);
    sets.push(etcdSet);
    const sides: Side[] = [
      {
        name: 'synod',
        set: synodSet,
        cpu: () => synod.ids.reduce((a, id) => a + (cpuMsOf(synod.pid(id)) ?? 0), 0),
      },
      {
        name: 'etcd',
        set: etcdSet,
        cpu: () => {
          const p = etcdCluster.pids(leader);
          return [p.leader, ...p.followers].reduce<number>((a, pid) => a + (cpuMsOf(pid) ?? 0), 0);
        },
      },
    ];
    if (witnessAb) {
      const batched = await synodTarget(synod, 'synod-batched', { witnessReads: false }).open(1);
      sets.push(batched);
      sides.push({ name: 'synod-batched', set: batched, cpu: (sides[0] as Side).cpu });
    }
    // The same keys and values on both.
    for (const s of sides.slice(0, 2))
      for (let i = 0; i < KEYS; i++) await s.set.put(0, keyName(i), benchValue(100, 0, i));
    log(
      `synod leader ${(await synod.waitForLeader(30_000)).id}, etcd leader ${leader}; ${rounds} rounds of ${phaseMs / 1000} s per side`,
    );
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? sides : [...sides].reverse();
      const line: string[] = [];
      for (const s of order) {
        let p: Phase;
        if (keepers) {
          // both ways, the order alternating per round
          const first = r % 2 === 0;
          keepers.awake(!first);
          const a = await phase(s, phaseMs);
          keepers.awake(first);
          const b = await phase(s, phaseMs);
          keepers.awake(false);
          const [asleep, awake] = first ? [a, b] : [b, a];
          p = asleep;
          awakeRuns.get(s.name)?.push({ asleep: asleep.opsPerSec, awake: awake.opsPerSec });
          line.push(
            `${s.name} awake ${Math.round(awake.opsPerSec)}/s mean ${awake.mean.toFixed(3)} ms`,
          );
        } else p = await phase(s, phaseMs);
        results.get(s.name)?.push(p);
        line.push(
          `${s.name} ${Math.round(p.opsPerSec)}/s mean ${p.mean.toFixed(3)} p50 ${p.p50.toFixed(3)} p99 ${p.p99.toFixed(2)} ms, ${Math.round(p.cpuUs)} µs server CPU/get${p.errors ? `, ${p.errors} errors` : ''}`,
        );
      }
      log(`round ${r + 1}: ${line.join(' | ')} (load ${os.loadavg()[0]?.toFixed(1)})`);
    }
    // Whether the witnessed client's reads were served on witnesses (not by the batched round).
    const served = (await synod.statuses()).map((st) => `${st.id} ${st.witnessedReads ?? '-'}`);
    log(`reads served on followers' witnesses, per node since start: ${served.join(', ')}`);
  } finally {
    keepers?.stop();
    for (const s of sets) await s.close().catch(() => {});
    await synod.stop().catch(() => {});
    await etcd?.stop().catch(() => {});
    rmSync(base, { recursive: true, force: true });
  }
  const s = results.get('synod') as Phase[];
  const e = results.get('etcd') as Phase[];
  const perRound = s.map((p, i) => p.opsPerSec / (e[i] as Phase).opsPerSec);
  const ratio = median(perRound);
  const base_ = { name: `etcd ${bins.version}` };
  const m = [
    summarize(
      'C=1 linearizable reads/s',
      'ops/s',
      'higher',
      s.map((p) => p.opsPerSec),
      { ...base_, runs: e.map((p) => p.opsPerSec) },
      '≥ 2× etcd',
    ),
    summarize('C=1 per-round ratio Synod/etcd reads/s', '×', 'higher', perRound),
    summarize(
      'C=1 get latency mean',
      'ms',
      'lower',
      s.map((p) => p.mean),
      { ...base_, runs: e.map((p) => p.mean) },
    ),
    summarize(
      'C=1 get latency p50',
      'ms',
      'lower',
      s.map((p) => p.p50),
      { ...base_, runs: e.map((p) => p.p50) },
    ),
    summarize(
      'C=1 get latency p99',
      'ms',
      'lower',
      s.map((p) => p.p99),
      { ...base_, runs: e.map((p) => p.p99) },
    ),
    summarize(
      'C=1 server CPU per get (3 processes)',
      'µs/op',
      'lower',
      s.map((p) => p.cpuUs),
      { ...base_, runs: e.map((p) => p.cpuUs) },
    ),
  ];
  const b = results.get('synod-batched') as Phase[];
  if (b.length > 0) {
    const w = { name: 'Synod batched ReadIndex (witnessReads: false), same rounds' };
    m.push(
      summarize(
        'C=1 Synod witnessed get latency mean',
        'ms',
        'lower',
        s.map((p) => p.mean),
        { ...w, runs: b.map((p) => p.mean) },
      ),
      summarize(
        'C=1 Synod witnessed get latency p50',
        'ms',
        'lower',
        s.map((p) => p.p50),
        { ...w, runs: b.map((p) => p.p50) },
      ),
      summarize(
        'C=1 Synod witnessed server CPU per get',
        'µs/op',
        'lower',
        s.map((p) => p.cpuUs),
        { ...w, runs: b.map((p) => p.cpuUs) },
      ),
      summarize(
        'C=1 per-round ratio Synod batched/witnessed mean latency',
        '×',
        'higher',
        s.map((p, i) => (b[i] as Phase).mean / p.mean),
      ),
    );
  }
  if (keepers) {
    for (const [name, runs] of awakeRuns) {
      const label = name === 'synod' ? 'Synod' : 'etcd';
      m.push(
        summarize(
          `C=1 ${label} reads/s with every CPU kept awake (--awake)`,
          'ops/s',
          'higher',
          runs.map((x) => x.awake),
          { name: `${label}, the same rounds without`, runs: runs.map((x) => x.asleep) },
        ),
      );
    }
  }
  const verdict = `C=1 linearizable reads: median per-round ratio ${ratio.toFixed(2)}× (${perRound.map((x) => x.toFixed(2)).join(', ')}); target ≥ 2×: ${ratio >= 2 ? 'met' : `missed by ${(2 / ratio).toFixed(2)}×`}`;
  log(verdict);
  return report(
    'etcd-reads',
    m,
    [
      `Both clusters up at once (Synod: 3 \`synod node\` processes, WebSockets, file storage with fsync; etcd ${bins.version}: 3 members, default settings; as in \`npm run bench -- etcd\`); one client each (lib/kv-client at level strong = ReadIndex; etcd3 linearizable gets); ${rounds} rounds of ${phaseMs / 1000} s per side after a 0.2 s warm-up, order swapped every round; ${KEYS} keys of 100 bytes.`,
      'Ratios: reads/s Synod/etcd; latency and CPU etcd/Synod (above 1 = Synod better). The per-round ratio row is the median of the ratios of phases a few seconds apart, which load drift moves least.',
      'Shared 2-core machine: see the load average; the idle cluster costs the machine a little CPU during the other one’s phase.',
      verdict,
    ],
    argv,
  );
};
