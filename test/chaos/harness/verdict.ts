/**
 * The verdict of a chaos run, from the merged client histories:
 * - linearizability, by the checker (lib/history), per key with the register model;
 * - no acknowledged write lost: the final read of every key (after healing) returns a value
 *   that some write or cas may have left there last, i.e. one that was attempted (ok or
 *   unknown) and not strictly followed by an acknowledged write of another value. A checker
 *   independent of the WGL search, so a lost write is named even if the search gives up;
 * - the rest (writes after healing, memory) is decided by the runner.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { checkHistory, type Verdict } from '../../../lib/history/checker.js';
import type { HistoryEvent } from '../../../lib/history/event.js';
import { renderHtmlReport } from '../../../lib/history/report.js';

export function readJsonl(file: string): HistoryEvent[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: HistoryEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as HistoryEvent);
    } catch {
      // A process killed mid-line leaves a torn last line: that operation stays unknown.
    }
  }
  return out;
}

/** Merges histories of several processes by time (stable: equal times keep file order). */
export function mergeHistories(parts: HistoryEvent[][]): HistoryEvent[] {
  const all = parts.flatMap((p, pi) => p.map((e, i) => ({ e, pi, i })));
  all.sort((a, b) => (a.e.time ?? 0) - (b.e.time ?? 0) || a.pi - b.pi || a.i - b.i);
  return all.map((x) => x.e);
}

/**
 * One operation of a history: an invoke paired with its process's next completion (every
 * worker is sequential). `value` is what was invoked, `result` what completed it; `invoke` and
 * `complete` are times (`complete` is infinite while open or indeterminate).
 */
export interface PairedOp {
  process: number | string;
  f: string;
  key: string;
  value: unknown;
  invoke: number;
  complete: number;
  type: 'ok' | 'fail' | 'info' | 'open';
  result?: unknown;
}

/** Pairs each invoke with its process's next completion (every worker is sequential). */
export function pairOps(events: readonly HistoryEvent[]): PairedOp[] {
  const open = new Map<string, PairedOp>();
  const ops: PairedOp[] = [];
  for (const e of events) {
    const pk = `${typeof e.process}:${e.process}`;
    if (e.type === 'invoke') {
      const op: PairedOp = {
        process: e.process,
        f: e.f,
        key: String(e.key),
        value: e.value,
        invoke: e.time ?? 0,
        complete: Number.POSITIVE_INFINITY,
        type: 'open',
      };
      open.set(pk, op);
      ops.push(op);
    } else {
      const op = open.get(pk);
      if (!op) continue;
      open.delete(pk);
      op.type = e.type;
      op.complete = e.type === 'info' ? Number.POSITIVE_INFINITY : (e.time ?? 0);
      op.result = e.value;
    }
  }
  return ops;
}

function written(op: PairedOp): string | null | undefined {
  if (op.f === 'write') return op.value as string;
  if (op.f === 'cas') {
    if (op.type === 'ok' && op.result === false) return undefined;
    return (op.value as [unknown, string])[1];
  }
  return undefined;
}

export interface LostWrite {
  key: string;
  finalValue: string | null;
  problem: string;
}

/**
 * `finalProcess`: the process name of the final reads. Returns one entry per key whose final
 * value proves an acknowledged write lost (or a value no client wrote).
 */
export function findLostWrites(events: readonly HistoryEvent[], finalProcess: string): LostWrite[] {
  const ops = pairOps(events);
  const finals = ops.filter((o) => o.process === finalProcess && o.f === 'read' && o.type === 'ok');
  const out: LostWrite[] = [];
  for (const fr of finals) {
    const key = fr.key;
    const v = fr.result as string | null;
    const writes = ops.filter(
      (o) =>
        o.key === key &&
        o.process !== finalProcess &&
        written(o) !== undefined &&
        o.type !== 'fail',
    );
    const acked = writes.filter((o) => o.type === 'ok');
    if (v === null) {
      if (acked.length > 0)
        out.push({
          key,
          finalValue: v,
          problem: `absent, but ${acked.length} write(s) were acknowledged (e.g. ${describe(acked[0] as PairedOp)})`,
        });
      continue;
    }
    const sources = writes.filter((o) => written(o) === v);
    if (sources.length === 0) {
      out.push({
        key,
        finalValue: v,
        problem: `value ${JSON.stringify(v)} was never written by any client`,
      });
      continue;
    }
    // The source survives only if no acknowledged write of another value started after it ended.
    const src = sources[0] as PairedOp;
    const later = acked.find((a) => written(a) !== v && a.invoke > src.complete);
    if (later)
      out.push({
        key,
        finalValue: v,
        problem: `${describe(later)} was acknowledged after ${describe(src)} completed, yet the final read returns ${JSON.stringify(v)}: that acknowledged write was lost`,
      });
  }
  return out;
}

function describe(o: PairedOp): string {
  return `${o.f} ${JSON.stringify(o.value)} by process ${o.process} (${o.type})`;
}

export interface HistoryVerdict {
  checker: Verdict;
  lost: LostWrite[];
  reportFile?: string;
}

/** Checks the merged history; writes the HTML report (always) and returns both verdicts. */
export function judgeHistory(
  events: readonly HistoryEvent[],
  opts: {
    finalProcess: string;
    reportFile: string;
    title: string;
    timeoutMs: number;
    maxMemoryBytes?: number;
  },
): HistoryVerdict {
  const checker = checkHistory(events, {
    model: 'register',
    timeoutMs: opts.timeoutMs,
    ...(opts.maxMemoryBytes !== undefined ? { maxMemoryBytes: opts.maxMemoryBytes } : {}),
  });
  const lost = findLostWrites(events, opts.finalProcess);
  writeFileSync(opts.reportFile, renderHtmlReport(checker, { title: opts.title }));
  return { checker, lost, reportFile: opts.reportFile };
}
