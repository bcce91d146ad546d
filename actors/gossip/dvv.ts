/**
 * Dotted version vectors (Preguiça, Baquero, Almeida et al., "Dotted Version Vectors:
 * Logical Clocks for Optimistic Replication"). Each stored version of a key (a sibling) is
 * tagged with the dot (replica id, counter) of the write that created it plus the version
 * vector of what the writing client had seen (its causal context). A sibling is obsolete
 * once another sibling's (or a context's) vector covers its dot. Concurrent writes, even
 * through the same coordinator, stay separate siblings: this is what plain version
 * vectors per server cannot do without sibling explosion or lost updates.
 *
 * Invariant the replica keeps: a replica only mints dots for a key whose every earlier dot
 * of its own it still holds (or holds something covering it), so counters never repeat.
 */
import {
  type CausalContext,
  ccAdd,
  ccHas,
  ccJoin,
  ccNext,
  type Dot,
  EMPTY_CONTEXT,
} from './causal-context.js';
import { compareCanonical } from './hash.js';
import type { VersionVector } from './version-vector.js';

export interface Sibling<V = unknown> {
  /** Dot: the replica that minted it. */
  readonly n: string;
  /** Dot: that replica's counter for this key. */
  readonly c: number;
  /** The causal past the writer had seen (every dot up to each counter)... */
  readonly vv: VersionVector;
  /**
   * ...plus the dots it had seen beyond `vv` (not contiguous with it: a client's own earlier
   * write minted while the coordinator held concurrent siblings it never saw). Absent when
   * empty, so records written before it existed read (and hash) the same.
   */
  readonly dc?: readonly Dot[];
  /** The value; absent (with `del`) for a delete's tombstone. */
  readonly v?: V;
  readonly del?: true;
}

/** True when the events of `clock` include the sibling's dot. */
export function coveredBy(s: Sibling<unknown>, clock: CausalContext): boolean {
  return ccHas(clock, [s.n, s.c]);
}

/** What the writer of `s` had seen, as a causal context. */
function pastOf(s: Sibling<unknown>): CausalContext {
  return { vv: s.vv, dc: s.dc ?? [] };
}

function sameDot(a: Sibling<unknown>, b: Sibling<unknown>): boolean {
  return a.n === b.n && a.c === b.c;
}

function order(a: Sibling<unknown>, b: Sibling<unknown>): number {
  if (a.n !== b.n) return a.n < b.n ? -1 : 1;
  if (a.c !== b.c) return a.c - b.c;
  return compareCanonical(a, b);
}

/**
 * Joins two sibling sets: the union minus every sibling another one supersedes. Sorted by
 * dot, so equal sets are equal arrays (and hash equally).
 */
export function syncSiblings<V>(a: readonly Sibling<V>[], b: readonly Sibling<V>[]): Sibling<V>[] {
  const all = [...a, ...b].sort(order);
  const unique: Sibling<V>[] = [];
  for (const s of all) {
    const last = unique[unique.length - 1];
    if (last && sameDot(last, s)) continue; // duplicate delivery of the same version
    unique.push(s);
  }
  return unique.filter((s) => !unique.some((o) => !sameDot(o, s) && coveredBy(s, pastOf(o))));
}

/**
 * The causal context to hand a client: exactly the events the siblings know of (their dots
 * and their writers' pasts). A dot is folded into the vector only when it is contiguous
 * with it: a vector entry n:k claims every dot n:1..k, and a client that is told it saw a
 * dot it never saw would replace that version unseen with its next write.
 */
export function contextOf(siblings: readonly Sibling<unknown>[]): CausalContext {
  let cc: CausalContext = EMPTY_CONTEXT;
  for (const s of siblings) cc = ccAdd(ccJoin(cc, pastOf(s)), [s.n, s.c]);
  return cc;
}

/** The next counter `id` may mint for a key holding `siblings`, given a client context. */
export function nextCounter(
  siblings: readonly Sibling<unknown>[],
  context: CausalContext,
  id: string,
): number {
  let max = ccNext(context, id) - 1;
  for (const s of siblings) {
    if (s.n === id && s.c > max) max = s.c;
    const seen = ccNext(pastOf(s), id) - 1;
    if (seen > max) max = seen;
  }
  return max + 1;
}

/**
 * A write coordinated by replica `id`: the siblings the client's context covers are
 * replaced, the others are kept as concurrent siblings. Returns the new sibling set and
 * the new sibling (what to replicate).
 */
export function writeSibling<V>(
  siblings: readonly Sibling<V>[],
  clientContext: CausalContext,
  id: string,
  value: V | undefined,
  del = false,
): { siblings: Sibling<V>[]; written: Sibling<V> } {
  const context = ccJoin(EMPTY_CONTEXT, clientContext); // compact: one representation
  const c = nextCounter(siblings, context, id);
  const past = context.dc.length > 0 ? { vv: context.vv, dc: context.dc } : { vv: context.vv };
  const written: Sibling<V> = del
    ? { n: id, c, ...past, del: true }
    : { n: id, c, ...past, v: value as V };
  const kept = siblings.filter((s) => !coveredBy(s, context));
  return { siblings: syncSiblings(kept, [written]), written };
}

/** The live values (tombstones excluded), in dot order. */
export function siblingValues<V>(siblings: readonly Sibling<V>[]): V[] {
  return siblings.filter((s) => !s.del).map((s) => s.v as V);
}

/** True when every sibling is a tombstone (the key reads as absent). */
export function isDeleted(siblings: readonly Sibling<unknown>[]): boolean {
  return siblings.every((s) => s.del === true);
}
