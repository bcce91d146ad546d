/**
 * `ReplicatedLog` on Multi-Paxos: the face the KV service and the backup agent use, so they
 * run unchanged on Raft or on Multi-Paxos. One `MultiPaxosLog` lives on each node, next to
 * that node's proposer and learner actors.
 *
 * - `propose` queues the command at the local proposer (which must lead: otherwise
 *   `NotLeader` with a leader hint) and resolves once the local learner applied it, with the
 *   state machine's result. Client sessions make (clientId, seq) apply at most once: a retry
 *   of an applied command resolves with the original result.
 * - `readBarrier` goes through the log: a no-op barrier is chosen after the read was issued,
 *   and the promise resolves with its slot once the local learner applied it. With a leader
 *   lease the barrier is skipped and the leader's highest assigned slot is used instead.
 * - Errors are `ProposeError`s: `NotLeader` and `Dropped` mean definitely not applied,
 *   `Timeout` and `Stopped` are indeterminate.
 */
import { BehaviorSubject, type Observable, Subject, type Subscription } from 'rxjs';
import type { ActorRef } from '../../lib/actor.js';
import { nodeOf } from '../../lib/address.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { Queue } from '../../lib/queue.js';
import {
  type AppliedEntry,
  type Command,
  ProposeError,
  type ProposeResult,
  type ReplicatedLog,
} from '../../lib/replicated-log.js';
import type { MultiLeaderView, SubmitResult } from './multi-leader.js';
import type { MultiLearnerView } from './multi-learner.js';
import type { MultiLearnerMsg } from './multi-learner-actor.js';
import type { MultiProposerMsg } from './multi-proposer-actor.js';

export interface MultiPaxosLogOptions {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly proposer: ActorRef<MultiProposerMsg, MultiLeaderView | undefined>;
  readonly learner: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined>;
  /** Default for `propose` and `readBarrier`. Default 5000 ms. */
  readonly defaultTimeoutMs?: number;
  /** Makes barrier ids unique across restarts of this node (e.g. a random number). */
  readonly incarnation: string;
  /**
   * The local proposer actor itself, when it runs in this process: `propose` then queues
   * commands with a direct call instead of an ask (no reply message, no ask timer).
   */
  readonly localProposer?: { submitLocal(command: Command): SubmitResult };
  /**
   * The local learner actor itself, when it runs in this process: applied slots then arrive
   * by a direct call per batch instead of an events$ subscription.
   */
  readonly localLearner?: {
    setAppliedListener(
      listener:
        | {
            applied(records: readonly unknown[], appliedUpTo: number): void;
            wantsCommands(): boolean;
          }
        | undefined,
    ): void;
  };
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

/**
 * A proposal waiting to be applied. Proposals do not get a timer each (one per write was a
 * visible share of the write path): they wait in a FIFO per timeout length, so deadlines in
 * one queue are in order, and one timer per log fires at the earliest deadline.
 */
interface PendingProposal<Result> {
  readonly key: string;
  readonly deadline: number;
  readonly ms: number;
  done: boolean;
  resolve(v: ProposeResult<Result>): void;
  reject(e: Error): void;
}

export class MultiPaxosLog<Op = unknown, Result = unknown> implements ReplicatedLog<Op, Result> {
  readonly nodeId: string;
  private readonly leaderSubject = new BehaviorSubject<string | undefined>(undefined);
  private readonly commitSubject = new BehaviorSubject<number>(0);
  private readonly appliedIndexSubject = new BehaviorSubject<number>(0);
  private readonly appliedSubject = new Subject<AppliedEntry<Op, Result>>();
  readonly leader$: Observable<string | undefined> = this.leaderSubject.asObservable();
  readonly commitIndex$: Observable<number> = this.commitSubject.asObservable();
  readonly appliedIndex$: Observable<number> = this.appliedIndexSubject.asObservable();
  readonly applied$: Observable<AppliedEntry<Op, Result>> = this.appliedSubject.asObservable();

  private readonly proposals = new Map<string, PendingProposal<Result>[]>();
  /** Per timeout length (ms), the proposals in the order they were made (deadline order). */
  /** Per timeout length, the proposals in deadline order (a FIFO: same length, later start). */
  private readonly expiry = new Map<number, Queue<PendingProposal<Result>>>();
  private sweepTimer: TimerHandle | undefined;
  private sweepAt = Number.POSITIVE_INFINITY;
  private readonly barriers = new Map<string, Waiter<number>>();
  private readonly indexWaiters = new Set<Waiter<number> & { index: number }>();
  private readonly subs: Subscription[] = [];
  private barrierSeq = 0;
  /**
   * The slot the local learner has applied up to (published on appliedIndex$ once per batch).
   * It goes back only when the learner restarted alone and resumed from an older snapshot
   * (or none): its state machine then holds only that much, so reads and barriers must wait
   * for it to catch up again rather than read the older state.
   */
  private appliedIdx = 0;
  /** The highest slot applied$ has emitted: after a learner restart, re-applied slots are not emitted again. */
  private emittedIdx = 0;
  private stopped = false;
  private readonly timeoutMs: number;

  constructor(private readonly opts: MultiPaxosLogOptions) {
    this.nodeId = opts.nodeId;
    this.timeoutMs = opts.defaultTimeoutMs ?? 5000;
    opts.localLearner?.setAppliedListener({
      applied: (records, appliedUpTo) => {
        if (appliedUpTo < this.appliedIdx) {
          // The learner restarted alone and went back (see appliedIdx): say so at once.
          this.appliedIdx = appliedUpTo;
          this.appliedIndexSubject.next(appliedUpTo);
        } else if (appliedUpTo > this.appliedIdx) this.appliedIdx = appliedUpTo;
        for (const r of records) this.onApplied(r as AppliedEvent<Op, Result>);
        this.dropSettled();
      },
      // A command record matters only to a proposal waiting here or to an applied$ reader:
      // a follower's log has neither, and then its learner builds none.
      wantsCommands: () => this.proposals.size > 0 || this.appliedSubject.observed,
    });
    this.subs.push(
      ...(opts.localLearner
        ? []
        : [
            opts.learner.events$.subscribe((e) => {
              if (e.type !== 'applied-batch') return;
              for (const r of e.records as readonly unknown[]) {
                this.onApplied(r as AppliedEvent<Op, Result>);
              }
              this.dropSettled();
            }),
          ]),
      // The learner publishes its state once per batch of applied slots, after their
      // `applied` events: the indexes move here, once per batch rather than once per slot.
      opts.learner.state$.subscribe((v) => {
        if (!v) return;
        const applied = this.appliedIdx;
        if (applied !== this.appliedIndexSubject.value) this.appliedIndexSubject.next(applied);
        const commit = Math.max(v.knownChosenUpTo, applied);
        if (commit > this.commitSubject.value) this.commitSubject.next(commit);
        if (this.indexWaiters.size > 0) this.releaseIndexWaiters();
      }),
      opts.proposer.state$.subscribe((v) => {
        const leader = v?.leader !== undefined ? nodeOf(v.leader) : undefined;
        if (leader !== this.leaderSubject.value) this.leaderSubject.next(leader);
      }),
      opts.proposer.events$.subscribe((e) => {
        if (e.type !== 'proposal-dropped') return;
        if (typeof e.clientId === 'string' && typeof e.seq === 'number') {
          this.failProposal(
            key(e.clientId, e.seq),
            new ProposeError('Dropped', 'leadership was lost before the command was sent'),
          );
        } else if (typeof e.barrier === 'string') {
          const w = this.barriers.get(e.barrier);
          if (w) {
            this.barriers.delete(e.barrier);
            w.timer.cancel();
            w.reject(new ProposeError('NotLeader', 'leadership was lost before the read'));
          }
        }
      }),
    );
  }

  /** The highest slot applied on this node. */
  get appliedIndex(): number {
    return this.appliedIdx;
  }

  propose(command: Command<Op>, options?: { timeoutMs?: number }): Promise<ProposeResult<Result>> {
    if (this.stopped) {
      return Promise.reject(new ProposeError('Stopped', 'the log is stopped', undefined, false));
    }
    const k = key(command.clientId, command.seq);
    const ms = options?.timeoutMs ?? this.timeoutMs;
    const done = this.track(k, ms);
    const local = this.opts.localProposer;
    if (local) {
      const r = local.submitLocal(command);
      if (!r.ok) this.refused(k, r);
      return done;
    }
    this.opts.proposer.ask({ type: 'mp.submit', command }, ms).then(
      (r) => {
        if (!r.ok) this.refused(k, r);
      },
      (err: Error) =>
        this.failProposal(k, new ProposeError('Stopped', `proposer unavailable: ${err.message}`)),
    );
    return done;
  }

  private track(k: string, ms: number): Promise<ProposeResult<Result>> {
    return new Promise<ProposeResult<Result>>((resolve, reject) => {
      const deadline = this.opts.clock.now() + ms;
      const p: PendingProposal<Result> = { key: k, deadline, ms, done: false, resolve, reject };
      const list = this.proposals.get(k);
      if (list) list.push(p);
      else this.proposals.set(k, [p]);
      let q = this.expiry.get(ms);
      if (!q) {
        q = new Queue<PendingProposal<Result>>();
        this.expiry.set(ms, q);
      }
      q.push(p);
      if (deadline < this.sweepAt) this.armSweep(deadline);
    });
  }

  private refused(k: string, r: Exclude<SubmitResult, { ok: true }>): void {
    const hint = r.code === 'NotLeader' && r.leaderHint ? nodeOf(r.leaderHint) : undefined;
    this.failProposal(
      k,
      r.code === 'NotLeader'
        ? new ProposeError('NotLeader', `${this.nodeId} is not the leader`, hint)
        : new ProposeError('Dropped', 'the proposal queue is full'),
    );
    // Refused proposals are settled at once: let them leave the expiry queues too (a client
    // retrying against a former leader would otherwise fill them until the next sweep).
    this.dropSettled();
  }

  private armSweep(at: number): void {
    this.sweepTimer?.cancel();
    this.sweepAt = at;
    const delay = Math.max(0, at - this.opts.clock.now());
    this.sweepTimer = this.opts.clock.setTimer(delay, () => this.sweep());
  }

  /** Times out the proposals whose deadline passed; re-arms for the earliest one left. */
  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const now = this.opts.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [ms, q] of this.expiry) {
      for (let p = q.peek(); p !== undefined; p = q.peek()) {
        if (!p.done) {
          if (p.deadline > now) break;
          this.removeProposal(p);
          p.done = true;
          p.reject(new ProposeError('Timeout', `not applied within ${ms} ms`));
        }
        q.shift();
      }
      const first = q.peek();
      if (first === undefined) this.expiry.delete(ms);
      else if (first.deadline < next) next = first.deadline;
    }
    if (next < Number.POSITIVE_INFINITY) this.armSweep(next);
  }

  /**
   * Forgets the settled proposals at the front of each expiry queue. Without this they stayed
   * queued until their deadline (seconds) although settled in about a millisecond, so every
   * proposal (its promise, its callbacks, its key) outlived the young generation and was
   * copied and promoted by the collector. Amortised O(1) per proposal.
   */
  private dropSettled(): void {
    for (const [ms, q] of this.expiry) {
      while (q.peek()?.done) q.shift();
      if (q.length === 0) this.expiry.delete(ms);
    }
  }

  readBarrier(options?: { timeoutMs?: number }): Promise<number> {
    if (this.stopped) {
      return Promise.reject(new ProposeError('Stopped', 'the log is stopped', undefined, false));
    }
    const ms = options?.timeoutMs ?? this.timeoutMs;
    const id = `${this.nodeId}:${this.opts.incarnation}:${this.barrierSeq++}`;
    return new Promise<number>((resolve, reject) => {
      const w: Waiter<number> = {
        resolve: (index) => this.waitApplied(index, resolve, reject),
        reject,
        timer: this.opts.clock.setTimer(ms, () => {
          this.barriers.delete(id);
          reject(new ProposeError('Timeout', `read barrier not applied within ${ms} ms`));
        }),
      };
      this.barriers.set(id, w);
      this.opts.proposer.ask({ type: 'mp.read', barrier: id }, ms).then(
        (r) => {
          if (!r.ok) {
            this.barriers.delete(id);
            w.timer.cancel();
            const hint = r.code === 'NotLeader' && r.leaderHint ? nodeOf(r.leaderHint) : undefined;
            reject(new ProposeError('NotLeader', `${this.nodeId} is not the leader`, hint));
          } else if ('index' in r) {
            this.barriers.delete(id);
            w.timer.cancel();
            this.waitApplied(r.index, resolve, reject);
          }
        },
        (err: Error) => {
          this.barriers.delete(id);
          w.timer.cancel();
          reject(new ProposeError('Stopped', `proposer unavailable: ${err.message}`));
        },
      );
    });
  }

  /** Fails every pending call with `Stopped` and detaches from the actors. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of this.subs) s.unsubscribe();
    this.opts.localLearner?.setAppliedListener(undefined);
    const err = () => new ProposeError('Stopped', 'the log was stopped');
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    for (const list of this.proposals.values()) {
      for (const p of list) {
        p.done = true;
        p.reject(err());
      }
    }
    this.proposals.clear();
    this.expiry.clear();
    for (const w of this.barriers.values()) {
      w.timer.cancel();
      w.reject(err());
    }
    this.barriers.clear();
    for (const w of this.indexWaiters) {
      w.timer.cancel();
      w.reject(err());
    }
    this.indexWaiters.clear();
    this.appliedSubject.complete();
  }

  private waitApplied(index: number, resolve: (i: number) => void, reject: (e: Error) => void) {
    if (this.appliedIdx >= index) {
      resolve(index);
      return;
    }
    const w = {
      index,
      resolve,
      reject,
      timer: this.opts.clock.setTimer(this.timeoutMs, () => {
        this.indexWaiters.delete(w);
        reject(new ProposeError('Timeout', `slot ${index} not applied in time`));
      }),
    };
    this.indexWaiters.add(w);
  }

  private onApplied(e: AppliedEvent<Op, Result>): void {
    if (e.index > this.appliedIdx) this.appliedIdx = e.index;
    const emitted = this.emittedIdx;
    if (e.index > emitted) this.emittedIdx = e.index;
    if (e.kind === 'cmd') {
      if (!e.duplicate && e.index > emitted && this.appliedSubject.observed) {
        this.appliedSubject.next({
          index: e.index,
          term: e.term,
          command: e.command,
          result: e.result,
        });
      }
      if (this.proposals.size > 0) {
        const k = key(e.command.clientId, e.command.seq);
        const list = this.proposals.get(k);
        if (list) {
          this.proposals.delete(k);
          const r = { index: e.index, term: e.term, result: e.result };
          for (const p of list) {
            p.done = true;
            p.resolve(r);
          }
        }
      }
    } else if (e.kind === 'snapshot') {
      // Commands covered by an installed snapshot never show up one by one: ask the
      // session table, which travelled with the snapshot.
      for (const k of [...this.proposals.keys()]) {
        const [clientId, seq] = k.split('\u0000') as [string, string];
        this.opts.learner
          .ask({ type: 'mp.session', clientId, seq: Number(seq) }, this.timeoutMs)
          .then((check) => {
            if (!check.duplicate) return;
            const list = this.proposals.get(k);
            if (!list) return;
            this.proposals.delete(k);
            for (const p of list) {
              p.done = true;
              p.resolve({ index: e.index, term: e.term, result: check.result as Result });
            }
          })
          .catch(() => undefined);
      }
    } else if (e.kind === 'noop' && e.barrier !== undefined) {
      const w = this.barriers.get(e.barrier);
      if (w) {
        this.barriers.delete(e.barrier);
        w.timer.cancel();
        w.resolve(e.index);
      }
    }
  }

  private releaseIndexWaiters(): void {
    for (const w of this.indexWaiters) {
      if (this.appliedIdx >= w.index) {
        this.indexWaiters.delete(w);
        w.timer.cancel();
        w.resolve(w.index);
      }
    }
  }

  private failProposal(k: string, err: ProposeError): void {
    const list = this.proposals.get(k);
    if (!list) return;
    this.proposals.delete(k);
    for (const p of list) {
      p.done = true;
      p.reject(err);
    }
  }

  private removeProposal(p: PendingProposal<Result>): void {
    const list = this.proposals.get(p.key);
    if (!list) return;
    const rest = list.filter((x) => x !== p);
    if (rest.length === 0) this.proposals.delete(p.key);
    else this.proposals.set(p.key, rest);
  }
}

type AppliedEvent<Op, Result> =
  | {
      type: 'applied';
      kind: 'cmd';
      index: number;
      term: number;
      command: Command<Op>;
      result: Result;
      duplicate: boolean;
    }
  | { type: 'applied'; kind: 'noop'; index: number; term: number; barrier?: string }
  | { type: 'applied'; kind: 'snapshot'; index: number; term: number };

function key(clientId: string, seq: number): string {
  return `${clientId}\u0000${seq}`;
}
