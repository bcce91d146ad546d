/**
 * Hand-written SVG latency plots (no dependency): a histogram of latencies on a logarithmic
 * axis (share of operations per bucket, one step line per series, p50/p99 ticks), and a
 * throughput/latency bar chart per concurrency level.
 */
import { pct } from './loadgen.js';

export interface LatencySeries {
  name: string;
  /** Sorted latencies in ms. */
  latenciesMs: ArrayLike<number>;
  color: string;
  dashed?: boolean;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function fmtMs(v: number): string {
  if (v >= 1000) return `${v / 1000}s`;
  if (v >= 1) return `${v}`;
  return `${v}`;
}

/** Histogram of latencies (x: log ms, y: % of operations per bucket), one line per series. */
export function latencyHistogramSvg(opts: {
  title: string;
  subtitle?: string;
  series: LatencySeries[];
  width?: number;
  height?: number;
  bucketsPerDecade?: number;
}): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 360;
  const m = { l: 56, r: 16, t: 48, b: 74 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const per = opts.bucketsPerDecade ?? 10;
  const all = opts.series.filter((s) => s.latenciesMs.length > 0);
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const s of all) {
    lo = Math.min(lo, s.latenciesMs[0] as number);
    hi = Math.max(hi, s.latenciesMs[s.latenciesMs.length - 1] as number);
  }
  if (!Number.isFinite(lo)) {
    lo = 0.1;
    hi = 10;
  }
  const d0 = Math.floor(Math.log10(Math.max(lo, 0.01)));
  const d1 = Math.max(d0 + 1, Math.ceil(Math.log10(Math.max(hi, 0.02))));
  const nb = (d1 - d0) * per;
  const x = (ms: number): number =>
    m.l + ((Math.log10(Math.max(ms, 10 ** d0)) - d0) / (d1 - d0)) * pw;
  const hist = all.map((s) => {
    const counts = new Array<number>(nb).fill(0);
    for (let i = 0; i < s.latenciesMs.length; i++) {
      const v = s.latenciesMs[i] as number;
      const b = Math.min(
        nb - 1,
        Math.max(0, Math.floor((Math.log10(Math.max(v, 1e-9)) - d0) * per)),
      );
      counts[b] = (counts[b] as number) + 1;
    }
    return counts.map((c) => (100 * c) / s.latenciesMs.length);
  });
  const ymax = Math.max(5, ...hist.flat());
  const yTop = Math.ceil(ymax / 5) * 5;
  const y = (p: number): number => m.t + ph - (p / yTop) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.l}" y="18" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
  ];
  if (opts.subtitle) out.push(`<text x="${m.l}" y="34" fill="#555">${esc(opts.subtitle)}</text>`);
  // Grid and axes.
  for (let d = d0; d <= d1; d++) {
    const gx = x(10 ** d);
    out.push(
      `<line x1="${gx}" y1="${m.t}" x2="${gx}" y2="${m.t + ph}" stroke="#ddd"/>`,
      `<text x="${gx}" y="${m.t + ph + 14}" text-anchor="middle">${fmtMs(10 ** d)}</text>`,
    );
  }
  for (let p = 0; p <= yTop; p += yTop / 5) {
    out.push(
      `<line x1="${m.l}" y1="${y(p)}" x2="${m.l + pw}" y2="${y(p)}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${y(p) + 4}" text-anchor="end">${p.toFixed(0)}%</text>`,
    );
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${m.l + pw / 2}" y="${m.t + ph + 30}" text-anchor="middle">latency (ms, log scale)</text>`,
    `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">share of operations per bucket</text>`,
  );
  // Series: step lines and percentile ticks.
  all.forEach((s, i) => {
    const h = hist[i] as number[];
    let d = '';
    for (let b = 0; b < nb; b++) {
      const xa = m.l + (b / nb) * pw;
      const xb = m.l + ((b + 1) / nb) * pw;
      const yy = y(h[b] as number);
      d += `${b === 0 ? 'M' : 'L'}${xa.toFixed(1)},${yy.toFixed(1)}L${xb.toFixed(1)},${yy.toFixed(1)}`;
    }
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
    );
    for (const [p, label] of [
      [50, 'p50'],
      [99, 'p99'],
    ] as const) {
      const v = pct(s.latenciesMs, p);
      const px = x(v);
      out.push(
        `<line x1="${px}" y1="${m.t}" x2="${px}" y2="${m.t + 8 + 10 * i}" stroke="${s.color}" stroke-width="1.2"/>`,
        `<text x="${px + 2}" y="${m.t + 8 + 10 * i}" fill="${s.color}" font-size="9">${label}</text>`,
      );
    }
  });
  // Legend.
  all.forEach((s, i) => {
    const lx = m.l + (i % 2) * (pw / 2);
    const ly = H - 26 + Math.floor(i / 2) * 14;
    const p50 = pct(s.latenciesMs, 50);
    const p99 = pct(s.latenciesMs, 99);
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 22}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
      `<text x="${lx + 28}" y="${ly}">${esc(`${s.name}: n=${s.latenciesMs.length}, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Grouped bars: one group per label (e.g. a concurrency level), one bar per series. */
export function barChartSvg(opts: {
  title: string;
  subtitle?: string;
  unit: string;
  groups: string[];
  series: { name: string; color: string; values: number[] }[];
  width?: number;
  height?: number;
}): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 300;
  const m = { l: 70, r: 16, t: 48, b: 58 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const vmax = Math.max(1, ...opts.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const mag = 10 ** Math.floor(Math.log10(vmax));
  const top = Math.ceil(vmax / mag) * mag;
  const y = (v: number): number => m.t + ph - (v / top) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.l}" y="18" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
  ];
  if (opts.subtitle) out.push(`<text x="${m.l}" y="34" fill="#555">${esc(opts.subtitle)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (top * i) / 5;
    out.push(
      `<line x1="${m.l}" y1="${y(v)}" x2="${m.l + pw}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v).toLocaleString('en-US')}</text>`,
    );
  }
  const gw = pw / opts.groups.length;
  const bw = (gw * 0.7) / opts.series.length;
  opts.groups.forEach((g, gi) => {
    const gx = m.l + gi * gw + gw * 0.15;
    opts.series.forEach((s, si) => {
      const v = s.values[gi] ?? Number.NaN;
      if (!Number.isFinite(v)) return;
      const bx = gx + si * bw;
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(m.t + ph - y(v)).toFixed(1)}" fill="${s.color}"/>`,
        `<text x="${(bx + bw / 2).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${Math.round(v).toLocaleString('en-US')}</text>`,
      );
    });
    out.push(
      `<text x="${m.l + gi * gw + gw / 2}" y="${m.t + ph + 14}" text-anchor="middle">${esc(g)}</text>`,
    );
  });
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.unit)}</text>`,
  );
  opts.series.forEach((s, i) => {
    const lx = m.l + i * 180;
    out.push(
      `<rect x="${lx}" y="${H - 22}" width="12" height="10" fill="${s.color}"/>`,
      `<text x="${lx + 16}" y="${H - 13}">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
