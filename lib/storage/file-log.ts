/**
 * FileLogStore: a segmented, append-only, checksummed write-ahead log with group commit.
 *
 * Layout of the log directory:
 *   00000000000000000001.log   segment files, named by the index of their first record slot
 *   COMPACT                    the compaction point (index, term), replaced atomically
 *   LOCK                       the lock file (when the store is opened on its own)
 *
 * Segment file: a 20-byte header (magic "SYNODLG1", base index u64 LE, CRC-32 of those 16
 * bytes) followed by frames. Frame: payload length u32 LE, CRC-32 (zlib.crc32, IEEE
 * polynomial) over the 4 length bytes then the payload, u32 LE, then the payload: kind u8
 * (1 = entry), entry type u8 (0 normal, 1 config, 2 noop), index u64 LE, term u64 LE, data.
 *
 * Writes go through one queue drained by one writer: consecutive appends waiting in the
 * queue are written together and covered by one fdatasync (group commit); every caller is
 * resolved only after the sync that covers its records. See docs/storage.md.
 */

import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { isNoSpaceErrno, StorageError } from './errors.js';
import { acquireDirLock, atomicWriteFile, type DirLock, fsyncDir } from './fs-util.js';
import {
  checkInteger,
  DEFAULT_MAX_ENTRY_BYTES,
  ENTRY_TYPE_CODE,
  ENTRY_TYPES,
  HARD_MAX_ENTRY_BYTES,
  LogView,
} from './log-core.js';
import type { LogEntry, LogStore } from './types.js';

export const SEGMENT_MAGIC = Buffer.from('SYNODLG1', 'ascii');
export const SEGMENT_HEADER_BYTES = 20;
export const FRAME_HEADER_BYTES = 8;
/** kind u8, type u8, index u64, term u64. */
export const ENTRY_FIXED_BYTES = 18;
export const FRAME_OVERHEAD = FRAME_HEADER_BYTES + ENTRY_FIXED_BYTES;
const KIND_ENTRY = 1;
const COMPACT_MAGIC = Buffer.from('SYNODCP1', 'ascii');
const COMPACT_BYTES = 28;
const TWO32 = 4294967296;

export interface FileLogStoreOptions {
  /** A segment is closed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Largest accepted entry data. Default 64 MiB, at most 1 GiB. */
  maxEntryBytes?: number;
  /** Upper bound on the bytes written under one fdatasync. Default 16 MiB. */
  maxBatchBytes?: number;
  /** Recently written entries kept in memory for reads. Default 8 MiB of data. */
  cacheBytes?: number;
  /**
   * Instead of refusing to open a corrupted log, truncate it after the last good record
   * (deleting every later segment) and report what was dropped in `recovery.repair`.
   */
  repair?: boolean;
  /** Take `dir/LOCK` (default true). `openDataDir` locks the parent directory instead. */
  lock?: boolean;
}

export interface RepairReport {
  /** Where the first bad record starts. */
  file: string;
  offset: number;
  reason: string;
  /** Bytes removed from `file` plus the sizes of the deleted later segments. */
  droppedBytes: number;
  /** Later segment files deleted entirely. */
  droppedSegments: string[];
  /** The last index kept (the compaction point if nothing is left). */
  lastIndexKept: number;
}

export interface RecoveryReport {
  segments: number;
  firstIndex: number;
  lastIndex: number;
  compactIndex: number;
  compactTerm: number;
  /** A torn final record (an interrupted, never acknowledged write) that was truncated. */
  tornTail?: { file: string; offset: number; droppedBytes: number; reason: string };
  /** Set when `repair: true` truncated a corrupted log. */
  repair?: RepairReport;
  /** Segments deleted because a compaction had been interrupted by a crash. */
  removedSegments: string[];
}

interface Segment {
  base: number;
  file: string;
  size: number;
  /** Byte offset of each record; record `base + i` starts at offsets[i]. */
  offsets: number[];
}

type AppendOp = {
  kind: 'append';
  entries: LogEntry[];
  frames: Buffer;
  sizes: number[];
  resolve: () => void;
  reject: (e: unknown) => void;
};
type TruncateOp = {
  kind: 'truncate';
  from: number;
  resolve: () => void;
  reject: (e: unknown) => void;
};
type CompactOp = {
  kind: 'compact';
  upTo: number;
  term: number;
  mode: 'prefix' | 'all';
  resolve: () => void;
  reject: (e: unknown) => void;
};
type Op = AppendOp | TruncateOp | CompactOp;

/** Rethrows a write error, marked as NoSpaceOnWrite when the disk or quota is full. */
function noSpaceOnWrite(err: unknown): never {
  throw isNoSpaceErrno(err) ? new NoSpaceOnWrite(err) : err;
}

/** A data write (not a sync) refused for lack of space: the batch can be rolled back. */
class NoSpaceOnWrite extends Error {
  constructor(readonly errno: unknown) {
    super((errno as Error).message);
  }
}

export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.log`;
}

function parseSegmentName(name: string): number | undefined {
  const m = /^(\d{20})\.log$/.exec(name);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

function writeU64(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32LE((n % TWO32) >>> 0, off);
  buf.writeUInt32LE(Math.floor(n / TWO32), off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32;
}

export function segmentHeader(base: number): Buffer {
  const h = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(h, 0);
  writeU64(h, 8, base);
  h.writeUInt32LE(crc32(h.subarray(0, 16)), 16);
  return h;
}

/** Encodes one entry as a frame into `buf` at `off`; returns the frame length. */
function encodeFrame(buf: Buffer, off: number, e: LogEntry): number {
  const len = ENTRY_FIXED_BYTES + e.data.byteLength;
  buf.writeUInt32LE(len, off);
  const p = off + FRAME_HEADER_BYTES;
  buf[p] = KIND_ENTRY;
  buf[p + 1] = ENTRY_TYPE_CODE[e.type];
  writeU64(buf, p + 2, e.index);
  writeU64(buf, p + 10, e.term);
  buf.set(e.data, p + ENTRY_FIXED_BYTES);
  const crc = crc32(buf.subarray(p, p + len), crc32(buf.subarray(off, off + 4)));
  buf.writeUInt32LE(crc, off + 4);
  return FRAME_HEADER_BYTES + len;
}

type FrameResult =
  | { ok: true; end: number; index: number; term: number; type: number; dataStart: number }
  | { ok: false; reason: string; torn: boolean };

/**
 * Parses the frame at `off`. `torn` is true when the problem looks like an interrupted
 * write (the frame runs past the end of the file, or its checksum fails); false when a
 * frame with a valid checksum is nevertheless wrong (a logical corruption).
 */
function parseFrame(buf: Buffer, off: number, expectedIndex: number | undefined): FrameResult {
  const remaining = buf.length - off;
  if (remaining < FRAME_HEADER_BYTES) {
    return { ok: false, reason: 'incomplete frame header', torn: true };
  }
  const len = buf.readUInt32LE(off);
  if (len < ENTRY_FIXED_BYTES || len > HARD_MAX_ENTRY_BYTES + ENTRY_FIXED_BYTES) {
    return { ok: false, reason: `implausible frame length ${len}`, torn: true };
  }
  if (remaining < FRAME_HEADER_BYTES + len) {
    return {
      ok: false,
      reason: `frame of ${len} bytes runs past the end of the file`,
      torn: true,
    };
  }
  const p = off + FRAME_HEADER_BYTES;
  const crc = crc32(buf.subarray(p, p + len), crc32(buf.subarray(off, off + 4)));
  if (crc !== buf.readUInt32LE(off + 4)) {
    return { ok: false, reason: 'checksum mismatch', torn: true };
  }
  if (buf[p] !== KIND_ENTRY) {
    return { ok: false, reason: `unknown record kind ${buf[p]}`, torn: false };
  }
  const type = buf[p + 1] as number;
  if (type >= ENTRY_TYPES.length) {
    return { ok: false, reason: `unknown entry type ${type}`, torn: false };
  }
  const index = readU64(buf, p + 2);
  if (expectedIndex !== undefined && index !== expectedIndex) {
    return {
      ok: false,
      reason: `record holds index ${index} where ${expectedIndex} was expected`,
      torn: false,
    };
  }
  return {
    ok: true,
    end: p + len,
    index,
    term: readU64(buf, p + 10),
    type,
    dataStart: p + ENTRY_FIXED_BYTES,
  };
}

/** True when some offset after `from` holds a frame with a valid checksum. */
function validFrameAfter(buf: Buffer, from: number): boolean {
  for (let y = from + 1; y + FRAME_OVERHEAD <= buf.length; y++) {
    const len = buf.readUInt32LE(y);
    if (len < ENTRY_FIXED_BYTES || y + FRAME_HEADER_BYTES + len > buf.length) continue;
    const r = parseFrame(buf, y, undefined);
    if (r.ok) return true;
  }
  return false;
}

function corrupt(file: string, offset: number, reason: string): StorageError {
  return new StorageError(
    'SYNOD_ERR_LOG_CORRUPT',
    `log corrupted in ${file} at offset ${offset}: ${reason}. Refusing to open; opening with { repair: true } truncates after the last good record, dropping what follows`,
    { file, offset, reason },
  );
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, off, buf.byteLength - off, position + off);
    off += bytesWritten;
  }
}

async function readCompactPoint(file: string): Promise<{ index: number; term: number }> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { index: 0, term: 0 };
    throw err;
  }
  if (
    buf.length !== COMPACT_BYTES ||
    !buf.subarray(0, 8).equals(COMPACT_MAGIC) ||
    crc32(buf.subarray(0, 24)) !== buf.readUInt32LE(24)
  ) {
    throw corrupt(file, 0, 'compaction record is damaged');
  }
  return { index: readU64(buf, 8), term: readU64(buf, 16) };
}

export function encodeCompactPoint(index: number, term: number): Buffer {
  const buf = Buffer.alloc(COMPACT_BYTES);
  COMPACT_MAGIC.copy(buf, 0);
  writeU64(buf, 8, index);
  writeU64(buf, 16, term);
  buf.writeUInt32LE(crc32(buf.subarray(0, 24)), 24);
  return buf;
}

export class FileLogStore implements LogStore {
  readonly dir: string;
  /** What recovery found and did when the store was opened. */
  readonly recovery: RecoveryReport;
  private readonly view: LogView;
  private readonly segments: Segment[];
  private readonly segmentBytes: number;
  private readonly maxEntryBytes: number;
  private readonly maxBatchBytes: number;
  private readonly cacheBytes: number;
  private active: FileHandle | undefined;
  private lock: DirLock | undefined;
  private readonly queue: Op[] = [];
  private running = false;
  private drained: (() => void)[] = [];
  private failure: StorageError | undefined;
  private closed = false;
  /** Accepted entries not yet covered by a sync. */
  private readonly pending = new Map<number, LogEntry>();
  /** Recently synced entries (insertion order = age). */
  private readonly cache = new Map<number, LogEntry>();
  private cachedBytes = 0;
  private readonly activeReads = new Set<Promise<unknown>>();
  /** Number of fdatasync calls made (for tests and benchmarks). */
  syncCount = 0;

  private constructor(
    dir: string,
    view: LogView,
    segments: Segment[],
    active: FileHandle,
    recovery: RecoveryReport,
    opts: Required<Omit<FileLogStoreOptions, 'repair' | 'lock'>>,
    lock: DirLock | undefined,
  ) {
    this.dir = dir;
    this.view = view;
    this.segments = segments;
    this.active = active;
    this.recovery = recovery;
    this.segmentBytes = opts.segmentBytes;
    this.maxEntryBytes = opts.maxEntryBytes;
    this.maxBatchBytes = opts.maxBatchBytes;
    this.cacheBytes = opts.cacheBytes;
    this.lock = lock;
  }

  /** Opens (creating if needed) the log in `dir`, recovering from whatever is on disk. */
  static async open(dir: string, opts: FileLogStoreOptions = {}): Promise<FileLogStore> {
    const segmentBytes = checkInteger('segmentBytes', opts.segmentBytes ?? 64 * 1024 * 1024, 512);
    const maxEntryBytes = checkInteger(
      'maxEntryBytes',
      opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES,
      0,
    );
    if (maxEntryBytes > HARD_MAX_ENTRY_BYTES) {
      throw new StorageError(
        'SYNOD_ERR_INVALID_ARGUMENT',
        `maxEntryBytes must be at most ${HARD_MAX_ENTRY_BYTES}`,
      );
    }
    const maxBatchBytes = checkInteger('maxBatchBytes', opts.maxBatchBytes ?? 16 * 1024 * 1024, 1);
    const cacheBytes = checkInteger('cacheBytes', opts.cacheBytes ?? 8 * 1024 * 1024, 0);
    const abs = path.resolve(dir);
    await fs.mkdir(abs, { recursive: true });
    const lock = opts.lock === false ? undefined : await acquireDirLock(abs);
    try {
      const { view, segments, recovery } = await recover(abs, opts.repair === true);
      const last = segments[segments.length - 1] as Segment;
      const active = await fs.open(last.file, 'r+');
      return new FileLogStore(
        abs,
        view,
        segments,
        active,
        recovery,
        { segmentBytes, maxEntryBytes, maxBatchBytes, cacheBytes },
        lock,
      );
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  firstIndex(): number {
    return this.view.firstIndex();
  }

  lastIndex(): number {
    return this.view.lastIndex();
  }

  term(index: number): number | undefined {
    return this.view.term(index);
  }

  /** The compaction point (index and term of the last entry covered by a snapshot). */
  compactPoint(): { index: number; term: number } {
    return { index: this.view.compactIndex, term: this.view.compactTerm };
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    try {
      this.assertUsable();
      const conflict = this.view.checkAppend(entries, this.maxEntryBytes);
      if (entries.length === 0) return this.barrier();
      let total = 0;
      for (const e of entries) total += FRAME_OVERHEAD + e.data.byteLength;
      const frames = Buffer.allocUnsafe(total);
      const sizes: number[] = new Array(entries.length);
      const copies: LogEntry[] = new Array(entries.length);
      let off = 0;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i] as LogEntry;
        const n = encodeFrame(frames, off, e);
        sizes[i] = n;
        // The stored copy reads its data from the frame: later mutation by the caller
        // cannot change what we hold.
        copies[i] = {
          index: e.index,
          term: e.term,
          type: e.type,
          data: frames.subarray(off + FRAME_OVERHEAD, off + n),
        };
        off += n;
      }
      if (conflict !== undefined) this.truncateLogical(conflict);
      this.view.push(copies);
      for (const c of copies) this.pending.set(c.index, c);
      return new Promise<void>((resolve, reject) => {
        if (conflict !== undefined) {
          this.queue.push({
            kind: 'truncate',
            from: conflict,
            resolve: () => {},
            reject: () => {},
          });
        }
        this.queue.push({ kind: 'append', entries: copies, frames, sizes, resolve, reject });
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  truncateSuffix(fromIndex: number): Promise<void> {
    try {
      this.assertUsable();
      if (!this.view.checkTruncate(fromIndex)) return this.barrier();
      this.truncateLogical(fromIndex);
      return new Promise<void>((resolve, reject) => {
        this.queue.push({ kind: 'truncate', from: fromIndex, resolve, reject });
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  compact(upTo: number, term: number): Promise<void> {
    try {
      this.assertUsable();
      const mode = this.view.compact(upTo, term);
      if (mode === 'noop') return this.barrier();
      for (const m of [this.pending, this.cache]) {
        for (const [i, e] of m) {
          if (i <= upTo || mode === 'all') {
            m.delete(i);
            if (m === this.cache) this.cachedBytes -= e.data.byteLength;
          }
        }
      }
      return new Promise<void>((resolve, reject) => {
        this.queue.push({ kind: 'compact', upTo, term, mode, resolve, reject });
        this.kick();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Reads `[lo, hi)`. Refused (the store's SYNOD_ERR_IO) once a write or sync failed: the
   * in-memory view then still holds the failed records, which may never have reached the
   * disk, so nothing is read back from it; reopen the store to read what is durable.
   */
  entries(lo: number, hi: number, maxBytes?: number): Promise<LogEntry[]> {
    try {
      this.assertUsable();
      this.view.checkRead(lo, hi, maxBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    if (lo === hi) return Promise.resolve([]);
    // Plan synchronously, against the state as of this call.
    type Item = LogEntry | { seg: Segment; file: string; offset: number; end: number };
    const plan: Item[] = [];
    let bytes = 0;
    let segIdx = -1;
    for (let i = lo; i < hi; i++) {
      const mem = this.pending.get(i) ?? this.cache.get(i);
      let size: number;
      let item: Item;
      if (mem) {
        size = mem.data.byteLength;
        item = mem;
      } else {
        if (segIdx < 0 || !this.inSegment(segIdx, i)) segIdx = this.findSegment(i);
        const seg = this.segments[segIdx] as Segment;
        const k = i - seg.base;
        const offset = seg.offsets[k] as number;
        const end = k + 1 < seg.offsets.length ? (seg.offsets[k + 1] as number) : seg.size;
        size = end - offset - FRAME_OVERHEAD;
        item = { seg, file: seg.file, offset, end };
      }
      if (maxBytes !== undefined && plan.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      plan.push(item);
    }
    const p = this.executeRead(lo, plan);
    this.activeReads.add(p);
    const done = () => this.activeReads.delete(p);
    p.then(done, done);
    return p;
  }

  /** Resolves once every write accepted so far is durable. */
  sync(): Promise<void> {
    try {
      this.assertUsable();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.barrier();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.running || this.queue.length > 0) {
      await new Promise<void>((r) => this.drained.push(r));
    }
    this.closed = true;
    await Promise.allSettled([...this.activeReads]);
    await this.active?.close().catch(() => undefined);
    this.active = undefined;
    await this.lock?.release();
    this.lock = undefined;
  }

  // ---- internals -------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError('SYNOD_ERR_STORE_CLOSED', `log store ${this.dir} is closed`);
    }
  }

  private assertUsable(): void {
    this.assertOpen();
    if (this.failure) throw this.failure;
  }

  private barrier(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.drained.push(() => (this.failure ? reject(this.failure) : resolve()));
    });
  }

  private truncateLogical(from: number): void {
    const last = this.view.lastIndex();
    for (let i = from; i <= last; i++) {
      this.pending.delete(i);
      const c = this.cache.get(i);
      if (c) {
        this.cache.delete(i);
        this.cachedBytes -= c.data.byteLength;
      }
    }
    this.view.truncateFrom(from);
  }

  private inSegment(segIdx: number, index: number): boolean {
    const seg = this.segments[segIdx] as Segment;
    return index >= seg.base && index < seg.base + seg.offsets.length;
  }

  private findSegment(index: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segments[mid] as Segment).base <= index) lo = mid;
      else hi = mid - 1;
    }
    if (!this.inSegment(lo, index)) {
      throw new StorageError(
        'SYNOD_ERR_LOG_CORRUPT',
        `internal: index ${index} is not in any segment of ${this.dir}`,
        { index },
      );
    }
    return lo;
  }

  private async executeRead(
    lo: number,
    plan: (LogEntry | { seg: Segment; file: string; offset: number; end: number })[],
  ): Promise<LogEntry[]> {
    const out: LogEntry[] = new Array(plan.length);
    let i = 0;
    while (i < plan.length) {
      const item = plan[i] as LogEntry | { file: string; offset: number; end: number };
      if (!('file' in item)) {
        out[i] = item;
        i++;
        continue;
      }
      // A run of consecutive on-disk records in the same file: one read.
      let j = i + 1;
      while (j < plan.length) {
        const nx = plan[j] as LogEntry | { file: string; offset: number; end: number };
        if (!('file' in nx) || nx.file !== item.file) break;
        j++;
      }
      const last = plan[j - 1] as { end: number };
      const start = item.offset;
      const buf = Buffer.allocUnsafe(last.end - start);
      const fh = await fs.open(item.file, 'r');
      try {
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < buf.length) {
          throw corrupt(item.file, start + got, 'segment ends before a record the index expects');
        }
      } finally {
        await fh.close();
      }
      let off = 0;
      for (let k = i; k < j; k++) {
        const r = parseFrame(buf, off, lo + k);
        if (!r.ok) throw corrupt(item.file, start + off, r.reason);
        out[k] = {
          index: r.index,
          term: r.term,
          type: ENTRY_TYPES[r.type] as LogEntry['type'],
          data: buf.subarray(r.dataStart, r.end),
        };
        off = r.end;
      }
      i = j;
    }
    return out;
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // Start on a microtask so that appends issued in the same tick share the first sync.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    let inHand: Op[] = [];
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0] as Op;
        if (head.kind === 'append') {
          inHand = [];
          let bytes = 0;
          while (this.queue.length > 0) {
            const op = this.queue[0] as Op;
            if (op.kind !== 'append') break;
            if (inHand.length > 0 && bytes + op.frames.length > this.maxBatchBytes) break;
            bytes += op.frames.length;
            inHand.push(op);
            this.queue.shift();
          }
          try {
            await this.writeBatch(inHand as AppendOp[]);
          } catch (err) {
            if (
              !(err instanceof NoSpaceOnWrite) ||
              !this.queue.every((op) => op.kind === 'append')
            ) {
              throw err;
            }
            // Refused for lack of space before any sync: roll back and stay usable.
            const refused = inHand as AppendOp[];
            inHand = [];
            await this.rollBackNoSpace(refused, err.errno);
            continue;
          }
          for (const op of inHand as AppendOp[]) {
            for (const e of op.entries) {
              if (this.pending.get(e.index) === e) {
                this.pending.delete(e.index);
                this.cacheEntry(e);
              }
            }
          }
          const done = inHand;
          inHand = [];
          for (const op of done) op.resolve();
        } else {
          this.queue.shift();
          inHand = [head];
          await Promise.allSettled([...this.activeReads]);
          if (head.kind === 'truncate') await this.physicalTruncate(head.from);
          else await this.physicalCompact(head.upTo, head.term, head.mode);
          inHand = [];
          head.resolve();
        }
      }
    } catch (e) {
      const err = e instanceof NoSpaceOnWrite ? e.errno : e;
      this.failure = new StorageError(
        'SYNOD_ERR_IO',
        `log store ${this.dir} failed a write or sync and refuses further writes and reads; reopen it to recover from disk: ${(err as Error).message}`,
        { file: this.dir },
        err,
      );
      for (const op of [...inHand, ...this.queue.splice(0)]) op.reject(this.failure);
    } finally {
      this.running = false;
      const waiters = this.drained.splice(0);
      for (const w of waiters) w();
    }
  }

  /**
   * A full disk refused a data write of `refused` (nothing of it was synced). That batch and
   * every append queued behind it are refused with SYNOD_ERR_NO_SPACE, and the logical log
   * goes back to where it was before them — synchronously, before any await, so that an
   * append arriving meanwhile chains onto the log as it will be on disk. Then the files
   * lose whatever part of the batch reached them (a later segment it opened, a partial
   * record), so that a shorter record written later can never be followed by a stale
   * complete one. If that restore fails, it throws and the store fails for good.
   */
  private async rollBackNoSpace(refused: AppendOp[], cause: unknown): Promise<void> {
    const queued: AppendOp[] = [];
    while (this.queue.length > 0 && (this.queue[0] as Op).kind === 'append') {
      queued.push(this.queue.shift() as AppendOp);
    }
    const all = [...refused, ...queued];
    const from = ((refused[0] as AppendOp).entries[0] as LogEntry).index;
    if (from <= this.view.lastIndex()) this.truncateLogical(from);
    const error = new StorageError(
      'SYNOD_ERR_NO_SPACE',
      `log store ${this.dir}: no space left for the entries from index ${from}; none of them was kept (the log ends at ${from - 1}); retry once space is freed: ${(cause as Error).message}`,
      { file: this.dir, index: from },
      cause,
    );
    for (const op of all) op.reject(error);
    await this.physicalTruncate(from);
    const seg = this.lastSegment();
    if (!this.active) this.active = await fs.open(seg.file, 'r+');
    await this.active.truncate(seg.size);
    await this.active.datasync();
    this.syncCount++;
  }

  private cacheEntry(e: LogEntry): void {
    if (this.cacheBytes === 0) return;
    this.cache.set(e.index, e);
    this.cachedBytes += e.data.byteLength;
    while (this.cachedBytes > this.cacheBytes && this.cache.size > 0) {
      const [k, v] = this.cache.entries().next().value as [number, LogEntry];
      this.cache.delete(k);
      this.cachedBytes -= v.data.byteLength;
    }
  }

  private lastSegment(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  private async writeBatch(ops: AppendOp[]): Promise<void> {
    let seg = this.lastSegment();
    const expected = seg.base + seg.offsets.length;
    const first = (ops[0] as AppendOp).entries[0] as LogEntry;
    if (first.index !== expected) {
      throw new Error(`internal: batch starts at ${first.index}, the segment tail is ${expected}`);
    }
    const touched: FileHandle[] = [];
    const toClose: FileHandle[] = [];
    let dirDirty = false;
    let parts: Buffer[] = [];
    let partBytes = 0;
    let newOffsets: number[] = [];
    const flush = async (): Promise<void> => {
      if (partBytes === 0) return;
      const fh = this.active as FileHandle;
      const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, partBytes);
      await writeAll(fh, data, seg.size).catch(noSpaceOnWrite);
      seg.size += partBytes;
      for (const o of newOffsets) seg.offsets.push(o);
      if (!touched.includes(fh)) touched.push(fh);
      parts = [];
      partBytes = 0;
      newOffsets = [];
    };
    for (const op of ops) {
      let off = 0;
      for (let k = 0; k < op.entries.length; k++) {
        const n = op.sizes[k] as number;
        const occupied = seg.size + partBytes;
        if (occupied >= this.segmentBytes && seg.offsets.length + newOffsets.length > 0) {
          await flush();
          // The closed segment is made durable before its successor exists, so that after
          // a power loss a later segment never survives an earlier one's missing tail.
          await (this.active as FileHandle).datasync();
          this.syncCount++;
          const base = seg.base + seg.offsets.length;
          const file = path.join(this.dir, segmentName(base));
          const fh = await fs.open(file, 'wx+').catch(noSpaceOnWrite);
          try {
            await writeAll(fh, segmentHeader(base), 0);
          } catch (err) {
            await fh.close().catch(() => undefined);
            await fs.rm(file, { force: true }).catch(() => undefined);
            noSpaceOnWrite(err);
          }
          toClose.push(this.active as FileHandle);
          this.active = fh;
          seg = { base, file, size: SEGMENT_HEADER_BYTES, offsets: [] };
          this.segments.push(seg);
          dirDirty = true;
        }
        newOffsets.push(seg.size + partBytes);
        parts.push(op.frames.subarray(off, off + n));
        partBytes += n;
        off += n;
      }
    }
    try {
      await flush();
      if (!touched.includes(this.active as FileHandle)) touched.push(this.active as FileHandle);
      await Promise.all(touched.map((fh) => fh.datasync()));
      this.syncCount += touched.length;
      if (dirDirty) await fsyncDir(this.dir);
    } finally {
      for (const fh of toClose) await fh.close().catch(() => undefined);
    }
  }

  private async physicalTruncate(from: number): Promise<void> {
    // Delete whole later segments, newest first, making each deletion durable so a crash
    // never leaves a hole in the middle of the log.
    while (this.segments.length > 1 && this.lastSegment().base > from) {
      const seg = this.segments.pop() as Segment;
      await this.active?.close();
      this.active = undefined;
      await fs.rm(seg.file, { force: true });
      await fsyncDir(this.dir);
    }
    const seg = this.lastSegment();
    if (!this.active) this.active = await fs.open(seg.file, 'r+');
    const k = from - seg.base;
    if (k >= 0 && k < seg.offsets.length) {
      const at = seg.offsets[k] as number;
      await this.active.truncate(at);
      await this.active.datasync();
      this.syncCount++;
      seg.offsets.length = k;
      seg.size = at;
    }
  }

  private async physicalCompact(upTo: number, term: number, mode: 'prefix' | 'all'): Promise<void> {
    // The compaction point first: recovery ignores everything at or below it, and drops
    // what follows an entry at `upTo` with another term, so any crash point below is safe.
    await atomicWriteFile(path.join(this.dir, 'COMPACT'), encodeCompactPoint(upTo, term));
    if (mode === 'prefix') {
      let removed = false;
      while (this.segments.length > 1 && (this.segments[1] as Segment).base <= upTo + 1) {
        const seg = this.segments.shift() as Segment;
        await fs.rm(seg.file, { force: true });
        removed = true;
      }
      if (removed) await fsyncDir(this.dir);
      return;
    }
    await this.active?.close();
    this.active = undefined;
    while (this.segments.length > 0) {
      const seg = this.segments.pop() as Segment;
      await fs.rm(seg.file, { force: true });
      await fsyncDir(this.dir);
    }
    const base = upTo + 1;
    const file = path.join(this.dir, segmentName(base));
    const fh = await fs.open(file, 'w+');
    await writeAll(fh, segmentHeader(base), 0);
    await fh.datasync();
    this.syncCount++;
    await fsyncDir(this.dir);
    this.active = fh;
    this.segments.push({ base, file, size: SEGMENT_HEADER_BYTES, offsets: [] });
  }
}

interface ScannedSegment extends Segment {
  terms: number[];
}

/** Scans the log directory, fixes what a crash can leave behind, and builds the index. */
async function recover(
  dir: string,
  repair: boolean,
): Promise<{ view: LogView; segments: Segment[]; recovery: RecoveryReport }> {
  const names = await fs.readdir(dir);
  for (const n of names) {
    if (n.endsWith('.tmp')) await fs.rm(path.join(dir, n), { force: true });
  }
  const cp = await readCompactPoint(path.join(dir, 'COMPACT'));
  const bases = names
    .map(parseSegmentName)
    .filter((b): b is number => b !== undefined)
    .sort((a, b) => a - b);
  const report: RecoveryReport = {
    segments: 0,
    firstIndex: 0,
    lastIndex: 0,
    compactIndex: cp.index,
    compactTerm: cp.term,
    removedSegments: [],
  };
  const segs: ScannedSegment[] = [];
  let cut: { at: number; file: string; offset: number; reason: string } | undefined;

  for (let si = 0; si < bases.length; si++) {
    const base = bases[si] as number;
    const file = path.join(dir, segmentName(base));
    const isLast = si === bases.length - 1;
    const buf = await fs.readFile(file);
    const seg: ScannedSegment = { base, file, size: buf.length, offsets: [], terms: [] };
    const prev = segs[segs.length - 1];
    if (prev && prev.base + prev.offsets.length !== base) {
      const prevEnd = prev.base + prev.offsets.length - 1;
      if (prevEnd > cp.index) {
        const reason = `segment starts at index ${base} but the previous one ends at ${prevEnd}`;
        if (!repair) throw corrupt(file, 0, reason);
        cut = { at: si, file, offset: 0, reason };
        break;
      }
    }
    const header = buf.subarray(0, SEGMENT_HEADER_BYTES);
    const headerOk =
      buf.length >= SEGMENT_HEADER_BYTES &&
      header.subarray(0, 8).equals(SEGMENT_MAGIC) &&
      crc32(header.subarray(0, 16)) === header.readUInt32LE(16) &&
      readU64(header, 8) === base;
    if (!headerOk) {
      if (isLast && !validFrameAfter(buf, -1)) {
        // A segment created just before a crash: its header never reached the disk.
        const fh = await fs.open(file, 'r+');
        try {
          await fh.truncate(0);
          await writeAll(fh, segmentHeader(base), 0);
          await fh.datasync();
        } finally {
          await fh.close();
        }
        if (buf.length > 0) {
          report.tornTail = {
            file,
            offset: 0,
            droppedBytes: buf.length,
            reason: 'segment header incomplete',
          };
        }
        seg.size = SEGMENT_HEADER_BYTES;
        segs.push(seg);
        continue;
      }
      if (!repair) throw corrupt(file, 0, 'bad segment header');
      cut = { at: si, file, offset: 0, reason: 'bad segment header' };
      break;
    }
    let off = SEGMENT_HEADER_BYTES;
    let idx = base;
    while (off < buf.length) {
      const r = parseFrame(buf, off, idx);
      if (!r.ok) {
        if (isLast && r.torn && !validFrameAfter(buf, off)) {
          const fh = await fs.open(file, 'r+');
          try {
            await fh.truncate(off);
            await fh.datasync();
          } finally {
            await fh.close();
          }
          report.tornTail = { file, offset: off, droppedBytes: buf.length - off, reason: r.reason };
          seg.size = off;
        } else if (!repair) {
          throw corrupt(file, off, r.reason);
        } else {
          cut = { at: si, file, offset: off, reason: r.reason };
        }
        break;
      }
      seg.offsets.push(off);
      seg.terms.push(r.term);
      off = r.end;
      idx++;
    }
    segs.push(seg);
    if (cut) break;
  }

  if (cut) {
    let dropped = 0;
    const droppedSegments: string[] = [];
    const keepCut = cut.offset >= SEGMENT_HEADER_BYTES;
    for (let si = bases.length - 1; si >= cut.at + (keepCut ? 1 : 0); si--) {
      const file = path.join(dir, segmentName(bases[si] as number));
      const st = await fs.stat(file);
      dropped += st.size;
      droppedSegments.unshift(file);
      await fs.rm(file, { force: true });
      await fsyncDir(dir);
    }
    if (keepCut) {
      const seg = segs[segs.length - 1] as ScannedSegment;
      dropped += seg.size - cut.offset;
      const fh = await fs.open(seg.file, 'r+');
      try {
        await fh.truncate(cut.offset);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      seg.size = cut.offset;
    } else if (segs.length > 0 && (segs[segs.length - 1] as ScannedSegment).file === cut.file) {
      segs.pop();
    }
    const lastSeg = segs[segs.length - 1];
    report.repair = {
      file: cut.file,
      offset: cut.offset,
      reason: cut.reason,
      droppedBytes: dropped,
      droppedSegments,
      lastIndexKept: lastSeg ? lastSeg.base + lastSeg.offsets.length - 1 : cp.index,
    };
  }

  // Apply the compaction point: an entry at cp.index with another term means the log
  // conflicts with the snapshot (an interrupted "discard everything" compaction).
  for (const seg of segs) {
    const k = cp.index - seg.base;
    if (k >= 0 && k < seg.offsets.length && seg.terms[k] !== cp.term) {
      const at = seg.offsets[k + 1] ?? seg.size;
      if (at < seg.size) {
        const fh = await fs.open(seg.file, 'r+');
        try {
          await fh.truncate(at);
          await fh.datasync();
        } finally {
          await fh.close();
        }
        seg.size = at;
        seg.offsets.length = k + 1;
        seg.terms.length = k + 1;
      }
      const later = segs.splice(segs.indexOf(seg) + 1);
      for (const l of later.reverse()) {
        await fs.rm(l.file, { force: true });
        await fsyncDir(dir);
        report.removedSegments.push(l.file);
      }
      break;
    }
  }
  // Segments wholly at or below the compaction point are leftovers.
  while (segs.length > 0) {
    const s = segs[0] as ScannedSegment;
    const end = s.base + s.offsets.length - 1;
    const next = segs[1];
    const whollyCompacted = next
      ? next.base <= cp.index + 1
      : end <= cp.index && s.base <= cp.index;
    if (!whollyCompacted) break;
    await fs.rm(s.file, { force: true });
    report.removedSegments.push(s.file);
    segs.shift();
  }
  if (report.removedSegments.length > 0) await fsyncDir(dir);
  if (segs.length === 0) {
    const base = cp.index + 1;
    const file = path.join(dir, segmentName(base));
    const fh = await fs.open(file, 'w+');
    try {
      await writeAll(fh, segmentHeader(base), 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dir);
    segs.push({ base, file, size: SEGMENT_HEADER_BYTES, offsets: [], terms: [] });
  }
  const first = segs[0] as ScannedSegment;
  if (first.base > cp.index + 1) {
    throw corrupt(
      first.file,
      0,
      `the log starts at index ${first.base} but the compaction point is ${cp.index}: segments are missing`,
    );
  }
  // Records a dead process wrote but never synced are adopted: make them durable before
  // anything new is acknowledged on top of them (a later sync of the active segment alone
  // would not cover an earlier segment's unsynced tail).
  for (const s of segs) {
    const fh = await fs.open(s.file, 'r+');
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
  await fsyncDir(dir);
  const view = new LogView(cp.index, cp.term);
  for (const s of segs) {
    for (let k = 0; k < s.terms.length; k++) {
      if (s.base + k > cp.index) view.terms.push(s.terms[k] as number);
    }
  }
  report.segments = segs.length;
  report.firstIndex = view.firstIndex();
  report.lastIndex = view.lastIndex();
  const segments: Segment[] = segs.map(({ base, file, size, offsets }) => ({
    base,
    file,
    size,
    offsets,
  }));
  return { view, segments, recovery: report };
}
