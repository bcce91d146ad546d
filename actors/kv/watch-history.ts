/**
 * The bounded history of changes that watch replays from. Every revision has exactly one
 * event, so the retained events are contiguous: revisions `compacted + 1 .. newest`. A watch
 * from a revision at or below `compacted` would miss events and fails with
 * `SYNOD_ERR_KV_COMPACTED` (etcd's ErrCompacted), naming the oldest revision still available.
 */
import { KvError } from './errors.js';
import type { WatchEvent } from './types.js';

export class WatchHistory {
  private events: WatchEvent[] = [];
  private head = 0;
  /** Events with rev ≤ compacted are no longer available. */
  private compactedRev = 0;

  constructor(readonly limit = 10_000) {
    if (!(limit >= 1)) throw new RangeError('watch history limit must be ≥ 1');
  }

  get compacted(): number {
    return this.compactedRev;
  }

  /** Revision of the newest retained event (or `compacted` when none is retained). */
  get newest(): number {
    const n = this.events.length - this.head;
    return n === 0 ? this.compactedRev : (this.events[this.events.length - 1] as WatchEvent).rev;
  }

  get size(): number {
    return this.events.length - this.head;
  }

  push(event: WatchEvent): void {
    if (event.rev !== this.newest + 1)
      throw new Error(`watch history: event rev ${event.rev} after ${this.newest}`);
    this.events.push(event);
    while (this.events.length - this.head > this.limit) {
      this.compactedRev = (this.events[this.head] as WatchEvent).rev;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Events with rev ≥ `fromRev` (and ≤ `toRev`) that `match` accepts, oldest first. Throws
   * `SYNOD_ERR_KV_COMPACTED` when `fromRev` is at or below the compacted revision.
   */
  since(fromRev: number, match: (key: string) => boolean, toRev = Infinity): WatchEvent[] {
    fromRev = Math.max(1, fromRev);
    if (fromRev <= this.compactedRev) {
      throw new KvError(
        'SYNOD_ERR_KV_COMPACTED',
        `revision ${fromRev} is compacted; the oldest revision available is ${this.compactedRev + 1}`,
        false,
        { compactRevision: this.compactedRev + 1 },
      );
    }
    const out: WatchEvent[] = [];
    const first = Math.max(fromRev, this.compactedRev + 1);
    // Contiguous revisions: the event of rev r sits at head + (r - compacted - 1).
    for (let i = this.head + (first - this.compactedRev - 1); i < this.events.length; i++) {
      const e = this.events[i] as WatchEvent;
      if (e.rev > toRev) break;
      if (match(e.key)) out.push(e);
    }
    return out;
  }

  toImage(): { compacted: number; events: WatchEvent[] } {
    return { compacted: this.compactedRev, events: this.events.slice(this.head) };
  }

  static fromImage(
    image: { compacted: number; events: WatchEvent[] },
    limit: number,
  ): WatchHistory {
    const h = new WatchHistory(limit);
    h.compactedRev = image.compacted;
    for (const e of image.events) h.push(e);
    return h;
  }
}
