/**
 * A test double of a replicated log (lib/replicated-log.ts) for the KV service's unit tests:
 * one shared, totally ordered log; a leader that commits a proposal at once; followers that
 * apply the committed log when they are not held back; nodes that can be isolated (their
 * proposals and barriers time out). It is not a consensus protocol: it lets tests place a
 * replica exactly N entries behind, which a real cluster only does by chance. The service's
 * simulation tests (test/kv/sim-*.test.ts) run on the real Raft and Multi-Paxos.
 */
import { BehaviorSubject, type Observable, Subject } from 'rxjs';
import type { Clock } from '../../../lib/clock.js';
import {
  type AppliedEntry,
  type Command,
  ProposeError,
  type ProposeResult,
  type ReplicatedLog,
  type StateMachine,
} from '../../../lib/replicated-log.js';

interface Entry {
  index: number;
  term: number;
  command: Command;
}

export class FakeCluster {
  readonly log: Entry[] = [];
  /** Virtual time at which each index committed (index → time). */
  readonly commitTimes: number[] = [];
  term = 1;
  leader: string | undefined;
  readonly members = new Map<string, FakeLog>();
  /** Append each proposal this many times (a retried proposal landing twice). */
  duplicateProposals = 1;

  constructor(readonly clock: Clock) {}

  add(nodeId: string, sm: StateMachine, clock: Clock = this.clock): FakeLog {
    const m = new FakeLog(this, nodeId, sm, clock);
    this.members.set(nodeId, m);
    if (this.leader === undefined) this.setLeader(nodeId);
    m.leaderSubject.next(this.leader);
    return m;
  }

  get commitIndex(): number {
    return this.log.length;
  }

  setLeader(id: string | undefined): void {
    this.leader = id;
    this.term++;
    for (const m of this.members.values()) m.leaderSubject.next(id);
  }

  /** Appends and commits; every member that is not held back applies at once. */
  commit(command: Command): number {
    const index = this.log.length + 1;
    this.log.push({ index, term: this.term, command });
    this.commitTimes[index] = this.clock.now();
    for (const m of this.members.values()) m.catchUp();
    return index;
  }
}

export class FakeLog implements ReplicatedLog {
  readonly leaderSubject = new BehaviorSubject<string | undefined>(undefined);
  private readonly commitSubject = new BehaviorSubject<number>(0);
  private readonly appliedSubject = new BehaviorSubject<number>(0);
  private readonly entrySubject = new Subject<AppliedEntry>();
  private readonly results = new Map<number, unknown>();
  private readonly waiting = new Map<number, (r: ProposeResult) => void>();
  /** Apply at most up to this index (Infinity: follow the commit). */
  holdAt = Number.POSITIVE_INFINITY;
  /** Cut off from the others: proposals and barriers time out. */
  isolated = false;
  applied = 0;

  readonly leader$: Observable<string | undefined> = this.leaderSubject.asObservable();
  readonly commitIndex$ = this.commitSubject.asObservable();
  readonly appliedIndex$ = this.appliedSubject.asObservable();
  readonly applied$ = this.entrySubject.asObservable();

  constructor(
    private readonly cluster: FakeCluster,
    readonly nodeId: string,
    private readonly sm: StateMachine,
    private readonly clock: Clock,
  ) {}

  /** Holds this replica at its current index (or `index`) until `release`. */
  hold(index = this.applied): void {
    this.holdAt = index;
  }

  release(): void {
    this.holdAt = Number.POSITIVE_INFINITY;
    this.catchUp();
  }

  catchUp(): void {
    if (this.isolated) return;
    const target = Math.min(this.cluster.commitIndex, this.holdAt);
    if (target > this.commitSubject.value) this.commitSubject.next(target);
    while (this.applied < target) {
      const e = this.cluster.log[this.applied] as Entry;
      const result = this.sm.apply(e.command.op, { index: e.index, term: e.term });
      this.applied = e.index;
      this.results.set(e.index, result);
      this.entrySubject.next({ index: e.index, term: e.term, command: e.command, result });
      this.appliedSubject.next(e.index);
      const w = this.waiting.get(e.index);
      if (w) {
        this.waiting.delete(e.index);
        w({ index: e.index, term: e.term, result });
      }
    }
  }

  propose(command: Command, options: { timeoutMs?: number } = {}): Promise<ProposeResult> {
    const timeoutMs = options.timeoutMs ?? 1000;
    if (this.isolated) return this.timeout(timeoutMs, 'propose');
    if (this.cluster.leader !== this.nodeId)
      return Promise.reject(
        new ProposeError('NotLeader', `${this.nodeId} is not the leader`, this.cluster.leader),
      );
    return new Promise((resolve) => {
      let index = 0;
      for (let i = 0; i < this.cluster.duplicateProposals; i++) {
        const at = this.cluster.commit(command);
        if (i === 0) index = at;
      }
      const r = this.results.get(index);
      if (r !== undefined || this.applied >= index)
        resolve({ index, term: this.cluster.term, result: r });
      else this.waiting.set(index, resolve);
    });
  }

  readBarrier(options: { timeoutMs?: number } = {}): Promise<number> {
    const timeoutMs = options.timeoutMs ?? 1000;
    if (this.isolated) return this.timeout(timeoutMs, 'readBarrier');
    if (this.cluster.leader !== this.nodeId)
      return Promise.reject(
        new ProposeError('NotLeader', `${this.nodeId} is not the leader`, this.cluster.leader),
      );
    return Promise.resolve(this.cluster.commitIndex);
  }

  private timeout<T>(ms: number, what: string): Promise<T> {
    return new Promise((_, reject) => {
      this.clock.setTimer(ms, () =>
        reject(new ProposeError('Timeout', `${what} on ${this.nodeId} timed out`)),
      );
    });
  }
}
