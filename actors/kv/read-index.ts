/**
 * Read indexes, batched (etcd's ReadIndex with many reads per quorum round): `next()` returns a
 * log index R obtained by a barrier that STARTED after the call, so every write committed before
 * the call has an index ≤ R. Calls that arrive while a barrier is in flight share the following
 * one: one quorum round serves a whole batch of reads.
 *
 * Each successful barrier also records a freshness proof `{at, index}`: once the replica has
 * applied `index`, its state holds every write committed before local time `at`. Bounded-staleness
 * reads use it: the state is then at most `now - at` ms stale, measured on this node's clock only
 * (no clock synchronisation is assumed).
 */
import type { Clock } from '../../lib/clock.js';

export interface Freshness {
  /** Local clock time at which the barrier started. */
  readonly at: number;
  /** The read index it returned. */
  readonly index: number;
}

export class ReadIndexBatcher {
  private inFlight: Promise<number> | undefined;
  private queued: Promise<number> | undefined;
  private proof: Freshness | undefined;
  /** Barriers started (for tests and stats: reads per quorum round). */
  rounds = 0;

  constructor(
    private readonly clock: Clock,
    /** Obtains a read index (a leader barrier, or an ask to the leader). */
    private readonly barrier: () => Promise<number>,
  ) {}

  get freshness(): Freshness | undefined {
    return this.proof;
  }

  /** A read index from a barrier that starts no earlier than now. */
  next(): Promise<number> {
    if (!this.inFlight) {
      this.inFlight = this.start();
      return this.inFlight;
    }
    if (!this.queued) {
      const after = this.inFlight.then(
        () => undefined,
        () => undefined,
      );
      this.queued = after.then(() => {
        this.queued = undefined;
        this.inFlight = this.start();
        return this.inFlight;
      });
    }
    return this.queued;
  }

  private start(): Promise<number> {
    const at = this.clock.now();
    this.rounds++;
    const p = this.barrier();
    const done = (): void => {
      if (this.inFlight === p) this.inFlight = undefined;
    };
    p.then((index) => {
      if (!this.proof || at >= this.proof.at) this.proof = { at, index };
      done();
    }, done);
    return p;
  }
}
