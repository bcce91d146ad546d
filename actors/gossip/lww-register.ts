/**
 * Last-writer-wins register, ordered by hybrid logical clock timestamps. The merge keeps
 * the state with the larger timestamp, so it is a join (commutative, associative,
 * idempotent). What it loses: of two writes that are concurrent (neither saw the other),
 * the one with the smaller timestamp vanishes without trace, and with skewed physical
 * clocks "smaller" need not mean "earlier in real time". Use a multi-value register or
 * DVV siblings when that matters.
 */
import { compareCanonical } from './hash.js';
import { compareHlc, type HlcTimestamp } from './hlc.js';

export interface LwwState {
  /** null: never written. */
  readonly ts: HlcTimestamp | null;
  readonly v?: unknown;
  /** A delete (the register reads as absent). */
  readonly del?: true;
}

export const LWW_EMPTY: LwwState = { ts: null };

export function lwwMerge(a: LwwState, b: LwwState): LwwState {
  if (a.ts === null) return b;
  if (b.ts === null) return a;
  const c = compareHlc(a.ts, b.ts);
  if (c !== 0) return c > 0 ? a : b;
  // one timestamp names one write, so this only happens for duplicates; stay deterministic
  return compareCanonical(a, b) >= 0 ? a : b;
}

/** Writes `value` at timestamp `ts` (which the caller made larger than `state.ts`). */
export function lwwSet(
  state: LwwState,
  ts: HlcTimestamp,
  value: unknown,
  del = false,
): { state: LwwState; delta: LwwState } {
  const delta: LwwState = del ? { ts, del: true } : { ts, v: value };
  return { state: lwwMerge(state, delta), delta };
}

export function lwwValue(s: LwwState): unknown[] {
  return s.ts === null || s.del ? [] : [s.v];
}
