/**
 * Client sessions (Raft thesis §6.3): wraps the user's StateMachine so that each command
 * (clientId, seq) is applied at most once. The last sequence number and result of every
 * session are part of the replicated state and of snapshots, so a retry after a timeout,
 * a leader change or a crash returns the original result instead of applying twice.
 *
 * Sessions are evicted deterministically (least recently used by log index) beyond
 * `maxSessions`; a retry from an evicted session would apply again, so keep the bound
 * above the number of concurrently active clients.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { encodeValueSliced } from '../../lib/codec-sliced.js';
import type { Command, StateMachine } from '../../lib/replicated-log.js';
import { RaftError } from './core/types.js';

export interface SessionApplyResult<Result> {
  result: Result | undefined;
  /** True when the command was a retry of one already applied (the result is the cached one). */
  duplicate: boolean;
}

interface Session {
  id: string;
  seq: number;
  result: unknown;
  lastIndex: number;
  /** Neighbours in applied order (least recently applied first): the eviction order. */
  prev: Session | undefined;
  next: Session | undefined;
}

export class SessionStateMachine<Op = unknown, Result = unknown> {
  private sessions = new Map<string, Session>();
  /** Least and most recently applied sessions (a linked list through the sessions). */
  private oldest: Session | undefined;
  private newest: Session | undefined;

  constructor(
    readonly inner: StateMachine<Op, Result>,
    readonly maxSessions = 100_000,
  ) {}

  apply(cmd: Command<Op>, meta: { index: number; term: number }): SessionApplyResult<Result> {
    const s = this.sessions.get(cmd.clientId);
    if (s && cmd.seq <= s.seq) {
      s.lastIndex = meta.index;
      return { result: cmd.seq === s.seq ? (s.result as Result) : undefined, duplicate: true };
    }
    const result = this.inner.apply(cmd.op, meta);
    if (s) {
      // Move to the newest end of the applied order (no Map delete + set).
      s.seq = cmd.seq;
      s.result = result;
      s.lastIndex = meta.index;
      if (s !== this.newest) {
        this.unlink(s);
        this.linkNewest(s);
      }
    } else {
      const n: Session = {
        id: cmd.clientId,
        seq: cmd.seq,
        result,
        lastIndex: meta.index,
        prev: undefined,
        next: undefined,
      };
      this.sessions.set(cmd.clientId, n);
      this.linkNewest(n);
    }
    if (this.sessions.size > this.maxSessions) {
      const oldest = this.oldest as Session;
      this.unlink(oldest);
      this.sessions.delete(oldest.id);
    }
    return { result, duplicate: false };
  }

  private unlink(s: Session): void {
    if (s.prev) s.prev.next = s.next;
    else this.oldest = s.next;
    if (s.next) s.next.prev = s.prev;
    else this.newest = s.prev;
    s.prev = undefined;
    s.next = undefined;
  }

  private linkNewest(s: Session): void {
    s.prev = this.newest;
    s.next = undefined;
    if (this.newest) this.newest.next = s;
    else this.oldest = s;
    this.newest = s;
  }

  /** The last applied seq of a client (undefined if unknown or evicted). */
  lastSeq(clientId: string): number | undefined {
    return this.sessions.get(clientId)?.seq;
  }

  cachedResult(clientId: string, seq: number): { result: Result } | undefined {
    const s = this.sessions.get(clientId);
    return s && s.seq === seq ? { result: s.result as Result } : undefined;
  }

  snapshot(): Uint8Array {
    return encodeValue({ v: 1, sessions: this.sessionsImage(), user: this.inner.snapshot() });
  }

  /**
   * The same image, encoded in slices: the sessions and the inner machine's image are both
   * captured before this returns, so commands applied meanwhile are not in it.
   */
  async snapshotAsync(pause: () => Promise<void>): Promise<Uint8Array> {
    const sessions = this.sessionsImage();
    const user = this.inner.snapshotAsync
      ? this.inner.snapshotAsync(pause)
      : Promise.resolve(this.inner.snapshot());
    return encodeValueSliced({ v: 1, sessions, user: await user }, pause);
  }

  /** Least recently applied first (the order evictions follow, as restore expects). */
  private sessionsImage(): [string, number, unknown, number][] {
    const sessions: [string, number, unknown, number][] = [];
    for (let s = this.oldest; s; s = s.next) sessions.push([s.id, s.seq, s.result, s.lastIndex]);
    return sessions;
  }

  restore(image: Uint8Array): void {
    const v = decodeValue(image) as {
      v: number;
      sessions: [string, number, unknown, number][];
      user: Uint8Array;
    };
    if (v?.v !== 1 || !Array.isArray(v.sessions) || !(v.user instanceof Uint8Array)) {
      throw new RaftError('SYNOD_ERR_RAFT_SNAPSHOT', 'not a session snapshot image');
    }
    const sessions = new Map<string, Session>();
    this.oldest = undefined;
    this.newest = undefined;
    for (const [id, seq, result, lastIndex] of v.sessions) {
      const old = sessions.get(id);
      if (old) {
        // As `new Map(pairs)` would: the later value, the first position.
        old.seq = seq;
        old.result = result;
        old.lastIndex = lastIndex;
        continue;
      }
      const n: Session = { id, seq, result, lastIndex, prev: undefined, next: undefined };
      sessions.set(id, n);
      this.linkNewest(n);
    }
    this.sessions = sessions;
    this.inner.restore(v.user);
  }
}
