/**
 * Positive-negative counter: one grow-only total of increments and one of decrements per
 * replica; the value is their difference. Merge is the pointwise maximum, a join. A replica
 * only ever raises its own entries, so the delta of an update is just that entry.
 */
export interface PnState {
  readonly p: Readonly<Record<string, number>>;
  readonly n: Readonly<Record<string, number>>;
}

export const PN_EMPTY: PnState = { p: {}, n: {} };

function maxMap(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) if (v > (out[k] ?? 0)) out[k] = v;
  return out;
}

export function pnMerge(a: PnState, b: PnState): PnState {
  return { p: maxMap(a.p, b.p), n: maxMap(a.n, b.n) };
}

/** Adds `by` (may be negative) on behalf of replica `id`. */
export function pnIncrement(
  state: PnState,
  id: string,
  by: number,
): { state: PnState; delta: PnState } {
  if (!Number.isSafeInteger(by))
    throw new RangeError(`increment must be a safe integer, got ${by}`);
  const delta: PnState =
    by >= 0
      ? { p: { [id]: (state.p[id] ?? 0) + by }, n: {} }
      : { p: {}, n: { [id]: (state.n[id] ?? 0) - by } };
  return { state: pnMerge(state, delta), delta };
}

export function pnValue(s: PnState): number {
  let v = 0;
  for (const x of Object.values(s.p)) v += x;
  for (const x of Object.values(s.n)) v -= x;
  return v;
}

/** True when `a` includes every increment and decrement of `b`. */
export function pnCovers(a: PnState, b: PnState): boolean {
  for (const [k, v] of Object.entries(b.p)) if ((a.p[k] ?? 0) < v) return false;
  for (const [k, v] of Object.entries(b.n)) if ((a.n[k] ?? 0) < v) return false;
  return true;
}
