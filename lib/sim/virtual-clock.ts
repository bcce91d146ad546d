/**
 * Virtual time for the simulation. Nothing happens until the simulation runs the next due
 * event; events at the same time run in the order they were scheduled, so a run is a pure
 * function of its seed.
 */
import type { Clock, TimerHandle } from '../clock.js';

interface ClockEvent {
  time: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
  /** A label for the trace ("timer", "schedule", or what the caller passed). */
  label: string;
}

/** A binary min-heap ordered by (time, seq). */
class EventHeap {
  private items: ClockEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  push(e: ClockEvent): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p] as ClockEvent, e)) break;
      a[i] = a[p] as ClockEvent;
      i = p;
    }
    a[i] = e;
  }

  peek(): ClockEvent | undefined {
    return this.items[0];
  }

  pop(): ClockEvent | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && less(a[r] as ClockEvent, a[l] as ClockEvent) ? r : l;
        if (less(last, a[c] as ClockEvent)) break;
        a[i] = a[c] as ClockEvent;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

function less(x: ClockEvent, y: ClockEvent): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq);
}

export class VirtualClock implements Clock {
  private current = 0;
  private seq = 0;
  private readonly heap = new EventHeap();

  /** @param wallEpoch wall-clock ms that virtual time 0 corresponds to. */
  constructor(private readonly wallEpoch = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.current;
  }

  wallNow(): number {
    return this.wallEpoch + this.current;
  }

  setTimer(ms: number, fn: () => void, label = 'timer'): TimerHandle {
    const e = this.push(this.current + Math.max(0, ms), fn, label);
    return {
      cancel: () => {
        e.cancelled = true;
      },
    };
  }

  setInterval(ms: number, fn: () => void, label = 'interval'): TimerHandle {
    const period = Math.max(1, ms);
    let live = true;
    let event: ClockEvent;
    const fire = () => {
      if (!live) return;
      event = this.push(this.current + period, fire, label);
      fn();
    };
    event = this.push(this.current + period, fire, label);
    return {
      cancel: () => {
        live = false;
        event.cancelled = true;
      },
    };
  }

  schedule(fn: () => void, label = 'schedule'): void {
    this.push(this.current, fn, label);
  }

  /** Time of the next live event, or undefined when none is pending. */
  nextTime(): number | undefined {
    this.skipCancelled();
    return this.heap.peek()?.time;
  }

  pending(): number {
    return this.heap.size;
  }

  /**
   * Runs the next event if it is due at or before `limit`. Returns its label, or undefined
   * when nothing was due (time then stays where it is).
   */
  step(limit = Number.POSITIVE_INFINITY): string | undefined {
    this.skipCancelled();
    const e = this.heap.peek();
    if (e === undefined || e.time > limit) return undefined;
    this.heap.pop();
    if (e.time > this.current) this.current = e.time;
    e.fn();
    return e.label;
  }

  /** Moves time forward to `time` without running anything (no-op if in the past). */
  advanceTo(time: number): void {
    if (time > this.current) this.current = time;
  }

  private push(time: number, fn: () => void, label: string): ClockEvent {
    const e: ClockEvent = { time, seq: this.seq++, fn, cancelled: false, label };
    this.heap.push(e);
    return e;
  }

  private skipCancelled(): void {
    for (let e = this.heap.peek(); e?.cancelled; e = this.heap.peek()) this.heap.pop();
  }
}
