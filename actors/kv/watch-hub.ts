/**
 * The watchers of one KV service: each gets every event on its key (or prefix) from its start
 * revision on, exactly once and in revision order, first from the state machine's history, then
 * live as entries apply, and again from the history after a snapshot restore replaced the state.
 * A watcher that falls behind the retained history gets `SYNOD_ERR_KV_COMPACTED` and is dropped.
 */
import { KvError } from './errors.js';
import type { KvWatchPush } from './messages.js';
import { prefixEnd } from './sorted-keys.js';
import type { KvStateMachine } from './state-machine.js';
import type { WatchEvent } from './types.js';

interface Watcher {
  readonly id: string;
  readonly subscriber: string;
  readonly match: (key: string) => boolean;
  /** The next revision this watcher has not been sent. */
  nextRev: number;
  /** Pushes sent so far. */
  n: number;
}

export function keyMatcher(key: string, prefix: boolean): (k: string) => boolean {
  if (!prefix) return (k) => k === key;
  const end = prefixEnd(key);
  return end === undefined ? (k) => k >= key : (k) => k >= key && k < end;
}

export class WatchHub {
  private readonly watchers = new Map<string, Watcher>();
  private readonly offEvent: () => void;
  private readonly offRestore: () => void;

  constructor(
    private readonly sm: KvStateMachine,
    private readonly send: (to: string, msg: KvWatchPush) => void,
  ) {
    this.offEvent = sm.onEvent((e) => this.onEvent(e));
    this.offRestore = sm.onRestore(() => this.onRestore());
  }

  get size(): number {
    return this.watchers.size;
  }

  /**
   * Starts a watch; sends the retained events from `fromRev` at once. Throws
   * `SYNOD_ERR_KV_COMPACTED` when `fromRev` is no longer retained. Returns the start revision.
   */
  add(id: string, subscriber: string, key: string, prefix: boolean, fromRev: number): number {
    const match = keyMatcher(key, prefix);
    const start = fromRev > 0 ? fromRev : this.sm.revision + 1;
    const backlog = start <= this.sm.revision ? this.sm.eventsSince(start, match) : [];
    const w: Watcher = { id, subscriber, match, nextRev: start, n: 0 };
    this.watchers.set(`${subscriber}|${id}`, w);
    if (backlog.length > 0) this.deliver(w, backlog);
    w.nextRev = Math.max(w.nextRev, this.sm.revision + 1);
    return start;
  }

  remove(id: string, subscriber: string): void {
    this.watchers.delete(`${subscriber}|${id}`);
  }

  removeSubscriber(subscriber: string): void {
    for (const [k, w] of this.watchers) if (w.subscriber === subscriber) this.watchers.delete(k);
  }

  /** Progress notifications: "nothing for you up to `rev`"; doubles as a liveness beat. */
  progress(): void {
    const rev = this.sm.revision;
    for (const w of this.watchers.values()) {
      this.send(w.subscriber, { type: 'kv.watch.progress', id: w.id, n: ++w.n, rev });
    }
  }

  close(): void {
    this.offEvent();
    this.offRestore();
    this.watchers.clear();
  }

  private deliver(w: Watcher, events: WatchEvent[]): void {
    const fresh = events.filter((e) => e.rev >= w.nextRev);
    if (fresh.length === 0) return;
    w.nextRev = (fresh[fresh.length - 1] as WatchEvent).rev + 1;
    this.send(w.subscriber, { type: 'kv.watch.events', id: w.id, n: ++w.n, events: fresh });
  }

  private onEvent(e: WatchEvent): void {
    for (const w of this.watchers.values()) {
      if (e.rev < w.nextRev) continue;
      if (w.match(e.key)) this.deliver(w, [e]);
      else w.nextRev = e.rev + 1;
    }
  }

  private onRestore(): void {
    for (const [k, w] of this.watchers) {
      if (w.nextRev > this.sm.revision) continue;
      try {
        this.deliver(w, this.sm.eventsSince(w.nextRev, w.match));
        w.nextRev = this.sm.revision + 1;
      } catch (err) {
        this.watchers.delete(k);
        const e = err as KvError;
        this.send(w.subscriber, {
          type: 'kv.watch.error',
          id: w.id,
          n: ++w.n,
          code: e instanceof KvError ? e.code : 'SYNOD_ERR_KV_COMPACTED',
          message: e.message,
          ...(e instanceof KvError && e.details.compactRevision !== undefined
            ? { compactRevision: e.details.compactRevision }
            : {}),
        });
      }
    }
  }
}
