/**
 * Deterministic, platform-independent hashing for placement and anti-entropy: MurmurHash3
 * (x86, 32-bit) over a string's UTF-8 bytes, a 64-bit digest built from two seeds, and a
 * canonical text form of plain data (sorted object keys) so equal states hash equally.
 */
const encoder = new TextEncoder();

export function murmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const n = bytes.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const rem = n & 3;
  if (rem === 3) k ^= (bytes[blocks + 2] as number) << 16;
  if (rem >= 2) k ^= (bytes[blocks + 1] as number) << 8;
  if (rem >= 1) {
    k ^= bytes[blocks] as number;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit hash of a string (its UTF-8 bytes). */
export function hash32(text: string, seed = 0): number {
  return murmur3(encoder.encode(text), seed);
}

/** A 64-bit digest as two unsigned 32-bit words. */
export type Digest = readonly [number, number];

export function digest(text: string): Digest {
  const bytes = encoder.encode(text);
  return [murmur3(bytes, 0x9747b28c), murmur3(bytes, 0x5bd1e995)];
}

export function digestHex(d: Digest): string {
  return d[0].toString(16).padStart(8, '0') + d[1].toString(16).padStart(8, '0');
}

/**
 * Canonical text of plain data: object keys sorted, `undefined` fields dropped, byte arrays
 * as `{"$bytes":"<hex>"}`. Two structurally equal values give the same text.
 */
export function canonical(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : `"$num:${String(value)}"`;
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'bigint':
      return `"$big:${value.toString()}"`;
    case 'object': {
      if (value instanceof Uint8Array) {
        return `{"$bytes":"${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}"}`;
      }
      if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`cannot canonicalize a ${typeof value}`);
  }
}

/** Total order on plain data through its canonical text (for deterministic tie-breaks). */
export function compareCanonical(a: unknown, b: unknown): number {
  const x = canonical(a);
  const y = canonical(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
