/**
 * The contract between a consensus protocol (actors/raft, actors/paxos) and the services
 * above it (actors/kv, actors/backup). A service written against `ReplicatedLog` and
 * `StateMachine` runs unchanged on Raft or Multi-Paxos.
 */
import type { Observable } from 'rxjs';

/** A command as it is proposed: a client session id and sequence number make it idempotent. */
export interface Command<Op = unknown> {
  /** Client session id; commands from one session apply at most once per `seq`. */
  readonly clientId: string;
  readonly seq: number;
  readonly op: Op;
}

export interface AppliedEntry<Op = unknown, Result = unknown> {
  readonly index: number;
  readonly term: number;
  readonly command: Command<Op>;
  readonly result: Result;
  /**
   * The command's bytes as the log holds them, when the log has them (a Raft node:
   * `encodeCommand`'s format, actors/raft/command-codec.ts). Never mutated. The backup agent
   * archives these instead of encoding the command again.
   */
  readonly data?: Uint8Array;
}

/** A deterministic state machine driven by the committed log. */
export interface StateMachine<Op = unknown, Result = unknown> {
  /** Applies one committed command. Must be deterministic. */
  apply(op: Op, meta: { index: number; term: number }): Result;
  /** A serialized image of the whole state. */
  snapshot(): Uint8Array;
  /**
   * Optional: the same image as `snapshot()`, captured synchronously when called (the state
   * as of the last applied command) but encoded in slices with `await pause()` between them,
   * so a large image does not hold the event loop. `apply` may run while the promise is
   * pending and must not change the captured image. Decodes to what `snapshot()` would give.
   */
  snapshotAsync?(pause: () => Promise<void>): Promise<Uint8Array>;
  /** Replaces the whole state with a snapshot image. */
  restore(image: Uint8Array): void;
}

export type ProposeErrorCode =
  | 'NotLeader' // definitely not applied; `leaderHint` may name the leader
  | 'Timeout' // indeterminate: it may still be applied
  | 'Stopped' // indeterminate unless the command was never sent
  | 'Dropped'; // definitely not applied (e.g. proposal queue full, leadership lost before append)

export class ProposeError extends Error {
  constructor(
    readonly code: ProposeErrorCode,
    message: string,
    readonly leaderHint?: string,
    /** True when the command may have been applied despite the error. */
    readonly indeterminate = code === 'Timeout' || code === 'Stopped',
  ) {
    super(message);
    this.name = 'ProposeError';
  }
}

export interface ProposeResult<Result = unknown> {
  readonly index: number;
  readonly term: number;
  readonly result: Result;
}

export interface ReplicatedLog<Op = unknown, Result = unknown> {
  readonly nodeId: string;
  /** Proposes a command; resolves once it is committed and applied locally. */
  propose(command: Command<Op>, options?: { timeoutMs?: number }): Promise<ProposeResult<Result>>;
  /**
   * A linearizable read barrier: resolves with an index once this node has applied at
   * least that index and leadership was confirmed after the read was issued.
   * `witness` (optional support, Raft's): the key of witnesses the client sent to the other
   * members when it invoked the read (`witnessRead`); leadership confirmed by them counts too.
   * A log without support ignores it.
   */
  readBarrier(options?: { timeoutMs?: number; witness?: string }): Promise<number>;
  /**
   * Optional: a client's witness for its read carrying `key` on the leader (Raft: the follower
   * tells its leader it is in the leader's term now). Never throws; does nothing where useless.
   */
  witnessRead?(key: string): void;
  /** Current leader id as known locally (undefined when unknown). */
  readonly leader$: Observable<string | undefined>;
  readonly commitIndex$: Observable<number>;
  readonly appliedIndex$: Observable<number>;
  /** Every entry applied on this node, in order. */
  readonly applied$: Observable<AppliedEntry<Op, Result>>;
}
