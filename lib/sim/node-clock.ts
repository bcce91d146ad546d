/**
 * One simulated node's view of the virtual clock. Crashing the node kills every timer it
 * owns (a dead process runs nothing); pausing it holds timers until it resumes (a stopped
 * process, SIGSTOP).
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { VirtualClock } from './virtual-clock.js';

export class NodeClock implements Clock {
  private alive = true;
  private paused = false;
  private held: (() => void)[] = [];
  private readonly handles = new Set<TimerHandle>();

  constructor(
    private readonly clock: VirtualClock,
    readonly nodeId: string,
    /** Clock skew in ms added to wallNow (for LWW and lease tests). */
    public wallSkewMs = 0,
  ) {}

  now(): number {
    return this.clock.now();
  }

  wallNow(): number {
    return this.clock.wallNow() + this.wallSkewMs;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const handle = this.clock.setTimer(
      ms,
      () => {
        this.handles.delete(handle);
        this.run(fn);
      },
      `timer:${this.nodeId}`,
    );
    this.handles.add(handle);
    return {
      cancel: () => {
        handle.cancel();
        this.handles.delete(handle);
      },
    };
  }

  setInterval(ms: number, fn: () => void): TimerHandle {
    const handle = this.clock.setInterval(ms, () => this.run(fn), `interval:${this.nodeId}`);
    this.handles.add(handle);
    return {
      cancel: () => {
        handle.cancel();
        this.handles.delete(handle);
      },
    };
  }

  schedule(fn: () => void): void {
    if (!this.alive) return;
    this.clock.schedule(() => this.run(fn), `run:${this.nodeId}`);
  }

  isAlive(): boolean {
    return this.alive;
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** Kills every timer; this clock never runs anything again. */
  kill(): void {
    this.alive = false;
    for (const h of this.handles) h.cancel();
    this.handles.clear();
    this.held = [];
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const fn of held) this.clock.schedule(() => this.run(fn), `resume:${this.nodeId}`);
  }

  private run(fn: () => void): void {
    if (!this.alive) return;
    if (this.paused) {
      this.held.push(fn);
      return;
    }
    fn();
  }
}
