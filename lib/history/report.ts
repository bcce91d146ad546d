/**
 * A self-contained HTML report of a verdict (no scripts or styles from elsewhere): for each
 * key shown, one row per process with each operation drawn as a bar from its invoke to its
 * completion on a compressed time axis (the order of events, not their distance), numbered
 * with its position in the (longest) linearization, and the operations that cannot be
 * placed marked in red.
 */
import type { KeyVerdict, Verdict } from './checker.js';
import type { Operation } from './event.js';
import { builtinModels, canonical, type Model } from './model.js';

export interface ReportOptions {
  title?: string;
  /** Keys drawn at most (violating keys first). Default 20. */
  maxKeys?: number;
  /** Operations drawn at most per key; larger keys show a window around the failure. */
  maxOpsPerKey?: number;
}

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function fmt(t: number): string {
  if (!Number.isFinite(t)) return '∞';
  return Number.isInteger(t) ? String(t) : t.toFixed(3);
}

function describe(model: Model<unknown> | undefined, op: Operation): string {
  const out =
    op.outcome === 'ok'
      ? ({ known: true, value: op.output } as const)
      : ({ known: false } as const);
  if (model) {
    try {
      return model.describeOperation({ f: op.f, value: op.input }, out);
    } catch {
      // fall through to the generic text
    }
  }
  return op.outcome === 'ok'
    ? `${op.f} ${canonical(op.input)} → ${canonical(op.output)}`
    : `${op.f} ${canonical(op.input)}`;
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 6px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.linearizable{background:#1f883d}.violation{background:#cf222e}.unknown{background:#9a6700}
pre{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow:auto;font-size:12px;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:22px;height:10px;border-radius:3px;vertical-align:middle;margin-right:4px}
.box{overflow-x:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:6px}
svg text{font:11px ui-monospace,SFMono-Regular,Menlo,monospace}
.note{color:#57606a;font-size:12px}
`;

const COLORS = {
  placed: { fill: '#dafbe1', stroke: '#1f883d' },
  unplaceable: { fill: '#ffebe9', stroke: '#cf222e' },
  pending: { fill: '#ddf4ff', stroke: '#0969da' },
  unknown: { fill: '#f6f8fa', stroke: '#8c959f' },
  failed: { fill: '#ffffff', stroke: '#d0d7de' },
};

function pickWindow(k: KeyVerdict, ops: Operation[], max: number): Operation[] {
  // A violation in a long key: draw the stretch around the failure, where the eye goes.
  if (ops.length <= (k.result === 'violation' ? Math.min(max, 80) : max)) return ops;
  if (k.result !== 'violation' || !k.blocking) return ops.slice(0, max);
  const focus: Operation[] = [
    k.blocking,
    ...(k.candidates ?? []).map((c) => c.op),
    ...(k.longestPrefix ?? []).slice(-15).map((p) => p.op),
  ];
  const start = Math.min(...focus.map((o) => o.call));
  const end = Math.max(...focus.map((o) => (Number.isFinite(o.ret) ? o.ret : o.call)));
  const inWindow = ops.filter((o) => o.call <= end && o.ret >= start);
  return inWindow.slice(0, max);
}

function renderKey(
  k: KeyVerdict,
  allOps: Operation[],
  model: Model<unknown> | undefined,
  maxOps: number,
): string {
  const ops = pickWindow(k, allOps, maxOps);
  const orderOf = new Map<number, number>();
  (k.longestPrefix ?? []).forEach((p, i) => {
    orderOf.set(p.op.id, i + 1);
  });
  (k.order ?? []).forEach((id, i) => {
    orderOf.set(id, i + 1);
  });
  const unplaceable = new Set(k.unplaceable ?? []);
  const times = [
    ...new Set(ops.flatMap((o) => [o.call, Number.isFinite(o.ret) ? o.ret : o.call])),
  ].sort((a, b) => a - b);
  const rank = new Map(times.map((t, i) => [t, i]));
  const procs = [...new Set(ops.map((o) => String(o.process)))].sort((a, b) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
  const row = new Map(procs.map((p, i) => [p, i]));
  const unit = Math.max(16, Math.min(64, Math.floor(1400 / Math.max(1, times.length))));
  const left = 110;
  const rowH = 26;
  const width = left + (times.length + 4) * unit + 40;
  const height = procs.length * rowH + 34;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="timeline of key ${esc(k.key)}">`,
  );
  procs.forEach((p, i) => {
    const y = 20 + i * rowH;
    parts.push(
      `<text x="6" y="${y + 15}">process ${esc(p)}</text><line x1="${left}" y1="${y + rowH - 2}" x2="${width - 10}" y2="${y + rowH - 2}" stroke="#eaeef2"/>`,
    );
  });
  parts.push(
    `<text x="${left}" y="12" fill="#57606a">time → (event order; hover a bar for exact times)</text>`,
  );
  for (const o of ops) {
    const y = 20 + (row.get(String(o.process)) ?? 0) * rowH + 3;
    const x1 = left + (rank.get(o.call) ?? 0) * unit;
    const open = !Number.isFinite(o.ret);
    const x2 = open ? width - 14 : left + (rank.get(o.ret) ?? 0) * unit + unit * 0.8;
    const w = Math.max(6, x2 - x1);
    const status = unplaceable.has(o.id)
      ? 'unplaceable'
      : o.outcome === 'fail'
        ? 'failed'
        : orderOf.has(o.id)
          ? 'placed'
          : o.outcome === 'unknown'
            ? 'unknown'
            : 'pending';
    const c = COLORS[status];
    const isBlocking = k.blocking?.id === o.id;
    const label = describe(model, o);
    const n = orderOf.get(o.id);
    const tip = [
      `process ${o.process}: ${label}`,
      `invoked ${fmt(o.call)}, ${o.outcome === 'unknown' ? (o.completedAt !== undefined ? `outcome unknown (info at ${fmt(o.completedAt)})` : 'never completed') : `${o.outcome === 'fail' ? 'failed' : 'returned'} ${fmt(o.ret)}`}`,
      n !== undefined ? `linearized as #${n}` : '',
      status === 'unplaceable' ? 'CANNOT BE PLACED' : '',
      o.source ? `${o.source.unit} ${o.source.invoke}` : '',
    ]
      .filter(Boolean)
      .join('\n');
    parts.push(
      `<g><title>${esc(tip)}</title><rect x="${x1.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 8}" rx="4" fill="${c.fill}" stroke="${c.stroke}" stroke-width="${isBlocking ? 3 : 1.2}"${open || status === 'failed' ? ' stroke-dasharray="4 3"' : ''}/>` +
        `<text x="${(x1 + 4).toFixed(1)}" y="${y + 13}" fill="${status === 'unplaceable' ? '#a40e26' : '#1d2330'}">${esc(`${n !== undefined ? `#${n} ` : ''}${label}`.slice(0, Math.max(1, Math.floor(w / 7))))}</text></g>`,
    );
  }
  parts.push('</svg>');
  const shown =
    ops.length < allOps.length
      ? `<p class="note">showing ${ops.length} of ${allOps.length} operations${k.result === 'violation' ? ' (the stretch around the failure)' : ''}</p>`
      : '';
  return `${shown}<div class="box">${parts.join('')}</div>`;
}

/** Renders the verdict as one HTML page with inline CSS and SVG only. */
export function renderHtmlReport(verdict: Verdict, opts: ReportOptions = {}): string {
  const title = opts.title ?? 'history';
  const maxKeys = opts.maxKeys ?? 20;
  const maxOps = opts.maxOpsPerKey ?? 600;
  const model = (builtinModels as Record<string, Model<string>>)[verdict.model] as
    | Model<unknown>
    | undefined;
  const byKey = new Map<string, Operation[]>();
  for (const o of verdict.operations) {
    let l = byKey.get(o.key);
    if (!l) {
      l = [];
      byKey.set(o.key, l);
    }
    l.push(o);
  }
  const ordered = [
    ...verdict.keys.filter((k) => k.result === 'violation'),
    ...verdict.keys.filter((k) => k.result === 'unknown'),
    ...verdict.keys.filter((k) => k.result === 'linearizable'),
  ];
  const shown = ordered.slice(0, maxKeys);
  const sections = shown.map((k) => {
    const ops = byKey.get(k.key) ?? [];
    return `<h2>key ${esc(JSON.stringify(k.key))} <span class="badge ${k.result}">${k.result}</span></h2>
${k.explanation ? `<pre>${esc(k.explanation)}</pre>` : k.reason ? `<p class="note">${esc(k.reason)}</p>` : ''}
${renderKey(k, ops, model, maxOps)}`;
  });
  const more =
    ordered.length > shown.length
      ? `<p class="note">${ordered.length - shown.length} more key(s) not drawn.</p>`
      : '';
  const legend = Object.entries({
    placed: 'linearized (#n = position in the order found)',
    unplaceable: 'cannot be placed',
    pending: 'not reached by the longest linearization',
    unknown: 'unknown outcome (may take effect any time after its invoke)',
    failed: 'failed (did not take effect)',
  })
    .map(
      ([k, text]) =>
        `<span><i class="sw" style="background:${COLORS[k as keyof typeof COLORS].fill};border:1px solid ${COLORS[k as keyof typeof COLORS].stroke}"></i>${esc(text)}</span>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(`synod check: ${title}`)}</title>
<style>${CSS}</style></head>
<body>
<h1>${esc(title)} <span class="badge ${verdict.result}">${verdict.result}</span></h1>
<p class="note">model ${esc(verdict.model)} · ${verdict.stats.operations} operations · ${verdict.stats.keys} key(s) · ${verdict.stats.steps} search steps · ${verdict.stats.elapsedMs.toFixed(0)} ms</p>
<pre>${esc([verdict.summary, ...verdict.warnings.slice(0, 20).map((w) => `warning: ${w}`)].join('\n'))}</pre>
<p class="legend">${legend}</p>
${sections.join('\n')}
${more}
</body></html>
`;
}
