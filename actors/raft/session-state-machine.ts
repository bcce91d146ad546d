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
  seq: number;
  result: unknown;
  lastIndex: number;
}

export class SessionStateMachine<Op = unknown, Result = unknown> {
  private sessions = new Map<string, Session>();

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
      // Re-insert to keep Map order = least recently applied first (eviction order).
      this.sessions.delete(cmd.clientId);
      s.seq = cmd.seq;
      s.result = result;
      s.lastIndex = meta.index;
      this.sessions.set(cmd.clientId, s);
    } else this.sessions.set(cmd.clientId, { seq: cmd.seq, result, lastIndex: meta.index });
    if (this.sessions.size > this.maxSessions) {
      // Map iteration order is insertion order: the first key is the least recently applied.
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    return { result, duplicate: false };
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

  private sessionsImage(): unknown[] {
    return [...this.sessions].map(([id, s]) => [id, s.seq, s.result, s.lastIndex]);
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
    this.sessions = new Map(
      v.sessions.map(([id, seq, result, lastIndex]) => [id, { seq, result, lastIndex }]),
    );
    this.inner.restore(v.user);
  }
}
