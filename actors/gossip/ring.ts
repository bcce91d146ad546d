/**
 * Consistent hashing with virtual nodes. Each member owns `vnodes` tokens on a 32-bit ring
 * (token i of member m is hash32(`m#i`)); a key hashes to a point and its preference list
 * is the first `n` distinct members met walking clockwise from that point. Adding a member
 * only moves keys to it; removing one only moves its keys to the next members: placement
 * of every other key is unchanged.
 *
 * The ring is immutable: `with`/`without` return a new ring.
 */
import { hash32 } from './hash.js';

export interface Token {
  readonly t: number;
  readonly node: string;
}

export class HashRing {
  private readonly tokens: readonly Token[];
  private readonly memberSet: ReadonlySet<string>;

  constructor(
    members: Iterable<string>,
    readonly vnodes = 64,
  ) {
    if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > 4096) {
      throw new RangeError(`vnodes must be an integer in [1, 4096], got ${vnodes}`);
    }
    this.memberSet = new Set(members);
    const tokens: Token[] = [];
    for (const node of this.memberSet) {
      for (let i = 0; i < vnodes; i++) tokens.push({ t: hash32(`${node}#${i}`), node });
    }
    // ties (two tokens on the same point) are broken by node id so every node agrees
    tokens.sort((a, b) => a.t - b.t || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    this.tokens = tokens;
  }

  members(): string[] {
    return [...this.memberSet].sort();
  }

  has(node: string): boolean {
    return this.memberSet.has(node);
  }

  get size(): number {
    return this.memberSet.size;
  }

  with(node: string): HashRing {
    if (this.memberSet.has(node)) return this;
    return new HashRing([...this.memberSet, node], this.vnodes);
  }

  without(node: string): HashRing {
    if (!this.memberSet.has(node)) return this;
    return new HashRing(
      [...this.memberSet].filter((m) => m !== node),
      this.vnodes,
    );
  }

  /** The ring point of a key. */
  static position(key: string): number {
    return hash32(key, 0x2545f491);
  }

  /** Index of the token owning `point`: the first token at or clockwise after it. */
  private tokenIndex(point: number): number {
    const ts = this.tokens;
    let lo = 0;
    let hi = ts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ts[mid] as Token).t < point) lo = mid + 1;
      else hi = mid;
    }
    return lo === ts.length ? 0 : lo;
  }

  /**
   * The segment a key belongs to: keys of one segment share a preference list. Segments
   * are numbered by their owning token's index (stable only for this ring value).
   */
  segmentOf(key: string): number {
    if (this.tokens.length === 0) return -1;
    return this.tokenIndex(HashRing.position(key));
  }

  get segmentCount(): number {
    return this.tokens.length;
  }

  /** Every distinct member in clockwise order from the segment's token. */
  walkSegment(segment: number, limit = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    const ts = this.tokens;
    if (ts.length === 0) return out;
    const seen = new Set<string>();
    for (let i = 0; i < ts.length && out.length < limit && seen.size < this.memberSet.size; i++) {
      const tok = ts[(segment + i) % ts.length] as Token;
      if (!seen.has(tok.node)) {
        seen.add(tok.node);
        out.push(tok.node);
      }
    }
    return out;
  }

  /** Every distinct member in clockwise order from the key's point. */
  walk(key: string, limit = Number.POSITIVE_INFINITY): string[] {
    return this.walkSegment(this.segmentOf(key), limit);
  }

  /** The first `n` distinct members clockwise from the key: its replicas. */
  preferenceList(key: string, n: number): string[] {
    return this.walk(key, n);
  }

  /**
   * Each member's share of the hash space as primary owner (the arc up to each of its
   * tokens), summing to 1: how evenly the virtual nodes spread the keys.
   */
  ownership(): Map<string, number> {
    const share = new Map<string, number>([...this.memberSet].map((m) => [m, 0]));
    const n = this.tokens.length;
    for (let i = 0; i < n; i++) {
      const tok = this.tokens[i] as Token;
      const prev = (this.tokens[(i + n - 1) % n] as Token).t;
      const arc = n === 1 ? 2 ** 32 : (tok.t - prev + 2 ** 32) % 2 ** 32;
      share.set(tok.node, (share.get(tok.node) ?? 0) + arc / 2 ** 32);
    }
    return share;
  }

  /** The segments for which `node` is among the first `n` distinct members. */
  segmentsOf(node: string, n: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.tokens.length; s++) {
      if (this.walkSegment(s, n).includes(node)) out.push(s);
    }
    return out;
  }
}
