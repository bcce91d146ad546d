/**
 * A causal context for delta-state CRDTs (Almeida, Shoker, Baquero, "Delta State
 * Replicated Data Types"): the set of dots (replica, counter) an object has seen, kept as a
 * compact version vector plus a "dot cloud" of dots that are not contiguous yet (deltas
 * arrive out of order). Joining two contexts is set union; `compact` folds contiguous
 * cloud dots into the vector, so equal sets always have the same representation.
 */
import type { VersionVector } from './version-vector.js';

export type Dot = readonly [string, number];

export interface CausalContext {
  readonly vv: VersionVector;
  /** Sorted by (replica, counter); every dot has counter > vv[replica] + 1. */
  readonly dc: readonly Dot[];
}

export const EMPTY_CONTEXT: CausalContext = { vv: {}, dc: [] };

export function dotOrder(a: Dot, b: Dot): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] - b[1];
}

export function ccHas(cc: CausalContext, dot: Dot): boolean {
  if (dot[1] <= (cc.vv[dot[0]] ?? 0)) return true;
  return cc.dc.some((d) => d[0] === dot[0] && d[1] === dot[1]);
}

/** The next counter replica `id` can mint. */
export function ccNext(cc: CausalContext, id: string): number {
  let max = cc.vv[id] ?? 0;
  for (const d of cc.dc) if (d[0] === id && d[1] > max) max = d[1];
  return max + 1;
}

function compact(vv: Record<string, number>, dots: Dot[]): CausalContext {
  dots.sort(dotOrder);
  const rest: Dot[] = [];
  for (const d of dots) {
    const have = vv[d[0]] ?? 0;
    if (d[1] <= have) continue;
    if (d[1] === have + 1) vv[d[0]] = d[1];
    else rest.push(d);
  }
  // a dot kept in `rest` may have become contiguous after later dots of another pass
  const dc: Dot[] = [];
  for (const d of rest) {
    const have = vv[d[0]] ?? 0;
    if (d[1] <= have) continue;
    if (d[1] === have + 1) vv[d[0]] = d[1];
    else {
      const prev = dc[dc.length - 1];
      if (!prev || prev[0] !== d[0] || prev[1] !== d[1]) dc.push(d);
    }
  }
  return { vv, dc };
}

export function ccJoin(a: CausalContext, b: CausalContext): CausalContext {
  const vv: Record<string, number> = { ...a.vv };
  for (const [id, c] of Object.entries(b.vv)) if (c > (vv[id] ?? 0)) vv[id] = c;
  return compact(vv, [...a.dc, ...b.dc]);
}

export function ccFromDots(dots: Iterable<Dot>): CausalContext {
  return compact({}, [...dots]);
}

export function ccAdd(cc: CausalContext, dot: Dot): CausalContext {
  return compact({ ...cc.vv }, [...cc.dc, dot]);
}

/** True when `a` contains every dot of `b`. */
export function ccCovers(a: CausalContext, b: CausalContext): boolean {
  for (const [id, c] of Object.entries(b.vv)) {
    if ((a.vv[id] ?? 0) >= c) continue;
    for (let k = (a.vv[id] ?? 0) + 1; k <= c; k++) if (!ccHas(a, [id, k])) return false;
  }
  return b.dc.every((d) => ccHas(a, d));
}
