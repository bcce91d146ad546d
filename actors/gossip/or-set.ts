/**
 * Observed-remove set with add-wins semantics, as a delta-state causal CRDT: each element
 * maps to the dots of the adds that put it there; a remove deletes the dots it has seen.
 * An add concurrent with a remove mints a dot the remover never saw, so the element stays.
 * Elements are strings (encode richer values, e.g. as JSON, in the client).
 */
import {
  type CausalContext,
  ccFromDots,
  ccHas,
  ccJoin,
  ccNext,
  type Dot,
  dotOrder,
  EMPTY_CONTEXT,
} from './causal-context.js';

/** [element, dots], sorted by element; no element has an empty dot list. */
export type OrEntry = readonly [string, readonly Dot[]];

export interface OrSetState {
  readonly e: readonly OrEntry[];
  readonly cc: CausalContext;
}

export const ORSET_EMPTY: OrSetState = { e: [], cc: EMPTY_CONTEXT };

/** The dots of the adds that keep `element` in the set (empty when absent). */
export function orDotsOf(s: OrSetState, element: string): readonly Dot[] {
  return dotsOf(s, element);
}

function dotsOf(s: OrSetState, element: string): readonly Dot[] {
  for (const [el, dots] of s.e) if (el === element) return dots;
  return [];
}

function joinDots(
  a: readonly Dot[],
  acc: CausalContext,
  b: readonly Dot[],
  bcc: CausalContext,
): Dot[] {
  const has = (list: readonly Dot[], d: Dot) => list.some((x) => x[0] === d[0] && x[1] === d[1]);
  const out: Dot[] = [];
  for (const d of a) if (has(b, d) || !ccHas(bcc, d)) out.push(d);
  for (const d of b) if (!has(a, d) && !ccHas(acc, d)) out.push(d);
  out.sort(dotOrder);
  return out.filter((d, i) => i === 0 || dotOrder(out[i - 1] as Dot, d) !== 0);
}

export function orMerge(a: OrSetState, b: OrSetState): OrSetState {
  const elements = new Set<string>();
  for (const [el] of a.e) elements.add(el);
  for (const [el] of b.e) elements.add(el);
  const out: OrEntry[] = [];
  for (const el of [...elements].sort()) {
    const dots = joinDots(dotsOf(a, el), a.cc, dotsOf(b, el), b.cc);
    if (dots.length > 0) out.push([el, dots]);
  }
  return { e: out, cc: ccJoin(a.cc, b.cc) };
}

export function orAdd(
  state: OrSetState,
  id: string,
  element: string,
): { state: OrSetState; delta: OrSetState } {
  const dot: Dot = [id, ccNext(state.cc, id)];
  const delta: OrSetState = {
    e: [[element, [dot]]],
    cc: ccFromDots([...dotsOf(state, element), dot]),
  };
  return { state: orMerge(state, delta), delta };
}

export function orRemove(
  state: OrSetState,
  element: string,
): { state: OrSetState; delta: OrSetState } {
  const delta: OrSetState = { e: [], cc: ccFromDots(dotsOf(state, element)) };
  return { state: orMerge(state, delta), delta };
}

export function orValues(s: OrSetState): string[] {
  return s.e.map(([el]) => el);
}

export function orHas(s: OrSetState, element: string): boolean {
  return dotsOf(s, element).length > 0;
}
