/**
 * The Multi-Paxos learner actor (a replica): the `MultiLearnerCore` and the state machine
 * behind a mailbox, with snapshots in a `SnapshotStore`. On start it restores the newest
 * snapshot that verifies, then catches up from its peers.
 *
 * Requests (ask): `mp.session` (what the session table says about a command).
 * state$: MultiLearnerView (applied index, known chosen prefix, snapshot index).
 * events$: `applied-batch` (one per batch of applied slots, `records`: one `AppliedRecord` per
 * slot — kind cmd/noop/snapshot, index, term, and for commands the command, result and
 * whether it was a duplicate), `snapshot-saved`, `snapshot-failed`, `bad-message`.
 * (One event per batch, not per slot: an RxJS emission per slot on every replica was a
 * visible share of the write path, and a node's own watchers of events$ — lib/node — would
 * run once per slot.)
 */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import type { SnapshotStore } from '../../lib/storage/types.js';
import { PaxosError } from './errors.js';
import {
  type AppliedRecord,
  MultiLearnerCore,
  type MultiLearnerOptions,
  type MultiLearnerOutput,
  type MultiLearnerView,
  type PendingSnapshot,
} from './multi-learner.js';
import { fromWire, type MultiPaxosMessage, type SnapshotImage, toWire } from './multi-messages.js';
import type { SessionCheck } from './sessions.js';

export type MultiLearnerMsg =
  | MultiPaxosMessage
  | { readonly type: 'mp.learner-tick' }
  | ({
      readonly type: 'mp.session';
      readonly clientId: string;
      readonly seq: number;
    } & Replies<SessionCheck>);

export interface MultiPaxosLearnerOptions {
  readonly stateMachine: StateMachine;
  readonly snapshots: SnapshotStore;
  /** Every learner address (peers for catch-up). */
  readonly peers: readonly string[];
  readonly localAcceptor?: string;
  readonly localProposer?: string;
  readonly snapshotEvery?: number;
  /** See MultiLearnerOptions.snapshotLogRatio (default 1 with the default `snapshotEvery`). */
  readonly snapshotLogRatio?: number;
  readonly snapshotEveryMax?: number;
  readonly catchupRetryMs?: number;
  readonly maxCatchupEntries?: number;
  readonly sessionWindow?: number;
  /** See MultiLearnerOptions.keepAfterSnapshot (default 1000). */
  readonly keepAfterSnapshot?: number;
  /** See MultiLearnerOptions.localValue (the co-located acceptor's `acceptedAt`). */
  readonly localValue?: MultiLearnerOptions['localValue'];
  /** See MultiLearnerOptions.localSlots (the co-located acceptor actor itself). */
  readonly localSlots?: MultiLearnerOptions['localSlots'];
  /** Snapshots kept in the store. Default 2. */
  readonly keepSnapshots?: number;
  /** Default 20 ms. */
  readonly tickMs?: number;
  /**
   * Publish `applied-batch` events on events$ (default true). `startMultiPaxosNode` turns them
   * off unless asked (its `MultiPaxosLog` gets applied slots through `setAppliedListener`): a
   * node's events$ is always watched (for `failed`), so the learner cannot tell a reader of
   * `applied-batch` events from a watcher, and building a record per slot on every replica
   * for nobody was most of a follower's allocations per write.
   */
  readonly appliedEvents?: boolean;
  /**
   * Encode snapshots in slices, giving the event loop back between them (default true; see
   * MultiLearnerOptions.snapshotPause). Only a state machine with `snapshotAsync` can; others
   * are encoded in one go.
   */
  readonly slicedSnapshots?: boolean;
}

/** Told synchronously about each batch of applied slots (see `setAppliedListener`). */
export interface AppliedListener {
  /**
   * `records`: the batch's records (`cmd` records only if `wantsCommands` said so before the
   * batch, or `applied-batch` events are on); `appliedUpTo`: the applied index after it.
   * Called whenever the applied index moved, even with no records.
   */
  applied(records: readonly AppliedRecord[], appliedUpTo: number): void;
  /** Asked before each message the learner handles: are `cmd` records needed now? */
  wantsCommands(): boolean;
}

export class MultiPaxosLearner extends Actor<MultiLearnerMsg, MultiLearnerView | undefined> {
  private core: MultiLearnerCore | undefined;
  private listener: AppliedListener | undefined;
  /** The applied index last handed to the listener. */
  private reportedUpTo = 0;
  /** Snapshot saves, chained: each starts after the previous one settled. */
  private saving: Promise<void> = Promise.resolve();
  /** The snapshot being encoded in slices (at most one), until it is handed to `saving`. */
  private encoding: Promise<void> = Promise.resolve();
  private stopped = false;
  /**
   * The state machine's image before this learner applied anything, taken at the first start
   * when the store held no snapshot: a restart that finds none resets the state machine to it
   * (the object is the same, and still holds what the failed incarnation applied).
   */
  private initialImage: Uint8Array | undefined;
  private started = false;

  constructor(private readonly opts: MultiPaxosLearnerOptions) {
    super();
  }

  /**
   * Hands every batch of applied records to `listener` (in this process, synchronously,
   * before the same records go out on events$ and before state$ moves). `MultiPaxosLog` uses
   * it instead of an events$ subscription: one call per batch instead of an RxJS emission per
   * slot, and no `cmd` record built while it has no proposal waiting and no `applied$` reader.
   */
  setAppliedListener(listener: AppliedListener | undefined): void {
    this.listener = listener;
  }

  /** Sets the core's `recordCommands` for the next message: does anyone read `cmd` records? */
  private prepare(core: MultiLearnerCore): void {
    core.recordCommands =
      this.opts.appliedEvents !== false || this.listener?.wantsCommands() === true;
  }

  /**
   * The failed incarnation's core is dropped at once: an encoding or a save of its snapshot
   * that ends from now on is neither stored nor reported (it would compact the local acceptor
   * past the snapshot the restarted learner reads back).
   */
  override preRestart(): void {
    this.core = undefined;
  }

  override async preStart(): Promise<void> {
    // After a restart: an encoding or a save still running finishes before the store is read
    // back.
    await this.encoding;
    await this.saving;
    let restored: SnapshotImage | undefined;
    const latest = await this.opts.snapshots.latest();
    if (latest) {
      const data = await latest.readAll();
      restored = { index: latest.meta.index, term: latest.meta.term, data };
    }
    if (!this.started) {
      this.started = true;
      if (!restored) this.initialImage = this.opts.stateMachine.snapshot();
    } else if (!restored) {
      if (this.initialImage === undefined)
        throw new PaxosError(
          'SYNOD_ERR_PAXOS_BAD_STATE',
          'the learner restarted, its snapshot store is empty but it started from a snapshot',
        );
      this.opts.stateMachine.restore(this.initialImage);
    }
    this.core = new MultiLearnerCore(
      {
        id: this.ctx.self,
        peers: this.opts.peers,
        stateMachine: this.opts.stateMachine,
        ...(this.opts.localAcceptor !== undefined
          ? { localAcceptor: this.opts.localAcceptor }
          : {}),
        ...(this.opts.localProposer !== undefined
          ? { localProposer: this.opts.localProposer }
          : {}),
        ...(this.opts.snapshotEvery !== undefined
          ? { snapshotEvery: this.opts.snapshotEvery }
          : {}),
        ...(this.opts.snapshotLogRatio !== undefined
          ? { snapshotLogRatio: this.opts.snapshotLogRatio }
          : {}),
        ...(this.opts.snapshotEveryMax !== undefined
          ? { snapshotEveryMax: this.opts.snapshotEveryMax }
          : {}),
        ...(this.opts.catchupRetryMs !== undefined
          ? { catchupRetryMs: this.opts.catchupRetryMs }
          : {}),
        ...(this.opts.maxCatchupEntries !== undefined
          ? { maxCatchupEntries: this.opts.maxCatchupEntries }
          : {}),
        ...(this.opts.sessionWindow !== undefined
          ? { sessionWindow: this.opts.sessionWindow }
          : {}),
        ...(this.opts.keepAfterSnapshot !== undefined
          ? { keepAfterSnapshot: this.opts.keepAfterSnapshot }
          : {}),
        ...(this.opts.localValue !== undefined ? { localValue: this.opts.localValue } : {}),
        ...(this.opts.localSlots !== undefined ? { localSlots: this.opts.localSlots } : {}),
        ...(this.opts.slicedSnapshots !== false ? { snapshotPause: this.pauseForLoop } : {}),
      },
      restored,
    );
    if (restored) {
      const r: AppliedRecord = {
        type: 'applied',
        kind: 'snapshot',
        index: restored.index,
        term: restored.term,
      };
      this.listener?.applied([r], restored.index);
      if (this.opts.appliedEvents !== false) {
        this.ctx.emit({ type: 'applied-batch', records: [r] });
      }
    }
    this.reportedUpTo = this.core.applied;
    // Tell the local proposer where this learner starts. After a restart that is below what
    // it reported before (the slots since its snapshot were in memory only): a leader then
    // recovers them from the acceptors, since perhaps no learner holds them any more.
    if (this.opts.localProposer !== undefined)
      this.ctx.send(
        this.opts.localProposer,
        toWire({
          type: 'mp.learned',
          from: this.ctx.self,
          decidedUpTo: this.core.applied,
        }) as MultiPaxosMessage,
      );
    this.ctx.setState(this.core.view());
    this.ctx.timers.repeat('tick', this.opts.tickMs ?? 20, { type: 'mp.learner-tick' });
  }

  /** Synchronous: snapshots are stored in the background (`saveInBackground`). */
  receive(msg: MultiLearnerMsg | Terminated): void {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    const now = this.ctx.clock.now();
    switch (msg.type) {
      case 'mp.learner-tick':
        this.prepare(core);
        this.handle(core.tick(now));
        return;
      case 'mp.session':
        this.ctx.reply(msg, core.session(msg.clientId, msg.seq));
        return;
      default: {
        const m = fromWire(msg);
        if ('problem' in m) {
          const problem = m.problem;
          this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
          return;
        }
        this.prepare(core);
        this.handle(core.step(m, now));
        return;
      }
    }
  }

  private handle(out: MultiLearnerOutput): void {
    for (const s of out.send) this.ctx.send(s.to, toWire(s.msg) as MultiPaxosMessage);
    const core = this.core as MultiLearnerCore;
    if (this.emitApplied(core, out.applied)) this.ctx.setState(core.view());
    if (out.snapshot) this.saveInBackground(core, out.snapshot);
    if (out.snapshotPending) this.encodeAndSave(core, out.snapshotPending);
  }

  /** Lets the event loop run (messages, timers, I/O) between two slices of a snapshot encoding. */
  private readonly pauseForLoop = (): Promise<void> =>
    new Promise((resolve) => this.ctx.clock.schedule(resolve));

  /**
   * A snapshot captured by the core and being encoded in slices: once encoded (the learner
   * goes on applying meanwhile), stored like any other, unless the core no longer wants it (a
   * snapshot installed from a peer replaced it). An encoding that fails is reported as a failed
   * snapshot; a later one will be taken.
   */
  private encodeAndSave(core: MultiLearnerCore, pending: PendingSnapshot): void {
    const fail = (err: unknown) => {
      if (this.stopped || this.core !== core) return;
      core.snapshotFailed(pending.index);
      this.ctx.emit({
        type: 'snapshot-failed',
        index: pending.index,
        error: (err as Error).message,
      });
    };
    const done = pending.data.then((data) => {
      if (this.stopped || this.core !== core) return;
      if (!core.snapshotEncoded(pending.index, data)) return;
      this.saveInBackground(core, { index: pending.index, term: pending.term, data });
    }, fail);
    this.encoding = this.encoding.then(() => done);
  }

  /**
   * Stores a snapshot while the learner goes on applying (as Raft's node does): saves run one
   * after another, and only a durable one is reported to the core (`snapshotPersisted`, which
   * compacts the local acceptor and the retained slots) and served to peers. A save that ends
   * after the actor stopped or restarted is not reported (the new core reads the store).
   */
  private saveInBackground(core: MultiLearnerCore, snap: SnapshotImage): void {
    this.saving = this.saving
      .then(() => this.save(snap))
      .then(
        () => {
          if (this.stopped || this.core !== core) return;
          this.ctx.emit({ type: 'snapshot-saved', index: snap.index, bytes: snap.data.length });
          this.prepare(core);
          this.handle(core.snapshotPersisted(snap.index));
          this.ctx.setState(core.view());
        },
        (err: unknown) => {
          if (this.stopped || this.core !== core) return;
          core.snapshotFailed(snap.index);
          this.ctx.emit({
            type: 'snapshot-failed',
            index: snap.index,
            error: (err as Error).message,
          });
        },
      );
  }

  override async postStop(): Promise<void> {
    // The stores are closed after the actor stops: let a snapshot being saved finish first.
    this.stopped = true;
    await this.encoding;
    await this.saving;
  }

  /** Hands out a batch of applied records; true if the applied index moved (or any record). */
  private emitApplied(core: MultiLearnerCore, applied: MultiLearnerOutput['applied']): boolean {
    const upTo = core.applied;
    if (applied.length === 0 && upTo === this.reportedUpTo) return false;
    this.reportedUpTo = upTo;
    this.listener?.applied(applied, upTo);
    if (applied.length === 0) return true;
    if (this.opts.appliedEvents !== false) {
      this.ctx.emit({ type: 'applied-batch', records: applied });
    }
    for (let i = 0; i < applied.length; i++) {
      const r = applied[i] as AppliedRecord;
      if (r.kind === 'noop' && r.invalid !== undefined) {
        this.ctx.emit({
          type: 'bad-message',
          code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE',
          problem: `slot ${r.index} holds a malformed command (skipped): ${r.invalid}`,
        });
      }
    }
    return true;
  }

  private async save(snap: SnapshotImage): Promise<void> {
    const w = await this.opts.snapshots.create({
      index: snap.index,
      term: snap.term,
      membership: { voters: [], learners: [...this.opts.peers] },
    });
    try {
      await w.write(snap.data);
      await w.commit();
    } catch (err) {
      await w.abort().catch(() => undefined);
      throw err;
    }
    await this.opts.snapshots.prune(this.opts.keepSnapshots ?? 2);
  }
}
