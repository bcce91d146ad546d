/**
 * Clean shutdown of a node's writes (SIGINT/SIGTERM): "finish in-flight writes, close the log".
 *
 * The KV service proposes through this wrapper of the node's replicated log (Raft or
 * Multi-Paxos). On `drain()`:
 *
 * 1. New proposals are refused at once with `Dropped` — definitely not applied — and a message
 *    saying the node is shutting down, so a client retries another node instead of waiting.
 * 2. Proposals already made are given a bounded time to commit and apply; the KV service then
 *    answers them with their real outcome (before, shutdown failed them as `Stopped`, which a
 *    client sees as "indeterminate").
 * 3. Writes this node forwarded to the leader (a follower's `NotLeader` answer, see
 *    actors/kv/service.ts) are waited for the same way: until they are applied here (the
 *    leader has answered them by then) or their own deadline passed.
 *
 * Only then does the node stop its actors, which closes the log. Whatever is still pending at
 * the bound is failed by the log's own shutdown as before (`Stopped`, indeterminate): the bound
 * keeps a partitioned leader from hanging its shutdown.
 *
 * Reads (`readBarrier`, and `witnessRead` when the log has it: witnessed reads) and the streams
 * pass straight through.
 */
import type { Observable } from 'rxjs';
import type { Clock } from '../clock.js';
import {
  type AppliedEntry,
  type Command,
  ProposeError,
  type ProposeResult,
  type ReplicatedLog,
} from '../replicated-log.js';

export const SHUTTING_DOWN = 'SYNOD_ERR_NODE_SHUTTING_DOWN';

/** A drain ends once nothing was in flight or arrived for this long (ms). */
export const QUIET_MS = 50;

/** What a drain did. */
export interface DrainReport {
  /** Proposals (and forwarded writes) that were in flight when the drain began. */
  inFlight: number;
  /** Of those, still unsettled when the drain ended (failed by the shutdown that follows). */
  left: number;
  /** New proposals refused during the drain. */
  refused: number;
  /** How long the drain took (ms, by the node's clock). */
  tookMs: number;
}

export class DrainingLog<Op = unknown, Result = unknown> implements ReplicatedLog<Op, Result> {
  private readonly pending = new Set<Promise<unknown>>();
  /** Writes forwarded to the leader: `clientId seq` → deadline (clock ms). */
  private readonly forwarded = new Map<string, number>();
  private draining = false;
  private refused = 0;
  /** Counts proposals, refusals and settlements: a drain ends after turns without any. */
  private activity = 0;
  private readonly appliedSub: { unsubscribe(): void };

  constructor(
    private readonly inner: ReplicatedLog<Op, Result>,
    private readonly clock: Clock,
    /** Default proposal timeout (ms) when a proposal names none: bounds a forward's wait. */
    private readonly defaultTimeoutMs = 5000,
  ) {
    if (inner.witnessRead) this.witnessRead = (k) => inner.witnessRead?.(k);
    this.appliedSub = inner.applied$.subscribe({
      next: (e) => {
        if (this.forwarded.delete(key(e.command))) this.activity++;
      },
      error: () => undefined,
    });
  }

  get nodeId(): string {
    return this.inner.nodeId;
  }
  get leader$(): Observable<string | undefined> {
    return this.inner.leader$;
  }
  get commitIndex$(): Observable<number> {
    return this.inner.commitIndex$;
  }
  get appliedIndex$(): Observable<number> {
    return this.inner.appliedIndex$;
  }
  get applied$(): Observable<AppliedEntry<Op, Result>> {
    return this.inner.applied$;
  }

  readBarrier(options?: { timeoutMs?: number; witness?: string }): Promise<number> {
    return this.inner.readBarrier(options);
  }

  /** Present exactly when the inner log has it (the KV service tests for it). */
  readonly witnessRead?: (key: string) => void;

  propose(
    command: Command<Op>,
    options: { timeoutMs?: number } = {},
  ): Promise<ProposeResult<Result>> {
    this.activity++;
    if (this.draining) {
      this.refused++;
      return Promise.reject(
        new ProposeError(
          'Dropped',
          `${SHUTTING_DOWN}: node ${this.inner.nodeId} is shutting down and takes no new writes (not applied); send it to another node`,
          undefined,
          false,
        ),
      );
    }
    const p = this.inner.propose(command, options);
    this.pending.add(p);
    // Registered before the caller's handlers, which run after these (see `drain`).
    p.then(
      () => this.settled(p),
      (err: unknown) => {
        if (err instanceof ProposeError && err.code === 'NotLeader') {
          // The KV service forwards it to the leader: wait for it as well, until it is
          // applied here or its deadline (the service's: the timeout plus 100 ms) passed.
          this.pruneForwards();
          this.forwarded.set(
            key(command),
            this.clock.now() + (options.timeoutMs ?? this.defaultTimeoutMs) + 100,
          );
        }
        this.settled(p);
      },
    );
    return p;
  }

  /** How many proposals and forwarded writes are unsettled now. */
  get inFlight(): number {
    this.pruneForwards();
    return this.pending.size + this.forwarded.size;
  }

  /**
   * Stops taking new proposals and waits, at most `maxMs`, for those in flight to settle.
   * Never rejects. Call it once, before stopping the actors.
   */
  async drain(
    maxMs: number,
    options: {
      /**
       * Runs once, as soon as nothing is in flight (before the quiet period), while new
       * writes are still refused: the node hands its leadership over here, so the writes
       * its clients retry elsewhere find a leader while this one finishes. Not run when the
       * bound passes with writes left (a leader without a quorum has nobody to hand to).
       */
      settled?: () => Promise<void>;
    } = {},
  ): Promise<DrainReport> {
    const start = this.clock.now();
    const end = start + maxMs;
    this.draining = true;
    const inFlight = this.inFlight;
    let settled = options.settled === undefined;
    // Until nothing is in flight and nothing happened for QUIET_MS: writes already in the KV
    // service's mailbox are then handled (refused, so their clients go elsewhere) rather than
    // dropped by the shutdown; the service's replies to settled proposals (its handlers run
    // after ours) have reached the transport; and a client that just got its answer and sent
    // its next write within a round trip is told "shutting down" rather than finding the
    // service gone.
    let quietSince = this.clock.now();
    let mark = this.activity;
    while (this.clock.now() < end) {
      await new Promise<void>((resolve) => this.clock.setTimer(5, resolve));
      if (!settled && this.inFlight === 0) {
        settled = true;
        await options.settled?.();
        // The quiet period starts after the hand-over.
        mark = this.activity;
        quietSince = this.clock.now();
        continue;
      }
      if (this.inFlight > 0 || this.activity !== mark) {
        mark = this.activity;
        quietSince = this.clock.now();
      } else if (this.clock.now() - quietSince >= QUIET_MS) break;
    }
    this.appliedSub.unsubscribe();
    return {
      inFlight,
      left: this.inFlight,
      refused: this.refused,
      tookMs: this.clock.now() - start,
    };
  }

  private settled(p: Promise<unknown>): void {
    this.pending.delete(p);
    this.activity++;
  }

  private pruneForwards(): void {
    const now = this.clock.now();
    for (const [k, deadline] of this.forwarded) if (deadline <= now) this.forwarded.delete(k);
  }
}

function key(c: Command<unknown>): string {
  return `${c.clientId} ${c.seq}`;
}
