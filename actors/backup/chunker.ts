/**
 * Content-defined chunking of the record stream. Chunks never split a record (a record larger
 * than `maxSize` becomes a chunk of its own), and once a chunk holds `minSize` bytes the end of
 * a record may become a boundary. Which records end a chunk is decided by one of two rules,
 * recorded in repo.json (`chunker.boundary`) so that a repository keeps one rule forever:
 *
 * - `key` (new repositories): the record's own key decides. A record of `size` bytes ends the
 *   chunk when a 32-bit hash of its key (FNV-1a, then murmur3's finalizer) is below
 *   size × 2^32 / avgSize: per byte, the same 1/avgSize chance of a cut as a rolling hash
 *   gives, but the work is a hash of the key (tens of bytes) instead of a loop over every
 *   byte of the value. A boundary depends only on that record's key and size: changing a
 *   value (to one of the same size) moves no boundary, and inserting or deleting a key moves
 *   at most the boundary at that key. This is content-defined chunking over the sorted key
 *   space. Measured: the gear loop was the top frame of a full backup's CPU profile.
 * - `gear` (repositories created before; absent in their repo.json): a gear hash (h = (h << 1) + G[byte]) rolls
   over the bytes of every record; once a chunk holds at least `minSize` bytes, a byte where
 *   the low bits of h are all zero marks the end of the current record as a boundary. Since h
 *   depends only on the last 32 bytes, a boundary depends only on nearby content.
 *
 * Either way, unchanged stretches of the key space produce byte-identical chunks that the
 * repository stores once, across backups. The rule only decides where chunks end: restoring
 * reads chunks as they are, whichever rule wrote them.
 */
import { Random } from '../../lib/random.js';
import { BackupError } from './errors.js';
import { keyByteLength, writeRecord } from './records.js';

export type ChunkBoundary = 'gear' | 'key';

export interface ChunkerParams {
  /** Target average chunk size in bytes (a power of two). */
  avgSize: number;
  minSize: number;
  maxSize: number;
  /** Which rule picks boundaries (see the module comment); absent = 'gear'. */
  boundary?: ChunkBoundary;
}

export const DEFAULT_CHUNKER: ChunkerParams = {
  avgSize: 1 << 20,
  minSize: 1 << 18,
  maxSize: 1 << 22,
  boundary: 'key',
};

export function validateChunkerParams(p: ChunkerParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(p.avgSize) || p.avgSize < 64 || !(p.minSize >= 1 && p.minSize <= p.avgSize)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `chunker: avgSize must be a power of two ≥ 64 and 1 ≤ minSize ≤ avgSize (got ${JSON.stringify(p)})`,
    );
  }
  if (p.boundary !== undefined && p.boundary !== 'gear' && p.boundary !== 'key') {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `chunker: boundary must be "key" or "gear" (got ${JSON.stringify(p.boundary)})`,
    );
  }
  if (!(p.maxSize >= p.avgSize)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'chunker: maxSize must be ≥ avgSize',
    );
  }
}

/** The gear table: 256 fixed pseudo-random words (fixed forever: part of the format). */
const GEAR = (() => {
  const r = new Random(0x5e7a11d);
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) t[i] = r.nextUint32();
  return t;
})();

/**
 * The key rule's hash of `len` bytes of `buf` at `off`: FNV-1a (32-bit), then murmur3's
 * finalizer so that every output bit depends on every input bit. Fixed forever (part of the
 * format of repositories using the key rule).
 */
export function keyHash(buf: Uint8Array, off: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = off; i < off + len; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Where the chunker writes: with none, it writes into a buffer of its own and emits a fresh
 * copy of each chunk; with one, it writes each chunk straight into a buffer from `take` and
 * emits a view of it (no copy), then takes the next (the backup's shared slabs, chunk-pool.ts).
 */
export interface ChunkBuffers {
  /** A buffer of at least `len` bytes that no one else uses until it is emitted and released. */
  take(len: number): Buffer;
}

/** Accepts records in key order and emits chunks (each a Buffer of its own). */
export class Chunker {
  private buf: Buffer;
  private len = 0;
  private h = 0;
  private cut = false;
  private readonly mask: number;
  /** Hashing starts this many bytes into a chunk (a boundary needs ≥ minSize bytes). */
  private readonly hashFrom: number;
  private readonly byKey: boolean;
  /** 2^32 / avgSize: a record of `size` bytes cuts when its key hash < size × scale. */
  private readonly scale: number;
  /** Records written so far. */
  records = 0;
  /** Bytes of records written so far. */
  bytes = 0;

  constructor(
    private readonly params: ChunkerParams,
    private readonly emit: (chunk: Buffer) => void,
    private readonly buffers?: ChunkBuffers,
  ) {
    validateChunkerParams(params);
    this.mask = params.avgSize - 1;
    this.hashFrom = Math.max(0, params.minSize - 64);
    this.byKey = params.boundary === 'key';
    this.scale = 2 ** 32 / params.avgSize;
    this.buf = buffers
      ? buffers.take(Chunker.bufferSize(params))
      : Buffer.allocUnsafe(Chunker.bufferSize(params));
  }

  /** The buffer a chunk is written into: the largest chunk plus room for its last record. */
  static bufferSize(params: ChunkerParams): number {
    return params.maxSize + 1024;
  }

  /** No record since the last chunk was emitted (a chunk would start with the next one). */
  get empty(): boolean {
    return this.len === 0;
  }

  /**
   * Adds a record; returns true when it ended a chunk (emitted before returning). Whether it
   * does depends only on the records since the chunk began (no look-ahead): a chunk that
   * begins at the same record and holds the same records ends at the same one.
   */
  add(key: string, value: Uint8Array | undefined): boolean {
    const keyLen = keyByteLength(key);
    const size = 5 + keyLen + (value === undefined ? 0 : 4 + value.byteLength);
    if (this.len + size > this.buf.length) {
      const want = Math.max(this.buf.length * 2, this.len + size);
      const bigger = this.buffers ? this.buffers.take(want) : Buffer.allocUnsafe(want);
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
    const start = this.len;
    const end = writeRecord(this.buf, start, key, keyLen, value);
    this.len = end;
    this.records++;
    this.bytes += size;
    if (this.byKey) {
      if (end >= this.params.minSize && keyHash(this.buf, start + 5, keyLen) < size * this.scale) {
        this.cut = true;
      }
    } else if (!this.cut && end > this.hashFrom) {
      const buf = this.buf;
      const mask = this.mask;
      const minSize = this.params.minSize;
      let h = this.h;
      for (let i = Math.max(start, this.hashFrom); i < end; i++) {
        h = ((h << 1) + (GEAR[buf[i] as number] as number)) >>> 0;
        if ((h & mask) === 0 && i + 1 >= minSize) {
          this.cut = true;
          break;
        }
      }
      this.h = h;
    }
    if (this.cut || this.len >= this.params.maxSize) {
      this.flush();
      return true;
    }
    return false;
  }

  /** Emits the last, possibly short, chunk. */
  finish(): void {
    if (this.len > 0) this.flush();
  }

  private flush(): void {
    let out: Buffer;
    if (this.buffers) {
      out = this.buf.subarray(0, this.len);
      this.buf = this.buffers.take(Chunker.bufferSize(this.params));
    } else {
      out = Buffer.allocUnsafe(this.len);
      this.buf.copy(out, 0, 0, this.len);
    }
    this.len = 0;
    this.h = 0;
    this.cut = false;
    this.emit(out);
  }
}
