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
import { compareCanonical } from './hash.js';
import { type VersionVector, vvGet, vvJoin } from './version-vector.js';

export interface Sibling<V = unknown> {
  /** Dot: the replica that minted it. */
  readonly n: string;
  /** Dot: that replica's counter for this key. */
  readonly c: number;
  /** The causal past the writer had seen. */
  readonly vv: VersionVector;
  /** The value; absent (with `del`) for a delete's tombstone. */
  readonly v?: V;
  readonly del?: true;
}

/** True when the events of `clock` (a vector) include the sibling's dot. */
export function coveredBy(s: Sibling<unknown>, clock: VersionVector): boolean {
  return s.c <= vvGet(clock, s.n);
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
  return unique.filter((s) => !unique.some((o) => !sameDot(o, s) && coveredBy(s, o.vv)));
}

/** The causal context to hand a client: every event the siblings know of. */
export function contextOf(siblings: readonly Sibling<unknown>[]): VersionVector {
  let vv: VersionVector = {};
  for (const s of siblings) {
    vv = vvJoin(vv, s.vv);
    if (s.c > vvGet(vv, s.n)) vv = { ...vv, [s.n]: s.c };
  }
  return vv;
}

/** The next counter `id` may mint for a key holding `siblings`, given a client context. */
export function nextCounter(
  siblings: readonly Sibling<unknown>[],
  context: VersionVector,
  id: string,
): number {
  let max = vvGet(context, id);
  for (const s of siblings) {
    if (s.n === id && s.c > max) max = s.c;
    const seen = vvGet(s.vv, id);
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
  context: VersionVector,
  id: string,
  value: V | undefined,
  del = false,
): { siblings: Sibling<V>[]; written: Sibling<V> } {
  const c = nextCounter(siblings, context, id);
  const written: Sibling<V> = del
    ? { n: id, c, vv: { ...context }, del: true }
    : { n: id, c, vv: { ...context }, v: value as V };
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
