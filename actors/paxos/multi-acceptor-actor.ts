/**
 * The Multi-Paxos acceptor actor: the `MultiAcceptorCore` behind a mailbox, with its state in
 * an `AcceptorJournal`, written with group commit (docs/paxos.md, "Acceptor group commit"):
 *
 * - Every message is stepped through the core as it arrives, also while a journal write is
 *   in flight. At most one write is in flight; the writes of every step taken meanwhile are
 *   queued and go together in the next one (`AcceptorJournal.persistGroup`: one log append,
 *   one sync), so accepts arriving during a sync share the next sync instead of each paying
 *   their own in series.
 * - No reply leaves before the state it reports is durable: a step's replies wait for the
 *   write that covers the step. A step that writes nothing (a duplicate accept, a nack, a
 *   promise in the ballot already promised) may report state another step wrote and is still
 *   writing, so its replies wait behind the newest write in flight or queued; only when
 *   nothing is being written do they leave at once. Replies leave in the order of the steps.
 * - A failed write sends none of the replies it covered nor any queued after it; the core
 *   (ahead of the disk) is dropped and the actor fails through its supervision strategy on
 *   the next message (a wake-up is sent to itself): `restart` reloads the journal in
 *   `preStart` after a full disk only (the journal refuses to load after any other write
 *   failure, see `AcceptorJournal`), `stop` (what `synod node` uses) stops it.
 *
 * state$: MultiAcceptorView (promised ballot, floor, accepted slots, lease), published only
 * once durable: the view as of the last step a completed write covered.
 * events$: `bad-message` (a malformed message was dropped), plus lifecycle events.
 */
import { Actor, type Terminated } from '../../lib/actor.js';
import type { AcceptorJournal } from './acceptor-journal.js';
import type { Ballot } from './ballot.js';
import {
  MultiAcceptorCore,
  type MultiAcceptorOutput,
  type MultiAcceptorPersist,
  type MultiAcceptorView,
} from './multi-acceptor.js';
import type { LocalSlots } from './multi-learner.js';
import {
  type AcceptedSlot,
  fromWire,
  type MOutbound,
  type MultiPaxosMessage,
  packedAcceptFromWire,
  type SlotValue,
} from './multi-messages.js';

export interface MultiPaxosAcceptorOptions {
  readonly journal: AcceptorJournal;
  /** Lease granted to the leader (ms); 0 disables. Must match the proposers' leaseMs. */
  readonly leaseMs?: number;
  /** See MultiAcceptorOptions.localProposer. */
  readonly localProposer?: string;
}

/** One journal write: the writes of consecutive steps, and the replies they release. */
interface WriteGroup {
  readonly persists: MultiAcceptorPersist[];
  readonly sends: MOutbound[];
  /** The core's view after the last step of the group (set when the write starts). */
  view?: MultiAcceptorView;
}

/** The message an acceptor sends itself after a failed write, to fail where supervision sees it. */
const WRITE_FAILED = 'mp.acceptor-write-failed';

/** Journal writes made and the steps they covered (group commit), for tests and benchmarks. */
export interface AcceptorWriteStats {
  readonly writes: number;
  readonly steps: number;
}

export class MultiPaxosAcceptor
  extends Actor<MultiPaxosMessage, MultiAcceptorView | undefined>
  implements LocalSlots
{
  private core: MultiAcceptorCore | undefined;
  /** The write in flight (one at a time: the journal is not reentrant). */
  private writing: WriteGroup | undefined;
  /** Steps taken while `writing` was in flight: the next write. */
  private queued: WriteGroup | undefined;
  /** Settles when the write in flight does. */
  private writeDone: Promise<void> = Promise.resolve();
  /** A write failed: the next message fails the actor (see the class comment). */
  private failure: unknown;
  private stopped = false;
  private stats = { writes: 0, steps: 0 };

  constructor(private readonly opts: MultiPaxosAcceptorOptions) {
    super();
  }

  /** Journal writes made and the steps they covered since the actor was created. */
  writeStats(): AcceptorWriteStats {
    return { ...this.stats };
  }

  override async preStart(): Promise<void> {
    this.stopped = false;
    // A restart after a failure elsewhere: the write in flight settles before the journal is
    // read back (its replies, durable, still leave); queued steps were dropped in preRestart.
    await this.writeDone;
    this.failure = undefined;
    const durable = await this.opts.journal.load();
    this.core = new MultiAcceptorCore(
      {
        id: this.ctx.self,
        leaseMs: this.opts.leaseMs ?? 0,
        ...(this.opts.localProposer !== undefined
          ? { localProposer: this.opts.localProposer }
          : {}),
      },
      durable,
      this.ctx.clock.now(),
    );
    this.ctx.setState(this.core.view());
  }

  /**
   * The proposal accepted for `slot` (in memory, possibly not yet durable): the co-located
   * learner takes chosen values from here (`MultiLearnerOptions.localValue`). Undefined
   * before the acceptor started.
   */
  acceptedAt(slot: number): AcceptedSlot | undefined {
    return this.core?.acceptedAt(slot);
  }

  override preRestart(): void {
    // The core is rebuilt from the journal: steps not yet written are forgotten, unanswered.
    this.queued = undefined;
    this.core = undefined;
  }

  override async postStop(): Promise<void> {
    // The journal is closed after the actor stops: let the write in flight finish first.
    // Steps queued behind it are dropped unanswered, as a crash would.
    this.stopped = true;
    this.queued = undefined;
    await this.writeDone;
  }

  private badMessage(problem: string): void {
    this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
  }

  // LocalSlots: the co-located learner reads accepted values where they lie (no object per
  // slot; values that arrived packed stay packed). Undefined / −1 before the acceptor started.
  ballotAt(slot: number): Ballot | undefined {
    return this.core?.slots.ballotAt(slot);
  }

  rawAt(slot: number): SlotValue | Uint8Array | undefined {
    return this.core?.slots.rawAt(slot);
  }

  offsetAt(slot: number): number {
    return this.core?.slots.offsetAt(slot) ?? -1;
  }

  /** Steps the core at once; replies wait for the write covering them (class comment). */
  receive(msg: MultiPaxosMessage | Terminated): void {
    if (this.failure !== undefined) {
      const e = this.failure;
      this.failure = undefined;
      throw e;
    }
    const core = this.core;
    if (!core || msg.type === 'terminated' || (msg.type as string) === WRITE_FAILED) return;
    const now = this.ctx.clock.now();
    // An accept from another process keeps its entries packed (checked where they lie).
    const packed = packedAcceptFromWire(msg);
    let out: MultiAcceptorOutput;
    if (packed !== undefined) {
      if ('problem' in packed) {
        this.badMessage(packed.problem);
        return;
      }
      out = core.acceptPacked(packed, now);
    } else {
      const m = fromWire(msg);
      if ('problem' in m) {
        this.badMessage(m.problem);
        return;
      }
      out = core.step(m, now);
    }
    const send = out.send;
    if (out.persist === undefined) {
      // Nothing to write, but the reply may report what a write in flight or queued holds.
      const behind = this.queued ?? this.writing;
      if (behind === undefined) for (let i = 0; i < send.length; i++) this.sendOut(send[i]);
      else for (let i = 0; i < send.length; i++) behind.sends.push(send[i] as MOutbound);
      return;
    }
    let g = this.queued;
    if (g === undefined) {
      g = { persists: [], sends: [] };
      this.queued = g;
    }
    g.persists.push(out.persist);
    for (let i = 0; i < send.length; i++) g.sends.push(send[i] as MOutbound);
    if (this.writing === undefined) this.startWrite();
  }

  private sendOut(s: MOutbound | undefined): void {
    if (s !== undefined) this.ctx.send(s.to, s.msg);
  }

  private startWrite(): void {
    const g = this.queued as WriteGroup;
    const core = this.core as MultiAcceptorCore;
    this.queued = undefined;
    this.writing = g;
    g.view = core.view();
    this.stats.writes++;
    this.stats.steps += g.persists.length;
    this.writeDone = this.opts.journal.persistGroup(g.persists).then(
      () => this.written(g),
      (e: unknown) => this.writeFailed(e),
    );
  }

  private written(g: WriteGroup): void {
    this.writing = undefined;
    if (this.stopped) return;
    this.ctx.setState(g.view);
    const sends = g.sends;
    for (let i = 0; i < sends.length; i++) this.sendOut(sends[i]);
    if (this.queued !== undefined && this.core !== undefined) this.startWrite();
  }

  private writeFailed(e: unknown): void {
    this.writing = undefined;
    this.queued = undefined;
    if (this.stopped) return;
    // The core holds steps the disk may not: nothing more is answered from it.
    this.core = undefined;
    this.failure = e;
    this.ctx.send(this.ctx.self, { type: WRITE_FAILED });
  }
}
