/**
 * Records what clients saw, one event a line in the Jepsen convention (see event.ts and
 * docs/history.md), to memory, a stream, a file or a callback.
 *
 *     const rec = new HistoryRecorder({ clock });
 *     const op = rec.invoke(1, 'write', 'x', 5);
 *     try { await kv.put('x', 5); op.ok(); } catch (e) { isTimeout(e) ? op.info('timeout') : op.fail(String(e)); }
 *     const r = rec.invoke(2, 'read', 'x');
 *     r.ok(await kv.get('x'));
 *     checkHistory(rec.events).result; // 'linearizable' | 'violation' | 'unknown'
 *
 * Time comes from the injected clock (`clock.now()`): under a virtual clock the history is
 * deterministic. An operation whose handle is never completed stays "unknown" (it may have
 * taken effect at any moment after its invoke), which is exactly right for a client that
 * crashed or gave up.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { type CheckOptions, checkHistory, type Verdict } from './checker.js';
import { type EventType, HistoryError, type HistoryEvent } from './event.js';

/** Anything with a `write(string)`: a Node Writable, a socket, a test double. */
export interface LineSink {
  write(chunk: string): unknown;
  end?(cb?: () => void): unknown;
}

export interface RecorderOptions {
  /** Source of event times; only `now()` is used. */
  clock: { now(): number };
  /** Where each event line (JSON + "\n") goes as it is recorded. */
  sink?: LineSink | ((line: string) => void);
  /** Keep events in memory (`events`, `check()`). Default: true. */
  keep?: boolean;
}

/** The handle of an invoked operation: complete it exactly once. */
export interface OperationHandle {
  readonly process: number | string;
  readonly f: string;
  readonly key: string | number | null | undefined;
  /** True once ok/fail/info was called. */
  readonly done: boolean;
  /**
   * The operation took effect. `value`: what it returned (a read's value; `null` for
   * absent). Omitted: the invoke's value is repeated (Jepsen's convention for writes).
   */
  ok(value?: unknown): void;
  /** The operation definitely did NOT take effect (`error`: why, kept in the history). */
  fail(error?: unknown): void;
  /** Unknown outcome (timeout, lost connection): it may or may not have taken effect. */
  info(error?: unknown): void;
}

export class HistoryRecorder {
  private readonly clock: { now(): number };
  private readonly write: ((line: string) => void) | undefined;
  private readonly endSink: (() => Promise<void>) | undefined;
  private readonly keep: boolean;
  private readonly recorded: HistoryEvent[] = [];
  private readonly outstanding = new Map<string, OperationHandle>();
  private lastTime = Number.NEGATIVE_INFINITY;
  private closed = false;
  private count = 0;

  constructor(opts: RecorderOptions) {
    if (!opts || typeof opts.clock?.now !== 'function')
      throw new HistoryError('SYNOD_ERR_HISTORY_INVALID', 'HistoryRecorder needs a clock');
    this.clock = opts.clock;
    this.keep = opts.keep ?? true;
    const sink = opts.sink;
    if (typeof sink === 'function') this.write = sink;
    else if (sink) {
      this.write = (line) => {
        sink.write(line);
      };
      if (sink.end) {
        const end = sink.end.bind(sink);
        this.endSink = () => new Promise<void>((resolve) => end(() => resolve()));
      }
    }
  }

  /**
   * A recorder that appends to `file` synchronously, event by event, so the history on disk
   * survives the recording process crashing (`close()` closes the file).
   */
  static toFile(file: string, opts: Omit<RecorderOptions, 'sink'>): HistoryRecorder {
    let fd: number;
    try {
      fd = openSync(file, 'w');
    } catch (err) {
      throw new HistoryError(
        'SYNOD_ERR_HISTORY_INVALID',
        `cannot open history file: ${(err as Error).message}`,
        { file },
      );
    }
    let open = true;
    const sink: LineSink = {
      write: (chunk: string) => {
        if (open) writeSync(fd, chunk);
      },
      end: (cb?: () => void) => {
        if (open) {
          open = false;
          closeSync(fd);
        }
        cb?.();
      },
    };
    return new HistoryRecorder({ ...opts, sink });
  }

  /** Recorded events (when `keep` is true), in order. */
  get events(): readonly HistoryEvent[] {
    return this.recorded;
  }

  /** Number of events recorded so far. */
  get size(): number {
    return this.count;
  }

  /** Operations invoked and not completed yet. */
  get pending(): number {
    return this.outstanding.size;
  }

  /** Starts an operation of `process` (a client thread; at most one outstanding op each). */
  invoke(
    process: number | string,
    f: string,
    key?: string | number | null,
    value?: unknown,
  ): OperationHandle {
    if (typeof process !== 'number' && typeof process !== 'string')
      throw new HistoryError(
        'SYNOD_ERR_HISTORY_INVALID',
        `process must be a number or a string, got ${typeof process}`,
      );
    if (typeof f !== 'string' || f === '')
      throw new HistoryError('SYNOD_ERR_HISTORY_INVALID', 'f must be a non-empty string');
    const pkey = `${typeof process}:${process}`;
    const busy = this.outstanding.get(pkey);
    if (busy)
      throw new HistoryError(
        'SYNOD_ERR_HISTORY_INVALID',
        `process ${process} already has an outstanding ${busy.f}: complete it (ok/fail/info) before invoking ${f}`,
      );
    this.append({ process, type: 'invoke', f, key, value, error: undefined });
    let done = false;
    const complete = (type: EventType, v: unknown, error: unknown) => {
      if (done)
        throw new HistoryError(
          'SYNOD_ERR_HISTORY_COMPLETED',
          `process ${process}: ${f} was already completed`,
        );
      done = true;
      this.outstanding.delete(pkey);
      this.append({ process, type, f, key, value: v, error });
    };
    const handle: OperationHandle = {
      process,
      f,
      key,
      get done() {
        return done;
      },
      ok: (v?: unknown) => complete('ok', v === undefined ? value : v, undefined),
      fail: (error?: unknown) => complete('fail', undefined, error),
      info: (error?: unknown) => complete('info', undefined, error),
    };
    this.outstanding.set(pkey, handle);
    return handle;
  }

  /** Convenience: checks the events recorded so far (needs `keep`). */
  check(options?: CheckOptions): Verdict {
    if (!this.keep)
      throw new HistoryError(
        'SYNOD_ERR_HISTORY_INVALID',
        'this recorder does not keep events in memory (keep: false); check its file instead',
      );
    return checkHistory(this.recorded, options);
  }

  /** The recorded events as JSON lines. */
  toJsonl(): string {
    return this.recorded.map((e) => `${JSON.stringify(e)}\n`).join('');
  }

  /** Stops recording and closes the sink. Outstanding operations stay unknown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.endSink?.();
  }

  private append(raw: {
    process: number | string;
    type: EventType;
    f: string;
    key: string | number | null | undefined;
    value: unknown;
    error: unknown;
  }): void {
    if (this.closed)
      throw new HistoryError('SYNOD_ERR_HISTORY_CLOSED', 'the history recorder is closed');
    // Clamp to keep the history in real-time order even if the clock stutters.
    const time = Math.max(this.clock.now(), this.lastTime);
    this.lastTime = time;
    const ev: HistoryEvent = { process: raw.process, type: raw.type, f: raw.f };
    if (raw.key !== undefined) ev.key = raw.key;
    if (raw.value !== undefined) ev.value = raw.value;
    ev.time = time;
    if (raw.error !== undefined) ev.error = raw.error;
    let line: string;
    try {
      line = `${JSON.stringify(ev)}\n`;
    } catch (err) {
      throw new HistoryError(
        'SYNOD_ERR_HISTORY_INVALID',
        `event value cannot be written as JSON: ${(err as Error).message}`,
      );
    }
    this.count++;
    if (this.keep) this.recorded.push(JSON.parse(line) as HistoryEvent);
    this.write?.(line);
  }
}
