/**
 * Time is injected. Actors, protocols and transports never call `setTimeout`, `Date.now`
 * or `performance.now` directly: they take a `Clock`. Production code uses `SystemClock`;
 * the simulation uses `VirtualClock` (lib/sim/virtual-clock.ts), where time only moves
 * when the simulation advances it.
 */
export interface TimerHandle {
  /** Cancels the timer. Cancelling twice, or after it fired, is a no-op. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary epoch; monotonic, may be fractional. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (for commit times, logs, backups). */
  wallNow(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** Runs `fn` every `ms` milliseconds until cancelled. */
  setInterval(ms: number, fn: () => void): TimerHandle;
  /**
   * Runs `fn` as soon as possible after the current task, without waiting on time
   * (the actor dispatcher uses this). SystemClock: `setImmediate`; VirtualClock: an event
   * at the current virtual time, after those already due.
   */
  schedule(fn: () => void): void;
}

/** The real clock: the one place in the runtime that touches Node's timers. */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  wallNow(): number {
    return Date.now();
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  }

  setInterval(ms: number, fn: () => void): TimerHandle {
    const t = setInterval(fn, Math.max(1, ms));
    return { cancel: () => clearInterval(t) };
  }

  schedule(fn: () => void): void {
    setImmediate(fn);
  }
}

export const systemClock: Clock = new SystemClock();
