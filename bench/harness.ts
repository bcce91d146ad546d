/**
 * Shared benchmark plumbing. Every benchmark measures the thing and a baseline in the same
 * run, repeats both, and reports the median, the spread (min/max) and the ratio.
 */
import os from 'node:os';

export interface Measurement {
  /** What was measured, e.g. "ping-pong msgs/s". */
  name: string;
  unit: string;
  /** Higher is better (throughput) or lower is better (latency). */
  better: 'higher' | 'lower';
  runs: number[];
  median: number;
  min: number;
  max: number;
  baseline?: { name: string; runs: number[]; median: number; min: number; max: number };
  /** value / baseline (for `higher`), baseline / value (for `lower`). */
  ratio?: number;
  target?: string;
  extra?: Record<string, unknown>;
}

export interface BenchReport {
  bench: string;
  date: string;
  machine: {
    cpu: string;
    cores: number;
    node: string;
    platform: string;
    /** 1/5/15-minute load averages when the report was made (the machine may be shared). */
    loadavg?: number[];
  };
  command: string;
  measurements: Measurement[];
  notes?: string[];
  /** Plots drawn by the benchmark (paths relative to the repository root), embedded in BENCHMARKS.md. */
  images?: { title: string; file: string }[];
  /** Extra markdown sections (e.g. a CPU profile summary), rendered after the table. */
  sections?: { title: string; markdown: string }[];
  /** Load averages when the benchmark started (the report's `machine.loadavg` is at its end). */
  loadAtStart?: number[];
  /**
   * Set by a benchmark whose flags ran only part of it (e.g. `paxos --process-only`): why.
   * `npm run bench` prints such a report but does not save it over the last whole run.
   */
  partial?: string;
}

export function machine(): BenchReport['machine'] {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/**
 * The machine's load, said as measured (at the time of the call, normally a report's end),
 * instead of a fixed claim that the machine was loaded or quiet.
 */
export function loadNote(): string {
  const one = os.loadavg()[0] ?? 0;
  const cores = os.cpus().length;
  return `Load average ${one.toFixed(1)} (1 min) on ${cores} cores at the end, the benchmark's own processes included: above ${cores}, other processes competed for the CPUs and absolute numbers drop; the same-run ratios move much less.`;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function summarize(
  name: string,
  unit: string,
  better: 'higher' | 'lower',
  runs: number[],
  baseline?: { name: string; runs: number[] },
  target?: string,
): Measurement {
  const m: Measurement = {
    name,
    unit,
    better,
    runs,
    median: median(runs),
    min: Math.min(...runs),
    max: Math.max(...runs),
  };
  if (target !== undefined) m.target = target;
  if (baseline) {
    const bm = median(baseline.runs);
    m.baseline = {
      name: baseline.name,
      runs: baseline.runs,
      median: bm,
      min: Math.min(...baseline.runs),
      max: Math.max(...baseline.runs),
    };
    m.ratio = better === 'higher' ? m.median / bm : bm / m.median;
  }
  return m;
}

function fmt(n: number | null | undefined): string {
  // NaN and ±Infinity are null once read back from JSON.
  if (n === undefined || n === null || !Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

export function table(report: BenchReport): string {
  const rows = [
    [
      'measurement',
      'unit',
      'median',
      'min',
      'max',
      'baseline',
      'baseline median',
      'ratio',
      'target',
    ],
  ];
  for (const m of report.measurements) {
    rows.push([
      m.name,
      m.unit,
      fmt(m.median),
      fmt(m.min),
      fmt(m.max),
      m.baseline?.name ?? '-',
      fmt(m.baseline?.median),
      // A ratio that was not finite (a baseline of 0) is null once read back from JSON.
      m.ratio === undefined || m.ratio === null || !Number.isFinite(m.ratio)
        ? '-'
        : m.ratio.toFixed(3),
      m.target ?? '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

export function report(
  bench: string,
  measurements: Measurement[],
  notes?: string[],
  argv: string[] = [],
): BenchReport {
  const r: BenchReport = {
    bench,
    date: new Date().toISOString(),
    machine: machine(),
    command: `npm run bench -- ${[bench, ...argv].join(' ')}`,
    measurements,
  };
  if (notes) r.notes = notes;
  return r;
}

/** The signature every bench/<name>.ts exports. */
export type BenchMain = (argv: string[]) => Promise<BenchReport>;
