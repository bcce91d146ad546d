/** A sorted array of distinct strings with binary search (code-unit order, like etcd's bytes). */
export class SortedKeys {
  private keys: string[] = [];

  get size(): number {
    return this.keys.length;
  }

  /** Index of the first key ≥ `key`. */
  lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] as string) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(key: string): void {
    const i = this.lowerBound(key);
    if (this.keys[i] !== key) this.keys.splice(i, 0, key);
  }

  remove(key: string): void {
    const i = this.lowerBound(key);
    if (this.keys[i] === key) this.keys.splice(i, 1);
  }

  /** Keys in [start, end) (end `undefined` = to the last key), at most `limit`. */
  range(start: string, end: string | undefined, limit: number): string[] {
    const out: string[] = [];
    for (let i = this.lowerBound(start); i < this.keys.length && out.length < limit; i++) {
      const k = this.keys[i] as string;
      if (end !== undefined && k >= end) break;
      out.push(k);
    }
    return out;
  }

  /** Number of keys in [start, end). */
  count(start: string, end: string | undefined): number {
    const a = this.lowerBound(start);
    const b = end === undefined ? this.keys.length : this.lowerBound(end);
    return Math.max(0, b - a);
  }

  all(): readonly string[] {
    return this.keys;
  }

  static from(sorted: string[]): SortedKeys {
    const s = new SortedKeys();
    s.keys = sorted;
    return s;
  }
}

/** The smallest string greater than every string starting with `prefix` (undefined: none). */
export function prefixEnd(prefix: string): string | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xffff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return undefined;
}
