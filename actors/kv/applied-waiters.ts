/**
 * Promises that resolve once the local replica has applied a given log index, or resolve
 * `false` after a timeout. Resolved in index order as `advance` reports progress.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';

interface Waiter {
  index: number;
  resolve(ok: boolean): void;
  timer: TimerHandle | undefined;
}

export class AppliedWaiters {
  private waiters: Waiter[] = [];
  private applied = 0;

  constructor(private readonly clock: Clock) {}

  get index(): number {
    return this.applied;
  }

  /** Resolves true once `index` is applied, false after `timeoutMs`. */
  wait(index: number, timeoutMs: number): Promise<boolean> {
    if (index <= this.applied) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const w: Waiter = { index, resolve, timer: undefined };
      if (Number.isFinite(timeoutMs))
        w.timer = this.clock.setTimer(timeoutMs, () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(false);
        });
      this.waiters.push(w);
    });
  }

  advance(applied: number): void {
    if (applied <= this.applied) return;
    this.applied = applied;
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.index <= applied) {
        w.timer?.cancel();
        w.resolve(true);
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  /**
   * The replica's applied index went back (a Multi-Paxos learner restarted alone and resumed
   * from an older snapshot): waits for an index above it wait again.
   */
  goBack(applied: number): void {
    if (applied < this.applied) this.applied = applied;
  }

  /** Resolves every waiter with false (the service stops). */
  cancelAll(): void {
    for (const w of this.waiters.splice(0)) {
      w.timer?.cancel();
      w.resolve(false);
    }
  }
}
