/**
 * Ballots (a.k.a. proposal numbers) are pairs (round, proposer id), totally ordered by round
 * first and proposer id second. Two proposers never share a ballot because their ids differ,
 * and a proposer never reuses a round (it persists the highest round it used).
 */
import { PaxosError } from './errors.js';

export interface Ballot {
  readonly round: number;
  readonly proposer: string;
}

/** The ballot below every real ballot: what a fresh acceptor has promised. */
export const ZERO_BALLOT: Ballot = Object.freeze({ round: 0, proposer: '' });

/** -1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compareBallots(a: Ballot, b: Ballot): -1 | 0 | 1 {
  if (a.round !== b.round) return a.round < b.round ? -1 : 1;
  if (a.proposer === b.proposer) return 0;
  return a.proposer < b.proposer ? -1 : 1;
}

export function ballotEquals(a: Ballot, b: Ballot): boolean {
  return a.round === b.round && a.proposer === b.proposer;
}

export function ballotGreater(a: Ballot, b: Ballot): boolean {
  return compareBallots(a, b) > 0;
}

export function ballotAtLeast(a: Ballot, b: Ballot): boolean {
  return compareBallots(a, b) >= 0;
}

export function maxBallot(a: Ballot, b: Ballot): Ballot {
  return compareBallots(a, b) >= 0 ? a : b;
}

/** The smallest ballot owned by `proposer` that is above `above`. */
export function nextBallot(above: Ballot, proposer: string, minRound = 0): Ballot {
  const round = Math.max(minRound, above.proposer < proposer ? above.round : above.round + 1, 1);
  return { round, proposer };
}

export function formatBallot(b: Ballot): string {
  return `${b.round}.${b.proposer}`;
}

/** A plain copy (ballots cross the codec; frozen objects and class instances do not matter). */
export function ballot(round: number, proposer: string): Ballot {
  return { round, proposer };
}

export function isBallot(value: unknown): value is Ballot {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.round === 'number' &&
    Number.isSafeInteger(v.round) &&
    v.round >= 0 &&
    typeof v.proposer === 'string' &&
    v.proposer.length <= 256
  );
}

export function assertBallot(value: unknown, what: string): Ballot {
  if (!isBallot(value)) {
    throw new PaxosError('SYNOD_ERR_PAXOS_BAD_MESSAGE', `${what} is not a ballot`);
  }
  return value;
}
