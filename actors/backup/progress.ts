/** Progress of a long repository operation, reported to an optional callback. */
export interface Progress {
  readonly phase: 'backup' | 'restore' | 'replay' | 'verify' | 'expire';
  /** Plain bytes processed so far. */
  readonly bytes: number;
  /** Total plain bytes when known up front. */
  readonly totalBytes?: number;
  readonly chunks: number;
  readonly totalChunks?: number;
  /** Bytes written to the repository so far (new chunks). */
  readonly storedBytes?: number;
}

export type ProgressFn = (p: Progress) => void;

/**
 * Renders progress for a terminal (one line rewritten in place: bytes, chunks, rate, time
 * left) or, when the stream is not a TTY, as plain log lines at most every `everyMs`.
 * `done()` prints the last update if it was throttled, so the output ends with the final state.
 * `now` is a monotonic millisecond clock (the CLI passes its SystemClock's).
 */
export function progressPrinter(
  out: { write(s: string): unknown; isTTY?: boolean },
  now: () => number,
  everyMs = 2000,
): { update: ProgressFn; done(): void } {
  const start = now();
  let last = -Infinity;
  let lastLine = '';
  const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const fmtTime = (s: number) =>
    s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${s.toFixed(0)}s`;
  const line = (p: Progress): string => {
    const el = Math.max(1e-3, (now() - start) / 1000);
    const rate = p.bytes / el;
    let s = `${p.phase}: ${p.phase === 'replay' ? `${p.bytes} entries` : mb(p.bytes)}`;
    if (p.totalBytes) s += ` of ${p.phase === 'replay' ? p.totalBytes : mb(p.totalBytes)}`;
    s += `, ${p.chunks}${p.totalChunks ? `/${p.totalChunks}` : ''} chunks`;
    if (p.storedBytes !== undefined) s += `, ${mb(p.storedBytes)} new`;
    if (p.phase !== 'replay') s += `, ${mb(rate)}/s`;
    if (p.totalBytes && rate > 0 && p.bytes < p.totalBytes)
      s += `, ${fmtTime((p.totalBytes - p.bytes) / rate)} left`;
    return s;
  };
  // The last update, and whether it is what the stream shows: done() prints it if not, so the
  // output ends with the operation's final state (100 %) even when that update was throttled.
  let lastP: Progress | undefined;
  let shown = true;
  let ended = false;
  const show = (p: Progress) => {
    lastLine = line(p);
    shown = true;
    out.write(out.isTTY ? `\r\x1b[2K${lastLine}` : `${lastLine}\n`);
  };
  return {
    update(p) {
      if (ended) return;
      lastP = p;
      shown = false;
      const t = now();
      if (t - last < (out.isTTY ? 100 : everyMs)) return;
      last = t;
      show(p);
    },
    done() {
      if (ended) return;
      ended = true;
      if (lastP && !shown) show(lastP);
      if (out.isTTY && lastLine) out.write('\n');
    },
  };
}
