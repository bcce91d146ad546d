/**
 * History events in the Jepsen convention, and the operations they pair into.
 *
 * A history is a sequence of events, one JSON object a line:
 *
 *     {"process":3,"type":"invoke","f":"write","key":"k1","value":5,"time":1200.5}
 *     {"process":3,"type":"ok","f":"write","key":"k1","value":5,"time":1203.1}
 *
 * - `invoke` starts an operation of a process (a client thread: at most one operation of
 *   a process is outstanding at a time);
 * - `ok` completes it successfully: the operation took effect exactly once, at some moment
 *   between its invoke and this completion;
 * - `fail` completes it with a definite failure: the operation did NOT take effect;
 * - `info` completes it with an unknown outcome (a timeout, a crash): it may have taken
 *   effect at any moment after its invoke, or never. An invoke with no completion at all
 *   means the same.
 *
 * See docs/history.md for the full format.
 */

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

export interface HistoryEvent {
  /** The client (thread) that issued the operation. */
  process: number | string;
  type: EventType;
  /** The operation's function: `read`, `write`, `cas`, `delete`, `get`, `put`, `append`... */
  f: string;
  /** The key the operation touches; keys are checked independently. Absent = one register. */
  key?: string | number | null;
  /** invoke: the argument; ok: the result (read value...); fail/info: optional, ignored. */
  value?: unknown;
  /** Real time of the event (any monotonic unit). Absent: the event's position is used. */
  time?: number;
  /** For info/fail: a reason (`timeout`, `not-leader`...), carried into reports. */
  error?: unknown;
}

/** Stable error codes raised by the history module. */
export type HistoryErrorCode =
  | 'SYNOD_ERR_HISTORY_PARSE'
  | 'SYNOD_ERR_HISTORY_INVALID'
  | 'SYNOD_ERR_HISTORY_COMPLETED'
  | 'SYNOD_ERR_HISTORY_CLOSED'
  | 'SYNOD_ERR_HISTORY_FORMAT'
  | 'SYNOD_ERR_MODEL_UNKNOWN'
  | 'SYNOD_ERR_MODEL_INPUT';

export class HistoryError extends Error {
  override readonly name = 'HistoryError';
  constructor(
    readonly code: HistoryErrorCode,
    message: string,
    /** Where the bad input is: `file:line` when parsing a file, `event N` otherwise. */
    readonly location?: { file?: string; line?: number; index?: number },
  ) {
    super(location ? `${formatLocation(location)}: ${message}` : message);
  }
}

export function formatLocation(loc: { file?: string; line?: number; index?: number }): string {
  if (loc.file !== undefined && loc.line !== undefined) return `${loc.file}:${loc.line}`;
  if (loc.line !== undefined) return `line ${loc.line}`;
  if (loc.index !== undefined) return `event ${loc.index}`;
  return loc.file ?? '?';
}

/** How an operation ended. */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** An invoke paired with its completion. */
export interface Operation {
  /** Index in the order operations were invoked (0-based, whole history). */
  id: number;
  process: number | string;
  f: string;
  /** Normalised key (a string; `''` when the history had no keys). */
  key: string;
  /** The invoke's value (the argument). */
  input: unknown;
  /** The completion's value; `undefined` unless `outcome === 'ok'`. */
  output: unknown;
  outcome: Outcome;
  /** Invoke time. */
  call: number;
  /** Completion time; `Infinity` when the outcome is unknown. */
  ret: number;
  /** The completion's time even when unknown (`info` time), or `undefined` if none. */
  completedAt?: number;
  error?: unknown;
  /**
   * Where the invoke and the completion came from: 1-based lines of a file (`unit: 'line'`)
   * or 0-based indexes in the events array (`unit: 'event'`).
   */
  source?: { unit: 'line' | 'event'; invoke: number; complete?: number };
}

export interface PairResult {
  operations: Operation[];
  /** Non-fatal oddities (an invoke that replaced an outstanding one...). */
  warnings: string[];
}

export interface PairOptions {
  file?: string;
  /** Per event, its 1-based line in `file` (for error messages). */
  lines?: number[];
}

const TYPES = new Set<EventType>(['invoke', 'ok', 'fail', 'info']);

function normKey(key: unknown): string {
  if (key === undefined || key === null) return '';
  if (typeof key === 'string') return key;
  if (typeof key === 'number' || typeof key === 'boolean' || typeof key === 'bigint')
    return String(key);
  return JSON.stringify(key);
}

/**
 * Validates events and pairs each invoke with the next completion of the same process.
 * Throws `HistoryError` (`SYNOD_ERR_HISTORY_INVALID`) naming the event/line on bad input.
 */
export function pairEvents(events: readonly HistoryEvent[], opts: PairOptions = {}): PairResult {
  const ops: Operation[] = [];
  const warnings: string[] = [];
  const open = new Map<string, Operation>();
  let lastTime = Number.NEGATIVE_INFINITY;
  const where = (i: number) =>
    opts.lines?.[i] !== undefined
      ? { ...(opts.file !== undefined ? { file: opts.file } : {}), line: opts.lines[i] as number }
      : { ...(opts.file !== undefined ? { file: opts.file } : {}), index: i };
  const srcOf = (i: number) => opts.lines?.[i] ?? i;
  const unit: 'line' | 'event' = opts.lines ? 'line' : 'event';
  const bad = (i: number, msg: string): never => {
    throw new HistoryError('SYNOD_ERR_HISTORY_INVALID', msg, where(i));
  };

  for (let i = 0; i < events.length; i++) {
    const e = events[i] as HistoryEvent;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) bad(i, 'event is not an object');
    if (!TYPES.has(e.type))
      bad(i, `"type" must be one of invoke, ok, fail, info (got ${JSON.stringify(e.type)})`);
    if (typeof e.process !== 'number' && typeof e.process !== 'string')
      bad(i, `"process" must be a number or a string (got ${JSON.stringify(e.process)})`);
    if (typeof e.f !== 'string' || e.f === '')
      bad(i, `"f" must be a non-empty string (got ${JSON.stringify(e.f)})`);
    let time: number;
    if (e.time === undefined || e.time === null) time = i;
    else if (typeof e.time !== 'number' || !Number.isFinite(e.time))
      time = bad(i, `"time" must be a finite number (got ${JSON.stringify(e.time)})`);
    else time = e.time;
    if (time < lastTime)
      bad(i, `events must be in real-time order: time ${time} is before the previous ${lastTime}`);
    lastTime = time;
    const pkey = `${typeof e.process}:${e.process}`;
    const key = normKey(e.key);

    if (e.type === 'invoke') {
      const prev = open.get(pkey);
      if (prev) {
        warnings.push(
          `${formatLocation(where(i))}: process ${e.process} invoked ${e.f} while its ${prev.f} (invoked at ${prev.call}) was still outstanding; that one is treated as unknown outcome`,
        );
      }
      const op: Operation = {
        id: ops.length,
        process: e.process,
        f: e.f,
        key,
        input: e.value === undefined ? null : e.value,
        output: undefined,
        outcome: 'unknown',
        call: time,
        ret: Number.POSITIVE_INFINITY,
        source: { unit, invoke: srcOf(i) },
      };
      ops.push(op);
      open.set(pkey, op);
      continue;
    }

    const op = open.get(pkey);
    if (!op)
      bad(i, `${e.type} for process ${JSON.stringify(e.process)} that has no outstanding invoke`);
    const inv = op as Operation;
    if (inv.f !== e.f)
      bad(
        i,
        `${e.type} ${e.f} for process ${JSON.stringify(e.process)} does not match its outstanding invoke ${inv.f}`,
      );
    if (e.key !== undefined && e.key !== null && key !== inv.key)
      bad(
        i,
        `completion key ${JSON.stringify(key)} differs from its invoke's ${JSON.stringify(inv.key)}`,
      );
    open.delete(pkey);
    inv.source = { unit, invoke: inv.source?.invoke ?? srcOf(i), complete: srcOf(i) };
    inv.completedAt = time;
    if (e.error !== undefined) inv.error = e.error;
    if (e.type === 'ok') {
      inv.outcome = 'ok';
      inv.output = e.value === undefined ? null : e.value;
      inv.ret = time;
    } else if (e.type === 'fail') {
      inv.outcome = 'fail';
      inv.ret = time;
    } else {
      inv.outcome = 'unknown';
      inv.ret = Number.POSITIVE_INFINITY;
    }
  }
  return { operations: ops, warnings };
}
