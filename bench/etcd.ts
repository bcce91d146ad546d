/**
 * `npm run bench -- etcd [--duration=10] [--levels=1,16,64,256] [--runs=3] [--check-perf=true]
 *   [--profile=auto|true|false] [--fast]`
 *
 * Synod against etcd on the same machine, same disk, same load generator (bench/lib/loadgen.ts):
 * a 3-member etcd 3.4 cluster (Debian's etcd-server, installed with apt when missing) driven
 * through the `etcd3` npm client, and a 3-node Synod cluster (three `synod node` processes,
 * WebSockets, fsync on) driven through its KV client. At each concurrency level C: C clients,
 * 100-byte values, puts for `duration` seconds, then linearizable gets for `duration` seconds.
 * Reports writes/s, reads/s, p50/p99/p999 and the Synod/etcd ratio per level, a latency
 * histogram per level (SVG under benchmarks/), `etcdctl check perf` for context, and — when a
 * target is missed — a CPU profile summary of the Synod leader, a follower and the client.
 *
 * `--liferaft=true|false` (default true): the same write load against `@markwylde/liferaft`, the
 * JavaScript peer, installed on first use into `.bench-cache/` (not a Synod dependency); skipped
 * with a note when it cannot be installed. liferaft has no read path, so it gets puts only.
 *
 * `--fast` = `--duration=2 --levels=1,16 --runs=1 --check-perf=false --profile=false --liferaft=false`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchMain, type Measurement, report, summarize } from './harness.js';
import { boolFlag, flag, listFlag, numFlag } from './lib/args.js';
import { EtcdCluster, ensureEtcd } from './lib/etcd-cluster.js';
import { ensureLiferaft, LIFERAFT_PACKAGE, LiferaftCluster } from './lib/liferaft-cluster.js';
import { describe, type LevelResult, type PhaseResult, runLevel } from './lib/loadgen.js';
import { repoRoot } from './lib/procs.js';
import { formatProfile, summarizeProfile } from './lib/profile.js';
import { barChartSvg, latencyHistogramSvg } from './lib/svg.js';
import { SynodProcessCluster } from './lib/synod-cluster.js';
import { etcdTarget, synodTarget } from './lib/targets.js';

const log = (l: string): void => console.log(l);

interface Pair {
  c: number;
  synod: LevelResult[];
  etcd: LevelResult[];
  liferaft: LevelResult[];
}

function med(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function runEtcd(
  dir: string,
  bins: ReturnType<typeof ensureEtcd>,
  levels: number[],
  durationMs: number,
): Promise<LevelResult[]> {
  const cluster = await EtcdCluster.start({ dir, bins, log });
  try {
    const leader = await cluster.leaderEndpoint();
    if (!leader) throw new Error('etcd has no leader');
    log(
      `etcd ${bins.version}: 3 members, leader at ${leader} (the etcd3 clients talk to the leader)`,
    );
    const out: LevelResult[] = [];
    for (const c of levels) {
      const r = await runLevel(
        etcdTarget([leader], 'etcd', 64, () => cluster.pids(leader)),
        { clients: c, durationMs },
      );
      log(describe(r));
      out.push(r);
    }
    return out;
  } finally {
    await cluster.stop();
  }
}

/** liferaft at each level, puts only; returns the results and each node's unhandled rejections. */
async function runLiferaft(
  dir: string,
  liferaftDir: string,
  levels: number[],
  durationMs: number,
): Promise<{ results: LevelResult[]; rejections: number[] }> {
  const cluster = await LiferaftCluster.start({ dir, liferaftDir, log });
  try {
    log(`liferaft: 3 processes, leader n${await cluster.waitForLeader(30_000)}`);
    const out: LevelResult[] = [];
    for (const c of levels) {
      const r = await runLevel(cluster.target(), { clients: c, durationMs, writesOnly: true });
      log(describe(r));
      out.push(r);
    }
    return { results: out, rejections: await cluster.rejections() };
  } finally {
    await cluster.stop();
  }
}

async function runSynod(
  dir: string,
  levels: number[],
  durationMs: number,
  profileDir?: string,
): Promise<{ results: LevelResult[]; leader: string }> {
  const cluster = await SynodProcessCluster.start({
    dir,
    log,
    ...(profileDir
      ? { nodeFlags: (id: string) => ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, id)}`] }
      : {}),
  });
  try {
    const leader = (await cluster.waitForLeader(30_000)).id;
    log(`synod: 3 processes, leader ${leader}`);
    const out: LevelResult[] = [];
    for (const c of levels) {
      const r = await runLevel(synodTarget(cluster), { clients: c, durationMs });
      log(describe(r));
      out.push(r);
    }
    return { results: out, leader };
  } finally {
    await cluster.stop();
  }
}

/** Profiles a Synod run at one level: leader, a follower (node --cpu-prof) and this process (inspector). */
async function profileSynod(base: string, c: number, durationMs: number): Promise<string> {
  const profDir = path.join(base, 'profiles');
  rmSync(profDir, { recursive: true, force: true });
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  let leader = '';
  let result: LevelResult | undefined;
  try {
    const r = await runSynod(path.join(base, 'synod-prof'), [c], durationMs, profDir);
    leader = r.leader;
    result = r.results[0];
  } finally {
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(path.join(profDir, 'client'), { recursive: true });
    writeFileSync(path.join(profDir, 'client', 'client.cpuprofile'), JSON.stringify(profile));
    session.disconnect();
  }
  const file = (id: string): string | undefined => {
    try {
      const f = readdirSync(path.join(profDir, id)).find((n) => n.endsWith('.cpuprofile'));
      return f ? path.join(profDir, id, f) : undefined;
    } catch {
      return undefined;
    }
  };
  const follower = ['a', 'b', 'c'].find((id) => id !== leader) as string;
  const parts = [
    `Profiled run: C = ${c}, ${durationMs / 1000} s of puts then ${durationMs / 1000} s of gets: ${result ? describe(result) : 'no result'}.`,
    'Self time per function over the whole life of each process (start-up included), as a share of its samples; `(idle)` is time the event loop waited (for the disk, the network or a timer).',
    '',
  ];
  for (const [id, label] of [
    [leader, `leader (${leader})`],
    [follower, `follower (${follower})`],
    ['client', 'load generator + KV clients (the benchmark process)'],
  ] as const) {
    const f = file(id);
    parts.push(
      f ? formatProfile(summarizeProfile(f, repoRoot, 15), label) : `${label}: no profile written`,
      '',
    );
  }
  rmSync(profDir, { recursive: true, force: true });
  return parts.join('\n');
}

function phaseOf(r: LevelResult, which: 'write' | 'read'): PhaseResult {
  const p = which === 'write' ? r.write : r.read;
  if (!p) throw new Error('missing read phase');
  return p;
}

export const main: BenchMain = async (argv) => {
  const fast = boolFlag(argv, 'fast');
  const durationMs = numFlag(argv, 'duration', fast ? 2 : 10) * 1000;
  const levels = listFlag(argv, 'levels', fast ? [1, 16] : [1, 16, 64, 256]);
  // Three runs by default (one with --fast): every row gets a median and a spread.
  const runs = Math.max(1, numFlag(argv, 'runs', fast ? 1 : 3));
  const checkPerf = flag(argv, 'check-perf') !== undefined ? boolFlag(argv, 'check-perf') : !fast;
  const profileMode = flag(argv, 'profile') ?? (fast ? 'false' : 'auto');
  const withLiferaft = flag(argv, 'liferaft') !== undefined ? boolFlag(argv, 'liferaft') : !fast;
  const base = path.join(os.tmpdir(), `synod-bench-etcd-${process.pid}`);
  const bins = ensureEtcd(log);
  log(`etcd: ${bins.etcd} (${bins.version}); ${bins.note}`);
  const pairs: Pair[] = levels.map((c) => ({ c, synod: [], etcd: [], liferaft: [] }));
  let liferaftDir: string | undefined;
  let liferaftNote = 'not run (--liferaft=false)';
  const liferaftRejections: number[][] = [];
  if (withLiferaft) {
    try {
      const lr = ensureLiferaft(log);
      liferaftDir = lr.dir;
      liferaftNote = lr.note;
    } catch (err) {
      liferaftNote = `skipped: ${(err as Error).message}`;
    }
    log(`liferaft: ${liferaftNote}`);
  }
  let perf = '';
  let profile = '';
  try {
    for (let run = 0; run < runs; run++) {
      // Alternate which system goes first so a drift in machine load does not favour one.
      const order = run % 2 === 0 ? ['etcd', 'synod'] : ['synod', 'etcd'];
      for (const sys of order) {
        if (sys === 'etcd') {
          const rs = await runEtcd(path.join(base, `etcd-${run}`), bins, levels, durationMs);
          rs.forEach((r, i) => {
            pairs[i]?.etcd.push(r);
          });
        } else {
          const { results } = await runSynod(path.join(base, `synod-${run}`), levels, durationMs);
          results.forEach((r, i) => {
            pairs[i]?.synod.push(r);
          });
        }
      }
      if (liferaftDir) {
        try {
          const lr = await runLiferaft(
            path.join(base, `liferaft-${run}`),
            liferaftDir,
            levels,
            durationMs,
          );
          lr.results.forEach((r, i) => {
            pairs[i]?.liferaft.push(r);
          });
          liferaftRejections.push(lr.rejections);
        } catch (err) {
          liferaftNote = `${liferaftNote}; run ${run + 1} failed: ${(err as Error).message.split('\n')[0]}`;
          log(`liferaft run failed: ${(err as Error).message}`);
        }
      }
    }
    if (checkPerf) {
      log('etcdctl check perf --load=s (about a minute) on a fresh etcd cluster');
      const cluster = await EtcdCluster.start({ dir: path.join(base, 'etcd-perf'), bins, log });
      try {
        perf = await cluster.checkPerf('s');
      } finally {
        await cluster.stop();
      }
      log(perf);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }

  const measurements: Measurement[] = [];
  const verdicts: string[] = [];
  const cpuNotes: string[] = [];
  let missed = false;
  for (const p of pairs) {
    const cs = `C=${p.c}`;
    const big = p.c >= 64;
    for (const which of ['write', 'read'] as const) {
      const sRuns = p.synod.map((r) => phaseOf(r, which));
      const eRuns = p.etcd.map((r) => phaseOf(r, which));
      const noun = which === 'write' ? 'writes' : 'linearizable reads';
      const tputTarget = which === 'write' ? (big ? '≥ 3× etcd' : undefined) : '≥ 2× etcd';
      const tm = summarize(
        `${cs} ${noun}/s`,
        'ops/s',
        'higher',
        sRuns.map((r) => r.opsPerSec),
        { name: `etcd ${bins.version}`, runs: eRuns.map((r) => r.opsPerSec) },
        tputTarget,
      );
      const errs = sRuns.reduce((a, r) => a + r.errors, 0);
      const eErrs = eRuns.reduce((a, r) => a + r.errors, 0);
      if (errs || eErrs)
        tm.extra = {
          synodErrors: sRuns.map((r) => r.errorCodes),
          etcdErrors: eRuns.map((r) => r.errorCodes),
        };
      measurements.push(tm);
      if (tputTarget && tm.ratio !== undefined) {
        const need = which === 'write' ? 3 : 2;
        const ok = tm.ratio >= need;
        if (!ok) missed = true;
        verdicts.push(
          `${cs} ${noun}: Synod ${Math.round(tm.median).toLocaleString('en-US')}/s vs etcd ${Math.round(tm.baseline?.median ?? 0).toLocaleString('en-US')}/s = ${tm.ratio.toFixed(2)}× (target ≥ ${need}×: ${ok ? 'met' : `MISSED by ${(need / tm.ratio).toFixed(1)}×`})`,
        );
      }
      // CPU per operation (load-independent: how much work each process does per op).
      const cpuOf = (rs: PhaseResult[], who: string): number[] =>
        rs.map((r) => r.cpuUsPerOp?.[who]).filter((v): v is number => v !== undefined);
      const sumCpu = (rs: PhaseResult[]): number[] =>
        rs.flatMap((r) =>
          r.cpuUsPerOp ? [Object.values(r.cpuUsPerOp).reduce((a, b) => a + b, 0)] : [],
        );
      for (const [who, label] of [
        ['leader', 'leader CPU'],
        ['all', 'CPU of all processes (3 servers + client)'],
      ] as const) {
        const sv = who === 'all' ? sumCpu(sRuns) : cpuOf(sRuns, who);
        const ev = who === 'all' ? sumCpu(eRuns) : cpuOf(eRuns, who);
        if (sv.length && ev.length)
          measurements.push(
            summarize(
              `${cs} ${label} per ${which === 'write' ? 'put' : 'get'}`,
              'µs/op',
              'lower',
              sv,
              { name: `etcd ${bins.version}`, runs: ev },
            ),
          );
      }
      const fmtCpu = (r: PhaseResult | undefined): string =>
        r?.cpuUsPerOp
          ? Object.entries(r.cpuUsPerOp)
              .map(([k, v]) => `${k} ${Math.round(v)}`)
              .join(', ')
          : 'n/a';
      cpuNotes.push(
        `${cs} ${which === 'write' ? 'puts' : 'gets'}, CPU µs per op: Synod ${fmtCpu(sRuns[0])}; etcd ${fmtCpu(eRuns[0])}`,
      );
      for (const q of ['p50', 'p99', 'p999'] as const) {
        const target = which === 'write' && q === 'p99' && big ? '≤ etcd' : undefined;
        const lm = summarize(
          `${cs} ${which === 'write' ? 'put' : 'get'} latency ${q}`,
          'ms',
          'lower',
          sRuns.map((r) => r[q]),
          { name: `etcd ${bins.version}`, runs: eRuns.map((r) => r[q]) },
          target,
        );
        measurements.push(lm);
        if (target && lm.ratio !== undefined) {
          const ok = lm.ratio >= 1;
          if (!ok) missed = true;
          verdicts.push(
            `${cs} put p99: Synod ${lm.median.toFixed(1)} ms vs etcd ${lm.baseline?.median.toFixed(1)} ms (target ≤ etcd: ${ok ? 'met' : `MISSED, ${(1 / lm.ratio).toFixed(1)}× etcd's`})`,
          );
        }
      }
    }
  }

  // The JavaScript peer: Synod against liferaft, puts only (liferaft has no read path).
  for (const p of pairs) {
    if (p.liferaft.length === 0) continue;
    const cs = `C=${p.c}`;
    const lName = `liferaft (${LIFERAFT_PACKAGE.split('@')[2]})`;
    const sW = p.synod.map((r) => r.write);
    const lW = p.liferaft.map((r) => r.write);
    const tm = summarize(
      `${cs} writes/s, Synod vs liferaft`,
      'ops/s',
      'higher',
      sW.map((r) => r.opsPerSec),
      {
        name: lName,
        runs: lW.map((r) => r.opsPerSec),
      },
    );
    const lErrs = lW.reduce((a, r) => a + r.errors, 0);
    if (lErrs) tm.extra = { liferaftErrors: lW.map((r) => r.errorCodes) };
    measurements.push(tm);
    measurements.push(
      summarize(
        `${cs} put latency p99, Synod vs liferaft`,
        'ms',
        'lower',
        sW.map((r) => r.p99),
        {
          name: lName,
          runs: lW.map((r) => r.p99),
        },
      ),
    );
    const all = (rs: PhaseResult[]): number[] =>
      rs.flatMap((r) =>
        r.cpuUsPerOp ? [Object.values(r.cpuUsPerOp).reduce((a, b) => a + b, 0)] : [],
      );
    if (all(sW).length && all(lW).length)
      measurements.push(
        summarize(
          `${cs} CPU of all processes per put, Synod vs liferaft`,
          'µs/op',
          'lower',
          all(sW),
          {
            name: lName,
            runs: all(lW),
          },
        ),
      );
  }

  // Plots: a latency histogram per level, and throughput per level.
  const images: { title: string; file: string }[] = [];
  const benchDir = path.join(repoRoot, 'benchmarks');
  mkdirSync(benchDir, { recursive: true });
  const when = `${new Date().toISOString().slice(0, 16)}Z, load average ${os.loadavg()[0]?.toFixed(1)} on ${os.cpus().length} cores`;
  for (const p of pairs) {
    const s = p.synod[0];
    const e = p.etcd[0];
    if (!s || !e) continue;
    const file = path.join(benchDir, `etcd-latency-c${p.c}.svg`);
    writeFileSync(
      file,
      latencyHistogramSvg({
        title: `Latency at ${p.c} concurrent client${p.c === 1 ? '' : 's'}: Synod vs etcd ${bins.version}`,
        subtitle: `3 nodes on loopback, fsync on, 100-byte values, ${durationMs / 1000} s per phase; ${when}`,
        series: [
          { name: 'Synod put', latenciesMs: s.write.latenciesMs, color: '#1f77b4' },
          { name: 'etcd put', latenciesMs: e.write.latenciesMs, color: '#d62728' },
          ...(p.liferaft[0]
            ? [
                {
                  name: 'liferaft put',
                  latenciesMs: p.liferaft[0].write.latenciesMs,
                  color: '#2ca02c',
                },
              ]
            : []),
          {
            name: 'Synod get (linearizable)',
            latenciesMs: s.read?.latenciesMs ?? [],
            color: '#1f77b4',
            dashed: true,
          },
          {
            name: 'etcd get (linearizable)',
            latenciesMs: e.read?.latenciesMs ?? [],
            color: '#d62728',
            dashed: true,
          },
        ],
      }),
    );
    images.push({ title: `latency histogram, C=${p.c}`, file: path.relative(repoRoot, file) });
  }
  const tfile = path.join(benchDir, 'etcd-throughput.svg');
  writeFileSync(
    tfile,
    barChartSvg({
      title: `Throughput: Synod vs etcd ${bins.version} (median of ${runs} run${runs === 1 ? '' : 's'})`,
      subtitle: when,
      unit: 'operations/s',
      groups: pairs.map((p) => `C=${p.c}`),
      series: [
        {
          name: 'Synod puts',
          color: '#1f77b4',
          values: pairs.map((p) => med(p.synod.map((r) => r.write.opsPerSec))),
        },
        {
          name: 'etcd puts',
          color: '#d62728',
          values: pairs.map((p) => med(p.etcd.map((r) => r.write.opsPerSec))),
        },
        ...(pairs.some((p) => p.liferaft.length)
          ? [
              {
                name: 'liferaft puts',
                color: '#2ca02c',
                values: pairs.map((p) => med(p.liferaft.map((r) => r.write.opsPerSec))),
              },
            ]
          : []),
        {
          name: 'Synod gets',
          color: '#aec7e8',
          values: pairs.map((p) => med(p.synod.map((r) => r.read?.opsPerSec ?? Number.NaN))),
        },
        {
          name: 'etcd gets',
          color: '#ff9896',
          values: pairs.map((p) => med(p.etcd.map((r) => r.read?.opsPerSec ?? Number.NaN))),
        },
      ],
    }),
  );
  images.unshift({ title: 'throughput per level', file: path.relative(repoRoot, tfile) });

  const wantProfile = profileMode === 'true' || (profileMode === 'auto' && missed);
  if (wantProfile) {
    const c = Math.max(...levels);
    log(`profiling Synod at C=${c} (node --cpu-prof on every node, inspector on the client)`);
    try {
      profile = await profileSynod(base, c, durationMs);
    } catch (err) {
      profile = `profiling failed: ${(err as Error).message}`;
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    log(profile);
  }

  const rep = report('etcd', measurements, [
    `etcd ${bins.version} (${bins.etcd}, ${bins.note}): 3 members on loopback, default settings (every write fsynced), data in ${os.tmpdir()} on the same disk as Synod's; the etcd3 clients connect to the leader's endpoint (one etcd3 client object per 64 load-generator clients), gets are linearizable (etcd3's default).`,
    'Synod: 3 `synod node` processes on loopback (dist/ build), WebSocket transport with a cluster secret, file storage with fsync (group commit), default Raft timeouts; C KV clients (sessions) over one WebSocket connection per node; gets at level strong (ReadIndex on the leader).',
    `Load generator (bench/lib/loadgen.ts), the same for both, in the benchmark process: closed loop, C clients, 100-byte values on 10,000 keys, ${durationMs / 1000} s of puts then ${durationMs / 1000} s of gets per level, each after an unrecorded warm-up of ${Math.min(1000, durationMs / 5) / 1000} s; latency of successful operations only (failures are counted in extra).`,
    `liferaft (the JavaScript peer): ${liferaftNote}. Three processes (bench/lib/liferaft-node.ts) on loopback with liferaft's defaults (heartbeat 50 ms, election 150–300 ms) and its own LevelDB log (leveldown; writes not synced, so it is spared the fsync Synod and etcd pay); liferaft has no transport or client protocol, so peers and clients speak JSON over WebSockets (\`ws\`); a put is answered when liferaft emits \`commit\` for it on the leader; commands are submitted one at a time, because two concurrent \`command()\` calls take the same log index. Puts only: liferaft has no read path (no read-index, no lease).${liferaftRejections.length ? ` Unhandled promise rejections per node (liferaft's follower path rejects with LevelDB's NotFoundError when an append arrives before the entry it follows; the bench's node logs them and stays up): ${liferaftRejections.map((r) => r.join(' / ')).join('; ')}.` : ''}`,
    'Ratios: throughput Synod/etcd (Synod/liferaft in the rows that name it); latency etcd/Synod (above 1 = Synod faster).',
    'Shared 2-core machine with other sessions running: see the load averages with the command line above; servers, clients and other work compete for the same cores, so absolute numbers are pessimistic and the same-run ratio is the meaningful figure.',
    'CPU per operation: user + system CPU time of each process (from /proc/<pid>/stat, 10 ms ticks) over the recorded part of a phase, divided by the successful operations; unlike throughput it hardly depends on how busy the machine is.',
    ...verdicts,
    ...cpuNotes,
  ]);
  rep.images = images;
  rep.sections = [];
  if (perf)
    rep.sections.push({
      title: "etcd's own check (`etcdctl check perf --load=s`)",
      markdown: `Run on a fresh 3-member cluster after the comparison (small workload: 50 clients, rate-limited to 150 writes/s for 60 s; a pass/fail check of the disk and network, not a throughput ceiling):\n\n\`\`\`\n${perf.trim()}\n\`\`\``,
    });
  if (profile)
    rep.sections.push({ title: 'CPU profile of Synod (targets missed)', markdown: profile });
  return rep;
};
