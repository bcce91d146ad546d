/**
 * Merkle trees per key range, for anti-entropy. A key range is a ring segment (all keys of
 * a segment share one preference list). Each segment's tree has 2^depth leaves; a key
 * falls in leaf hash32(key) mod 2^depth and a leaf's hash is the XOR of its keys' 64-bit
 * record digests, so a write updates its leaf in O(1). Inner nodes hash their two
 * children; they are recomputed lazily when a leaf below changed.
 *
 * Two replicas of a segment compare roots; when they differ they compare leaves and then
 * the keys of the differing leaves only, so the traffic is proportional to the difference,
 * not to the data.
 */
import { type Digest, digest, digestHex, hash32 } from './hash.js';

interface SegmentTree {
  /** 2 words per leaf. */
  leaves: Uint32Array;
  keysByLeaf: Map<number, Set<string>>;
  /** levels[0] = leaves (hex), levels[depth] = [root]; undefined while dirty. */
  levels: string[][] | undefined;
}

interface KeyEntry {
  segment: number;
  leaf: number;
  digest: Digest;
}

const EMPTY_LEAF = '0000000000000000';

export class MerkleIndex {
  private readonly segments = new Map<number, SegmentTree>();
  private readonly keys = new Map<string, KeyEntry>();
  readonly leafCount: number;

  constructor(readonly depth = 5) {
    if (!Number.isInteger(depth) || depth < 0 || depth > 16) {
      throw new RangeError(`merkle depth must be an integer in [0, 16], got ${depth}`);
    }
    this.leafCount = 1 << depth;
  }

  leafOf(key: string): number {
    return hash32(key, 0x1b873593) & (this.leafCount - 1);
  }

  private tree(segment: number): SegmentTree {
    let t = this.segments.get(segment);
    if (!t) {
      t = { leaves: new Uint32Array(this.leafCount * 2), keysByLeaf: new Map(), levels: undefined };
      this.segments.set(segment, t);
    }
    return t;
  }

  /** Sets (or with `undefined`, removes) a key's digest in `segment`. */
  set(key: string, segment: number, d: Digest | undefined): void {
    const old = this.keys.get(key);
    if (old) {
      const t = this.tree(old.segment);
      t.leaves[old.leaf * 2] = ((t.leaves[old.leaf * 2] as number) ^ old.digest[0]) >>> 0;
      t.leaves[old.leaf * 2 + 1] = ((t.leaves[old.leaf * 2 + 1] as number) ^ old.digest[1]) >>> 0;
      t.keysByLeaf.get(old.leaf)?.delete(key);
      t.levels = undefined;
      this.keys.delete(key);
    }
    if (d === undefined) return;
    const leaf = this.leafOf(key);
    const t = this.tree(segment);
    t.leaves[leaf * 2] = ((t.leaves[leaf * 2] as number) ^ d[0]) >>> 0;
    t.leaves[leaf * 2 + 1] = ((t.leaves[leaf * 2 + 1] as number) ^ d[1]) >>> 0;
    let set = t.keysByLeaf.get(leaf);
    if (!set) {
      set = new Set();
      t.keysByLeaf.set(leaf, set);
    }
    set.add(key);
    t.levels = undefined;
    this.keys.set(key, { segment, leaf, digest: d });
  }

  clear(): void {
    this.segments.clear();
    this.keys.clear();
  }

  digestOf(key: string): Digest | undefined {
    return this.keys.get(key)?.digest;
  }

  private levels(segment: number): string[][] {
    const t = this.segments.get(segment);
    if (!t) return this.emptyLevels();
    if (t.levels) return t.levels;
    const leaves: string[] = [];
    for (let i = 0; i < this.leafCount; i++) {
      leaves.push(digestHex([t.leaves[i * 2] as number, t.leaves[i * 2 + 1] as number]));
    }
    const levels = [leaves];
    let cur = leaves;
    while (cur.length > 1) {
      const next: string[] = [];
      for (let i = 0; i < cur.length; i += 2) {
        const l = cur[i] as string;
        const r = cur[i + 1] as string;
        next.push(l === EMPTY_LEAF && r === EMPTY_LEAF ? EMPTY_LEAF : digestHex(digest(l + r)));
      }
      levels.push(next);
      cur = next;
    }
    t.levels = levels;
    return levels;
  }

  private emptyCache: string[][] | undefined;

  private emptyLevels(): string[][] {
    if (!this.emptyCache) {
      const levels: string[][] = [];
      for (let n = this.leafCount; n >= 1; n >>= 1)
        levels.push(new Array<string>(n).fill(EMPTY_LEAF));
      this.emptyCache = levels;
    }
    return this.emptyCache;
  }

  /** The root hash of a segment's tree (all zeros for an empty segment). */
  root(segment: number): string {
    const levels = this.levels(segment);
    return (levels[levels.length - 1] as string[])[0] as string;
  }

  /** The leaf hashes of a segment's tree. */
  leaves(segment: number): string[] {
    return this.levels(segment)[0] as string[];
  }

  /** Indices of leaves whose hashes differ from `other` (same depth). */
  diffLeaves(segment: number, other: readonly string[]): number[] {
    const mine = this.leaves(segment);
    const out: number[] = [];
    for (let i = 0; i < this.leafCount; i++) if (mine[i] !== other[i]) out.push(i);
    return out;
  }

  /** [key, digest hex] for every key in the given leaves of a segment. */
  keysIn(segment: number, leaves: readonly number[]): Array<[string, string]> {
    const t = this.segments.get(segment);
    const out: Array<[string, string]> = [];
    if (!t) return out;
    for (const leaf of leaves) {
      for (const key of t.keysByLeaf.get(leaf) ?? []) {
        const e = this.keys.get(key);
        if (e) out.push([key, digestHex(e.digest)]);
      }
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Number of keys indexed. */
  get size(): number {
    return this.keys.size;
  }
}
