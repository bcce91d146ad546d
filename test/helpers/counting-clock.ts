/**
 * The system clock, counting the timers that neither fired nor were cancelled, with where each
 * was armed: a test can assert that an object owns no timer after `close()` (a leaked timer
 * keeps a process alive).
 */
import { type Clock, systemClock, type TimerHandle } from '../../lib/clock.js';

export class CountingClock implements Clock {
  private next = 0;
  readonly pending = new Map<number, string>();
  now(): number {
    return systemClock.now();
  }
  wallNow(): number {
    return systemClock.wallNow();
  }
  private where(): string {
    const lines = (new Error().stack ?? '').split('\n').slice(3, 6);
    return lines.map((l) => l.trim()).join(' < ');
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = ++this.next;
    this.pending.set(id, `timer ${ms} ms at ${this.where()}`);
    const h = systemClock.setTimer(ms, () => {
      this.pending.delete(id);
      fn();
    });
    return {
      cancel: () => {
        this.pending.delete(id);
        h.cancel();
      },
    };
  }
  setInterval(ms: number, fn: () => void): TimerHandle {
    const id = ++this.next;
    this.pending.set(id, `interval ${ms} ms at ${this.where()}`);
    const h = systemClock.setInterval(ms, fn);
    return {
      cancel: () => {
        this.pending.delete(id);
        h.cancel();
      },
    };
  }
  schedule(fn: () => void): void {
    systemClock.schedule(fn);
  }
  left(): string[] {
    return [...this.pending.values()];
  }
}
