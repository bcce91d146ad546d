/**
 * Types shared by the pieces of the pure Raft core: the wire messages, the `Ready` batch
 * (the I/O contract between the core and the actor shell), options and error codes.
 *
 * Every message is plain data (strings, numbers, booleans, Uint8Array, arrays, objects)
 * so it survives msgpack on any transport.
 */
import type { EntryType, LogEntry, Membership, RaftHardState } from '../../../lib/storage/types.js';

export type { EntryType as EntryTypeName, LogEntry, RaftHardState };

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/**
 * Membership as the core tracks it. `learnersNext` are voters of the outgoing config being
 * demoted to learners: they become learners when the joint config is left. `autoLeave`
 * makes the leader propose leaving a joint config as soon as it has entered it.
 */
export interface RaftMembership extends Membership {
  learnersNext?: string[];
  autoLeave?: boolean;
}

/** Metadata of a snapshot as the core sees it (the storage layer adds size and checksum). */
export interface CoreSnapshotMeta {
  index: number;
  term: number;
  membership: RaftMembership;
}

export interface CoreSnapshot {
  meta: CoreSnapshotMeta;
  data: Uint8Array;
}

interface Base {
  from: string;
  to: string;
  term: number;
}

/** RequestVote (and PreVote: `term` is then the term the sender would campaign in). */
export interface VoteRequest extends Base {
  type: 'vote' | 'preVote';
  lastIndex: number;
  lastTerm: number;
  /** Set for a campaign triggered by leadership transfer: bypasses the leader lease. */
  transfer?: boolean;
}

export interface VoteResponse extends Base {
  type: 'voteResp' | 'preVoteResp';
  reject: boolean;
  /**
   * On a pre-vote refused because the responder hears from a live leader (the leader
   * lease): that leader. A node whose log does not yet name that leader as a member (it
   * missed the change that added it) admits the leader's messages on this word from a
   * member it knows; see `RaftCore.admits`.
   */
  leader?: string;
}

/** AppendEntries. */
export interface AppendRequest extends Base {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: LogEntry[];
  commit: number;
}

/**
 * Reply to AppendEntries (and the final ack of an InstallSnapshot). On success `index` is
 * the last index known to match the leader. On reject `index` is the rejected prevIndex
 * and (`hintIndex`, `hintTerm`) let the leader skip a whole conflicting term at once.
 */
export interface AppendResponse extends Base {
  type: 'appendResp';
  index: number;
  reject: boolean;
  hintIndex?: number;
  hintTerm?: number;
}

export interface Heartbeat extends Base {
  type: 'heartbeat';
  commit: number;
  /** ReadIndex context being confirmed, if any. */
  context?: string;
}

export interface HeartbeatResponse extends Base {
  type: 'heartbeatResp';
  context?: string;
}

/** One chunk of an InstallSnapshot transfer. */
export interface SnapshotChunk extends Base {
  type: 'snapshot';
  meta: CoreSnapshotMeta;
  totalSize: number;
  offset: number;
  data: Uint8Array;
  done: boolean;
}

/** Acknowledges chunks: `offset` is the next byte the follower expects for that snapshot. */
export interface SnapshotChunkResponse extends Base {
  type: 'snapshotResp';
  index: number;
  offset: number;
  reject: boolean;
}

/** Leadership transfer: the target campaigns at once. */
export interface TimeoutNow extends Base {
  type: 'timeoutNow';
}

/** A follower forwarding a ReadIndex request to its leader. */
export interface ReadIndexRequest extends Base {
  type: 'readIndex';
  context: string;
}

export interface ReadIndexResponse extends Base {
  type: 'readIndexResp';
  context: string;
  index: number;
  reject: boolean;
}

/** The version of `ReadWitness` this code writes and reads (another version is malformed). */
export const READ_WITNESS_VERSION = 1;

/**
 * A witness for a read (docs/raft.md, "Witnessed reads"): a client that starts a linearizable
 * read sends the read to the leader and, at the same time, a witness key to the followers; each
 * follower tells its leader "I am in this message's term, for the read `key`". The leader counts
 * it as that follower's confirmation of its leadership for the read registered under `key`
 * (`RaftCore.readIndex(context, key)`), in place of a heartbeat round after the read arrived.
 * Versioned: a node that does not know the message or its version rejects it as malformed,
 * and the read falls back to the heartbeat round.
 */
export interface ReadWitness extends Base {
  type: 'readWitness';
  v: typeof READ_WITNESS_VERSION;
  key: string;
}

export type RaftMessage =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotChunkResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse
  | ReadWitness;

export type RaftMessageType = RaftMessage['type'];

export const MESSAGE_TYPES: ReadonlySet<string> = new Set<RaftMessageType>([
  'vote',
  'preVote',
  'voteResp',
  'preVoteResp',
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'snapshot',
  'snapshotResp',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
  'readWitness',
]);

export interface SoftState {
  role: Role;
  leader: string | undefined;
}

/** A linearizable read became serviceable once `applied >= index`. */
export interface ReadState {
  context: string;
  index: number;
}

/** A ReadIndex request that could not be served (no leader, leadership lost...). */
export interface ReadFailure {
  context: string;
  reason: 'NotLeader' | 'Dropped';
  leaderHint?: string;
}

/**
 * Identifies a hand-out of entries to storage: the last index handed out, its term, and
 * the log's truncation count at that moment (`RaftLog.truncSeq`). `RaftCore.advanceStable`
 * takes it back once the write is durable.
 */
export interface LogMark {
  index: number;
  term: number;
  seq: number;
}

/**
 * What the shell must do, in this order (the synchronous contract):
 *  1. if `snapshot`: store it durably and reset the log store to it;
 *  2. append `entries` durably (the first one may overwrite a conflicting suffix);
 *  3. save `hardState` durably;
 *  4. only then send `messages` (they may promise votes or acknowledge entries);
 *  5. restore the state machine from `snapshot`, then apply `committedEntries` in order;
 *  6. serve `readStates` once the applied index reaches theirs;
 *  7. call `advance(ready)`.
 *
 * The asynchronous contract (several storage writes in flight; docs/raft.md) splits step 7:
 * `advanceApplied(ready)` once the committed entries are applied (the next `ready()` may
 * follow at once), and `advanceStable(ready.mark)` whenever the write of `entries` (and of
 * every earlier Ready's, storage writes completing in order) is durable.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: RaftHardState;
  snapshot?: CoreSnapshot;
  entries: LogEntry[];
  committedEntries: LogEntry[];
  messages: RaftMessage[];
  readStates: ReadState[];
  readFailures: ReadFailure[];
  /** True when anything in 1–3 must be made durable before sending. */
  mustSync: boolean;
  /** Set when `entries` is not empty: what their durable write confirms (`advanceStable`). */
  mark?: LogMark;
}

export type ReadOnlyMode = 'safe' | 'lease';
/** See RaftCoreOptions.readFanout. */
export type ReadFanout = 'all' | 'quorum';

export interface RaftCoreOptions {
  id: string;
  /** Injected randomness for election timeouts. */
  random: { int(n: number): number };
  /** Ticks between heartbeats (default 1). */
  heartbeatTick?: number;
  /** Base election timeout in ticks; the randomized one is in [electionTick, 2*electionTick). */
  electionTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /**
   * 'safe' (ReadIndex, default) or 'lease' (needs checkQuorum and clock drift bounded by
   * `leaseDriftTicks`; every voter must run with it: docs/raft.md, "Lease reads").
   */
  readOnly?: ReadOnlyMode;
  /**
   * Lease reads: ticks taken off the lease for clock drift (default 1). A lease read is served
   * only while `now < send tick of the newest heartbeat round a quorum acknowledged +
   * electionTick − 1 − leaseDriftTicks`; it must cover how many ticks a follower's clock can
   * gain on the leader's within one election timeout.
   */
  leaseDriftTicks?: number;
  /**
   * Who a ReadIndex round asks to confirm leadership: `'all'` (every follower, etcd's way) or
   * `'quorum'` (default 'all' here; RaftNode's default is 'quorum'): only as many voters as a
   * quorum needs, the follower that confirmed the last round first; a read still unconfirmed
   * after two ticks is asked of every follower (so is every pending read at each regular
   * heartbeat). Both are equally safe — the read is served only once a quorum acknowledged a
   * heartbeat sent after it arrived; `'quorum'` sends fewer messages per read.
   */
  readFanout?: ReadFanout;
  /** Max bytes of entry data per AppendEntries message (at least one entry is sent). */
  maxSizePerMsg?: number;
  /** Max AppendEntries in flight per follower in the replicate state. */
  maxInflightMsgs?: number;
  /** Max bytes of entry data in flight per follower (0 = unlimited). */
  maxInflightBytes?: number;
  /**
   * A learner's (non-voter's) replication window, tighter than a voter's: max bytes of entry
   * data per AppendEntries to a learner (default 256 KiB; never more than `maxSizePerMsg`),
   * and max such messages in flight (default 4). A learner counts for no commit, so sending
   * it less at a time delays no write; what it prevents is a leader that, when a learner far
   * behind (the backup agent catching up) starts to replicate, encodes and writes up to
   * `maxInflightBytes` in one turn of its event loop — measured at 32 MiB, a 233 ms stall of
   * every write, longer than the 150–300 ms election timeout (benchmarks/backup.md, session 11).
   */
  learnerMaxSizePerMsg?: number;
  learnerMaxInflightMsgs?: number;
  /** Max bytes of uncommitted entry data a leader accepts before dropping proposals (0 = unlimited). */
  maxUncommittedBytes?: number;
  /** Max bytes of committed entries handed out per Ready (at least one). */
  maxApplyBytes?: number;
  /** InstallSnapshot chunk size in bytes. */
  snapshotChunkSize?: number;
  /**
   * Heartbeat intervals without an answer to the InstallSnapshot chunk in flight after which
   * the leader sends it again, on the follower's next heartbeat response (default 20).
   */
  snapshotResendBeats?: number;
  /** Step down when removed from the configuration (default true). */
  stepDownOnRemoval?: boolean;
}

/** Durable state the core restarts from (all optional for a brand-new node). */
export interface RaftCoreState {
  hardState?: RaftHardState;
  snapshot?: CoreSnapshot;
  /** Entries after the snapshot, in order, as read back from the log store. */
  entries?: LogEntry[];
  /**
   * Bootstraps a brand-new cluster: writes the initial membership as entry 1 (identical on
   * every founding member). Ignored when the node already has state. A node joining an
   * existing cluster passes nothing and learns the membership from the leader.
   */
  bootstrap?: RaftMembership;
}

export type RaftErrorCode =
  | 'SYNOD_ERR_RAFT_NOT_LEADER'
  | 'SYNOD_ERR_RAFT_PROPOSAL_DROPPED'
  | 'SYNOD_ERR_RAFT_CONF_PENDING'
  | 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE'
  | 'SYNOD_ERR_RAFT_BAD_MESSAGE'
  | 'SYNOD_ERR_RAFT_BAD_STATE'
  | 'SYNOD_ERR_RAFT_SNAPSHOT'
  | 'SYNOD_ERR_RAFT_SAFETY';

export class RaftError extends Error {
  constructor(
    readonly code: RaftErrorCode,
    message: string,
    readonly leaderHint?: string,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}

/** Bytes an entry counts for in flow control and batching. */
export function entrySize(e: LogEntry): number {
  return e.data.byteLength + 16;
}
