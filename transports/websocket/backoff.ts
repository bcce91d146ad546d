/**
 * Exponential reconnect backoff with jitter: attempt n waits
 * `min(maxMs, initialMs * factor^n) * (1 - jitter * r)` with r from the injected `Random`,
 * so nodes that lost a peer together do not all redial at the same instant.
 */
import type { Random } from '../../lib/random.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  jitter: number;
}

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: Random,
  ) {}

  /** Attempts made since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; advances the attempt counter. */
  next(): number {
    const { initialMs, maxMs, factor, jitter } = this.options;
    const exp = Math.min(maxMs, initialMs * factor ** Math.min(this.attempt, 64));
    this.attempt++;
    return Math.max(1, Math.round(exp * (1 - jitter * this.random.next())));
  }

  reset(): void {
    this.attempt = 0;
  }
}
