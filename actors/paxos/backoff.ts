/**
 * Randomised exponential backoff for dueling proposers. Two proposers that keep pre-empting
 * each other retry after random delays drawn from a window that doubles after every failed
 * round, so one of them soon gets a round through undisturbed. Randomness is injected.
 */
import type { Random } from '../../lib/random.js';
import { PaxosError } from './errors.js';

export interface BackoffOptions {
  /** Lower bound of the first window (ms). Default 10. */
  readonly minMs?: number;
  /** Upper bound of any window (ms). Default 1000. */
  readonly maxMs?: number;
}

export class Backoff {
  private attempt = 0;
  readonly minMs: number;
  readonly maxMs: number;

  constructor(
    private readonly random: Random,
    opts: BackoffOptions = {},
  ) {
    this.minMs = opts.minMs ?? 10;
    this.maxMs = opts.maxMs ?? 1000;
    if (!(this.minMs >= 0) || !(this.maxMs >= this.minMs)) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `backoff needs 0 <= minMs <= maxMs, got ${this.minMs}..${this.maxMs}`,
      );
    }
  }

  /** The delay before the next retry; widens the window for the one after. */
  next(): number {
    const hi = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30) * 2);
    this.attempt++;
    return this.minMs + this.random.int(Math.max(1, Math.floor(hi - this.minMs) + 1));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
