/**
 * Multi-value register as a delta-state causal CRDT: a dot-tagged set of values plus the
 * causal context of everything seen. A write at a replica replaces every value that
 * replica has seen; writes at different replicas that did not see each other all survive
 * as concurrent values until a later write (that saw them) replaces them.
 */
import {
  type CausalContext,
  ccFromDots,
  ccHas,
  ccJoin,
  ccNext,
  type Dot,
  EMPTY_CONTEXT,
} from './causal-context.js';

/** [replica, counter, value] */
export type MvEntry = readonly [string, number, unknown];

export interface MvState {
  readonly e: readonly MvEntry[];
  readonly cc: CausalContext;
}

export const MV_EMPTY: MvState = { e: [], cc: EMPTY_CONTEXT };

function entryOrder(a: MvEntry, b: MvEntry): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] - b[1];
}

export function mvMerge(a: MvState, b: MvState): MvState {
  const key = (e: MvEntry) => `${e[0]}\u0000${e[1]}`;
  const inA = new Map(a.e.map((e) => [key(e), e]));
  const inB = new Map(b.e.map((e) => [key(e), e]));
  const out: MvEntry[] = [];
  for (const [k, e] of inA) {
    if (inB.has(k) || !ccHas(b.cc, [e[0], e[1]])) out.push(e);
  }
  for (const [k, e] of inB) {
    if (!inA.has(k) && !ccHas(a.cc, [e[0], e[1]])) out.push(e);
  }
  out.sort(entryOrder);
  return { e: out, cc: ccJoin(a.cc, b.cc) };
}

export function mvWrite(
  state: MvState,
  id: string,
  value: unknown,
): { state: MvState; delta: MvState } {
  const dot: Dot = [id, ccNext(state.cc, id)];
  const seen: Dot[] = state.e.map((e) => [e[0], e[1]] as Dot);
  const delta: MvState = { e: [[id, dot[1], value]], cc: ccFromDots([...seen, dot]) };
  return { state: mvMerge(state, delta), delta };
}

export function mvValues(s: MvState): unknown[] {
  return s.e.map((e) => e[2]);
}
