/**
 * Exactly-once application of mutations (Raft dissertation §6.3): each client session tags its
 * commands with a sequence number and the highest seq it has had answered (`a`, the ack).
 * The table remembers, per session, the results of commands above the ack, so a retry that
 * reaches the log twice (a new leader, a resent proposal) is answered with the first result
 * instead of being applied again.
 *
 * - seq ≤ floor (acked, or pushed out of the window): a stale duplicate; its result is gone.
 * - seq with a remembered result: a duplicate; the same result is returned.
 * - otherwise: applied once, and its result remembered.
 * - An unknown session whose command carries `a > 0` was evicted: answered with
 *   `SYNOD_ERR_KV_SESSION_EXPIRED`, never applied (an earlier copy may have been).
 *
 * Memory: at most `window` results per session, at most `maxSessions` sessions (the least
 * recently used are evicted, in apply order, so every replica evicts the same ones).
 *
 * The Multi-Paxos learner (actors/paxos) also dedupes by (clientId, seq) before the state
 * machine; that is harmless: the KV service proposes with the same (clientId, seq), so a
 * command the log drops as a duplicate is one this table would also have dropped.
 */
import type { KvResult } from './types.js';

interface Session {
  floor: number;
  results: Map<number, KvResult>;
  /** Log index of the last command of this session (for LRU eviction). */
  last: number;
}

export type SessionVerdict =
  | { readonly kind: 'new' }
  | { readonly kind: 'duplicate'; readonly result: KvResult }
  | { readonly kind: 'stale' }
  | { readonly kind: 'expired' };

export type SessionsImage = readonly (readonly [
  string,
  number,
  number,
  readonly (readonly [number, KvResult])[],
])[];

export class SessionTable {
  private readonly sessions = new Map<string, Session>();

  constructor(
    readonly window = 128,
    readonly maxSessions = 50_000,
  ) {
    if (!(window >= 1) || !(maxSessions >= 1))
      throw new RangeError('session window and maxSessions must be ≥ 1');
  }

  get size(): number {
    return this.sessions.size;
  }

  check(client: string, seq: number, ack: number): SessionVerdict {
    const s = this.sessions.get(client);
    if (!s) return ack > 0 ? { kind: 'expired' } : { kind: 'new' };
    const r = s.results.get(seq);
    if (r !== undefined) return { kind: 'duplicate', result: r };
    if (seq <= s.floor) return { kind: 'stale' };
    return { kind: 'new' };
  }

  /** Records the result of a command that was applied (or answered) at log `index`. */
  record(client: string, seq: number, ack: number, result: KvResult, index: number): void {
    let s = this.sessions.get(client);
    if (!s) {
      s = { floor: 0, results: new Map(), last: index };
      this.sessions.set(client, s);
      if (this.sessions.size > this.maxSessions) this.evict();
    }
    s.last = index;
    s.results.set(seq, result);
    this.raiseFloor(s, ack);
    if (s.results.size > this.window) {
      const seqs = [...s.results.keys()].sort((a, b) => a - b);
      this.raiseFloor(s, seqs[s.results.size - this.window - 1] as number);
    }
  }

  /** Moves the ack of a session forward (a duplicate or stale command still carries one). */
  touch(client: string, ack: number, index: number): void {
    const s = this.sessions.get(client);
    if (!s) return;
    s.last = index;
    this.raiseFloor(s, ack);
  }

  private raiseFloor(s: Session, floor: number): void {
    if (floor <= s.floor) return;
    s.floor = floor;
    for (const k of s.results.keys()) if (k <= floor) s.results.delete(k);
  }

  /** Drops the least recently used tenth of the sessions (deterministic: by index, then id). */
  private evict(): void {
    const n = Math.max(1, Math.floor(this.maxSessions / 10));
    const victims = [...this.sessions.entries()]
      .sort((a, b) => a[1].last - b[1].last || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, n);
    for (const [id] of victims) this.sessions.delete(id);
  }

  /** Ids of every remembered session (backup hook: actors/backup/kv-state.ts). */
  ids(): IterableIterator<string> {
    return this.sessions.keys();
  }

  /** One session as `toImage` renders it, or undefined (backup hook). */
  entryImage(client: string): SessionsImage[number] | undefined {
    const s = this.sessions.get(client);
    if (!s) return undefined;
    return [client, s.floor, s.last, [...s.results.entries()].sort((a, b) => a[0] - b[0])] as const;
  }

  toImage(): SessionsImage {
    return [...this.sessions.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(
        ([id, s]) =>
          [id, s.floor, s.last, [...s.results.entries()].sort((a, b) => a[0] - b[0])] as const,
      );
  }

  static fromImage(image: SessionsImage, window: number, maxSessions: number): SessionTable {
    const t = new SessionTable(window, maxSessions);
    for (const [id, floor, last, results] of image) {
      t.sessions.set(id, { floor, last, results: new Map(results.map(([q, r]) => [q, r])) });
    }
    return t;
  }
}
