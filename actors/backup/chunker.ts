/**
 * Content-defined chunking of the record stream. A gear hash (h = (h << 1) + G[byte]) rolls
 * over the bytes of every record; once a chunk holds at least `minSize` bytes, a byte where
 * the low bits of h are all zero marks the end of the current record as a boundary. Since h
 * depends only on the last 32 bytes, a boundary depends only on nearby content: inserting,
 * changing or deleting keys moves the boundaries around the change and nowhere else, so
 * unchanged stretches of the key space produce byte-identical chunks that the repository
 * stores once, across backups. Chunks never split a record (a record larger than `maxSize`
 * becomes a chunk of its own).
 */
import { Random } from '../../lib/random.js';
import { BackupError } from './errors.js';
import { writeRecord } from './records.js';

export interface ChunkerParams {
  /** Target average chunk size in bytes (a power of two). */
  avgSize: number;
  minSize: number;
  maxSize: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = {
  avgSize: 1 << 20,
  minSize: 1 << 18,
  maxSize: 1 << 22,
};

export function validateChunkerParams(p: ChunkerParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(p.avgSize) || p.avgSize < 64 || !(p.minSize >= 1 && p.minSize <= p.avgSize)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `chunker: avgSize must be a power of two ≥ 64 and 1 ≤ minSize ≤ avgSize (got ${JSON.stringify(p)})`,
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

/** Accepts records in key order and emits chunks (each a fresh Buffer). */
export class Chunker {
  private buf: Buffer;
  private len = 0;
  private h = 0;
  private cut = false;
  private readonly mask: number;
  /** Hashing starts this many bytes into a chunk (a boundary needs ≥ minSize bytes). */
  private readonly hashFrom: number;
  /** Records written so far. */
  records = 0;
  /** Bytes of records written so far. */
  bytes = 0;

  constructor(
    private readonly params: ChunkerParams,
    private readonly emit: (chunk: Buffer) => void,
  ) {
    validateChunkerParams(params);
    this.mask = params.avgSize - 1;
    this.hashFrom = Math.max(0, params.minSize - 64);
    this.buf = Buffer.allocUnsafe(params.maxSize + 1024);
  }

  add(key: string, value: Uint8Array | undefined): void {
    const keyLen = Buffer.byteLength(key, 'utf8');
    const size = 5 + keyLen + (value === undefined ? 0 : 4 + value.byteLength);
    if (this.len + size > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + size));
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
    const start = this.len;
    const end = writeRecord(this.buf, start, key, keyLen, value);
    this.len = end;
    this.records++;
    this.bytes += size;
    if (!this.cut && end > this.hashFrom) {
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
    if (this.cut || this.len >= this.params.maxSize) this.flush();
  }

  /** Emits the last, possibly short, chunk. */
  finish(): void {
    if (this.len > 0) this.flush();
  }

  private flush(): void {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.len = 0;
    this.h = 0;
    this.cut = false;
    this.emit(out);
  }
}
