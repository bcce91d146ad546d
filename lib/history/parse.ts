/**
 * Readers for history files:
 *
 * - `jsonl`: Synod's own format, one JSON event a line (see docs/history.md); a file that is
 *   one JSON array of events is accepted too;
 * - `edn`: Jepsen's history.edn, one EDN map a line (`{:process 0, :type :invoke, :f :read,
 *   :key "k", :value nil}`); nemesis events are skipped;
 * - `jepsen`: Jepsen log lines as printed by `jepsen.util` (the etcd register logs:
 *   `INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]`); every other line is ignored.
 *
 * Every reader returns events plus, per event, its 1-based line, so errors found later
 * (pairing, model validation) still name `file:line`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { EdnError, type EdnValue, readEdn } from './edn.js';
import { type EventType, HistoryError, type HistoryEvent } from './event.js';

export type HistoryFormat = 'jsonl' | 'jepsen' | 'edn';

export interface ParsedHistory {
  format: HistoryFormat;
  events: HistoryEvent[];
  /** 1-based line of each event. */
  lines: number[];
  file?: string;
}

export interface ParseOptions {
  format?: HistoryFormat | 'auto';
  /** Shown in error messages (`file:line`). */
  file?: string;
  /**
   * jepsen logs: what `:fail :cas` means. `mismatch` (default): the compare definitely
   * failed, so the register held something else (recorded as `ok` with value `false`, which
   * the register model checks). `not-applied`: only that nothing changed (dropped).
   */
  casFailure?: 'mismatch' | 'not-applied';
}

const TYPES = new Set(['invoke', 'ok', 'fail', 'info']);

function parseError(file: string | undefined, line: number, msg: string): HistoryError {
  return new HistoryError('SYNOD_ERR_HISTORY_PARSE', msg, {
    ...(file !== undefined ? { file } : {}),
    line,
  });
}

/** Guesses the format from the file name, then from the first non-blank line. */
export function detectFormat(text: string, file?: string): HistoryFormat {
  const ext = file ? path.extname(file).toLowerCase() : '';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl';
  if (ext === '.edn') return 'edn';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('{"') || line.startsWith('[') || line === '{') return 'jsonl';
    if (line.startsWith('{:') || line.startsWith('{ :')) return 'edn';
    if (/jepsen\.util\s+-\s/.test(line)) return 'jepsen';
    if (line.startsWith('{')) return line.includes('":') ? 'jsonl' : 'edn';
    break;
  }
  if (/jepsen\.util\s+-\s/.test(text)) return 'jepsen';
  throw new HistoryError(
    'SYNOD_ERR_HISTORY_FORMAT',
    'cannot tell the history format (jsonl, edn or jepsen log); pass --format',
    file !== undefined ? { file } : undefined,
  );
}

export function parseHistory(text: string, opts: ParseOptions = {}): ParsedHistory {
  const format =
    opts.format === undefined || opts.format === 'auto'
      ? detectFormat(text, opts.file)
      : opts.format;
  const parsed =
    format === 'jsonl'
      ? parseJsonl(text, opts.file)
      : format === 'edn'
        ? parseEdnHistory(text, opts.file)
        : parseJepsenLog(text, opts.file, opts.casFailure ?? 'mismatch');
  if (opts.file !== undefined) parsed.file = opts.file;
  return parsed;
}

export function readHistoryFile(
  file: string,
  opts: Omit<ParseOptions, 'file'> = {},
): ParsedHistory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HistoryError(
      'SYNOD_ERR_HISTORY_PARSE',
      `cannot read history: ${(err as Error).message}`,
      { file },
    );
  }
  return parseHistory(text, { ...opts, file });
}

function checkEventShape(
  raw: unknown,
  file: string | undefined,
  line: number,
): HistoryEvent | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw parseError(file, line, 'expected an object (one event a line)');
  const e = raw as Record<string, unknown>;
  if (typeof e.type !== 'string' || !TYPES.has(e.type))
    throw parseError(
      file,
      line,
      `"type" must be invoke, ok, fail or info (got ${JSON.stringify(e.type)})`,
    );
  if (typeof e.process !== 'number' && typeof e.process !== 'string')
    throw parseError(
      file,
      line,
      `"process" must be a number or string (got ${JSON.stringify(e.process)})`,
    );
  if (typeof e.f !== 'string' || e.f === '')
    throw parseError(file, line, `"f" must be a non-empty string (got ${JSON.stringify(e.f)})`);
  if (
    e.time !== undefined &&
    e.time !== null &&
    (typeof e.time !== 'number' || !Number.isFinite(e.time))
  )
    throw parseError(file, line, `"time" must be a finite number (got ${JSON.stringify(e.time)})`);
  const ev: HistoryEvent = { process: e.process, type: e.type as EventType, f: e.f };
  if (e.key !== undefined) ev.key = e.key as HistoryEvent['key'];
  if (e.value !== undefined) ev.value = e.value;
  if (typeof e.time === 'number') ev.time = e.time;
  if (e.error !== undefined) ev.error = e.error;
  return ev;
}

export function parseJsonl(text: string, file?: string): ParsedHistory {
  const events: HistoryEvent[] = [];
  const lines: number[] = [];
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (err) {
      throw parseError(file, 1, `not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(arr)) throw parseError(file, 1, 'expected a JSON array of events');
    arr.forEach((raw, i) => {
      const ev = checkEventShape(raw, file, i + 1);
      if (ev) {
        events.push(ev);
        lines.push(i + 1);
      }
    });
    return { format: 'jsonl', events, lines };
  }
  const src = text.split('\n');
  for (let i = 0; i < src.length; i++) {
    const line = (src[i] as string).trim();
    if (line === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw parseError(file, i + 1, `not valid JSON: ${(err as Error).message}`);
    }
    const ev = checkEventShape(raw, file, i + 1);
    if (ev) {
      events.push(ev);
      lines.push(i + 1);
    }
  }
  return { format: 'jsonl', events, lines };
}

export function parseEdnHistory(text: string, file?: string): ParsedHistory {
  const events: HistoryEvent[] = [];
  const lines: number[] = [];
  const src = text.split('\n');
  for (let i = 0; i < src.length; i++) {
    const line = (src[i] as string).trim();
    if (line === '' || line.startsWith(';')) continue;
    let raw: EdnValue;
    try {
      raw = readEdn(line);
    } catch (err) {
      const msg =
        err instanceof EdnError ? `${err.message} at column ${err.offset + 1}` : String(err);
      throw parseError(file, i + 1, `not a valid EDN map: ${msg}`);
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || 'tag' in raw)
      throw parseError(file, i + 1, 'expected an EDN map (one event a line)');
    const m = raw as Record<string, EdnValue>;
    if (m.process === 'nemesis') continue;
    const ev = checkEventShape(
      {
        process: m.process,
        type: m.type,
        f: m.f,
        ...(m.key !== undefined ? { key: m.key } : {}),
        ...(m.value !== undefined ? { value: m.value } : {}),
        ...(typeof m.time === 'number' ? { time: m.time } : {}),
        ...(m.error !== undefined ? { error: m.error } : {}),
      },
      file,
      i + 1,
    );
    if (ev) {
      events.push(ev);
      lines.push(i + 1);
    }
  }
  return { format: 'edn', events, lines };
}

const JEPSEN_LINE = /jepsen\.util\s+-\s+(\S+)\t:(invoke|ok|fail|info)\t:([^\s]+)\t?(.*)$/;

export function parseJepsenLog(
  text: string,
  file?: string,
  casFailure: 'mismatch' | 'not-applied' = 'mismatch',
): ParsedHistory {
  const events: HistoryEvent[] = [];
  const lines: number[] = [];
  const src = text.split('\n');
  for (let i = 0; i < src.length; i++) {
    const m = JEPSEN_LINE.exec(src[i] as string);
    if (!m) continue;
    const [, proc, type, f, rest] = m as unknown as [string, string, EventType, string, string];
    if (proc === ':nemesis') continue;
    let value: EdnValue;
    const body = rest.trim();
    try {
      value = body === '' ? null : readEdn(body);
    } catch (err) {
      const msg = err instanceof EdnError ? err.message : String(err);
      throw parseError(file, i + 1, `cannot read the value "${body}": ${msg}`);
    }
    const process = /^\d+$/.test(proc) ? Number(proc) : proc;
    const ev: HistoryEvent = { process, type, f, time: i + 1 };
    if (type === 'invoke') {
      ev.value = value;
    } else if (type === 'ok') {
      ev.value = value;
    } else if (
      type === 'fail' &&
      f === 'cas' &&
      casFailure === 'mismatch' &&
      value !== 'timed-out'
    ) {
      // etcd answered "compare failed": a definite observation, not just "not applied".
      ev.type = 'ok';
      ev.value = false;
    } else if (type === 'fail' && value === 'timed-out') {
      // `:fail :read :timed-out`: the client gave up; the outcome is unknown.
      ev.type = 'info';
      ev.error = 'timed-out';
    } else if (typeof value === 'string') {
      ev.error = value;
    }
    events.push(ev);
    lines.push(i + 1);
  }
  return { format: 'jepsen', events, lines };
}
