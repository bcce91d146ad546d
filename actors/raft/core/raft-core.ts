/**
 * The pure Raft core: no I/O, no timers, deterministic given its inputs and its injected
 * Random. The shell feeds it messages (`step`), logical clock ticks (`tick`) and client
 * requests (`propose`, `proposeConfChange`, `readIndex`, `transferLeadership`), then
 * collects a `Ready` (what to persist, send, apply) and calls `advance` when done.
 *
 * Role behaviours: `stepFollower`, `stepCandidate` (pre-candidates too), `stepLeader`;
 * transitions: `becomeFollower`, `becomePreCandidate`, `becomeCandidate`, `becomeLeader`.
 * The structure follows etcd-io/raft; the code is written from the Raft paper and thesis.
 */
import {
  ClusterConfig,
  type ConfChangeOp,
  type ConfEntry,
  decodeConfEntry,
  encodeConfEntry,
} from './membership.js';
import { Progress } from './progress.js';
import { jointCommitted, jointVote } from './quorum.js';
import { RaftLog } from './raft-log.js';
import { type PendingRead, ReadOnlyQueue, WitnessBuffer } from './read-only.js';
import {
  type AppendRequest,
  type AppendResponse,
  type CoreSnapshot,
  type CoreSnapshotMeta,
  type EntryTypeName,
  entrySize,
  type Heartbeat,
  type HeartbeatResponse,
  type LogEntry,
  type LogMark,
  type RaftCoreOptions,
  type RaftCoreState,
  RaftError,
  type RaftHardState,
  type RaftMembership,
  type RaftMessage,
  READ_WITNESS_VERSION,
  type ReadFailure,
  type ReadFanout,
  type ReadOnlyMode,
  type ReadState,
  type ReadWitness,
  type Ready,
  type Role,
  type SnapshotChunk,
  type SnapshotChunkResponse,
  type SoftState,
  type VoteRequest,
} from './types.js';

type Msg = RaftMessage;
/** A message as built before `from` and `term` are stamped on it. */
type Outgoing = Msg extends infer M
  ? M extends Msg
    ? Omit<M, 'from' | 'term'> & { term?: number }
    : never
  : never;

interface IncomingSnapshot {
  index: number;
  term: number;
  totalSize: number;
  size: number;
  chunks: Uint8Array[];
}

export interface ProgressInfo {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

export interface RaftStatus {
  id: string;
  role: Role;
  term: number;
  vote: string | null;
  leader: string | undefined;
  commit: number;
  applied: number;
  lastIndex: number;
  lastTerm: number;
  firstIndex: number;
  stableIndex: number;
  membership: RaftMembership;
  leadTransferee: string | undefined;
  progress: Record<string, ProgressInfo>;
}

/**
 * `readFanout: 'quorum'`: leader ticks a read asked of a quorum only may wait before it is asked
 * of every follower (10–20 ms at the default 10 ms tick).
 */
const READ_WIDEN_TICKS = 2;
/** Ticks a witness that arrived before its read is kept, and how many keys at most. */
const WITNESS_KEEP_TICKS = 10;
const WITNESS_KEEP_MAX = 4096;
/**
 * Prefix of the contexts a lease-read leader puts on its own heartbeat rounds (to learn which
 * round a follower acknowledged); read contexts may not start with it.
 */
export const LEASE_CONTEXT_PREFIX = '\u0000lease:';

export class RaftCore {
  readonly id: string;
  term = 0;
  vote: string | null = null;
  leader: string | undefined = undefined;
  role: Role = 'follower';
  readonly log: RaftLog;
  config: ClusterConfig = new ClusterConfig();
  /** Index of the last config entry (or snapshot) applied to `config`. */
  configIndex = 0;
  /** Leader only: progress of every member, including the leader itself. */
  readonly prs = new Map<string, Progress>();
  private votes = new Map<string, boolean>();
  private msgs: Msg[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  leadTransferee: string | undefined = undefined;
  /** Leader only: index of the last config entry proposed (at most one in flight). */
  private pendingConfIndex = 0;
  /** Leaders named by members (lease hints) that this node's log does not list yet. */
  private readonly vouched = new Set<string>();
  /** `admits` cache for ids outside the applied config: valid for one log state. */
  private pendingPeers:
    | { config: ClusterConfig; version: number; applied: number; ids: Set<string> }
    | undefined;
  private uncommittedBytes = 0;
  private readonly readOnly = new ReadOnlyQueue();
  /** Reads that arrived before the leader committed an entry of its term. */
  private pendingReads: { context: string; from: string; witness?: string }[] = [];
  /** Leader: witnesses that arrived before their read. */
  private readonly witnesses = new WitnessBuffer(WITNESS_KEEP_MAX, WITNESS_KEEP_TICKS);
  /**
   * Leader: voters whose witness was missing when a witnessed read had to be asked of every
   * follower; until one of their witnesses arrives again, witnessed reads that need them start
   * the usual heartbeat round at once (a down follower costs no waiting).
   */
  private readonly witnessMissed = new Set<string>();
  /** Reads this node served as leader on their witnesses (no heartbeat round): for stats. */
  witnessedReads = 0;
  /** Reads this node served as leader on its lease (no heartbeat round): for stats. */
  leaseReads = 0;
  /** Ticks since this core was created (its clock for leases). */
  private ticks = 0;
  /**
   * Lease mode: the tick at which this node last heard from a leader (or started, after a
   * restart); it grants no vote that is not a transfer for `electionTick` ticks after it.
   */
  private leaderContact = Number.NEGATIVE_INFINITY;
  /** Leader, lease mode: the tick each heartbeat context of this term was first sent. */
  private readonly leaseRounds = new Map<string, number>();
  private leaseSeq = 0;
  /** Leader, lease mode: per voter, the newest send tick of a round it acknowledged. */
  private readonly leaseAcked = new Map<string, number>();
  /** Leader: a transfer was started this term, so no lease read until the term ends. */
  private leaseRevoked = false;
  private readStates: ReadState[] = [];
  private readFailures: ReadFailure[] = [];
  private incoming: IncomingSnapshot | undefined;
  /** A snapshot received from the leader that the shell has not yet persisted. */
  private pendingSnapshot: CoreSnapshot | undefined;
  /** The latest snapshot of this node (sent to followers that are too far behind). */
  private localSnapshot: CoreSnapshot | undefined;
  private needBroadcast = false;
  private membershipCache: { config: ClusterConfig; m: RaftMembership } | undefined;
  private prevSoft: SoftState;
  private prevHard: RaftHardState;
  private outstanding: Ready | undefined;

  private readonly random: RaftCoreOptions['random'];
  readonly heartbeatTick: number;
  readonly electionTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readOnlyMode: ReadOnlyMode;
  readonly leaseDriftTicks: number;
  readonly readFanout: ReadFanout;
  /** Leader: the follower whose acknowledgement completed the last ReadIndex round. */
  private readPeer: string | undefined;
  private readonly maxSizePerMsg: number;
  private readonly maxInflightMsgs: number;
  private readonly maxInflightBytes: number;
  private readonly learnerMaxSizePerMsg: number;
  private readonly learnerMaxInflightMsgs: number;
  private readonly maxUncommittedBytes: number;
  private readonly maxApplyBytes: number;
  private readonly snapshotChunkSize: number;
  private readonly snapshotResendBeats: number;
  private readonly stepDownOnRemoval: boolean;

  constructor(opts: RaftCoreOptions, state: RaftCoreState = {}) {
    this.id = opts.id;
    this.random = opts.random;
    this.heartbeatTick = opts.heartbeatTick ?? 1;
    this.electionTick = opts.electionTick ?? 10 * this.heartbeatTick;
    if (this.heartbeatTick < 1 || this.electionTick <= this.heartbeatTick) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `electionTick (${this.electionTick}) must exceed heartbeatTick (${this.heartbeatTick}) ≥ 1`,
      );
    }
    this.preVote = opts.preVote ?? true;
    this.checkQuorum = opts.checkQuorum ?? true;
    this.readOnlyMode = opts.readOnly ?? 'safe';
    this.readFanout = opts.readFanout ?? 'all';
    if (this.readFanout !== 'all' && this.readFanout !== 'quorum') {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `readFanout must be 'all' or 'quorum', not ${JSON.stringify(this.readFanout)}`,
      );
    }
    if (this.readOnlyMode !== 'safe' && this.readOnlyMode !== 'lease') {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `readOnly must be 'safe' or 'lease', not ${JSON.stringify(this.readOnlyMode)}`,
      );
    }
    if (this.readOnlyMode === 'lease' && !this.checkQuorum) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', 'lease reads require checkQuorum');
    }
    this.leaseDriftTicks = opts.leaseDriftTicks ?? 1;
    if (
      !Number.isInteger(this.leaseDriftTicks) ||
      this.leaseDriftTicks < 0 ||
      (this.readOnlyMode === 'lease' && this.electionTick - 1 - this.leaseDriftTicks < 1)
    ) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `leaseDriftTicks must be an integer ≥ 0 below electionTick − 1 (${this.electionTick - 1}), got ${this.leaseDriftTicks}`,
      );
    }
    this.maxSizePerMsg = opts.maxSizePerMsg ?? 1024 * 1024;
    this.maxInflightMsgs = opts.maxInflightMsgs ?? 256;
    this.maxInflightBytes = opts.maxInflightBytes ?? 32 * 1024 * 1024;
    this.learnerMaxSizePerMsg = Math.min(
      this.maxSizePerMsg,
      opts.learnerMaxSizePerMsg ?? 256 * 1024,
    );
    this.learnerMaxInflightMsgs = Math.min(this.maxInflightMsgs, opts.learnerMaxInflightMsgs ?? 4);
    for (const [name, v] of [
      ['learnerMaxSizePerMsg', this.learnerMaxSizePerMsg],
      ['learnerMaxInflightMsgs', this.learnerMaxInflightMsgs],
    ] as const) {
      if (!(Number.isInteger(v) && v >= 1)) {
        throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', `${name} must be an integer ≥ 1, got ${v}`);
      }
    }
    this.maxUncommittedBytes = opts.maxUncommittedBytes ?? 0;
    this.maxApplyBytes = opts.maxApplyBytes ?? 4 * 1024 * 1024;
    this.snapshotChunkSize = opts.snapshotChunkSize ?? 256 * 1024;
    this.snapshotResendBeats = opts.snapshotResendBeats ?? 20;
    if (!(Number.isInteger(this.snapshotResendBeats) && this.snapshotResendBeats >= 1)) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `snapshotResendBeats must be an integer ≥ 1, got ${this.snapshotResendBeats}`,
      );
    }
    this.stepDownOnRemoval = opts.stepDownOnRemoval ?? true;

    const snap = state.snapshot;
    this.log = new RaftLog(snap?.meta.index ?? 0, snap?.meta.term ?? 0);
    if (snap) {
      this.config = ClusterConfig.from(snap.meta.membership);
      this.configIndex = snap.meta.index;
      this.localSnapshot = snap;
    }
    const ents = (state.entries ?? []).filter((e) => e.index > this.log.snapIndex);
    if (ents.length > 0) {
      if ((ents[0] as LogEntry).index !== this.log.snapIndex + 1) {
        throw new RaftError(
          'SYNOD_ERR_RAFT_BAD_STATE',
          `log starts at ${(ents[0] as LogEntry).index}, snapshot ends at ${this.log.snapIndex}`,
        );
      }
      this.log.append(ents);
      this.log.stableIndex = this.log.lastIndex();
      this.log.inProgress = this.log.lastIndex();
    }
    const hs = state.hardState;
    const fresh = !hs && !snap && ents.length === 0;
    if (hs) {
      this.term = hs.term;
      this.vote = hs.vote;
      this.log.commitTo(Math.min(hs.commit, this.log.lastIndex()));
    }
    if (fresh && state.bootstrap) {
      const cfg = ClusterConfig.from(state.bootstrap);
      if (cfg.isEmpty()) {
        throw new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', 'bootstrap membership has no voters');
      }
      const data = encodeConfEntry({ kind: 'bootstrap', membership: cfg.toMembership() });
      this.log.append([{ index: 1, term: 1, type: 'config', data }]);
      this.term = 1;
      this.log.commitTo(1);
    }
    this.prevHard = fresh ? { term: 0, vote: null, commit: 0 } : this.hardState();
    this.becomeFollower(this.term, undefined);
    // A restarted node may have acknowledged a leader's heartbeat just before it went down: it
    // keeps that leader's lease (no vote for an election timeout), as if it had just heard it.
    if (!fresh && this.readOnlyMode === 'lease') this.leaderContact = 0;
    this.prevSoft = { role: this.role, leader: this.leader };
  }

  // ---------------------------------------------------------------- inspection

  hardState(): RaftHardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { role: this.role, leader: this.leader };
  }

  membership(): RaftMembership {
    if (this.membershipCache?.config !== this.config) {
      this.membershipCache = { config: this.config, m: this.config.toMembership() };
    }
    return this.membershipCache.m;
  }

  latestSnapshot(): CoreSnapshot | undefined {
    return this.localSnapshot;
  }

  status(): RaftStatus {
    const progress: Record<string, ProgressInfo> = {};
    if (this.role === 'leader') {
      for (const [id, pr] of this.prs) {
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count,
        };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      firstIndex: this.log.firstIndex(),
      stableIndex: this.log.stableIndex,
      membership: this.membership(),
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /**
   * Whether this node takes Raft messages from `id` (the shell drops the others, as etcd
   * drops messages from removed members): `id` is a member of the applied configuration or
   * of one pending in the log (appended, not yet applied: voters, outgoing voters, learners,
   * learners to be); or a known member named `id` as its leader (`VoteResponse.leader`: this
   * node missed the change that added it); or this node has no configuration at all yet (a
   * node joining, or the backup learner, before the leader first reaches it).
   */
  admits(id: string): boolean {
    const c = this.config;
    if (c.voters.has(id) || c.learners.has(id) || c.outgoing.has(id) || c.learnersNext.has(id)) {
      return true;
    }
    if (this.vouched.has(id)) return true;
    const pending = this.pendingMembers();
    return pending.has(id) || (pending.size === 0 && c.isEmpty() && c.learners.size === 0);
  }

  /**
   * Index of the newest configuration that has `id` as a member (voter, learner, either half
   * of a joint configuration) as far as this node's log goes: the applied configuration, or
   * one whose entry is appended after it and not applied yet; -1 when none has it.
   *
   * A restarted node applies none of the configuration entries after its snapshot beyond the
   * commit index it saved, and the node saves that index with term and vote changes only
   * (RaftNode's asynchronous storage writes; lib/node/lazy-commit.ts). A member that joined
   * after its last term change, then was killed, restarts with an applied configuration that
   * does not have it (none at all without a snapshot) until a leader tells it the commit
   * index, which never happens once the others have removed it. Its log still says it was a
   * member: the removal watch (lib/node/removal-watch.ts) asks this.
   */
  lastConfigWith(id: string): number {
    let cfg = this.config;
    let found = cfg.members().has(id) ? this.configIndex : -1;
    const log = this.log;
    for (let i = log.applied + 1; i <= log.lastIndex(); i++) {
      if (log.typeAt(i) !== 'config') continue;
      const e = log.entryAt(i) as LogEntry;
      try {
        cfg = cfg.apply(decodeConfEntry(e.data));
      } catch {
        continue; // an invalid change is a no-op when applied, too
      }
      if (cfg.members().has(id)) found = i;
    }
    return found;
  }

  /**
   * Ticks since this node last heard from a leader (an append, a heartbeat or a snapshot
   * chunk), or since it campaigned or started; 0 on a leader. A learner never campaigns, so
   * for it this keeps growing while no leader reaches it (one that removed it stops trying).
   */
  get ticksSinceLeaderContact(): number {
    return this.role === 'leader' ? 0 : this.electionElapsed;
  }

  /** Ids named by the configuration entries after the applied index (cached per log state). */
  private pendingMembers(): ReadonlySet<string> {
    const log = this.log;
    const p = this.pendingPeers;
    if (p && p.config === this.config && p.version === log.version && p.applied === log.applied) {
      return p.ids;
    }
    const ids = new Set<string>();
    for (let i = log.applied + 1; i <= log.lastIndex(); i++) {
      const e = log.entryAt(i);
      if (e?.type !== 'config') continue;
      let cc: ConfEntry;
      try {
        cc = decodeConfEntry(e.data);
      } catch {
        continue;
      }
      if (cc.kind === 'bootstrap') {
        const m = cc.membership;
        for (const list of [m.voters, m.learners, m.votersOutgoing, m.learnersNext]) {
          if (Array.isArray(list)) for (const id of list) if (typeof id === 'string') ids.add(id);
        }
      } else if (cc.kind === 'change' && Array.isArray(cc.ops)) {
        for (const op of cc.ops) {
          if (op && op.type !== 'remove' && typeof op.node === 'string') ids.add(op.node);
        }
      }
    }
    this.pendingPeers = { config: this.config, version: log.version, applied: log.applied, ids };
    return ids;
  }

  /** Whether this node may campaign (a voter with no snapshot being installed). */
  promotable(): boolean {
    return this.config.isVoter(this.id) && this.pendingSnapshot === undefined;
  }

  // ---------------------------------------------------------------- client API

  /**
   * Starts an election now (like an election timeout). In lease mode a node that heard from a
   * leader less than an election timeout ago does not: its own vote would break that leader's
   * lease (use `transferLeadership`, which ends the lease first).
   */
  campaign(): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    if (this.hasUnappliedConf()) return;
    if (this.readOnlyMode === 'lease' && this.ticks - this.leaderContact < this.electionTick)
      return;
    this.startCampaign(this.preVote ? 'pre' : 'election');
  }

  /** Appends a command on the leader; returns its index and term. */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.proposeEntry('normal', data);
  }

  /** Appends a batch of commands; returns the index of the first one and the term. */
  proposeBatch(datas: readonly Uint8Array[]): { index: number; term: number } {
    this.checkCanPropose(datas.reduce((n, d) => n + d.byteLength + 16, 0));
    const first = this.log.lastIndex() + 1;
    const ents: LogEntry[] = datas.map((data, i) => ({
      index: first + i,
      term: this.term,
      type: 'normal',
      data,
    }));
    this.appendAsLeader(ents);
    return { index: first, term: this.term };
  }

  /**
   * Proposes a membership change. With more than one voter changing (or `joint: true`)
   * the cluster goes through joint consensus; `autoLeave` (default true) leaves the joint
   * configuration automatically once entered.
   */
  proposeConfChange(
    ops: readonly ConfChangeOp[],
    options: { joint?: boolean; autoLeave?: boolean } = {},
  ): { index: number; term: number } {
    this.requireLeader();
    if (this.pendingConfIndex > this.log.applied) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_CONF_PENDING',
        `a configuration change (index ${this.pendingConfIndex}) is not applied yet`,
      );
    }
    const joint = options.joint ?? this.config.needsJoint(ops);
    const entry: ConfEntry = { kind: 'change', ops: ops.map((o) => ({ ...o })), joint };
    if (joint) entry.autoLeave = options.autoLeave ?? true;
    this.config.validate(entry);
    return this.proposeEntry('config', encodeConfEntry(entry));
  }

  /** Leaves a joint configuration entered with `autoLeave: false`. */
  proposeLeaveJoint(): { index: number; term: number } {
    this.requireLeader();
    if (this.pendingConfIndex > this.log.applied) {
      throw new RaftError('SYNOD_ERR_RAFT_CONF_PENDING', 'a configuration change is pending');
    }
    this.config.validate({ kind: 'leaveJoint' });
    return this.proposeEntry('config', encodeConfEntry({ kind: 'leaveJoint' }));
  }

  /**
   * Requests a linearizable read point. The answer arrives as a `ReadState` (or a
   * `ReadFailure`) in a later Ready, with the same context string.
   */
  readIndex(context: string, witness?: string): void {
    if (context.startsWith(LEASE_CONTEXT_PREFIX)) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_MESSAGE',
        'a read context may not start with \\u0000lease: (reserved for lease heartbeats)',
      );
    }
    this.handleReadIndex(context, this.id, witness);
  }

  /**
   * A client's witness for its read registered under `key` on the leader (docs/raft.md,
   * "Witnessed reads"): a follower that knows its leader tells it, in its current term, that it
   * was in that term now — after the read was invoked, since the client sends the witness then.
   * Anything else (no leader known, a candidate, the leader itself) does nothing: the read then
   * waits for the leader's heartbeat round, as without a witness.
   */
  witnessRead(key: string): void {
    if (typeof key !== 'string' || key.length === 0 || key.length > 256) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_MESSAGE', 'a witness key is a string of 1–256 chars');
    }
    if (this.role !== 'follower' || this.leader === undefined) return;
    this.send({ type: 'readWitness', to: this.leader, v: READ_WITNESS_VERSION, key });
  }

  /** Hands leadership to `to` once it has caught up (TimeoutNow). */
  transferLeadership(to: string): void {
    this.requireLeader();
    if (to === this.id) return;
    const pr = this.prs.get(to);
    if (!pr || pr.isLearner || !this.config.isVoter(to)) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', `${to} is not a voter`);
    }
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // TimeoutNow makes `to` campaign without waiting, and voters grant a transfer campaign
    // inside any lease: this term's lease is over, even if the transfer is abandoned (a
    // TimeoutNow still on its way may arrive late).
    this.leaseRevoked = true;
    // The transfer must finish within one election timeout or it is abandoned.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.sendAppend(to);
  }

  /**
   * Records a snapshot of the state machine taken at the applied index, so that followers
   * that are too far behind can be sent it, and returns its metadata for the shell to
   * store. Call `compact` afterwards to drop the covered log prefix.
   */
  snapshotTaken(data: Uint8Array): CoreSnapshot {
    return this.snapshotTakenAt(this.snapshotMeta(), data);
  }

  /**
   * What a snapshot of the state machine taken now covers: the applied index, its term and
   * the membership. With `snapshotTakenAt`, lets the shell encode the image after capturing it.
   */
  snapshotMeta(): CoreSnapshotMeta {
    const index = this.log.applied;
    const term = this.log.term(index);
    if (term === undefined) {
      throw new RaftError('SYNOD_ERR_RAFT_SNAPSHOT', `no term known for applied index ${index}`);
    }
    return { index, term, membership: this.config.toMembership() };
  }

  /** Records an image captured when `snapshotMeta()` returned `meta` (a newer one is kept). */
  snapshotTakenAt(meta: CoreSnapshotMeta, data: Uint8Array): CoreSnapshot {
    if (this.localSnapshot && this.localSnapshot.meta.index >= meta.index)
      return this.localSnapshot;
    this.localSnapshot = { meta, data };
    return this.localSnapshot;
  }

  /** Drops in-memory log entries ≤ upTo (bounded by the latest snapshot and durability). */
  compact(upTo: number): void {
    const snapIdx = this.localSnapshot?.meta.index ?? 0;
    const limit = Math.min(upTo, snapIdx, this.log.stableIndex, this.log.applied);
    this.log.compact(limit);
  }

  // ---------------------------------------------------------------- ticking

  tick(): void {
    this.ticks++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign();
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTick) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, undefined);
        return;
      }
      if (this.leadTransferee !== undefined) this.leadTransferee = undefined;
    }
    const readsDue = this.readOnly.size > 0 && this.readOnly.tick(READ_WIDEN_TICKS);
    this.witnesses.tick();
    if (this.heartbeatElapsed >= this.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.maybeAutoLeave();
      for (const pr of this.prs.values()) {
        if (pr.state === 'snapshot') pr.snapshotQuietBeats++;
        pr.resendDue = true;
      }
      this.noteMissedWitnesses();
      this.bcastHeartbeat(this.readOnly.lastPendingContext() ?? this.leaseContext());
      this.readOnly.markWide();
    } else if (readsDue) {
      // A read asked of a quorum only (or of nobody: witnessed) is still unconfirmed: ask
      // every follower.
      this.noteMissedWitnesses();
      this.bcastHeartbeat(this.readOnly.lastPendingContext());
      this.readOnly.markWide();
    }
  }

  /** Check-quorum: did a quorum of voters talk to us since the last check? Resets the marks. */
  private quorumActive(): boolean {
    const active = new Map<string, boolean>();
    for (const [id, pr] of this.prs) {
      if (id === this.id) active.set(id, true);
      else if (!pr.isLearner) active.set(id, pr.recentActive);
      if (id !== this.id) pr.recentActive = false;
    }
    return (
      jointVote({ incoming: this.config.voters, outgoing: this.config.outgoing }, active) === 'won'
    );
  }

  // ---------------------------------------------------------------- step

  /** Feeds one message from the network. Messages not addressed to this node are ignored. */
  step(m: Msg): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.type === 'preVoteResp' && m.leader !== undefined && m.leader !== this.id) {
      // Only a member our configuration (or log) names can vouch for a leader.
      const c = this.config;
      if (c.isVoter(m.from) || c.learners.has(m.from) || this.pendingMembers().has(m.from)) {
        if (!this.admits(m.leader)) this.vouched.add(m.leader);
      }
    }
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const inLease =
          (this.checkQuorum &&
            this.leader !== undefined &&
            this.electionElapsed < this.electionTick) ||
          (this.readOnlyMode === 'lease' && this.ticks - this.leaderContact < this.electionTick);
        // A node that heard from a live leader recently ignores campaigns (unless the
        // leader itself asked for one by TimeoutNow): a rejoining node cannot disrupt it.
        // A pre-candidate is told who leads, in our term (it cannot win; it follows), so a
        // node that missed the change adding that leader learns to take its messages.
        if (!m.transfer && inLease) {
          if (m.type === 'preVote' && this.leader !== undefined) {
            this.send({ type: 'preVoteResp', to: m.from, reject: true, leader: this.leader });
          }
          return;
        }
      }
      if (m.type === 'preVote') {
        // never change term on a pre-vote request
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // a granted pre-vote carries the future term; we only adopt it on winning
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, undefined);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // Tell a stale leader about the newer term so it steps down (it may be isolated
        // with pre-vote on and would otherwise never learn it).
        this.send({ type: 'appendResp', to: m.from, index: 0, reject: false });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    if (
      this.readOnlyMode === 'lease' &&
      this.role !== 'leader' &&
      (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot')
    ) {
      this.leaderContact = this.ticks;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: VoteRequest): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === undefined) ||
      (m.type === 'preVote' && m.term > this.term);
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm) && !this.preVoteTie(m)) {
      // Granting: answer in the candidate's term (for a pre-vote our own term may be lower).
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true });
    }
  }

  /**
   * Two nodes whose election timers fired together (within a heartbeat interval) would
   * each grant the other's pre-vote, both become candidates, split the real vote and cost
   * the cluster a second term (etcd-io/raft behaves so). Between two such pre-candidates
   * with equally up-to-date logs, the one with the larger id yields: its pre-vote is
   * refused by the smaller, which it grants. Only pre-votes are refused (safety is
   * untouched), only within a heartbeat of our own campaign starting (a node that keeps
   * campaigning but cannot win never blocks another for long), and only between equal
   * logs (a more up-to-date candidate is always granted).
   */
  private preVoteTie(m: VoteRequest): boolean {
    return (
      m.type === 'preVote' &&
      this.role === 'preCandidate' &&
      this.electionElapsed < this.heartbeatTick &&
      m.from > this.id &&
      m.lastTerm === this.log.lastTerm() &&
      m.lastIndex === this.log.lastIndex()
    );
  }

  private stepLeader(m: Msg): void {
    switch (m.type) {
      case 'appendResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'snapshotResp':
        this.handleSnapshotResponse(m);
        return;
      case 'readIndex':
        if (m.context.startsWith(LEASE_CONTEXT_PREFIX)) {
          // Reserved for lease rounds (readIndex refuses it locally): a peer that sends one is
          // refused rather than have its read confirmed by a round sent before it arrived.
          this.rejectRead(m.from, m.context);
          return;
        }
        this.handleReadIndex(m.context, m.from);
        return;
      case 'readWitness':
        this.handleReadWitness(m);
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Msg): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshotChunk(m);
        return;
      case 'voteResp':
      case 'preVoteResp': {
        const expected = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
        if (m.type !== expected) return;
        this.votes.set(m.from, !m.reject);
        const r = this.poll();
        if (r === 'won') {
          if (this.role === 'preCandidate') this.startCampaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (r === 'lost') {
          this.becomeFollower(this.term, undefined);
        }
        return;
      }
      case 'readIndex':
        this.rejectRead(m.from, m.context);
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Msg): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        return;
      case 'timeoutNow':
        // Leadership transfer: campaign at once, skipping pre-vote and the lease.
        if (this.promotable()) this.startCampaign('transfer');
        return;
      case 'readIndex':
        this.rejectRead(m.from, m.context);
        return;
      case 'readIndexResp':
        if (m.reject) {
          const f: ReadFailure = { context: m.context, reason: 'NotLeader' };
          if (this.leader !== undefined) f.leaderHint = this.leader;
          this.readFailures.push(f);
        } else {
          this.readStates.push({ context: m.context, index: m.index });
        }
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- follower handlers

  private handleAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      this.send({ type: 'appendResp', to: m.from, index: this.log.committed, reject: false });
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const lastNew = m.prevIndex + m.entries.length;
      const ci = this.log.findConflict(m.entries);
      if (ci !== 0) {
        if (ci <= this.log.committed) {
          throw new RaftError(
            'SYNOD_ERR_RAFT_SAFETY',
            `entry ${ci} conflicts with committed entry (committed ${this.log.committed})`,
          );
        }
        this.log.append(m.entries.slice(ci - m.prevIndex - 1));
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.send({ type: 'appendResp', to: m.from, index: lastNew, reject: false });
      return;
    }
    // Fast backtracking: skip every entry of ours whose term is above the leader's
    // prevTerm — none of them can match.
    const hint = this.log.findConflictByTerm(
      Math.min(m.prevIndex, this.log.lastIndex()),
      m.prevTerm,
    );
    this.send({
      type: 'appendResp',
      to: m.from,
      index: m.prevIndex,
      reject: true,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
  }

  private handleHeartbeat(m: Heartbeat): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    const resp: Outgoing = { type: 'heartbeatResp', to: m.from };
    if (m.context !== undefined) resp.context = m.context;
    this.send(resp);
  }

  private handleSnapshotChunk(m: SnapshotChunk): void {
    const { index, term } = m.meta;
    if (m.offset === 0) {
      if (index <= this.log.committed) {
        // Nothing to install: we already have everything it covers.
        this.incoming = undefined;
        this.send({ type: 'appendResp', to: m.from, index: this.log.committed, reject: false });
        return;
      }
      this.incoming = { index, term, totalSize: m.totalSize, size: 0, chunks: [] };
    }
    const inc = this.incoming;
    if (!inc || inc.index !== index || inc.term !== term || inc.size !== m.offset) {
      const offset = inc && inc.index === index && inc.term === term ? inc.size : 0;
      this.send({ type: 'snapshotResp', to: m.from, index, offset, reject: true });
      return;
    }
    inc.chunks.push(new Uint8Array(m.data));
    inc.size += m.data.byteLength;
    if (!m.done) {
      this.send({ type: 'snapshotResp', to: m.from, index, offset: inc.size, reject: false });
      return;
    }
    this.incoming = undefined;
    if (inc.size !== inc.totalSize) {
      this.send({ type: 'snapshotResp', to: m.from, index, offset: 0, reject: true });
      return;
    }
    const data = new Uint8Array(inc.size);
    let off = 0;
    for (const c of inc.chunks) {
      data.set(c, off);
      off += c.byteLength;
    }
    if (this.restore({ meta: m.meta, data })) {
      this.send({ type: 'appendResp', to: m.from, index: this.log.lastIndex(), reject: false });
    } else {
      this.send({ type: 'appendResp', to: m.from, index: this.log.committed, reject: false });
    }
  }

  /** Installs a snapshot from the leader; false if it brings nothing new. */
  private restore(snap: CoreSnapshot): boolean {
    const { index, term } = snap.meta;
    if (index <= this.log.committed) return false;
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: just fast-forward the commit.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(index, term);
    this.config = ClusterConfig.from(snap.meta.membership);
    this.configIndex = index;
    this.pendingSnapshot = snap;
    this.localSnapshot = snap;
    return true;
  }

  // ---------------------------------------------------------------- leader handlers

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      if (pr.state === 'snapshot') return;
      let nextProbe = m.hintIndex ?? m.index - 1;
      if (m.hintTerm !== undefined && m.hintTerm > 0) {
        nextProbe = this.log.findConflictByTerm(nextProbe, m.hintTerm).index;
      }
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot') {
      if (pr.snapshot && pr.match >= pr.snapshot.meta.index) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
    } else pr.inflights.freeLE(m.index);

    // A new commit index is broadcast with the next Ready, together with whatever entries
    // were proposed meanwhile (one message per follower instead of two).
    if (this.maybeCommit()) this.needBroadcast = true;
    else if (wasPaused) this.sendAppend(m.from);
    else while (this.maybeSendAppend(m.from, false)) {}

    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from });
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    // The probe in flight (or the answers that filled the window) may have been lost: send
    // again — once per heartbeat round (`resendDue`), not once per answer in a burst.
    const resend = pr.resendDue;
    pr.resendDue = false;
    if (resend) pr.probeSent = false;
    if (resend && pr.state === 'replicate' && pr.windowFull()) {
      // Acks may have been lost: free one slot so replication cannot stall forever.
      pr.inflights.freeFirst();
    }
    if (pr.state === 'snapshot') {
      // One chunk in flight: the follower's answer to it sends the next. A heartbeat
      // response resends it only once it looks lost; resending on every response would
      // start one more chunk/answer chain per heartbeat for the rest of the transfer.
      if (pr.snapshotInFlight < 0 || pr.snapshotQuietBeats >= this.snapshotResendBeats) {
        this.sendSnapshotChunk(m.from, pr);
      }
    } else if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);

    if (m.context === undefined) return;
    if (this.readOnlyMode === 'lease') {
      const sent = this.leaseRounds.get(m.context);
      if (sent !== undefined && sent > (this.leaseAcked.get(m.from) ?? Number.NEGATIVE_INFINITY)) {
        this.leaseAcked.set(m.from, sent);
      }
    }
    const acks = this.readOnly.recvAck(m.context, m.from);
    if (!acks) return;
    if (!this.confirmed(acks)) {
      // Not yet for the reads before it; a witnessed read may be, with its witnesses.
      const p = this.readOnly.get(m.context);
      if (p !== undefined && p.witnessAcks.size > 0 && this.confirmedAlone(p)) {
        this.serveWitnessed(m.context);
      }
      return;
    }
    this.readPeer = m.from;
    for (const r of this.readOnly.advance(m.context)) this.respondRead(r.context, r.from, r.index);
  }

  private handleSnapshotResponse(m: SnapshotChunkResponse): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (pr.state !== 'snapshot' || !pr.snapshot || pr.snapshot.meta.index !== m.index) return;
    // An answer to an older copy of a chunk (duplicated, resent or reordered): the chunk in
    // flight is still on its way, and answering this one too would start a second chain.
    if (pr.isStaleSnapshotAnswer(m.offset, m.reject)) return;
    pr.snapshotOffset = Math.min(m.offset, pr.snapshot.data.byteLength);
    this.sendSnapshotChunk(m.from, pr);
  }

  private handleReadIndex(context: string, from: string, witness?: string): void {
    if (this.role !== 'leader') {
      if (from === this.id) {
        if (this.leader !== undefined && this.role === 'follower') {
          this.send({ type: 'readIndex', to: this.leader, context });
        } else {
          const f: ReadFailure = { context, reason: 'NotLeader' };
          if (this.leader !== undefined) f.leaderHint = this.leader;
          this.readFailures.push(f);
        }
      }
      return;
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // The commit index is only known to be current once an entry of this term commits.
      this.pendingReads.push(
        witness === undefined ? { context, from } : { context, from, witness },
      );
      return;
    }
    this.serveRead(context, from, witness);
  }

  private serveRead(context: string, from: string, witness?: string): void {
    const soloVoter =
      !this.config.joint && this.config.voters.size === 1 && this.config.voters.has(this.id);
    if (soloVoter) {
      this.respondRead(context, from, this.log.committed);
      return;
    }
    if (this.readOnlyMode === 'lease' && this.leaseValid()) {
      this.leaseReads++;
      this.respondRead(context, from, this.log.committed);
      return;
    }
    this.readOnly.add(this.log.committed, context, from, witness);
    this.readOnly.recvAck(context, this.id);
    const p = witness === undefined ? undefined : this.readOnly.byWitnessKey(witness);
    if (p !== undefined && p.context === context) {
      // Witnesses that came first (each sent after the read was invoked).
      for (const id of this.witnesses.take(witness as string) ?? []) {
        if (this.isVoterPeer(id)) p.witnessAcks.add(id);
      }
      if (this.confirmedAlone(p)) {
        this.serveWitnessed(context);
        return;
      }
      // The witnesses still on their way can confirm it: no heartbeat round unless they are
      // late (READ_WIDEN_TICKS, then every follower is asked, as for a 'quorum' fan-out).
      if (this.witnessesCanConfirm(p)) return;
    }
    if (this.readFanout === 'all' || !this.quorumHeartbeat(context)) {
      this.bcastHeartbeat(context);
      this.readOnly.markWide();
    }
  }

  /**
   * `readFanout: 'quorum'`: sends the read's heartbeat to just enough voters for a quorum with
   * this leader, the last round's first confirmer first, then followers heard from recently.
   * Returns false (nothing sent) when that would be every follower anyway.
   */
  private quorumHeartbeat(context: string): boolean {
    const cfg = { incoming: this.config.voters, outgoing: this.config.outgoing };
    const acks = new Map<string, boolean>([[this.id, true]]);
    if (jointVote(cfg, acks) === 'won') return false;
    const candidates: string[] = [];
    const peer = this.readPeer;
    if (peer !== undefined && peer !== this.id && this.isVoterPeer(peer)) candidates.push(peer);
    for (const active of [true, false]) {
      for (const [id, pr] of this.prs) {
        if (id === this.id || id === peer || pr.recentActive !== active) continue;
        if (this.isVoterPeer(id)) candidates.push(id);
      }
    }
    const targets: string[] = [];
    for (const id of candidates) {
      acks.set(id, true);
      targets.push(id);
      if (jointVote(cfg, acks) === 'won') break;
    }
    if (jointVote(cfg, acks) !== 'won' || targets.length === candidates.length) return false;
    this.noteRoundSent(context);
    for (const id of targets) {
      const pr = this.prs.get(id) as Progress;
      this.send({
        type: 'heartbeat',
        to: id,
        commit: Math.min(pr.match, this.log.committed),
        context,
      });
    }
    return true;
  }

  /** Whether `acks` hold a quorum of the current configuration (both halves when joint). */
  private confirmed(acks: ReadonlyMap<string, boolean>): boolean {
    return (
      jointVote({ incoming: this.config.voters, outgoing: this.config.outgoing }, acks) === 'won'
    );
  }

  /**
   * Whether a quorum confirmed the leadership after this read was invoked: heartbeat acks (sent
   * after it arrived) and witnesses (sent after it was invoked) together. Valid for this read
   * only: a witness may predate the invocation of a read queued before this one.
   */
  private confirmedAlone(p: PendingRead): boolean {
    if (p.witnessAcks.size === 0) return this.confirmed(p.acks);
    const all = new Map(p.acks);
    for (const id of p.witnessAcks) all.set(id, true);
    return this.confirmed(all);
  }

  /** Whether the witnesses still missing, from voters not known to miss them, can confirm. */
  private witnessesCanConfirm(p: PendingRead): boolean {
    const all = new Map(p.acks);
    for (const id of p.witnessAcks) all.set(id, true);
    for (const id of this.prs.keys()) {
      if (id !== this.id && this.isVoterPeer(id) && !this.witnessMissed.has(id)) all.set(id, true);
    }
    return this.confirmed(all);
  }

  /**
   * A follower's witness for a read (docs/raft.md, "Witnessed reads"). It arrives in this
   * leader's term (others never reach here), so the follower was in this term, not a higher
   * one, after the read was invoked: an acknowledgement of this leadership for that read.
   */
  private handleReadWitness(m: ReadWitness): void {
    if (!this.isVoterPeer(m.from)) return;
    this.witnessMissed.delete(m.from);
    const p = this.readOnly.byWitnessKey(m.key);
    if (!p) {
      this.witnesses.add(m.key, m.from);
      return;
    }
    this.readOnly.recvWitness(p.context, m.from);
    if (this.confirmedAlone(p)) this.serveWitnessed(p.context);
  }

  private serveWitnessed(context: string): void {
    const r = this.readOnly.serveOne(context);
    if (!r) return;
    this.witnessedReads++;
    this.respondRead(r.context, r.from, r.index);
  }

  /** Witnessed reads about to be asked of every follower: whose witness did not come. */
  private noteMissedWitnesses(): void {
    const late: PendingRead[] = this.readOnly.overdueWitnessed(READ_WIDEN_TICKS);
    for (const p of late) {
      for (const id of this.prs.keys()) {
        if (id !== this.id && this.isVoterPeer(id) && !p.witnessAcks.has(id)) {
          this.witnessMissed.add(id);
        }
      }
    }
  }

  /** Tells `to` its read `context` was refused (it retries elsewhere or later). */
  private rejectRead(to: string, context: string): void {
    this.send({ type: 'readIndexResp', to, context, index: 0, reject: true });
  }

  private isVoterPeer(id: string): boolean {
    return this.prs.has(id) && (this.config.voters.has(id) || this.config.outgoing.has(id));
  }

  private respondRead(context: string, from: string, index: number): void {
    if (from === this.id) this.readStates.push({ context, index });
    else this.send({ type: 'readIndexResp', to: from, context, index, reject: false });
  }

  private failReads(reads: readonly { context: string; from: string }[]): void {
    for (const r of reads) {
      if (r.from === this.id) this.readFailures.push({ context: r.context, reason: 'NotLeader' });
      else {
        this.rejectRead(r.from, r.context);
      }
    }
  }

  // ---------------------------------------------------------------- replication

  /** Sends what `to` needs: one message, then more while the window allows (pipelining). */
  private sendAppend(to: string): void {
    if (this.maybeSendAppend(to, true)) while (this.maybeSendAppend(to, false)) {}
  }

  private maybeSendAppend(to: string, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      const snap = this.localSnapshot;
      if (!snap) return false;
      pr.becomeSnapshot(snap);
      this.sendSnapshotChunk(to, pr);
      return true;
    }
    const entries = this.log.slice(
      pr.next,
      this.log.lastIndex() + 1,
      pr.isLearner ? this.learnerMaxSizePerMsg : this.maxSizePerMsg,
    );
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) bytes += entrySize(entries[i] as LogEntry);
    this.send({
      type: 'append',
      to,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    });
    pr.sentEntries(prevIndex + entries.length, entries.length, bytes);
    return true;
  }

  private sendSnapshotChunk(to: string, pr: Progress): void {
    const snap = pr.snapshot;
    if (!snap) return;
    const total = snap.data.byteLength;
    const off = pr.snapshotOffset;
    const end = Math.min(off + this.snapshotChunkSize, total);
    pr.sentSnapshotChunk(off);
    this.send({
      type: 'snapshot',
      to,
      meta: snap.meta,
      totalSize: total,
      offset: off,
      data: snap.data.subarray(off, end),
      done: end >= total,
    });
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(context: string | undefined): void {
    if (context !== undefined) this.noteRoundSent(context);
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      const hb: Outgoing = {
        type: 'heartbeat',
        to: id,
        commit: Math.min(pr.match, this.log.committed),
      };
      if (context !== undefined) hb.context = context;
      this.send(hb);
    }
  }

  /** Figure 8: only an entry of the current term is committed by counting replicas. */
  private maybeCommit(): boolean {
    const mci = jointCommitted(
      { incoming: this.config.voters, outgoing: this.config.outgoing },
      (id) => this.prs.get(id)?.match ?? 0,
    );
    if (mci > this.log.committed && this.log.term(mci) === this.term) {
      this.log.commitTo(mci);
      this.onLeaderCommit();
      return true;
    }
    return false;
  }

  private onLeaderCommit(): void {
    if (this.pendingReads.length > 0 && this.log.term(this.log.committed) === this.term) {
      const reads = this.pendingReads;
      this.pendingReads = [];
      for (const r of reads) this.serveRead(r.context, r.from, r.witness);
    }
  }

  private checkCanPropose(bytes: number): void {
    this.requireLeader();
    if (this.leadTransferee !== undefined) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_PROPOSAL_DROPPED',
        `leadership is being transferred to ${this.leadTransferee}`,
        this.leadTransferee,
      );
    }
    if (
      this.maxUncommittedBytes > 0 &&
      this.uncommittedBytes > 0 &&
      this.uncommittedBytes + bytes > this.maxUncommittedBytes
    ) {
      throw new RaftError('SYNOD_ERR_RAFT_PROPOSAL_DROPPED', 'too many uncommitted bytes');
    }
  }

  private requireLeader(): void {
    if (this.role !== 'leader') {
      throw new RaftError('SYNOD_ERR_RAFT_NOT_LEADER', `${this.id} is not the leader`, this.leader);
    }
  }

  private proposeEntry(type: EntryTypeName, data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose(data.byteLength + 16);
    const index = this.log.appendOne(this.term, type, data);
    this.uncommittedBytes += data.byteLength + 16;
    this.needBroadcast = true;
    if (type === 'config') this.pendingConfIndex = index;
    return { index, term: this.term };
  }

  private appendAsLeader(ents: LogEntry[]): void {
    this.log.append(ents);
    for (const e of ents) this.uncommittedBytes += entrySize(e);
    // Replication is deferred until the shell asks for a Ready: proposals arriving
    // together then travel in one AppendEntries per follower (batching).
    this.needBroadcast = true;
  }

  // ---------------------------------------------------------------- transitions

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.leader = undefined;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTick + this.random.int(this.electionTick);
    this.leadTransferee = undefined;
    this.votes = new Map();
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.needBroadcast = false;
    const pendingReads = [...this.readOnly.reset(), ...this.pendingReads];
    this.pendingReads = [];
    this.failReads(pendingReads);
    this.witnesses.clear();
    this.witnessMissed.clear();
    this.prs.clear();
    this.leaseRounds.clear();
    this.leaseAcked.clear();
    this.leaseRevoked = false;
  }

  // ---------------------------------------------------------------- lease reads

  /**
   * Lease mode: a fresh context for a heartbeat round that carries no read (its send tick is
   * recorded by `noteRoundSent`); undefined in 'safe' mode.
   */
  private leaseContext(): string | undefined {
    if (this.readOnlyMode !== 'lease') return undefined;
    return `${LEASE_CONTEXT_PREFIX}${++this.leaseSeq}`;
  }

  /**
   * Lease mode: records the tick a heartbeat context was first sent in this term (a later
   * resend keeps the first: an acknowledgement proves only that one of the copies arrived),
   * and forgets rounds too old to anchor a lease.
   */
  private noteRoundSent(context: string): void {
    if (this.readOnlyMode !== 'lease') return;
    if (!this.leaseRounds.has(context)) this.leaseRounds.set(context, this.ticks);
    for (const [c, sent] of this.leaseRounds) {
      if (sent > this.ticks - this.electionTick) break;
      this.leaseRounds.delete(c);
    }
  }

  /**
   * Whether this leader may serve a read from its lease (docs/raft.md, "Lease reads"). Every
   * voter of a quorum of the current configuration (both halves when joint) acknowledged a
   * heartbeat this leader sent at tick `start` or later in this term; each reset its election
   * timer on receipt and grants no vote that is not a transfer for `electionTick` of its own
   * ticks after it. A read served now, before tick `start + electionTick − 1` (ticks of two
   * nodes may be up to one apart in phase) minus the drift margin, cannot miss a write of a
   * newer leader. A transfer ends the lease for the rest of the term (`leaseRevoked`).
   */
  private leaseValid(): boolean {
    if (this.leaseRevoked || this.leadTransferee !== undefined) return false;
    const start = jointCommitted(
      { incoming: this.config.voters, outgoing: this.config.outgoing },
      (id) => (id === this.id ? this.ticks : (this.leaseAcked.get(id) ?? Number.MIN_SAFE_INTEGER)),
    );
    return this.ticks < start + this.electionTick - 1 - this.leaseDriftTicks;
  }

  private becomeFollower(term: number, leader: string | undefined): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // A pre-candidate changes neither its term nor its vote.
    this.votes = new Map();
    this.role = 'preCandidate';
    this.leader = undefined;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    this.syncProgress();
    const self = this.prs.get(this.id);
    if (self) {
      self.match = this.log.stableIndex;
      self.becomeReplicate();
      self.recentActive = true;
    }
    // A config entry may still be uncommitted in our log: no new change until it applies.
    this.pendingConfIndex = this.log.lastIndex();
    // Lease mode: a first heartbeat round at once, so that the lease starts now.
    const lease = this.leaseContext();
    if (lease !== undefined) this.bcastHeartbeat(lease);
    // The no-op of the new term: committing it commits every earlier entry (Figure 8).
    this.appendAsLeader([
      { index: this.log.lastIndex() + 1, term: this.term, type: 'noop', data: new Uint8Array(0) },
    ]);
  }

  private startCampaign(kind: 'pre' | 'election' | 'transfer'): void {
    let term: number;
    if (kind === 'pre') {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    this.votes.set(this.id, true);
    const r = this.poll();
    if (r === 'won') {
      if (kind === 'pre') this.startCampaign('election');
      else this.becomeLeader();
      return;
    }
    const voters = new Set([...this.config.voters, ...this.config.outgoing]);
    for (const id of voters) {
      if (id === this.id) continue;
      const req: Outgoing = {
        type: kind === 'pre' ? 'preVote' : 'vote',
        to: id,
        term,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
      };
      if (kind === 'transfer') req.transfer = true;
      this.send(req);
    }
  }

  private poll(): 'won' | 'lost' | 'pending' {
    return jointVote({ incoming: this.config.voters, outgoing: this.config.outgoing }, this.votes);
  }

  private hasUnappliedConf(): boolean {
    for (let i = this.log.applied + 1; i <= this.log.committed; i++) {
      if (this.log.typeAt(i) === 'config') return true;
    }
    return false;
  }

  /** Makes the progress map match the configuration (leader only). */
  private syncProgress(): void {
    if (this.role !== 'leader') return;
    const members = this.config.members();
    for (const id of [...this.prs.keys()]) if (!members.has(id)) this.prs.delete(id);
    for (const id of members) {
      const learner = !this.config.isVoter(id);
      let pr = this.prs.get(id);
      if (!pr) {
        pr = new Progress(
          this.log.lastIndex() + 1,
          learner,
          this.maxInflightMsgs,
          this.maxInflightBytes,
          this.learnerMaxInflightMsgs,
        );
        if (id === this.id) {
          pr.match = this.log.stableIndex;
          pr.recentActive = true;
        }
        this.prs.set(id, pr);
      }
      pr.isLearner = learner;
    }
  }

  private applyConfEntry(e: LogEntry): void {
    if (e.index <= this.configIndex) return;
    this.configIndex = e.index;
    let cc: ConfEntry;
    try {
      cc = decodeConfEntry(e.data);
      this.config = this.config.apply(cc);
    } catch {
      // An invalid change is a no-op on every node alike (validation is deterministic).
      return;
    }
    if (cc.kind === 'change')
      for (const op of cc.ops) if (op.type === 'remove') this.vouched.delete(op.node);
    if (this.role !== 'leader') return;
    this.syncProgress();
    if (this.leadTransferee !== undefined && !this.config.isVoter(this.leadTransferee)) {
      this.leadTransferee = undefined;
    }
    if (this.stepDownOnRemoval && !this.config.isVoter(this.id)) {
      this.becomeFollower(this.term, undefined);
      return;
    }
    if (this.maybeCommit()) this.bcastAppend();
    else this.needBroadcast = true;
  }

  /** Auto-leave: once a joint config with autoLeave applied on the leader, leave it. */
  private maybeAutoLeave(): void {
    if (
      this.role !== 'leader' ||
      !this.config.joint ||
      !this.config.autoLeave ||
      this.log.applied < this.pendingConfIndex ||
      this.leadTransferee !== undefined
    ) {
      return;
    }
    this.proposeEntry('config', encodeConfEntry({ kind: 'leaveJoint' }));
  }

  // ---------------------------------------------------------------- Ready / Advance

  private send(m: Outgoing): void {
    const full = { ...m, from: this.id, term: m.term ?? this.term } as Msg;
    this.msgs.push(full);
  }

  private flushBroadcast(): void {
    if (this.needBroadcast && this.role === 'leader') {
      this.needBroadcast = false;
      this.bcastAppend();
    }
    this.needBroadcast = false;
  }

  private hardStateChanged(): boolean {
    const p = this.prevHard;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.committed;
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    this.flushBroadcast();
    const s = this.prevSoft;
    return (
      this.msgs.length > 0 ||
      this.log.hasToPersist() ||
      this.log.hasNextCommitted() ||
      this.readStates.length > 0 ||
      this.readFailures.length > 0 ||
      this.pendingSnapshot !== undefined ||
      s.role !== this.role ||
      s.leader !== this.leader ||
      this.hardStateChanged()
    );
  }

  /**
   * Collects the next batch of work. `advance` (or, with asynchronous storage writes,
   * `advanceApplied`) must be called before the next `ready`. Entries are handed out once:
   * the next Ready carries only entries appended (or rewritten) after this one.
   */
  ready(): Ready {
    if (this.outstanding) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', 'ready() called before advance()');
    }
    this.flushBroadcast();
    const rd: Ready = {
      entries: this.log.takeToPersist(),
      committedEntries: this.log.nextCommitted(this.maxApplyBytes),
      messages: this.msgs,
      readStates: this.readStates,
      readFailures: this.readFailures,
      mustSync: false,
    };
    this.msgs = [];
    this.readStates = [];
    this.readFailures = [];
    if (this.pendingSnapshot) rd.snapshot = this.pendingSnapshot;
    const soft = this.softState();
    if (soft.role !== this.prevSoft.role || soft.leader !== this.prevSoft.leader) {
      rd.softState = soft;
      this.prevSoft = soft;
    }
    if (this.hardStateChanged()) {
      const hs = this.hardState();
      rd.mustSync = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote;
      rd.hardState = hs;
      this.prevHard = hs;
    }
    if (rd.entries.length > 0 || rd.snapshot) rd.mustSync = true;
    if (rd.entries.length > 0) rd.mark = this.log.mark();
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last) this.log.applying = last.index;
    this.outstanding = rd;
    return rd;
  }

  /**
   * Acknowledges that a Ready was fully handled (persisted, sent, applied): the synchronous
   * contract, `advanceStable(rd.mark)` then `advanceApplied(rd)`.
   */
  advance(rd: Ready): void {
    if (this.outstanding !== rd) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', 'advance() with a Ready not outstanding');
    }
    if (rd.mark) this.advanceStable(rd.mark);
    this.advanceApplied(rd);
  }

  /**
   * Asynchronous storage writes: the write of the entries handed out up to `mark` is
   * durable (and, writes completing in order, every earlier one). Only now does a leader
   * count its own copy of them towards a quorum. A mark from before a truncation or a
   * snapshot install is ignored (the write covering the replacement confirms it).
   */
  advanceStable(mark: LogMark): void {
    if (!this.log.persistedTo(mark)) return;
    const self = this.role === 'leader' ? this.prs.get(this.id) : undefined;
    if (self?.maybeUpdate(this.log.stableIndex) && this.maybeCommit()) this.needBroadcast = true;
  }

  /**
   * Acknowledges the non-storage part of a Ready: its messages were sent (or queued behind
   * the writes they depend on), its snapshot is installed and its committed entries are
   * applied. The next `ready()` may follow before the Ready's entries are durable.
   */
  advanceApplied(rd: Ready): void {
    if (this.outstanding !== rd) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', 'advance() with a Ready not outstanding');
    }
    this.outstanding = undefined;
    if (rd.snapshot && this.pendingSnapshot === rd.snapshot) this.pendingSnapshot = undefined;
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied) {
      const ce = rd.committedEntries;
      for (let i = 0; i < ce.length; i++) {
        const e = ce[i] as LogEntry;
        if (e.type === 'config') this.applyConfEntry(e);
        if (this.role === 'leader')
          this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entrySize(e));
      }
      this.log.appliedTo(lastApplied.index);
      this.maybeAutoLeave();
    }
  }
}
