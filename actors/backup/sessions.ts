/**
 * Client sessions, mirrored from Raft's session table (actors/raft/session-state-machine.ts):
 * a command whose (clientId, seq) is not newer than the last one applied for that client is
 * a retry and changes nothing. The agent applies committed commands through this wrapper so
 * that its copy of the state stays identical to the cluster's even when clients retry, and a
 * restore replays the archive through it too. Sessions are part of the backed-up state, as
 * keys under the reserved prefix "\u0000session/" (value: u64 last seq | u64 index of that
 * apply), and are evicted least-recently-applied first beyond `maxSessions`, as Raft does.
 */
import type { Command } from '../../lib/replicated-log.js';
import { PaxosSessionState } from './paxos-sessions.js';
import type { KeyedState } from './state.js';

export const SESSION_PREFIX = '\u0000session/';

interface Session {
  readonly seq: number;
  readonly at: number;
  /** `encodeSession(seq, at)`, made when first read (most sessions change before they are). */
  value: Uint8Array | undefined;
}

function sessionValue(s: Session): Uint8Array {
  s.value ??= encodeSession(s.seq, s.at);
  return s.value;
}

/** A session's value: u64 last seq | u64 index of that apply. */
export function encodeSession(seq: number, at: number): Uint8Array {
  const b = Buffer.allocUnsafe(16);
  b.writeBigUInt64BE(BigInt(seq), 0);
  b.writeBigUInt64BE(BigInt(at), 8);
  return b;
}

/**
 * The session rule the agent and a restore apply commands through: the cluster's own, so the
 * agent's copy of the state stays identical when clients retry. Raft's (`SessionState`: a seq
 * not above the client's last is a retry) or Multi-Paxos's (`PaxosSessionState`: a window of
 * recent seqs per client, paxos-sessions.ts). The session table is part of the backed-up
 * state, under reserved keys.
 */
export interface SessionRule<Op> extends KeyedState<Command<Op>> {
  readonly protocol: 'raft' | 'paxos';
  readonly inner: KeyedState<Op>;
  isDuplicate(cmd: Command<Op>): boolean;
  /**
   * Keys `cmd` may have changed when it was applied at some earlier point (not against the
   * current sessions). Exact unless `mayHaveEvicted`.
   */
  keysTouchedEarlier(cmd: Command<Op>): Iterable<string>;
  /** True when earlier applies may have evicted sessions that `keysTouchedEarlier` misses. */
  mayHaveEvicted(): boolean;
}

export class SessionState<Op> implements SessionRule<Op> {
  readonly protocol = 'raft' as const;

  private sessions = new Map<string, Session>();

  constructor(
    readonly inner: KeyedState<Op>,
    readonly maxSessions = 100_000,
  ) {}

  isDuplicate(cmd: Command<Op>): boolean {
    const s = this.sessions.get(cmd.clientId);
    return s !== undefined && cmd.seq <= s.seq;
  }

  apply(cmd: Command<Op>, meta: { index: number; term: number }): unknown {
    if (this.isDuplicate(cmd)) return undefined;
    const r = this.inner.apply(cmd.op, meta);
    this.sessions.delete(cmd.clientId);
    this.sessions.set(cmd.clientId, { seq: cmd.seq, at: meta.index, value: undefined });
    if (this.sessions.size > this.maxSessions) {
      this.sessions.delete(this.sessions.keys().next().value as string);
    }
    return r;
  }

  /** An array, not a generator: the agent asks this for every entry it applies. */
  keysTouched(cmd: Command<Op>): string[] {
    if (this.isDuplicate(cmd)) return [];
    const out = [SESSION_PREFIX + cmd.clientId];
    if (!this.sessions.has(cmd.clientId) && this.sessions.size >= this.maxSessions) {
      out.push(SESSION_PREFIX + (this.sessions.keys().next().value as string)); // evicted
    }
    for (const k of this.inner.keysTouched(cmd.op)) out.push(k);
    return out;
  }

  /**
   * Keys `cmd` may have changed when it was applied at some earlier point (not against the
   * current sessions): its session key and the user keys. Exact unless sessions were evicted
   * in between, which `mayHaveEvicted` tells.
   */
  *keysTouchedEarlier(cmd: Command<Op>): Iterable<string> {
    yield SESSION_PREFIX + cmd.clientId;
    yield* this.inner.keysTouched(cmd.op);
  }

  /** True when the session table is full, so earlier applies may have evicted sessions. */
  mayHaveEvicted(): boolean {
    return this.sessions.size >= this.maxSessions;
  }

  get(key: string): Uint8Array | undefined {
    if (key.startsWith(SESSION_PREFIX)) {
      const s = this.sessions.get(key.slice(SESSION_PREFIX.length));
      return s ? sessionValue(s) : undefined;
    }
    return this.inner.get(key);
  }

  get size(): number {
    return this.inner.size + this.sessions.size;
  }

  *entries(): IterableIterator<[string, Uint8Array]> {
    yield* this.inner.entries();
    for (const [id, s] of this.sessions) yield [SESSION_PREFIX + id, sessionValue(s)];
  }

  /**
   * The user's entries stream into the inner state (no second array of the whole state, which
   * a restore of a million keys pays for in garbage collection); the sessions are collected on
   * the way. A failure leaves this object half-loaded: callers load into a fresh one and drop
   * it on error.
   */
  load(entries: Iterable<readonly [string, Uint8Array]>): void {
    const sessions: Array<[string, Session]> = [];
    this.inner.load(splitSessions(entries, sessions));
    sessions.sort((a, b) => a[1].at - b[1].at);
    this.sessions = new Map(sessions);
  }

  /** Sessions as Raft's session table holds them: [clientId, seq, result, lastIndex]. */
  raftSessions(): Array<[string, number, undefined, number]> {
    return [...this.sessions].map(([id, s]) => [id, s.seq, undefined, s.at]);
  }
}

/** Yields the user's entries of `entries`, pushing the Raft sessions to `sessions`. */
function* splitSessions(
  entries: Iterable<readonly [string, Uint8Array]>,
  sessions: Array<[string, Session]>,
): Generator<readonly [string, Uint8Array]> {
  for (const e of entries) {
    if (e[0].startsWith(SESSION_PREFIX)) {
      const b = Buffer.from(e[1].buffer, e[1].byteOffset, e[1].byteLength);
      sessions.push([
        e[0].slice(SESSION_PREFIX.length),
        { seq: Number(b.readBigUInt64BE(0)), at: Number(b.readBigUInt64BE(8)), value: e[1] },
      ]);
    } else {
      yield e;
    }
  }
}

/** The protocol a repository's cluster runs (repo.json `protocol`; absent = raft). */
export type ClusterProtocol = 'raft' | 'paxos';

/** The session rule of `protocol` around `inner`. */
export function sessionRuleFor<Op>(
  protocol: ClusterProtocol | undefined,
  inner: KeyedState<Op>,
): SessionRule<Op> {
  return protocol === 'paxos' ? new PaxosSessionState(inner) : new SessionState(inner);
}
