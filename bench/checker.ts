/**
 * `npm run bench -- checker [--runs=N]`: linearizability checker speed.
 *
 * - every history of ../shared/corpus/linearizability (per file and in total), target: each
 *   file < 1 s, the whole corpus < 10 s;
 * - generated histories of 10,000 operations over 100 keys with 20 clients (register and
 *   kv, 5% failed and 5% unknown outcomes), target < 5 s each;
 * - stress cases without a target: 2,000 operations on one key with 20% unknown outcomes,
 *   and 100,000 operations on one key (one key of a 30-minute chaos run);
 * - baseline, in the same run: a naive search over orders (Wing & Gong without Lowe's
 *   memoisation or any pruning), given at most BASELINE_CAP_MS per history; when it hits
 *   the cap, its time is a lower bound (marked) and so is the ratio.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateHistory } from '../lib/history/generate.js';
import {
  checkHistory,
  type HistoryEvent,
  type Model,
  type ModelInput,
  type ModelOutput,
  type Operation,
  pairEvents,
  readHistoryFile,
  resolveModel,
} from '../lib/history/index.js';
import { Random } from '../lib/random.js';
import { type BenchMain, loadNote, type Measurement, report, summarize } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const BASELINE_CAP_MS = 1000;

function findCorpus(): string | undefined {
  const candidates = [
    process.env.SYNOD_CORPUS,
    path.resolve(repoRoot, '..', 'shared', 'corpus'),
    path.resolve(repoRoot, '..', '..', 'shared', 'corpus'),
  ].filter((p): p is string => typeof p === 'string' && p !== '');
  const found = candidates.find((p) => existsSync(path.join(p, 'linearizability')));
  return found ? path.join(found, 'linearizability') : undefined;
}

/**
 * Baseline: depth-first search over every order that respects real time, no memo, no
 * pruning. Returns the verdict or 'capped' when out of time.
 */
function naive(
  modelName: 'register' | 'kv',
  events: readonly HistoryEvent[],
  capMs: number,
): 'linearizable' | 'violation' | 'capped' {
  const model = resolveModel(modelName);
  const deadline = performance.now() + capMs;
  const { operations } = pairEvents(events);
  const byKey = new Map<string, Operation[]>();
  for (const o of operations) {
    if (o.outcome === 'fail') continue;
    if (o.outcome === 'unknown' && model.readOnly({ f: o.f, value: o.input })) continue;
    const l = byKey.get(o.key) ?? [];
    l.push(o);
    byKey.set(o.key, l);
  }
  let steps = 0;
  let capped = false;
  for (const ops of byKey.values()) {
    const prepared = ops.map((o) => {
      const input: ModelInput = { f: o.f, value: o.input };
      const output: ModelOutput =
        o.outcome === 'ok' ? { known: true, value: o.output } : { known: false };
      return model.prepare ? model.prepare(input, output) : { input, output };
    });
    const placed = new Array<boolean>(ops.length).fill(false);
    const definite = ops.map((o) => o.outcome === 'ok');
    const total = definite.filter(Boolean).length;
    const go = (state: unknown, done: number): boolean => {
      if (done === total) return true;
      if ((++steps & 1023) === 0 && performance.now() > deadline) {
        capped = true;
        return false;
      }
      for (let i = 0; i < ops.length; i++) {
        if (placed[i]) continue;
        const oi = ops[i] as Operation;
        let ready = true;
        for (let j = 0; j < ops.length; j++) {
          if (!placed[j] && definite[j] && (ops[j] as Operation).ret < oi.call) {
            ready = false;
            break;
          }
        }
        if (!ready) continue;
        const p = prepared[i] as { input: ModelInput; output: ModelOutput };
        const r = (model as Model<unknown>).step(state, p.input, p.output);
        if (!r.ok) continue;
        placed[i] = true;
        const ok = go(r.next, done + (definite[i] ? 1 : 0));
        placed[i] = false;
        if (ok) return true;
        if (capped) return false;
      }
      return false;
    };
    if (!go(model.init(), 0)) return capped ? 'capped' : 'violation';
  }
  return 'linearizable';
}

interface Case {
  name: string;
  model: 'register' | 'kv';
  events: HistoryEvent[];
  expected?: 'linearizable' | 'violation';
}

function time<T>(fn: () => T): [number, T] {
  const t0 = performance.now();
  const v = fn();
  return [performance.now() - t0, v];
}

export const main: BenchMain = async (argv) => {
  const runsArg = argv.find((a) => a.startsWith('--runs='));
  const runs = runsArg ? Math.max(1, Number(runsArg.slice('--runs='.length)) || 3) : 3;
  const notes: string[] = [
    loadNote(),
    `Baseline: naive search over real-time-respecting orders (no memo, no pruning), capped at ${BASELINE_CAP_MS} ms per history; a capped baseline is a lower bound (ratio marked ">=").`,
  ];
  const measurements: Measurement[] = [];

  // ---- corpus ----
  const corpus = findCorpus();
  const cases: Case[] = [];
  if (!corpus) {
    notes.push('CORPUS NOT FOUND: corpus measurements skipped.');
  } else {
    const etcd = path.join(corpus, 'jepsen-etcd');
    const verdicts = JSON.parse(readFileSync(path.join(etcd, 'verdicts.json'), 'utf8')) as Record<
      string,
      string
    >;
    for (const f of Object.keys(verdicts).sort()) {
      cases.push({
        name: `jepsen-etcd/${f}`,
        model: 'register',
        events: readHistoryFile(path.join(etcd, f)).events,
        expected: verdicts[f] === 'linearizable' ? 'linearizable' : 'violation',
      });
    }
    for (const f of readdirSync(path.join(corpus, 'kv')).sort()) {
      if (!f.endsWith('.edn')) continue;
      cases.push({
        name: `kv/${f}`,
        model: 'kv',
        events: readHistoryFile(path.join(corpus, 'kv', f)).events,
        expected: f.endsWith('-ok.edn') ? 'linearizable' : 'violation',
      });
    }
    // Warm the JIT once, as a long-running test process would be.
    for (const c of cases) checkHistory(c.events, { model: c.model });
    const perFile = new Map<string, number[]>();
    const totals: number[] = [];
    for (let r = 0; r < runs; r++) {
      let total = 0;
      for (const c of cases) {
        const [ms, v] = time(() => checkHistory(c.events, { model: c.model, timeoutMs: 60_000 }));
        if (v.result !== c.expected)
          throw new Error(`${c.name}: checker says ${v.result}, corpus says ${c.expected}`);
        total += ms;
        const l = perFile.get(c.name) ?? [];
        l.push(ms);
        perFile.set(c.name, l);
      }
      totals.push(total);
    }
    const baseTotals: number[] = [];
    let cappedFiles = 0;
    let baseTotal = 0;
    for (const c of cases) {
      const [ms, v] = time(() => naive(c.model, c.events, BASELINE_CAP_MS));
      if (v === 'capped') cappedFiles++;
      else if (v !== c.expected)
        throw new Error(`baseline disagrees on ${c.name}: ${v} vs ${c.expected}`);
      baseTotal += ms;
    }
    baseTotals.push(baseTotal);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
    const slowest = [...perFile.entries()].map(([n, xs]) => [n, med(xs)] as const);
    slowest.sort((a, b) => b[1] - a[1]);
    const m = summarize(
      `whole corpus (${cases.length} files), total`,
      'ms',
      'lower',
      totals,
      {
        name: `naive search${cappedFiles ? ` (${cappedFiles} files capped)` : ''}`,
        runs: baseTotals,
      },
      '< 10,000 ms',
    );
    m.extra = {
      perFileMedianMs: Object.fromEntries(slowest.map(([n, ms]) => [n, Number(ms.toFixed(2))])),
      baselineCappedFiles: cappedFiles,
    };
    measurements.push(m);
    const worst = slowest[0] as readonly [string, number];
    measurements.push(
      summarize(
        `slowest corpus file (${worst[0]})`,
        'ms',
        'lower',
        perFile.get(worst[0]) as number[],
        undefined,
        '< 1,000 ms',
      ),
    );
    notes.push(
      `Per-file medians (ms), slowest first: ${slowest
        .slice(0, 10)
        .map(([n, ms]) => `${n} ${ms.toFixed(1)}`)
        .join(', ')}; all ${slowest.length} files under ${Math.ceil(worst[1])} ms.`,
    );
    if (cappedFiles > 0)
      notes.push(
        `The naive baseline hit its ${BASELINE_CAP_MS} ms cap on ${cappedFiles} corpus file(s): its total is a lower bound.`,
      );
  }

  // ---- generated: 10,000 ops, 100 keys, 20 clients ----
  for (const model of ['register', 'kv'] as const) {
    const gen = () =>
      generateHistory({
        random: new Random(model === 'register' ? 1 : 2),
        model,
        clients: 20,
        operations: 10_000,
        keys: 100,
        infoRate: 0.05,
        failRate: 0.05,
        maxLatency: 10,
      }).events;
    const events = gen();
    const ours: number[] = [];
    for (let r = 0; r < runs; r++) {
      const [ms, v] = time(() => checkHistory(events, { model, timeoutMs: 60_000 }));
      if (v.result !== 'linearizable') throw new Error(`generated ${model}: ${v.summary}`);
      ours.push(ms);
    }
    const [baseMs, baseV] = time(() => naive(model, events, BASELINE_CAP_MS * 5));
    const m = summarize(
      `generated ${model}: 10,000 ops, 100 keys, 20 clients`,
      'ms',
      'lower',
      ours,
      { name: `naive search${baseV === 'capped' ? ' (capped)' : ''}`, runs: [baseMs] },
      '< 5,000 ms',
    );
    m.extra = { events: events.length, baselineVerdict: baseV };
    measurements.push(m);
    if (baseV === 'capped')
      notes.push(
        `generated ${model}: the naive baseline hit its ${BASELINE_CAP_MS * 5} ms cap; the ratio is a lower bound.`,
      );
  }

  // ---- a harder one: one hot key, many clients, 20% unknown outcomes ----
  const hot = generateHistory({
    random: new Random(3),
    model: 'register',
    clients: 20,
    operations: 2_000,
    keys: 1,
    infoRate: 0.2,
    failRate: 0.05,
    maxLatency: 20,
  }).events;
  const hotRuns: number[] = [];
  // One run: this is the stress case (seconds, not milliseconds).
  for (let r = 0; r < 1; r++) {
    const [ms, v] = time(() => checkHistory(hot, { model: 'register', timeoutMs: 60_000 }));
    if (v.result !== 'linearizable') throw new Error(`hot key: ${v.summary}`);
    hotRuns.push(ms);
  }
  const [hotBase, hotBaseV] = time(() => naive('register', hot, BASELINE_CAP_MS));
  const hm = summarize(
    'generated register: 2,000 ops on ONE key, 20 clients, 20% unknown',
    'ms',
    'lower',
    hotRuns,
    { name: `naive search${hotBaseV === 'capped' ? ' (capped)' : ''}`, runs: [hotBase] },
  );
  hm.extra = { baselineVerdict: hotBaseV };
  measurements.push(hm);

  // ---- a long one: one key of a 30-minute chaos run (over 100,000 operations) ----
  const long = generateHistory({
    random: new Random(4),
    model: 'register',
    clients: 13,
    operations: 100_000,
    keys: 1,
    uniqueValues: true,
    infoRate: 0.0002,
    failRate: 0.001,
    maxLatency: 20,
  }).events;
  const longRuns: number[] = [];
  let longBytes = 0;
  for (let r = 0; r < runs; r++) {
    const [ms, v] = time(() => checkHistory(long, { model: 'register', timeoutMs: 120_000 }));
    if (v.result !== 'linearizable') throw new Error(`long key: ${v.summary}`);
    longRuns.push(ms);
    longBytes = v.stats.memoBytes;
  }
  const [longBase, longBaseV] = time(() => naive('register', long, BASELINE_CAP_MS));
  const lm = summarize(
    "generated register: 100,000 ops on ONE key, 13 clients (a chaos run's key)",
    'ms',
    'lower',
    longRuns,
    { name: `naive search${longBaseV === 'capped' ? ' (capped)' : ''}`, runs: [longBase] },
  );
  lm.extra = { baselineVerdict: longBaseV, memoBytes: longBytes };
  measurements.push(lm);

  return report('checker', measurements, notes);
};
