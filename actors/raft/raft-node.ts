/**
 * RaftNode: the actor shell around the pure Raft core. It does all the I/O — storage
 * (persist before send), the network (one envelope per peer per Ready), timers (ticks) —
 * applies committed commands to the user's StateMachine through client sessions, and
 * implements `ReplicatedLog` (propose resolves after local apply; readBarrier uses
 * ReadIndex). Role, term, leader, commit/applied indexes and membership are RxJS streams.
 *
 *     const node = new RaftNode({
 *       storage: () => openDataDir('/var/lib/synod/n1'),
 *       stateMachine: () => new MyStateMachine(),
 *       bootstrap: ['n1', 'n2', 'n3'],
 *     });
 *     system.spawn('raft', node);
 *     const { result } = await node.propose({ clientId: 'c1', seq: 1, op: { put: ['k', 'v'] } });
 */
import { BehaviorSubject, distinctUntilChanged, type Observable, Subject } from 'rxjs';
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { nodeOf } from '../../lib/address.js';
import type { TimerHandle } from '../../lib/clock.js';
import { decodesToItself, encodeValue, wellFormed } from '../../lib/codec.js';
import { Queue } from '../../lib/queue.js';

import {
  type AppliedEntry,
  type Command,
  ProposeError,
  type ProposeResult,
  type ReplicatedLog,
  type StateMachine,
} from '../../lib/replicated-log.js';
import type {
  HardStateStore,
  LogEntry,
  LogStore,
  RaftHardState,
  SnapshotStore,
} from '../../lib/storage/types.js';
import { decodeCommand, encodeCommandFast } from './command-codec.js';
import type { ConfChangeOp } from './core/membership.js';
import { raftMessageProblem } from './core/messages.js';
import { RaftCore, type RaftStatus } from './core/raft-core.js';
import {
  type CoreSnapshot,
  type LogMark,
  RaftError,
  type RaftMembership,
  type RaftMessage,
  type ReadFanout,
  type ReadOnlyMode,
  type Ready,
  type Role,
} from './core/types.js';
import { packEntries, unpackEntries } from './entry-codec.js';
import { SessionStateMachine } from './session-state-machine.js';

/** The log's command encoding (command-codec.ts; the backup's log archive stores these bytes). */
export { decodeCommand, encodeCommand } from './command-codec.js';

/** The three stores a node needs (the shape of `openDataDir` / `openMemoryDataDir`). */
export interface RaftStorage {
  log: LogStore;
  hardState: HardStateStore<RaftHardState>;
  snapshots: SnapshotStore;
  close?(): Promise<void>;
}

export interface RaftNodeOptions<Op, Result> {
  /** Opens the node's storage; called on every (re)start of the actor. */
  storage: () => RaftStorage | Promise<RaftStorage>;
  /** Creates an empty state machine; called on every (re)start. */
  stateMachine: () => StateMachine<Op, Result>;
  /**
   * Founding voters of a brand-new cluster (identical on every founding member), or a
   * full membership. Ignored once the node has state. A node joining an existing cluster
   * omits it and is added by a membership change on the leader.
   */
  bootstrap?: readonly string[] | RaftMembership;
  /** This node's Raft id (default: the actor system's node id). */
  id?: string;
  /** The actor address of a member (default: `<id>/<this actor's path>`). */
  addressOf?: (id: string) => string;
  /** Logical clock tick (default 10 ms). */
  tickMs?: number;
  /** Heartbeat interval (default 50 ms). */
  heartbeatMs?: number;
  /** Base election timeout; the effective one is random in [electionMs, 2×electionMs) (default 150 ms). */
  electionMs?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /**
   * 'safe' ReadIndex (default) or 'lease' (assumes bounded clock drift, set on every voter; see
   * docs/raft.md, "Lease reads").
   */
  readOnly?: ReadOnlyMode;
  /**
   * Lease reads: how much a follower's clock (its ticks) may gain on the leader's within one
   * election timeout, taken off the lease (default one tick). Rounded up to whole ticks.
   */
  leaseDriftMs?: number;
  /**
   * Who a ReadIndex round asks (default `'quorum'`: just enough voters for a quorum, widened to
   * every follower after two ticks; `'all'`: every follower, as etcd). See RaftCoreOptions.
   */
  readFanout?: ReadFanout;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  maxInflightBytes?: number;
  /** A learner's replication window (RaftCoreOptions: default 256 KiB per message, 4 in flight). */
  learnerMaxSizePerMsg?: number;
  learnerMaxInflightMsgs?: number;
  maxUncommittedBytes?: number;
  snapshotChunkSize?: number;
  /** Heartbeats without an answer before an InstallSnapshot chunk is resent (default 20). */
  snapshotResendBeats?: number;
  /**
   * Take a snapshot once this many entries were applied since the last one (default 10,000;
   * 0 = never); see `snapshotLogRatio` for what else the default waits for.
   */
  snapshotEvery?: number;
  /**
   * An automatic snapshot also waits until the entries applied since the last one add up to
   * this many times the last image's size in bytes, but not beyond `snapshotEveryMax`
   * entries: a snapshot rewrites the whole state, so with a large state and small entries it
   * is taken less often (log bytes kept ≈ the state's size, as Redis's AOF rewrite rule), and
   * with a small state as often as `snapshotEvery` says. Default 1 when `snapshotEvery` is
   * left at its default, 0 (entries only, exactly every `snapshotEvery`) when it is set.
   */
  snapshotLogRatio?: number;
  /** The most entries applied between two automatic snapshots (default 10 × `snapshotEvery`). */
  snapshotEveryMax?: number;
  /**
   * Encode snapshot images in slices, yielding to the event loop between them (default
   * true): the image is captured at once, so it is the same, but a large one no longer
   * stalls heartbeats, appends and replies while it is encoded.
   */
  slicedSnapshots?: boolean;
  /** Entries kept behind a snapshot for followers slightly behind (default 1,000). */
  keepEntries?: number;
  /** Snapshots kept on disk (default 2). */
  keepSnapshots?: number;
  /** Default timeout of propose and readBarrier (default 5,000 ms). */
  requestTimeoutMs?: number;
  /** Client sessions remembered (default 100,000). */
  maxSessions?: number;
  /**
   * Asynchronous storage writes (default true): the I/O loop does not wait for a Ready's
   * log write before taking the next Ready; writes are queued behind the one in flight and
   * coalesced into the next (group commit), messages that depend on them wait for them.
   * `false` restores the one-write-at-a-time loop (for comparison; see docs/raft.md).
   */
  asyncStorageWrites?: boolean;
  /** Instrumentation: called for every envelope body sent to a peer. */
  onSend?: (to: string, body: { type: 'raft'; ms: RaftMessage[] }) => void;
}

/**
 * One committed entry as this node applied it, for observers that follow the log entry by
 * entry (the backup agent's learner): commands with their `AppliedEntry`, and the entries
 * that carry none — the no-op of a new leader, configuration changes, and entries skipped
 * because they were not commands (`SYNOD_ERR_RAFT_BAD_ENTRY`). Indexes are consecutive,
 * except across a snapshot installed from the leader (the snapshot store sees it first).
 */
export interface AppliedStep<Op = unknown, Result = unknown> {
  index: number;
  term: number;
  type: 'command' | 'noop' | 'config' | 'skipped';
  /** Set for `command`: the same object `applied$` carries. */
  entry?: AppliedEntry<Op, Result>;
}

export interface RaftNodeState {
  id: string;
  role: Role;
  term: number;
  leader: string | undefined;
  commitIndex: number;
  appliedIndex: number;
  membership: RaftMembership;
}

export type RaftNodeMsg =
  | { type: 'raft'; ms: RaftMessage[] }
  | { type: 'tick' }
  | ({ type: 'propose'; command: Command; timeoutMs?: number } & Replies<ProposeResult>)
  | ({ type: 'readBarrier'; timeoutMs?: number } & Replies<number>)
  | ({ type: 'status' } & Replies<RaftStatus>)
  | ({ type: 'transferLeadership'; to: string } & Replies<boolean>);

interface PendingProposal {
  term: number;
  /**
   * The proposed command and its encoded bytes, kept when the command is plain data that
   * the codec reproduces exactly (`decodesToItself`): applying the entry whose data is
   * these very bytes (same memory, so not another leader's entry at this index) uses the
   * command as proposed instead of decoding the bytes again.
   */
  command: Command | undefined;
  data: Uint8Array | undefined;
  resolve: (r: ProposeResult<unknown>) => void;
  reject: (e: Error) => void;
  /** Clock time after which it fails with Timeout (checked on every tick, not a timer each). */
  deadline: number;
  done: boolean;
}

interface ReadWaiter {
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: TimerHandle | undefined;
  done: boolean;
}

/**
 * Drops an accepting `appendResp` that a later accepting one to the same peer in the same
 * term supersedes (acknowledgements are cumulative: the later index covers the earlier),
 * keeping the order of everything else. Rejections and other messages are kept as they are.
 */
export function coalesceAcks(ms: RaftMessage[]): RaftMessage[] {
  let acks = 0;
  for (const m of ms) if (m.type === 'appendResp' && !m.reject) acks++;
  if (acks < 2) return ms;
  const last = new Map<string, RaftMessage>();
  for (const m of ms) {
    if (m.type !== 'appendResp' || m.reject) continue;
    const k = `${m.to}\u0000${m.term}`;
    const prev = last.get(k);
    if (!prev || (prev.type === 'appendResp' && m.index >= prev.index)) last.set(k, m);
  }
  const out: RaftMessage[] = [];
  for (const m of ms) {
    if (m.type === 'appendResp' && !m.reject && last.get(`${m.to}\u0000${m.term}`) !== m) continue;
    out.push(m);
  }
  return out;
}

/** `decodesToItself` for the parts of a command that `encodeCommand` writes. */
function commandDecodesToItself(c: Command): boolean {
  return wellFormed(c.clientId) && !Object.is(c.seq, -0) && decodesToItself(c.op);
}

/**
 * Whether `a` is a view of the very memory `b` views (the log keeps an entry's bytes as a
 * place in memory, and hands out a new view of that place each time it is asked).
 */
function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return (
    a !== undefined &&
    a.buffer === b.buffer &&
    a.byteOffset === b.byteOffset &&
    a.byteLength === b.byteLength
  );
}

/** A write refused because the disk (or quota) is full: retryable once space returns. */
function isNoSpace(e: unknown): boolean {
  for (let x = e as { code?: unknown; cause?: unknown } | undefined, d = 0; x && d < 4; d++) {
    if (x.code === 'SYNOD_ERR_NO_SPACE' || x.code === 'ENOSPC' || x.code === 'EDQUOT') return true;
    x = x.cause as typeof x;
  }
  return false;
}

function commandProblem(cmd: unknown): string | undefined {
  if (typeof cmd !== 'object' || cmd === null) return 'command is not an object';
  const c = cmd as Record<string, unknown>;
  if (typeof c.clientId !== 'string' || c.clientId.length === 0 || c.clientId.length > 256) {
    return 'command.clientId must be a non-empty string';
  }
  if (typeof c.seq !== 'number' || !Number.isSafeInteger(c.seq) || c.seq < 0) {
    return 'command.seq must be a non-negative integer';
  }
  return undefined;
}

/**
 * A timeout a remote `propose`/`readBarrier` message may carry: absent, or a finite number of
 * ms in (0, 2^31−1] (beyond it Node fires the timer after 1 ms; NaN would never expire).
 */
function timeoutProblem(ms: unknown): { code: string; message: string } | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0 && ms <= 2_147_483_647)
    return undefined;
  return {
    code: 'SYNOD_ERR_RAFT_BAD_TIMEOUT',
    message: `timeoutMs must be a number of milliseconds in (0, 2147483647], got ${typeof ms === 'number' ? String(ms) : typeof ms}`,
  };
}

export class RaftNode<Op = unknown, Result = unknown>
  extends Actor<RaftNodeMsg, RaftNodeState | undefined>
  implements ReplicatedLog<Op, Result>
{
  private core: RaftCore | undefined;
  private storage: RaftStorage | undefined;
  private sm: SessionStateMachine<Op, Result> | undefined;
  private readonly opts: RaftNodeOptions<Op, Result>;
  private id_ = '';
  private stopped = false;
  private looping = false;
  private loopScheduled = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Proposals by log index (an array only when a later term reused the index). */
  private readonly proposals = new Map<number, PendingProposal | PendingProposal[]>();
  /** Per timeout: proposals in proposal order, so their deadlines are non-decreasing. */
  private readonly expiry = new Map<number, Queue<PendingProposal>>();
  private readBatch: ReadWaiter[] = [];
  /** Witnessed reads not yet handed to the core (each its own context; docs/raft.md). */
  private witnessReads: { w: ReadWaiter; key: string }[] = [];
  private readonly readsByCtx = new Map<string, ReadWaiter[]>();
  private waitingApply: { index: number; waiters: ReadWaiter[] }[] = [];
  private readSeq = 0;
  /** The tick period (`tickMs`), set at start. */
  private tickMs = 10;
  private readNonce = '';
  private lastSnapshotIndex = 0;
  /** Entry bytes applied by this node since it started (the snapshot cadence's measure). */
  private appliedBytes = 0;
  /** `appliedBytes` when the last snapshot's image was taken (or installed, or loaded). */
  private snapshotBytesMark = 0;
  /** Size of the last snapshot's image (0 until there is one). */
  private lastImageBytes = 0;
  private addressOf: (id: string) => string = (id) => id;
  private readonly addresses = new Map<string, string>();
  /** Index up to which the state machine has applied (published after core.advance). */
  private appliedUpTo = 0;
  /** Proposal outcomes of the Ready being handled, settled once the core has advanced. */
  private settled: PendingProposal[] = [];
  private settledWith: (ProposeResult<unknown> | Error)[] = [];
  private readsReleased: { w: ReadWaiter; index: number }[] = [];
  private lastState: RaftNodeState | undefined;
  /** The hard state last made durable (loaded or saved): a save happens only when its term or vote differ. */
  private savedHard: RaftHardState | undefined;
  /** Set while storage refuses writes for lack of space: the persist step retries with backoff. */
  private stall: { code: string; message: string; since: number; attempts: number } | undefined;
  /** Earliest clock time of the next snapshot attempt after one failed for lack of space. */
  private snapshotRetryAt = 0;
  /** The snapshot being written in the background (at most one). */
  private snapshotting: Promise<void> | undefined;
  /** Log compaction due once a background snapshot is durable (done by the loop). */
  private compactDue: number | undefined;
  /** Callers of snapshot() waiting for the loop to be between two Readies. */
  private snapshotWaiters: { resolve: (i: number) => void; reject: (e: unknown) => void }[] = [];
  private readonly rejected = { malformed: 0, forged: 0, nonMember: 0 };
  /** Asynchronous storage writes: entries waiting for the next log write (group commit). */
  private wq: LogEntry[] = [];
  private wqMark: LogMark | undefined;
  /** A log write is in flight (at most one: the next carries everything queued meanwhile). */
  private writing = false;
  /** Readies whose entries were queued for writing, counted. */
  private writeSeq = 0;
  /** Every queued write with a count ≤ this is durable. */
  private durableSeq = 0;
  /** Messages that depend on writes not yet durable, in order. */
  private afterWrite: { seq: number; ms: RaftMessage[] }[] = [];
  private writeWaiters: (() => void)[] = [];
  /** Called at the end of every log write, successful or not. */
  private writeCompletions: (() => void)[] = [];
  /** Log writes made (each covering one or more Readies) and Readies they covered. */
  private readonly writeStats = { writes: 0, readies: 0 };
  private badEntries = 0;

  private readonly role = new BehaviorSubject<Role>('follower');
  private readonly term = new BehaviorSubject<number>(0);
  private readonly leader = new BehaviorSubject<string | undefined>(undefined);
  private readonly commitIndex = new BehaviorSubject<number>(0);
  private readonly appliedIndex = new BehaviorSubject<number>(0);
  private readonly membership = new BehaviorSubject<RaftMembership>({ voters: [], learners: [] });
  private readonly applied = new Subject<AppliedEntry<Op, Result>>();
  private readonly steps = new Subject<AppliedStep<Op, Result>>();

  readonly role$: Observable<Role> = this.role.pipe(distinctUntilChanged());
  readonly term$: Observable<number> = this.term.pipe(distinctUntilChanged());
  readonly leader$: Observable<string | undefined> = this.leader.pipe(distinctUntilChanged());
  readonly commitIndex$: Observable<number> = this.commitIndex.pipe(distinctUntilChanged());
  readonly appliedIndex$: Observable<number> = this.appliedIndex.pipe(distinctUntilChanged());
  readonly membership$: Observable<RaftMembership> = this.membership.asObservable();
  readonly applied$: Observable<AppliedEntry<Op, Result>> = this.applied.asObservable();
  /**
   * Every applied entry, commands or not, in log order, as it is applied (before
   * `appliedIndex$`, which publishes once per batch after `status()` shows it).
   */
  readonly appliedSteps$: Observable<AppliedStep<Op, Result>> = this.steps.asObservable();

  constructor(options: RaftNodeOptions<Op, Result>) {
    super();
    this.opts = options;
  }

  get nodeId(): string {
    return this.id_;
  }

  /** True once storage is loaded and the node takes part in the protocol. */
  get started(): boolean {
    return this.core !== undefined && !this.stopped;
  }

  // ---------------------------------------------------------------- lifecycle

  override async preStart(): Promise<void> {
    const o = this.opts;
    this.id_ = o.id ?? this.ctx.nodeId;
    const path = this.ctx.self.slice(this.ctx.nodeId.length + 1);
    this.addressOf = o.addressOf ?? ((id: string) => `${id}/${path}`);
    this.readNonce = this.ctx.random.nextUint32().toString(36);
    const tickMs = o.tickMs ?? 10;
    this.tickMs = tickMs;
    const heartbeatTick = Math.max(1, Math.round((o.heartbeatMs ?? 50) / tickMs));
    const electionTick = Math.max(heartbeatTick + 1, Math.round((o.electionMs ?? 150) / tickMs));

    const storage = await o.storage();
    this.storage = storage;
    const sm = new SessionStateMachine<Op, Result>(o.stateMachine(), o.maxSessions);
    this.sm = sm;
    const hardState = await storage.hardState.load();
    this.savedHard = hardState;
    let snapshot: CoreSnapshot | undefined;
    const reader = await storage.snapshots.latest();
    if (reader) {
      const data = await reader.readAll();
      const m = reader.meta;
      snapshot = { meta: { index: m.index, term: m.term, membership: m.membership }, data };
      sm.restore(data);
      this.lastSnapshotIndex = m.index;
      this.lastImageBytes = data.byteLength;
      this.appliedUpTo = m.index;
    }
    const first = Math.max(storage.log.firstIndex(), (snapshot?.meta.index ?? 0) + 1);
    const last = storage.log.lastIndex();
    const entries: LogEntry[] = last >= first ? await storage.log.entries(first, last + 1) : [];
    const bootstrap = o.bootstrap;
    const state: ConstructorParameters<typeof RaftCore>[1] = { entries };
    if (hardState) state.hardState = hardState;
    if (snapshot) state.snapshot = snapshot;
    if (bootstrap) {
      state.bootstrap = Array.isArray(bootstrap)
        ? { voters: [...bootstrap], learners: [] }
        : (bootstrap as RaftMembership);
    }
    const core = new RaftCore(
      {
        id: this.id_,
        random: this.ctx.random,
        heartbeatTick,
        electionTick,
        ...(o.preVote !== undefined ? { preVote: o.preVote } : {}),
        ...(o.checkQuorum !== undefined ? { checkQuorum: o.checkQuorum } : {}),
        ...(o.readOnly !== undefined ? { readOnly: o.readOnly } : {}),
        ...(o.leaseDriftMs !== undefined
          ? { leaseDriftTicks: Math.ceil(o.leaseDriftMs / tickMs) }
          : {}),
        readFanout: o.readFanout ?? 'quorum',
        ...(o.maxSizePerMsg !== undefined ? { maxSizePerMsg: o.maxSizePerMsg } : {}),
        ...(o.maxInflightMsgs !== undefined ? { maxInflightMsgs: o.maxInflightMsgs } : {}),
        ...(o.maxInflightBytes !== undefined ? { maxInflightBytes: o.maxInflightBytes } : {}),
        ...(o.learnerMaxSizePerMsg !== undefined
          ? { learnerMaxSizePerMsg: o.learnerMaxSizePerMsg }
          : {}),
        ...(o.learnerMaxInflightMsgs !== undefined
          ? { learnerMaxInflightMsgs: o.learnerMaxInflightMsgs }
          : {}),
        ...(o.maxUncommittedBytes !== undefined
          ? { maxUncommittedBytes: o.maxUncommittedBytes }
          : {}),
        ...(o.snapshotChunkSize !== undefined ? { snapshotChunkSize: o.snapshotChunkSize } : {}),
        ...(o.snapshotResendBeats !== undefined
          ? { snapshotResendBeats: o.snapshotResendBeats }
          : {}),
      },
      state,
    );
    this.core = core;
    this.ctx.timers.repeat('tick', tickMs, { type: 'tick' });
    this.publish();
    this.schedule();
  }

  override async postStop(): Promise<void> {
    this.stopped = true;
    const err = () => new ProposeError('Stopped', `raft node ${this.id_} stopped`);
    for (const v of this.proposals.values())
      for (const p of Array.isArray(v) ? v : [v]) this.settle(p, undefined, err());
    this.proposals.clear();
    this.expiry.clear();
    const reads = [
      ...this.readBatch,
      ...this.witnessReads.map((x) => x.w),
      ...[...this.readsByCtx.values()].flat(),
      ...this.waitingApply.flatMap((w) => w.waiters),
    ];
    for (const r of reads) this.settleRead(r, undefined, err());
    this.readBatch = [];
    this.witnessReads = [];
    this.readsByCtx.clear();
    this.waitingApply = [];
    await this.loopDone.catch(() => {});
    await this.writerIdle();
    for (const w of this.snapshotWaiters.splice(0)) w.reject(err());
    await this.snapshotting?.catch(() => {});
    await this.saveCommitOnStop();
    await this.storage?.close?.().catch(() => {});
    this.role.complete();
    this.term.complete();
    this.leader.complete();
    this.commitIndex.complete();
    this.appliedIndex.complete();
    this.membership.complete();
    this.applied.complete();
    this.steps.complete();
  }

  override accepts(msg: unknown): msg is RaftNodeMsg {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as { type?: unknown; ms?: unknown };
    switch (m.type) {
      case 'raft':
        return Array.isArray(m.ms);
      case 'tick':
      case 'propose':
      case 'readBarrier':
      case 'status':
      case 'transferLeadership':
        return true;
      default:
        return false;
    }
  }

  override receive(msg: RaftNodeMsg | Terminated): void {
    const core = this.core;
    if (!core || this.stopped) return;
    switch (msg.type) {
      case 'raft': {
        const sender = this.ctx.sender;
        let readRound = false;
        for (const m of msg.ms) {
          const problem = this.unpack(m) ?? raftMessageProblem(m);
          if (problem !== undefined) {
            this.rejected.malformed++;
            this.ctx.emit({ type: 'badMessage', code: 'SYNOD_ERR_RAFT_BAD_MESSAGE', problem });
            continue;
          }
          if (!this.admit(m, sender, core)) continue;
          if (
            m.type === 'heartbeat' ||
            m.type === 'readIndex' ||
            m.type === 'readIndexResp' ||
            m.type === 'readWitness' ||
            (m.type === 'heartbeatResp' && m.context !== undefined)
          )
            readRound = true;
          this.guard(() => core.step(m));
        }
        if (readRound) {
          // Someone waits on this round: answer (or serve the reads) in this turn.
          this.publish();
          this.runLoopNow();
          return;
        }
        break;
      }
      case 'tick':
        this.expireProposals();
        this.guard(() => core.tick());
        break;
      case 'propose': {
        const problem = commandProblem(msg.command);
        if (problem !== undefined) {
          this.ctx.replyError(msg, { code: 'SYNOD_ERR_RAFT_BAD_COMMAND', message: problem });
          return;
        }
        if (timeoutProblem(msg.timeoutMs)) {
          this.ctx.replyError(
            msg,
            timeoutProblem(msg.timeoutMs) as { code: string; message: string },
          );
          return;
        }
        const opt = msg.timeoutMs !== undefined ? { timeoutMs: msg.timeoutMs } : {};
        this.propose(msg.command as Command<Op>, opt).then(
          (r) => this.ctx.reply(msg, r),
          (e: ProposeError) =>
            this.ctx.replyError(msg, {
              code: `SYNOD_ERR_RAFT_${e.code ?? 'ERROR'}`,
              message: e.message,
            }),
        );
        return;
      }
      case 'readBarrier': {
        if (timeoutProblem(msg.timeoutMs)) {
          this.ctx.replyError(
            msg,
            timeoutProblem(msg.timeoutMs) as { code: string; message: string },
          );
          return;
        }
        const opt = msg.timeoutMs !== undefined ? { timeoutMs: msg.timeoutMs } : {};
        this.readBarrier(opt).then(
          (i) => this.ctx.reply(msg, i),
          (e: ProposeError) =>
            this.ctx.replyError(msg, {
              code: `SYNOD_ERR_RAFT_${e.code ?? 'ERROR'}`,
              message: e.message,
            }),
        );
        return;
      }
      case 'status':
        this.ctx.reply(msg, this.statusOf(core));
        return;
      case 'transferLeadership':
        try {
          core.transferLeadership(msg.to);
          this.ctx.reply(msg, true);
        } catch (e) {
          const err = e as RaftError;
          this.ctx.replyError(msg, { code: err.code ?? 'SYNOD_ERR_RAFT', message: err.message });
        }
        break;
      default:
        return;
    }
    this.publish();
    this.schedule();
  }

  // ---------------------------------------------------------------- client API

  /**
   * Proposes a command (leader only); resolves once it is committed and applied here. The
   * command is encoded now; do not mutate it (or its `op`) until the promise settles: this
   * node applies plain-data commands from the object itself (docs/raft.md, "Wire and log
   * formats"), the other replicas from the bytes encoded now.
   */
  propose(command: Command<Op>, options?: { timeoutMs?: number }): Promise<ProposeResult<Result>> {
    const problem = commandProblem(command);
    if (problem !== undefined) {
      return Promise.reject(
        new ProposeError('Dropped', `SYNOD_ERR_RAFT_BAD_COMMAND: ${problem}`, undefined, false),
      );
    }
    const core = this.core;
    if (!core || this.stopped) {
      return Promise.reject(
        new ProposeError('Stopped', `raft node ${this.id_} is not running`, undefined, false),
      );
    }
    if (this.stall) {
      return Promise.reject(
        new ProposeError(
          'Dropped',
          `SYNOD_ERR_STORAGE_FULL: raft node ${this.id_} cannot make writes durable (${this.stall.code}: ${this.stall.message}); retrying, writes are refused until space returns`,
          undefined,
          false,
        ),
      );
    }
    let at: { index: number; term: number };
    let data: Uint8Array | undefined;
    // The fast writer takes only commands that decode to themselves (command-codec.ts).
    let self = true;
    try {
      data = encodeCommandFast(command.clientId, command.seq, command.op);
      if (data === undefined) {
        data = encodeValue([command.clientId, command.seq, command.op]);
        self = commandDecodesToItself(command);
      }
      at = core.propose(data);
    } catch (e) {
      return Promise.reject(this.toProposeError(e));
    }
    const p = self
      ? this.track(at, options?.timeoutMs, command, data)
      : this.track(at, options?.timeoutMs);
    this.schedule();
    return p as Promise<ProposeResult<Result>>;
  }

  /**
   * `witness`: the key under which the client sent witnesses to the followers (docs/raft.md,
   * "Witnessed reads"); the read is then confirmed by their witnesses (one hop sooner than by a
   * heartbeat round), falling back to the round when they do not come. A key must be new for
   * every read attempt: a witness counts for the read that holds its key when it arrives.
   */
  readBarrier(options: { timeoutMs?: number; witness?: string } = {}): Promise<number> {
    const core = this.core;
    if (!core || this.stopped) {
      return Promise.reject(new ProposeError('Stopped', `raft node ${this.id_} is not running`));
    }
    const key = options.witness;
    if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 256)) {
      return Promise.reject(
        new ProposeError(
          'Dropped',
          'SYNOD_ERR_RAFT_BAD_MESSAGE: a witness key is a string of 1–256 chars',
          undefined,
          false,
        ),
      );
    }
    return new Promise<number>((resolve, reject) => {
      const w: ReadWaiter = { resolve, reject, timer: undefined, done: false };
      const ms = options.timeoutMs ?? this.opts.requestTimeoutMs ?? 5000;
      w.timer = this.ctx.clock.setTimer(ms, () =>
        this.settleRead(
          w,
          undefined,
          new ProposeError('Timeout', `read not confirmed within ${ms} ms`),
        ),
      );
      if (key !== undefined) this.witnessReads.push({ w, key });
      else this.readBatch.push(w);
      // An idle node starts the confirmation round now rather than on the next event-loop
      // turn. Only when the core has nothing else to hand out: this may run in the caller's
      // turn, which must not apply entries or write the log; otherwise the loop is scheduled
      // as usual (and reads made meanwhile share its round).
      if (
        !this.looping &&
        !this.loopScheduled &&
        this.stall === undefined &&
        this.compactDue === undefined &&
        this.snapshotWaiters.length === 0 &&
        !core.hasReady()
      )
        this.runLoopNow();
      else this.schedule();
    });
  }

  /**
   * A client's witness for its read registered under `key` on the leader (RaftCore.witnessRead):
   * a follower that knows its leader sends it a word, in its term, that it is in that term now.
   * Does nothing on the leader, a candidate, a stopped node, or for a malformed key (a witness is
   * only ever a chance to skip a heartbeat round; the read never depends on it).
   */
  witnessRead(key: string): void {
    const core = this.core;
    if (!core || this.stopped) return;
    if (typeof key !== 'string' || key.length === 0 || key.length > 256) return;
    if (core.role !== 'follower' || core.leader === undefined) return;
    // As readBarrier: send it in this turn only when the core has nothing else to hand out.
    const idle =
      !this.looping &&
      !this.loopScheduled &&
      this.stall === undefined &&
      this.compactDue === undefined &&
      this.snapshotWaiters.length === 0 &&
      !core.hasReady();
    this.guard(() => core.witnessRead(key));
    if (idle) this.runLoopNow();
    else this.schedule();
  }

  /**
   * Proposes a membership change (see RaftCore.proposeConfChange); resolves once the
   * change is applied locally. With joint consensus and auto-leave, the cluster leaves
   * the joint configuration on its own afterwards.
   */
  changeMembership(
    ops: readonly ConfChangeOp[],
    options: { joint?: boolean; autoLeave?: boolean; timeoutMs?: number } = {},
  ): Promise<{ index: number; term: number }> {
    const core = this.requireCore();
    let at: { index: number; term: number };
    try {
      at = core.proposeConfChange(ops, options);
    } catch (e) {
      return Promise.reject(e);
    }
    const p = this.track(at, options.timeoutMs).then(() => at);
    this.schedule();
    return p;
  }

  addLearner(id: string): Promise<{ index: number; term: number }> {
    return this.changeMembership([{ type: 'addLearner', node: id }]);
  }

  /**
   * Promotes a learner to voter once it has caught up: its replicated index must be
   * within `maxLag` entries of the leader's last index.
   */
  promote(id: string, maxLag = 100): Promise<{ index: number; term: number }> {
    const core = this.requireCore();
    const pr = core.status().progress[id];
    if (core.role !== 'leader') {
      return Promise.reject(
        new RaftError('SYNOD_ERR_RAFT_NOT_LEADER', 'not the leader', core.leader),
      );
    }
    if (!pr) {
      return Promise.reject(
        new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', `${id} is not a member`),
      );
    }
    if (core.log.lastIndex() - pr.match > maxLag) {
      return Promise.reject(
        new RaftError(
          'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
          `learner ${id} is ${core.log.lastIndex() - pr.match} entries behind (max ${maxLag})`,
        ),
      );
    }
    return this.changeMembership([{ type: 'addVoter', node: id }]);
  }

  removeMember(id: string): Promise<{ index: number; term: number }> {
    return this.changeMembership([{ type: 'remove', node: id }]);
  }

  transferLeadership(to: string): void {
    this.requireCore().transferLeadership(to);
    this.schedule();
  }

  /** Starts an election now (tests and operators). */
  campaign(): void {
    this.requireCore().campaign();
    this.publish();
    this.schedule();
  }

  status(): RaftStatus {
    return this.statusOf(this.requireCore());
  }

  /**
   * The core's status, with `applied` as far as the state machine got: committed entries
   * may be applied while the same Ready's new entries are still being written (see
   * handleReady), before the core hears of it in `advance`.
   */
  private statusOf(core: RaftCore): RaftStatus {
    const s = core.status();
    if (this.appliedUpTo > s.applied) s.applied = this.appliedUpTo;
    return s;
  }

  /**
   * True while this node's storage is refusing writes for lack of space (it retries, and
   * refuses new proposals with SYNOD_ERR_STORAGE_FULL until a write succeeds again).
   */
  /** Reads this node served as leader on their witnesses (docs/raft.md), since it started. */
  get witnessedReads(): number {
    return this.core?.witnessedReads ?? 0;
  }

  get storageStalled(): boolean {
    return this.stall !== undefined;
  }

  /**
   * Milliseconds (in ticks) since this node last heard from a leader; undefined before it
   * started. See `RaftCore.ticksSinceLeaderContact`.
   */
  msSinceLeaderContact(): number | undefined {
    if (!this.core || this.stopped) return undefined;
    return this.core.ticksSinceLeaderContact * this.tickMs;
  }

  /** The core, for inspection by tests and invariant checkers. Do not drive it directly. */
  inspectCore(): RaftCore | undefined {
    return this.core;
  }

  // ---------------------------------------------------------------- the I/O loop

  private requireCore(): RaftCore {
    if (!this.core || this.stopped) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', `raft node ${this.id_} is not running`);
    }
    return this.core;
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fatal(e);
    }
  }

  private toProposeError(e: unknown): ProposeError {
    const err = e as RaftError;
    if (err.code === 'SYNOD_ERR_RAFT_NOT_LEADER') {
      return new ProposeError('NotLeader', err.message, err.leaderHint);
    }
    return new ProposeError('Dropped', err.message ?? String(e), err.leaderHint);
  }

  private track(
    at: { index: number; term: number },
    timeoutMs: number | undefined,
    command?: Command,
    data?: Uint8Array,
  ) {
    return new Promise<ProposeResult<unknown>>((resolve, reject) => {
      const ms = timeoutMs ?? this.opts.requestTimeoutMs ?? 5000;
      const deadline = this.ctx.clock.now() + ms;
      const p: PendingProposal = {
        term: at.term,
        command,
        data,
        resolve,
        reject,
        deadline,
        done: false,
      };
      let q = this.expiry.get(ms);
      if (!q) {
        q = new Queue<PendingProposal>();
        this.expiry.set(ms, q);
      }
      q.push(p);
      const old = this.proposals.get(at.index);
      if (old === undefined) this.proposals.set(at.index, p);
      else if (Array.isArray(old)) old.push(p);
      else this.proposals.set(at.index, [old, p]);
    });
  }

  /** Fails proposals whose timeout has passed (called on every tick). */
  private expireProposals(): void {
    if (this.expiry.size === 0) return;
    const now = this.ctx.clock.now();
    for (const [ms, q] of this.expiry) {
      for (let p = q.peek(); p !== undefined; p = q.peek()) {
        if (!p.done) {
          if (p.deadline > now) break;
          this.settle(p, undefined, new ProposeError('Timeout', `not applied within ${ms} ms`));
        }
        q.shift();
      }
      if (q.length === 0) this.expiry.delete(ms);
    }
  }

  private settle(p: PendingProposal, r: ProposeResult<unknown> | undefined, e?: Error): void {
    if (p.done) return;
    p.done = true;
    if (e) p.reject(e);
    else p.resolve(r as ProposeResult<unknown>);
  }

  private settleRead(w: ReadWaiter, index: number | undefined, e?: Error): void {
    if (w.done) return;
    w.done = true;
    w.timer?.cancel();
    if (e) w.reject(e);
    else w.resolve(index as number);
  }

  /**
   * Runs the loop now (in this turn) instead of on the next event-loop turn: for the messages of
   * a ReadIndex round, whose answer someone is waiting for (a follower's heartbeat response, the
   * leader's read confirmation). Falls back to `schedule` while a loop is running.
   */
  private runLoopNow(): void {
    if (this.looping || this.stopped || !this.core) {
      this.schedule();
      return;
    }
    this.loopDone = this.runLoop();
  }

  private schedule(): void {
    if (this.loopScheduled || this.looping || this.stopped || !this.core) return;
    this.loopScheduled = true;
    this.ctx.clock.schedule(() => {
      this.loopScheduled = false;
      // The loop may already have run (or be running) by `runLoopNow`.
      if (!this.looping) this.loopDone = this.runLoop();
    });
  }

  private async runLoop(): Promise<void> {
    const core = this.core;
    if (this.looping || !core) return;
    this.looping = true;
    try {
      for (;;) {
        if (this.stopped) return;
        if (this.stall) {
          // The store refuses writes for lack of space: nothing proceeds until it accepts
          // them again (as in the synchronous loop; a stuck leader stops heartbeating).
          await this.writesDrained();
          if (this.stopped) return;
        }
        // Between two Readies: the core's applied index equals the state machine's.
        this.maybeSnapshot(core);
        if (this.compactDue !== undefined) this.compactLog(core, this.compactDue);
        if (this.snapshotWaiters.length > 0) await this.serveSnapshotWaiters(core);
        if (this.stopped) return;
        if (this.readBatch.length > 0) {
          const ctx = `${this.id_}.${this.readNonce}.${this.readSeq++}`;
          this.readsByCtx.set(ctx, this.readBatch);
          this.readBatch = [];
          core.readIndex(ctx);
        }
        if (this.witnessReads.length > 0) {
          for (const { w, key } of this.witnessReads) {
            const ctx = `${this.id_}.${this.readNonce}.${this.readSeq++}`;
            this.readsByCtx.set(ctx, [w]);
            core.readIndex(ctx, key);
          }
          this.witnessReads = [];
        }
        if (!core.hasReady()) break;
        const rd = core.ready();
        if (this.opts.asyncStorageWrites !== false && !this.needsSyncReady(rd)) {
          this.handleReadyAsync(core, rd);
          core.advanceApplied(rd);
        } else {
          // A snapshot, a term or vote change: after every earlier write, one step at a time.
          await this.writesDrained();
          if (this.stopped) return;
          await this.handleReady(core, rd);
          if (this.stopped) return;
          core.advance(rd);
        }
        // status() now reflects this Ready: publish, then tell the waiting clients.
        this.publish();
        this.settleAll();
        this.maybeSnapshot(core);
      }
    } catch (e) {
      this.fatal(e);
    } finally {
      this.looping = false;
      if (this.snapshotWaiters.length > 0 || this.compactDue !== undefined) this.schedule();
    }
  }

  /** Whether a Ready must be handled synchronously: it installs a snapshot or changes term or vote. */
  private needsSyncReady(rd: Ready): boolean {
    if (rd.snapshot !== undefined) return true;
    const hs = rd.hardState;
    const saved = this.savedHard;
    return (
      hs !== undefined && (saved === undefined || hs.term !== saved.term || hs.vote !== saved.vote)
    );
  }

  /**
   * Handles a Ready that writes at most entries (asynchronous storage writes, docs/raft.md
   * "Persistence pipeline"): the leader's replication messages leave now; the entries are
   * queued for the log writer (one write in flight, the next carrying everything queued
   * meanwhile); every other message waits until all writes queued so far are durable;
   * committed entries are applied now (committed means durable on a majority).
   */
  private handleReadyAsync(core: RaftCore, rd: Ready): void {
    const writes = rd.entries.length > 0;
    if (!writes && this.durableSeq === this.writeSeq) this.sendAll(rd.messages);
    else {
      const { early, rest } = splitEarlyMessages(rd.messages);
      this.sendAll(early);
      if (writes) this.queueWrite(rd.entries, rd.mark as LogMark);
      if (rest.length > 0) this.afterWrite.push({ seq: this.writeSeq, ms: rest });
    }
    const sm = this.sm as SessionStateMachine<Op, Result>;
    const ce = rd.committedEntries;
    for (let i = 0; i < ce.length; i++) this.applyEntry(ce[i] as LogEntry, sm);
    this.serveReadStates(core, rd);
  }

  /** Queues entries for the log writer (merging over a queued suffix they replace). */
  private queueWrite(entries: readonly LogEntry[], mark: LogMark): void {
    const q = this.wq;
    const first = (entries[0] as LogEntry).index;
    if (q.length > 0 && first <= (q[q.length - 1] as LogEntry).index) {
      q.length = Math.max(0, first - (q[0] as LogEntry).index);
    }
    for (let i = 0; i < entries.length; i++) q.push(entries[i] as LogEntry);
    this.wqMark = mark;
    this.writeSeq++;
    if (!this.writing) this.startWrite();
  }

  private startWrite(): void {
    const st = this.storage as RaftStorage;
    const ents = this.wq;
    const mark = this.wqMark as LogMark;
    const seq = this.writeSeq;
    this.wq = [];
    this.wqMark = undefined;
    this.writing = true;
    this.writeStats.writes++;
    this.writeStats.readies += seq - this.durableSeq;
    st.log.append(ents).then(
      () => this.writeDone(seq, mark),
      (e: unknown) => this.writeFailed(e, ents, mark),
    );
  }

  private writeDone(seq: number, mark: LogMark): void {
    this.writing = false;
    if (!this.stopped) {
      this.durableSeq = seq;
      if (this.stall) this.endStall();
      const core = this.core as RaftCore;
      this.guard(() => core.advanceStable(mark));
      let n = 0;
      while (n < this.afterWrite.length && (this.afterWrite[n] as { seq: number }).seq <= seq) n++;
      if (n === 1)
        this.sendAll(coalesceAcks((this.afterWrite.shift() as { ms: RaftMessage[] }).ms));
      else if (n > 1) {
        // One envelope per peer for everything this write released.
        const ms: RaftMessage[] = [];
        for (const b of this.afterWrite.splice(0, n)) for (const m of b.ms) ms.push(m);
        this.sendAll(coalesceAcks(ms));
      }
      if (this.wq.length > 0 && !this.stopped) this.startWrite();
      // A leader may commit now that its own copy is durable: the loop takes the next Ready.
      if (!this.looping && core.hasReady()) this.schedule();
    }
    if (!this.writing) for (const w of this.writeWaiters.splice(0)) w();
    for (const w of this.writeCompletions.splice(0)) w();
  }

  private writeFailed(e: unknown, ents: LogEntry[], mark: LogMark): void {
    this.writing = false;
    for (const w of this.writeCompletions.splice(0)) w();
    if (this.stopped) {
      for (const w of this.writeWaiters.splice(0)) w();
      return;
    }
    if (!isNoSpace(e)) {
      this.fatal(e);
      for (const w of this.writeWaiters.splice(0)) w();
      return;
    }
    // Nothing of the write was kept: it goes again, with whatever was queued meanwhile.
    const q = ents;
    const queued = this.wq;
    this.wq = q;
    if (queued.length > 0) {
      const first = (queued[0] as LogEntry).index;
      if (first <= (q[q.length - 1] as LogEntry).index) {
        q.length = Math.max(0, first - (q[0] as LogEntry).index);
      }
      for (const x of queued) q.push(x);
    }
    this.wqMark ??= mark;
    const attempt = this.stall?.attempts ?? 0;
    this.noteStall(e, attempt);
    this.writing = true;
    void this.backoff(attempt).then(() => {
      this.writing = false;
      if (this.stopped) {
        for (const w of this.writeWaiters.splice(0)) w();
        return;
      }
      this.startWrite();
    });
  }

  /** Resolves once the log is durable up to `index` (or no write could make it so, or the node stopped). */
  private async logDurableTo(index: number): Promise<void> {
    for (;;) {
      const core = this.core;
      if (this.stopped || !core || core.log.stableIndex >= index) return;
      if (!this.writing && this.wq.length > 0) this.startWrite();
      if (!this.writing) return;
      await new Promise<void>((resolve) => this.writeCompletions.push(resolve));
    }
  }

  /** Resolves once no log write is in flight (queued entries may remain). */
  private writerIdle(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise<void>((resolve) => this.writeWaiters.push(resolve));
  }

  /** Resolves once every entry queued for writing is durable (or the node stopped). */
  private async writesDrained(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      if (!this.writing && this.wq.length > 0) this.startWrite();
      if (!this.writing) return;
      await this.writerIdle();
    }
  }

  /** Log writes made and the Readies they covered (group commit), for benchmarks. */
  logWriteStats(): { writes: number; readies: number } {
    return { ...this.writeStats };
  }

  /**
   * Handles one Ready. What is durable when which message leaves (docs/raft.md,
   * "Persistence pipeline"):
   *
   * - Term and vote are written (hard state) only when they change, after the Ready's
   *   entries, and every message of such a Ready waits for both. The commit index rides
   *   along in that record but is never a reason to write: it is volatile in Raft, and a
   *   restarted node relearns it (the value stored is never ahead of the durable log).
   * - A leader's AppendEntries, heartbeats and snapshot chunks go out *before* its own
   *   entries are durable (Raft thesis §10.2.1): they promise nothing about this node's
   *   disk, and the core counts the leader's own copy towards a quorum only at `advance`,
   *   i.e. after the write. Everything else (append/vote responses, read-index replies...)
   *   waits for the write.
   * - Committed entries are applied (and their proposals answered) before this Ready's
   *   new entries are durable: commitment already means a durable quorum, so the answer
   *   depends on nothing being written here. A config entry and everything after it wait
   *   for `advance`, which changes the membership.
   */
  private async handleReady(core: RaftCore, rd: Ready): Promise<void> {
    const hs = rd.hardState;
    const saved = this.savedHard;
    const saveHard =
      hs !== undefined && (saved === undefined || hs.term !== saved.term || hs.vote !== saved.vote);
    const persists = saveHard || rd.snapshot !== undefined || rd.entries.length > 0;
    const committed = rd.committedEntries;
    const sm = this.sm as SessionStateMachine<Op, Result>;
    let late = rd.messages;
    let applied = 0;
    if (persists && !saveHard && rd.snapshot === undefined) {
      // Only entries are written: the leader's replication traffic need not wait for them.
      const { early, rest } = splitEarlyMessages(rd.messages);
      if (early.length > 0) {
        this.sendAll(early);
        late = rest;
      }
      while (applied < committed.length && (committed[applied] as LogEntry).type !== 'config') {
        this.applyEntry(committed[applied] as LogEntry, sm);
        applied++;
      }
      if (applied > 0) {
        this.releaseReads(this.appliedUpTo);
        this.publish();
        this.settleAll();
      }
    }
    if (persists) {
      if (!(await this.persist(rd, saveHard ? hs : undefined))) return;
      if (this.stopped) return;
    }
    this.sendAll(late);
    // Apply what is left.
    if (rd.snapshot) {
      sm.restore(rd.snapshot.data);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.lastImageBytes = rd.snapshot.data.byteLength;
      this.snapshotBytesMark = this.appliedBytes;
      this.appliedUpTo = rd.snapshot.meta.index;
      for (const [index, v] of this.proposals) {
        if (index > rd.snapshot.meta.index) continue;
        this.proposals.delete(index);
        for (const p of Array.isArray(v) ? v : [v]) {
          this.settle(
            p,
            undefined,
            new ProposeError('Timeout', 'superseded by a snapshot: outcome unknown on this node'),
          );
        }
      }
    }
    for (let i = applied; i < committed.length; i++) this.applyEntry(committed[i] as LogEntry, sm);
    this.serveReadStates(core, rd);
  }

  /** Read states become waiters for the applied index; read failures fail their reads. */
  private serveReadStates(core: RaftCore, rd: Ready): void {
    for (const rs of rd.readStates) {
      const waiters = this.readsByCtx.get(rs.context);
      if (!waiters) continue;
      this.readsByCtx.delete(rs.context);
      this.waitingApply.push({ index: rs.index, waiters });
    }
    for (const rf of rd.readFailures) {
      const waiters = this.readsByCtx.get(rf.context);
      if (!waiters) continue;
      this.readsByCtx.delete(rf.context);
      for (const w of waiters) {
        this.settleRead(
          w,
          undefined,
          new ProposeError(rf.reason, `read failed: ${rf.reason}`, rf.leaderHint),
        );
      }
    }
    this.releaseReads(Math.max(core.log.applied, this.appliedUpTo));
  }

  /**
   * Makes the Ready's snapshot, entries and (when given) hard state durable, in that order:
   * the hard state's commit index is then never ahead of the entries it covers. A write
   * refused for lack of space (SYNOD_ERR_NO_SPACE: nothing of it was kept, the store stays
   * usable) is retried with backoff, step by step, while nothing that depends on it is
   * sent or acknowledged; any other failure is fatal. Returns false if the node stopped.
   */
  private async persist(rd: Ready, hs: RaftHardState | undefined): Promise<boolean> {
    const st = this.storage as RaftStorage;
    let snapStored = rd.snapshot === undefined;
    let snapCompacted = rd.snapshot === undefined;
    let entriesDone = rd.entries.length === 0;
    let hardDone = hs === undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!snapStored) {
          const { meta, data } = rd.snapshot as CoreSnapshot;
          const w = await st.snapshots.create({
            index: meta.index,
            term: meta.term,
            membership: meta.membership,
          });
          try {
            await w.write(data);
            await w.commit();
          } catch (e) {
            await w.abort().catch(() => {});
            throw e;
          }
          snapStored = true;
        }
        if (!snapCompacted) {
          const { meta } = rd.snapshot as CoreSnapshot;
          await st.log.compact(meta.index, meta.term);
          snapCompacted = true;
        }
        if (!entriesDone) {
          await st.log.append(rd.entries);
          entriesDone = true;
        }
        if (!hardDone) {
          await st.hardState.save(hs as RaftHardState);
          this.savedHard = hs;
          hardDone = true;
        }
        if (this.stall) this.endStall();
        return true;
      } catch (e) {
        if (this.stopped) return false;
        if (!isNoSpace(e)) throw e;
        this.noteStall(e, attempt);
        await this.backoff(attempt);
        if (this.stopped) return false;
      }
    }
  }

  private noteStall(e: unknown, attempt: number): void {
    const err = e as { code?: string; message?: string };
    const first = this.stall === undefined;
    this.stall ??= {
      code: err.code ?? 'SYNOD_ERR_NO_SPACE',
      message: err.message ?? String(e),
      since: this.ctx.clock.now(),
      attempts: 0,
    };
    this.stall.attempts = attempt + 1;
    if (first) {
      this.ctx.emit({ type: 'storageStalled', code: this.stall.code, error: this.stall.message });
      this.ctx.log.log(
        'error',
        `raft node ${this.id_}: storage is full, writes refused and retried until space returns: ${this.stall.message}`,
        { code: this.stall.code },
      );
    }
  }

  private endStall(): void {
    const s = this.stall;
    if (!s) return;
    this.stall = undefined;
    const ms = Math.round(this.ctx.clock.now() - s.since);
    this.ctx.emit({ type: 'storageRecovered', afterMs: ms, attempts: s.attempts });
    this.ctx.log.log(
      'warn',
      `raft node ${this.id_}: storage writes succeed again after ${ms} ms (${s.attempts} attempts)`,
    );
  }

  /** 20 ms doubling to 1 s, on the actor's clock. */
  private backoff(attempt: number): Promise<void> {
    const ms = Math.min(1000, 20 * 2 ** Math.min(attempt, 6));
    return new Promise<void>((resolve) => {
      this.ctx.clock.setTimer(ms, resolve);
    });
  }

  /**
   * On a clean stop, records the commit index reached (as far as the durable log covers
   * it), so that a restarted node applies its log without waiting for a leader. Skipped
   * after a failure, or when term and vote would change: those are only written in order.
   */
  private async saveCommitOnStop(): Promise<void> {
    const core = this.core;
    const st = this.storage;
    const saved = this.savedHard;
    if (!core || !st || !saved || this.stall) return;
    if (core.term !== saved.term || core.vote !== saved.vote) return;
    const commit = Math.min(core.log.committed, core.log.stableIndex);
    if (commit <= saved.commit) return;
    const hs = { term: saved.term, vote: saved.vote, commit };
    await st.hardState.save(hs).then(
      () => {
        this.savedHard = hs;
      },
      () => {},
    );
  }

  private releaseReads(applied: number): void {
    if (this.waitingApply.length === 0) return;
    const keep: typeof this.waitingApply = [];
    for (const w of this.waitingApply) {
      if (w.index <= applied) {
        const index = w.index;
        for (const r of w.waiters) this.readsReleased.push({ w: r, index });
      } else keep.push(w);
    }
    this.waitingApply = keep;
  }

  private applyEntry(e: LogEntry, sm: SessionStateMachine<Op, Result>): void {
    this.appliedBytes += e.data.byteLength;
    let result: unknown;
    let refused: ProposeError | undefined;
    if (e.type === 'normal') {
      let command = this.proposedCommand(e) as Command<Op> | undefined;
      try {
        if (command === undefined) {
          command = decodeCommand(e.data) as Command<Op>;
          const problem = commandProblem(command);
          if (problem !== undefined) throw new Error(problem);
        }
      } catch (err) {
        // A committed entry that is not a command (written by a buggy or hostile peer):
        // the same bytes fail the same way on every replica, so skipping it keeps the
        // state machines equal. It is reported loudly, and the node keeps running.
        refused = this.badEntry(e, err);
        if (this.steps.observed) this.steps.next({ index: e.index, term: e.term, type: 'skipped' });
        this.finishEntry(e, undefined, refused);
        return;
      }
      let r: { result: Result | undefined; duplicate: boolean };
      try {
        r = sm.apply(command, { index: e.index, term: e.term });
      } catch (err) {
        throw new RaftError(
          'SYNOD_ERR_RAFT_SAFETY',
          `state machine failed to apply entry ${e.index}: ${(err as Error).message}`,
        );
      }
      result = r.result;
      if (this.applied.observed || this.steps.observed) {
        const entry = {
          index: e.index,
          term: e.term,
          command,
          result: r.result as Result,
          data: e.data,
        };
        this.applied.next(entry);
        if (this.steps.observed) {
          this.steps.next({ index: e.index, term: e.term, type: 'command', entry });
        }
      }
    } else if (this.steps.observed) {
      this.steps.next({
        index: e.index,
        term: e.term,
        type: e.type === 'config' ? 'config' : 'noop',
      });
    }
    this.finishEntry(e, result, refused);
  }

  /**
   * The command proposed on this node for entry `e`, if this node proposed exactly these
   * bytes (the same memory: another leader's entry at this index lives in the message that
   * brought it) and kept the command because the codec reproduces it exactly. Saves
   * decoding the leader's own entries; followers and restarted nodes decode.
   */
  private proposedCommand(e: LogEntry): Command | undefined {
    const v = this.proposals.get(e.index);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) return sameBytes(v.data, e.data) ? v.command : undefined;
    for (const p of v) if (sameBytes(p.data, e.data)) return p.command;
    return undefined;
  }

  /** Counts and reports a committed entry that is not a command; returns the error for its proposer. */
  private badEntry(e: LogEntry, err: unknown): ProposeError {
    this.badEntries++;
    const why = err instanceof Error ? err.message : String(err);
    const message = `committed entry ${e.index} (term ${e.term}, ${e.data.byteLength} bytes) is not a command, skipped: ${why}`;
    this.ctx.emit({
      type: 'badEntry',
      code: 'SYNOD_ERR_RAFT_BAD_ENTRY',
      index: e.index,
      error: why,
    });
    this.ctx.log.log('error', `raft node ${this.id_}: ${message}`, {
      code: 'SYNOD_ERR_RAFT_BAD_ENTRY',
      index: e.index,
    });
    return new ProposeError('Dropped', `SYNOD_ERR_RAFT_BAD_ENTRY: ${message}`, undefined, false);
  }

  /** Committed entries skipped because they were not commands (see `badEntry`). */
  get skippedEntries(): number {
    return this.badEntries;
  }

  /** Settles the proposals waiting on `e` and moves the applied index past it. */
  private finishEntry(e: LogEntry, result: unknown, refused: ProposeError | undefined): void {
    const v = this.proposals.get(e.index);
    if (v !== undefined) {
      this.proposals.delete(e.index);
      if (!Array.isArray(v)) this.settleLater(v, e, result, refused);
      else
        for (let i = 0; i < v.length; i++)
          this.settleLater(v[i] as PendingProposal, e, result, refused);
    }
    this.appliedUpTo = e.index;
    this.releaseReads(e.index);
  }

  /** Queues the outcome of proposal `p`, waiting on entry `e`, for `settleAll`. */
  private settleLater(
    p: PendingProposal,
    e: LogEntry,
    result: unknown,
    refused: ProposeError | undefined,
  ): void {
    this.settled.push(p);
    if (refused && p.term === e.term) this.settledWith.push(refused);
    else if (p.term === e.term) this.settledWith.push({ index: e.index, term: e.term, result });
    else {
      this.settledWith.push(
        new ProposeError(
          'Dropped',
          `entry ${e.index} was replaced by another leader`,
          undefined,
          false,
        ),
      );
    }
  }

  /**
   * Whether a well-formed Raft message may reach the core. Dropped (counted in
   * `rejectedMessages()`, logged at debug level: a stray or hostile peer must not fill
   * the logs) when the envelope's sender is not the node the message claims to come from,
   * or when that node is not a member this node admits (`RaftCore.admits`: the current or
   * a pending configuration, a leader vouched for by a member, anyone before this node has
   * any configuration).
   */
  private admit(m: RaftMessage, sender: string | undefined, core: RaftCore): boolean {
    if (sender === undefined || (nodeOf(sender) !== m.from && sender !== this.addressOf(m.from))) {
      this.rejected.forged++;
      this.ctx.log.log('debug', 'raft message dropped: sender is not its "from"', {
        node: this.id_,
        sender,
        from: m.from,
        type: m.type,
        code: 'SYNOD_ERR_RAFT_FORGED_SENDER',
      });
      return false;
    }
    if (!core.admits(m.from)) {
      this.rejected.nonMember++;
      this.ctx.log.log('debug', 'raft message dropped: sender is not a member', {
        node: this.id_,
        from: m.from,
        type: m.type,
        term: m.term,
        code: 'SYNOD_ERR_RAFT_NOT_MEMBER',
      });
      return false;
    }
    return true;
  }

  /** Raft messages dropped on arrival since this actor started, by reason. */
  rejectedMessages(): { malformed: number; forged: number; nonMember: number } {
    return { ...this.rejected };
  }

  /**
   * Turns the packed entries of an arriving AppendEntries back into entries (see
   * entry-codec.ts); returns a problem when they are malformed.
   */
  private unpack(m: RaftMessage): string | undefined {
    if (m === null || typeof m !== 'object' || m.type !== 'append') return undefined;
    const packed = m.entries as unknown;
    if (!(packed instanceof Uint8Array)) return undefined;
    try {
      (m as { entries: LogEntry[] }).entries = unpackEntries(packed);
    } catch (e) {
      return (e as Error).message;
    }
    return undefined;
  }

  private sendAll(messages: readonly RaftMessage[]): void {
    if (messages.length === 0) return;
    const byPeer = new Map<string, RaftMessage[]>();
    // One packed copy per entry range: followers at the same point share it.
    let packed: Map<string, Uint8Array> | undefined;
    for (let m of messages) {
      if (m.type === 'append' && m.entries.length > 0) {
        const first = m.entries[0] as LogEntry;
        const key = `${first.index}:${m.entries.length}`;
        packed ??= new Map();
        let bytes = packed.get(key);
        if (bytes === undefined) {
          bytes = packEntries(m.entries);
          packed.set(key, bytes);
        }
        m = { ...m, entries: bytes as unknown as LogEntry[] };
      }
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, ms] of byPeer) {
      const body = { type: 'raft' as const, ms };
      this.opts.onSend?.(to, body);
      let addr = this.addresses.get(to);
      if (addr === undefined) {
        addr = this.addressOf(to);
        this.addresses.set(to, addr);
      }
      this.ctx.send(addr, body);
    }
  }

  /**
   * Starts a snapshot when `snapshotEvery` entries were applied since the last one and, with
   * a `snapshotLogRatio`, they add up to that many times the last image's bytes (or
   * `snapshotEveryMax` entries were). The
   * image is taken now (between two Readies, so it is exactly the state at the core's
   * applied index); writing it and compacting the log happen in the background, so the
   * write path does not stall behind a snapshot's fsyncs.
   */
  private maybeSnapshot(core: RaftCore): void {
    const o = this.opts;
    const every = o.snapshotEvery ?? 10_000;
    const since = core.log.applied - this.lastSnapshotIndex;
    if (every <= 0 || since < every) return;
    if (this.snapshotting) return;
    const ratio = o.snapshotLogRatio ?? (o.snapshotEvery === undefined ? 1 : 0);
    if (
      ratio > 0 &&
      since < (o.snapshotEveryMax ?? 10 * every) &&
      this.appliedBytes - this.snapshotBytesMark < ratio * this.lastImageBytes
    )
      return;
    if (this.snapshotRetryAt > 0 && this.ctx.clock.now() < this.snapshotRetryAt) return;
    const p = this.snapshotNow(core).then(
      () => {
        this.snapshotRetryAt = 0;
      },
      (e: unknown) => {
        if (this.stopped) return;
        if (!isNoSpace(e)) {
          this.fatal(e);
          return;
        }
        // Nothing was published and the log was not compacted: the node goes on without
        // this snapshot and tries again later.
        this.snapshotRetryAt = this.ctx.clock.now() + 5000;
        const err = e as { code?: string; message?: string };
        this.ctx.log.log(
          'error',
          `raft node ${this.id_}: snapshot not written for lack of space, retrying in 5 s: ${err.message ?? String(e)}`,
          { code: err.code },
        );
      },
    );
    this.snapshotting = p;
    void p.finally(() => {
      if (this.snapshotting === p) this.snapshotting = undefined;
    });
  }

  /**
   * Snapshots the state machine at the applied index (call only between two Readies), makes
   * it durable, then has the loop compact the log behind it (keeping `keepEntries`).
   */
  private async snapshotNow(core: RaftCore): Promise<void> {
    const st = this.storage as RaftStorage;
    const sm = this.sm as SessionStateMachine<Op, Result>;
    let snap: CoreSnapshot;
    // Entry bytes applied when the image was taken (now, between two Readies).
    const bytesMark = this.appliedBytes;
    if (this.opts.slicedSnapshots !== false) {
      // Captured now, between two Readies; encoded in slices so the loop keeps serving
      // (a 10,000-key KV image held a busy node's loop for 100-400 ms in one piece).
      const meta = core.snapshotMeta();
      const data = await sm.snapshotAsync(() => this.pauseForLoop());
      if (this.stopped) return;
      snap = core.snapshotTakenAt(meta, data);
      // A newer snapshot (installed from the leader) arrived while this one was encoded.
      if (snap.meta.index !== meta.index) return;
    } else snap = core.snapshotTaken(sm.snapshot());
    const before = {
      index: this.lastSnapshotIndex,
      mark: this.snapshotBytesMark,
      bytes: this.lastImageBytes,
    };
    this.lastSnapshotIndex = snap.meta.index;
    this.snapshotBytesMark = bytesMark;
    this.lastImageBytes = snap.data.byteLength;
    const undo = () => {
      this.lastSnapshotIndex = before.index;
      this.snapshotBytesMark = before.mark;
      this.lastImageBytes = before.bytes;
    };
    // With log writes in flight the applied index may be ahead of the durable log. A
    // snapshot must never be durable ahead of the log it covers (a restart would find a
    // gap between them), so the image taken now is written once the log has caught up.
    await this.logDurableTo(snap.meta.index);
    if (this.stopped) return;
    const w = await st.snapshots
      .create({
        index: snap.meta.index,
        term: snap.meta.term,
        membership: snap.meta.membership,
      })
      .catch((e: unknown) => {
        undo();
        throw e;
      });
    try {
      await w.write(snap.data);
      await w.commit();
    } catch (e) {
      await w.abort().catch(() => {});
      undo();
      throw e;
    }
    if (this.stopped) return;
    // The snapshot is durable: the log behind it may go (done by the loop, between Readies).
    const upTo = snap.meta.index - (this.opts.keepEntries ?? 1000);
    if (upTo > 0 && (this.compactDue === undefined || upTo > this.compactDue)) {
      this.compactDue = upTo;
      this.schedule();
    }
    await st.snapshots.prune(this.opts.keepSnapshots ?? 2);
  }

  /** Resolves after the event loop had a turn (lets messages in between snapshot slices). */
  private pauseForLoop(): Promise<void> {
    return new Promise((resolve) => this.ctx.clock.schedule(resolve));
  }

  /** Compacts the core's and the store's log up to `upTo` (a durable snapshot covers it). */
  private compactLog(core: RaftCore, upTo: number): void {
    this.compactDue = undefined;
    const st = this.storage as RaftStorage;
    // Never past what the store holds durably (writes may be in flight).
    upTo = Math.min(upTo, core.log.stableIndex);
    const term = core.log.term(upTo);
    if (upTo <= st.log.firstIndex() - 1 || term === undefined) return;
    core.compact(upTo);
    // Queued behind the appends already issued; a failure there fails the store (and the
    // next append, which stops the node).
    st.log.compact(upTo, term).catch((e: unknown) => this.fatal(e));
  }

  private async serveSnapshotWaiters(core: RaftCore): Promise<void> {
    const waiters = this.snapshotWaiters;
    this.snapshotWaiters = [];
    try {
      await this.snapshotting?.catch(() => {});
      await this.snapshotNow(core);
      if (this.stopped) throw new ProposeError('Stopped', `raft node ${this.id_} stopped`);
      if (this.compactDue !== undefined) this.compactLog(core, this.compactDue);
      for (const w of waiters) w.resolve(this.lastSnapshotIndex);
    } catch (e) {
      for (const w of waiters) w.reject(e);
    }
  }

  /**
   * Takes a snapshot now (operators, tests) and compacts the log behind it; resolves with
   * its index once it is durable. Runs between two Readies of the I/O loop.
   */
  snapshot(): Promise<number> {
    this.requireCore();
    return new Promise<number>((resolve, reject) => {
      this.snapshotWaiters.push({ resolve, reject });
      if (!this.looping) this.schedule();
    });
  }

  private settleAll(): void {
    if (this.settled.length > 0) {
      const ps = this.settled;
      const rs = this.settledWith;
      this.settled = [];
      this.settledWith = [];
      for (let i = 0; i < ps.length; i++) {
        const r = rs[i];
        if (r instanceof Error) this.settle(ps[i] as PendingProposal, undefined, r);
        else this.settle(ps[i] as PendingProposal, r);
      }
    }
    if (this.readsReleased.length > 0) {
      const rs = this.readsReleased;
      this.readsReleased = [];
      for (const r of rs) this.settleRead(r.w, r.index);
    }
  }

  private fatal(e: unknown): void {
    if (this.stopped) return;
    const err = e as { code?: string; message?: string };
    this.ctx.emit({
      type: 'fatal',
      code: err.code ?? 'SYNOD_ERR_RAFT_FATAL',
      error: err.message ?? String(e),
    });
    this.ctx.log.log('error', `raft node ${this.id_} stopping: ${err.message ?? String(e)}`, {
      code: err.code,
    });
    this.stopped = true;
    this.ctx.stopSelf();
  }

  /**
   * Publishes the core's state: first the actor state (`state$`), then each changed
   * stream. Called after the core has changed *and* (for applied entries) after
   * `core.advance`, so whatever a subscriber reads from `status()` already agrees.
   */
  private publish(): void {
    const core = this.core;
    if (!core) return;
    const role = core.role;
    const term = core.term;
    const leader = core.leader;
    const commit = core.log.committed;
    const applied = this.appliedUpTo;
    const m = core.membership();
    const st = this.lastState;
    if (
      st === undefined ||
      st.role !== role ||
      st.term !== term ||
      st.leader !== leader ||
      st.commitIndex !== commit ||
      st.appliedIndex !== applied ||
      st.membership !== m
    ) {
      this.lastState = {
        id: this.id_,
        role,
        term,
        leader,
        commitIndex: commit,
        appliedIndex: applied,
        membership: m,
      };
      this.ctx.setState(this.lastState);
    }
    if (this.role.value !== role) this.role.next(role);
    if (this.term.value !== term) this.term.next(term);
    if (this.leader.value !== leader) this.leader.next(leader);
    if (this.commitIndex.value !== commit) this.commitIndex.next(commit);
    if (this.appliedIndex.value !== applied) this.appliedIndex.next(applied);
    if (m !== this.membership.value) this.membership.next(m);
  }

  override initialState(): RaftNodeState | undefined {
    return undefined;
  }
}

/**
 * Messages that may go out before this Ready's log writes are durable (the leader's
 * replication traffic: appends, heartbeats, snapshot chunks; a witness promises nothing
 * durable, the term it states is at most the one in memory), and the rest, which wait.
 */
function splitEarlyMessages(ms: RaftMessage[]): { early: RaftMessage[]; rest: RaftMessage[] } {
  const early: RaftMessage[] = [];
  const rest: RaftMessage[] = [];
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i] as RaftMessage;
    if (
      m.type === 'append' ||
      m.type === 'heartbeat' ||
      m.type === 'snapshot' ||
      m.type === 'readWitness'
    )
      early.push(m);
    else rest.push(m);
  }
  return { early, rest };
}
