/**
 * A ReplicatedLog that only publishes `applied$` from a local sequence of commands: the
 * source the backup agent follows in tests, simulations and the benchmark, standing in for
 * a learner node until the agent is wired to Raft's learner API.
 */
import { BehaviorSubject, Subject } from 'rxjs';
import type {
  AppliedEntry,
  Command,
  ProposeResult,
  ReplicatedLog,
} from '../../lib/replicated-log.js';
import { ProposeError } from '../../lib/replicated-log.js';

export class CommittedFeed<Op> implements ReplicatedLog<Op, unknown> {
  readonly nodeId: string;
  private readonly appliedSubject = new Subject<AppliedEntry<Op, unknown>>();
  private readonly commit = new BehaviorSubject<number>(0);
  readonly leader$ = new BehaviorSubject<string | undefined>(undefined).asObservable();
  readonly commitIndex$ = this.commit.asObservable();
  readonly appliedIndex$ = this.commit.asObservable();
  readonly applied$ = this.appliedSubject.asObservable();
  index = 0;
  term = 1;

  constructor(nodeId = 'feed') {
    this.nodeId = nodeId;
  }

  /** Commits and "applies" the next command, at the next index. */
  push(command: Command<Op>): AppliedEntry<Op, unknown> {
    this.index++;
    const e: AppliedEntry<Op, unknown> = {
      index: this.index,
      term: this.term,
      command,
      result: undefined,
    };
    // As RaftNode: the entry on applied$ first, then the applied index.
    this.appliedSubject.next(e);
    this.commit.next(this.index);
    return e;
  }

  /** Commits an entry without a command (a leader's no-op): only the applied index moves. */
  noop(): void {
    this.index++;
    this.commit.next(this.index);
  }

  /** Publishes an entry as is (to inject duplicates or gaps). */
  emitRaw(e: AppliedEntry<Op, unknown>): void {
    this.appliedSubject.next(e);
  }

  propose(): Promise<ProposeResult<unknown>> {
    return Promise.reject(
      new ProposeError('NotLeader', 'a committed feed does not take proposals'),
    );
  }

  readBarrier(): Promise<number> {
    return Promise.resolve(this.index);
  }
}
