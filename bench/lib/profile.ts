/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function (name and
 * source location) and per source file, as percentages of the sampled time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: CpuNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of samples not idle ((idle) and (program) excluded from the denominator? no: included). */
  idlePct: number;
  gcPct: number;
  topFunctions: { name: string; where: string; selfPct: number }[];
  topFiles: { file: string; selfPct: number }[];
}

function shortUrl(url: string, root: string): string {
  if (!url) return '(native)';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(root)) u = u.slice(root.length + 1);
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm + 'node_modules/'.length);
  return u;
}

export function summarizeProfile(file: string, root: string, top = 15): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, CpuNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  // Self time per node from samples × time deltas (falls back to hit counts).
  const self = new Map<number, number>();
  if (prof.samples && prof.timeDeltas) {
    for (let i = 0; i < prof.samples.length; i++) {
      const id = prof.samples[i] as number;
      const dt = Math.max(0, prof.timeDeltas[i + 1] ?? prof.timeDeltas[i] ?? 0);
      self.set(id, (self.get(id) ?? 0) + dt);
    }
  } else {
    for (const n of prof.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  let total = 0;
  for (const v of self.values()) total += v;
  const fn = new Map<string, { name: string; where: string; t: number }>();
  const files = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  for (const [id, t] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') idle += t;
    if (name === '(garbage collector)') gc += t;
    const where = n.callFrame.url
      ? `${shortUrl(n.callFrame.url, root)}:${n.callFrame.lineNumber + 1}`
      : '(native)';
    const key = `${name}@${where}`;
    const e = fn.get(key) ?? { name, where, t: 0 };
    e.t += t;
    fn.set(key, e);
    const f = n.callFrame.url ? shortUrl(n.callFrame.url, root) : name;
    files.set(f, (files.get(f) ?? 0) + t);
  }
  const pct = (t: number) => (total > 0 ? (100 * t) / total : 0);
  return {
    file: path.basename(file),
    totalMs: total / 1000,
    idlePct: pct(idle),
    gcPct: pct(gc),
    topFunctions: [...fn.values()]
      .sort((a, b) => b.t - a.t)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, selfPct: pct(e.t) })),
    topFiles: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, t]) => ({ file: f, selfPct: pct(t) })),
  };
}

export function formatProfile(s: ProfileSummary, label: string): string {
  const lines = [
    `${label}: ${s.totalMs.toFixed(0)} ms sampled, idle ${s.idlePct.toFixed(1)} %, GC ${s.gcPct.toFixed(1)} %`,
    '',
    '| self % | function | where |',
    '|-------:|----------|-------|',
    ...s.topFunctions.map((f) => `| ${f.selfPct.toFixed(1)} | ${f.name} | ${f.where} |`),
    '',
    '| self % | file |',
    '|-------:|------|',
    ...s.topFiles.map((f) => `| ${f.selfPct.toFixed(1)} | ${f.file} |`),
  ];
  return lines.join('\n');
}
