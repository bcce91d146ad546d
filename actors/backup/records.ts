/**
 * The serialized state: a stream of records, one per key, in ascending key order.
 *
 *     put:    u8 0 | u32 keyLen | key (UTF-8) | u32 valueLen | value
 *     delete: u8 1 | u32 keyLen | key (UTF-8)
 *
 * A full backup holds only puts; differential and incremental backups hold the final value
 * of every changed key and a delete for every key removed. Chunk boundaries fall on record
 * boundaries (chunker.ts), so every chunk decodes on its own.
 */
import { BackupError } from './errors.js';

export const REC_PUT = 0;
export const REC_DELETE = 1;

export interface StateRecord {
  readonly key: string;
  /** Undefined for a delete. */
  readonly value: Uint8Array | undefined;
}

/** Bytes a record takes in the stream. */
export function recordSize(key: string, value: Uint8Array | undefined): number {
  return 1 + 4 + Buffer.byteLength(key, 'utf8') + (value === undefined ? 0 : 4 + value.byteLength);
}

/** Keys up to this many characters are measured and written by a loop here (see below). */
const SHORT_KEY = 64;

/**
 * UTF-8 length of `key`. A short key is scanned here: all ASCII (the usual key), its length is
 * its character count; else `Buffer.byteLength`. A backup measures and writes one key per
 * record (about a thousand per MB), and for short keys the scan costs less than a call into
 * the native string encoder (session 11, benchmarks/backup.md).
 */
export function keyByteLength(key: string): number {
  const n = key.length;
  if (n <= SHORT_KEY) {
    let i = 0;
    while (i < n && key.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(key, 'utf8');
}

/**
 * Writes one record at `off` of `buf` (which must be large enough); returns the new offset.
 * `keyLen` is the key's UTF-8 length (`keyByteLength`).
 */
export function writeRecord(
  buf: Buffer,
  off: number,
  key: string,
  keyLen: number,
  value: Uint8Array | undefined,
): number {
  buf[off] = value === undefined ? REC_DELETE : REC_PUT;
  buf.writeUInt32BE(keyLen, off + 1);
  off += 5;
  if (keyLen === key.length && keyLen <= SHORT_KEY) {
    // As many UTF-8 bytes as characters: every character is ASCII, one byte each.
    for (let i = 0; i < keyLen; i++) buf[off + i] = key.charCodeAt(i);
    off += keyLen;
  } else {
    off += buf.write(key, off, keyLen, 'utf8');
  }
  if (value !== undefined) {
    buf.writeUInt32BE(value.byteLength, off);
    off += 4;
    buf.set(value, off);
    off += value.byteLength;
  }
  return off;
}

/**
 * Calls `fn` for every record of a chunk, in order (value undefined = delete; values are views
 * into `chunk`); the same checks as `decodeRecords` without an object per record (the restore's
 * hot loop). Returns the number of records.
 */
export function forEachRecord(
  chunk: Buffer,
  chunkId: string,
  fn: (key: string, value: Uint8Array | undefined) => void,
): number {
  let off = 0;
  let n = 0;
  const fail = (why: string): never => {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
      `chunk ${chunkId}: ${why} at byte ${off}`,
      { chunk: chunkId, offset: off },
    );
  };
  const len = chunk.length;
  while (off < len) {
    if (off + 5 > len) fail('truncated record header');
    const kind = chunk[off] as number;
    const keyLen = chunk.readUInt32BE(off + 1);
    if (kind !== REC_PUT && kind !== REC_DELETE) fail(`unknown record kind ${kind}`);
    const kStart = off + 5;
    if (kStart + keyLen > len) fail('truncated key');
    const key = chunk.toString('utf8', kStart, kStart + keyLen);
    let next = kStart + keyLen;
    if (kind === REC_PUT) {
      if (next + 4 > len) fail('truncated value length');
      const vLen = chunk.readUInt32BE(next);
      next += 4;
      if (next + vLen > len) fail('truncated value');
      fn(key, chunk.subarray(next, next + vLen));
      next += vLen;
    } else {
      fn(key, undefined);
    }
    off = next;
    n++;
  }
  return n;
}

/** Decodes every record of a chunk; values are views into `chunk`. */
export function* decodeRecords(chunk: Buffer, chunkId = '?'): Generator<StateRecord> {
  let off = 0;
  const fail = (why: string): never => {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
      `chunk ${chunkId}: ${why} at byte ${off}`,
      { chunk: chunkId, offset: off },
    );
  };
  while (off < chunk.length) {
    if (off + 5 > chunk.length) fail('truncated record header');
    const kind = chunk[off] as number;
    const keyLen = chunk.readUInt32BE(off + 1);
    if (kind !== REC_PUT && kind !== REC_DELETE) fail(`unknown record kind ${kind}`);
    const kStart = off + 5;
    if (kStart + keyLen > chunk.length) fail('truncated key');
    const key = chunk.toString('utf8', kStart, kStart + keyLen);
    let next = kStart + keyLen;
    let value: Uint8Array | undefined;
    if (kind === REC_PUT) {
      if (next + 4 > chunk.length) fail('truncated value length');
      const vLen = chunk.readUInt32BE(next);
      next += 4;
      if (next + vLen > chunk.length) fail('truncated value');
      value = chunk.subarray(next, next + vLen);
      next += vLen;
    }
    off = next;
    yield { key, value };
  }
}
