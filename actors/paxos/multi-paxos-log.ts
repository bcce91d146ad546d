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
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: TimerHandle;
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

  private readonly proposals = new Map<string, Waiter<ProposeResult<Result>>[]>();
  private readonly barriers = new Map<string, Waiter<number>>();
  private readonly indexWaiters = new Set<Waiter<number> & { index: number }>();
  private readonly subs: Subscription[] = [];
  private barrierSeq = 0;
  private stopped = false;
  private readonly timeoutMs: number;

  constructor(private readonly opts: MultiPaxosLogOptions) {
    this.nodeId = opts.nodeId;
    this.timeoutMs = opts.defaultTimeoutMs ?? 5000;
    this.subs.push(
      opts.learner.events$.subscribe((e) => {
        if (e.type === 'applied') this.onApplied(e as unknown as AppliedEvent<Op, Result>);
      }),
      opts.learner.state$.subscribe((v) => {
        if (v && v.knownChosenUpTo > this.commitSubject.value) {
          this.commitSubject.next(v.knownChosenUpTo);
        }
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
    return this.appliedIndexSubject.value;
  }

  propose(command: Command<Op>, options?: { timeoutMs?: number }): Promise<ProposeResult<Result>> {
    if (this.stopped) {
      return Promise.reject(new ProposeError('Stopped', 'the log is stopped', undefined, false));
    }
    const k = key(command.clientId, command.seq);
    const ms = options?.timeoutMs ?? this.timeoutMs;
    const done = new Promise<ProposeResult<Result>>((resolve, reject) => {
      const w: Waiter<ProposeResult<Result>> = {
        resolve,
        reject,
        timer: this.opts.clock.setTimer(ms, () => {
          this.removeProposal(k, w);
          reject(new ProposeError('Timeout', `not applied within ${ms} ms`));
        }),
      };
      const list = this.proposals.get(k) ?? [];
      list.push(w);
      this.proposals.set(k, list);
    });
    const refused = (r: SubmitResult): void => {
      if (r.ok) return;
      const hint = r.code === 'NotLeader' && r.leaderHint ? nodeOf(r.leaderHint) : undefined;
      this.failProposal(
        k,
        r.code === 'NotLeader'
          ? new ProposeError('NotLeader', `${this.nodeId} is not the leader`, hint)
          : new ProposeError('Dropped', 'the proposal queue is full'),
      );
    };
    const local = this.opts.localProposer;
    if (local) {
      refused(local.submitLocal(command));
      return done;
    }
    this.opts.proposer
      .ask({ type: 'mp.submit', command }, ms)
      .then(refused, (err: Error) =>
        this.failProposal(k, new ProposeError('Stopped', `proposer unavailable: ${err.message}`)),
      );
    return done;
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
    const err = () => new ProposeError('Stopped', 'the log was stopped');
    for (const list of this.proposals.values()) {
      for (const w of list) {
        w.timer.cancel();
        w.reject(err());
      }
    }
    this.proposals.clear();
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
    if (this.appliedIndexSubject.value >= index) {
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
    if (e.index > this.appliedIndexSubject.value) {
      this.appliedIndexSubject.next(e.index);
      if (e.index > this.commitSubject.value) this.commitSubject.next(e.index);
    }
    if (e.kind === 'cmd') {
      if (!e.duplicate) {
        this.appliedSubject.next({
          index: e.index,
          term: e.term,
          command: e.command,
          result: e.result,
        });
      }
      const k = key(e.command.clientId, e.command.seq);
      const list = this.proposals.get(k);
      if (list) {
        this.proposals.delete(k);
        for (const w of list) {
          w.timer.cancel();
          w.resolve({ index: e.index, term: e.term, result: e.result });
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
            for (const w of list) {
              w.timer.cancel();
              w.resolve({ index: e.index, term: e.term, result: check.result as Result });
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
    for (const w of this.indexWaiters) {
      if (this.appliedIndexSubject.value >= w.index) {
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
    for (const w of list) {
      w.timer.cancel();
      w.reject(err);
    }
  }

  private removeProposal(k: string, w: Waiter<ProposeResult<Result>>): void {
    const list = this.proposals.get(k);
    if (!list) return;
    const rest = list.filter((x) => x !== w);
    if (rest.length === 0) this.proposals.delete(k);
    else this.proposals.set(k, rest);
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
