/**
 * FileSnapshotStore: snapshots written as a stream into a temporary file, then published
 * atomically (fsync, rename, fsync the directory).
 *
 * File `<index:20>-<term:20>.snap`:
 *   header   magic "SYNODSN1", meta length u32 LE, meta JSON {index, term, membership, createdAt}
 *   data     the snapshot bytes, streamed
 *   trailer  magic "SYNODSE2", data size u64 LE, SHA-256 of the data (32 bytes),
 *            SHA-256 of header + the first 48 trailer bytes (32 bytes)
 *
 * The file checksum covers the data through the data's SHA-256 (in those 48 bytes), so the
 * data is hashed once when written and once when verified. Snapshots written before (trailer
 * magic "SYNODSE1") still read: their file checksum is the SHA-256 of header + data + the
 * first 48 trailer bytes (the data hashed twice); test/storage/fixtures/snapshot-v1.
 *
 * `latest()` verifies both digests and skips (and reports) a corrupted snapshot, falling
 * back to the previous one; `read()` verifies the data digest again while streaming.
 * `prune()` verifies what it keeps, except files this store published or verified itself
 * whose size and modification time have not changed since.
 */
import { createHash } from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import { isNoSpaceErrno, StorageError } from './errors.js';
import { acquireDirLock, type DirLock, fsyncDir } from './fs-util.js';
import { checkInteger } from './log-core.js';
import type {
  Membership,
  SnapshotMeta,
  SnapshotReader,
  SnapshotStore,
  SnapshotWriter,
} from './types.js';

const HEAD_MAGIC = Buffer.from('SYNODSN1', 'ascii');
/** Trailer version 1: the file checksum hashes the data again. Read, no longer written. */
const TAIL_MAGIC_V1 = Buffer.from('SYNODSE1', 'ascii');
/** Trailer version 2: the file checksum covers header and trailer (with the data's SHA-256). */
const TAIL_MAGIC = Buffer.from('SYNODSE2', 'ascii');
export const SNAPSHOT_TRAILER_BYTES = 80;
const TWO32 = 4294967296;
const READ_CHUNK = 1024 * 1024;

export interface FileSnapshotStoreOptions {
  /** Take `dir/LOCK` (default true). `openDataDir` locks the parent directory instead. */
  lock?: boolean;
  /** Source of `createdAt` (wall clock). Default: the system clock. */
  clock?: Clock;
  /** Called when a snapshot is skipped because it is corrupted. */
  onCorrupt?: (info: { file: string; reason: string }) => void;
}

export interface SnapshotFileMeta extends SnapshotMeta {
  file: string;
  /** Byte offset of the data in the file. */
  dataOffset: number;
  /** Trailer version (1: the file checksum hashes the data too; 2: it does not). */
  trailer: 1 | 2;
  /** The file's modification time when its header and trailer were read (ns, as a bigint). */
  mtimeNs: bigint;
}

/** Size and modification time of a snapshot file: what `prune` compares to skip re-verifying it. */
interface FileStamp {
  size: number;
  mtimeNs: bigint;
}

function snapshotName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

export function checkMembership(m: unknown): Membership {
  const isList = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const mm = m as Partial<Membership> | null;
  if (
    mm === null ||
    typeof mm !== 'object' ||
    !isList(mm.voters) ||
    !isList(mm.learners) ||
    (mm.votersOutgoing !== undefined && !isList(mm.votersOutgoing))
  ) {
    throw new StorageError(
      'SYNOD_ERR_INVALID_ARGUMENT',
      'snapshot membership must be { voters: string[], learners: string[], votersOutgoing?: string[] }',
    );
  }
  const out: Membership = { voters: [...(mm.voters ?? [])], learners: [...(mm.learners ?? [])] };
  if (mm.votersOutgoing) out.votersOutgoing = [...mm.votersOutgoing];
  return out;
}

function corrupt(file: string, reason: string, offset = 0): StorageError {
  return new StorageError(
    'SYNOD_ERR_SNAPSHOT_CORRUPT',
    `snapshot ${file} is corrupted: ${reason}`,
    { file, offset, reason },
  );
}

/** Reads header and trailer (not the data) and returns the metadata, or throws. */
async function readMeta(file: string): Promise<SnapshotFileMeta> {
  const fh = await fs.open(file, 'r');
  try {
    const st = await fh.stat({ bigint: true });
    const size = Number(st.size);
    if (size < 12 + SNAPSHOT_TRAILER_BYTES)
      throw corrupt(file, `file of ${size} bytes is too short`);
    const head = Buffer.alloc(12);
    await fh.read(head, 0, 12, 0);
    if (!head.subarray(0, 8).equals(HEAD_MAGIC)) throw corrupt(file, 'bad header magic');
    const metaLen = head.readUInt32LE(8);
    if (metaLen > 16 * 1024 * 1024 || 12 + metaLen + SNAPSHOT_TRAILER_BYTES > size) {
      throw corrupt(file, `implausible metadata length ${metaLen}`, 8);
    }
    const metaBuf = Buffer.alloc(metaLen);
    await fh.read(metaBuf, 0, metaLen, 12);
    const tail = Buffer.alloc(SNAPSHOT_TRAILER_BYTES);
    await fh.read(tail, 0, SNAPSHOT_TRAILER_BYTES, size - SNAPSHOT_TRAILER_BYTES);
    const magic = tail.subarray(0, 8);
    const trailer = magic.equals(TAIL_MAGIC) ? 2 : magic.equals(TAIL_MAGIC_V1) ? 1 : 0;
    if (trailer === 0) {
      throw corrupt(file, 'bad trailer (incomplete write?)', size - SNAPSHOT_TRAILER_BYTES);
    }
    const dataSize = tail.readUInt32LE(8) + tail.readUInt32LE(12) * TWO32;
    const dataOffset = 12 + metaLen;
    if (dataOffset + dataSize + SNAPSHOT_TRAILER_BYTES !== size) {
      throw corrupt(file, `data size ${dataSize} does not match the file size ${size}`);
    }
    let parsed: { index: number; term: number; membership: Membership; createdAt: number };
    try {
      parsed = JSON.parse(metaBuf.toString('utf8'));
      checkInteger('index', parsed.index, 0);
      checkInteger('term', parsed.term, 0);
      checkMembership(parsed.membership);
    } catch (err) {
      throw corrupt(file, `bad metadata: ${(err as Error).message}`, 12);
    }
    return {
      index: parsed.index,
      term: parsed.term,
      membership: parsed.membership,
      createdAt: Number(parsed.createdAt),
      size: dataSize,
      checksum: tail.subarray(16, 48).toString('hex'),
      file,
      dataOffset,
      trailer: trailer as 1 | 2,
      mtimeNs: st.mtimeNs,
    };
  } finally {
    await fh.close();
  }
}

/** Streams the data region of a snapshot, verifying the data digest at the end. */
async function* streamData(meta: SnapshotFileMeta): AsyncGenerator<Uint8Array> {
  const fh = await fs.open(meta.file, 'r');
  try {
    const hash = createHash('sha256');
    let pos = meta.dataOffset;
    const end = meta.dataOffset + meta.size;
    while (pos < end) {
      const n = Math.min(READ_CHUNK, end - pos);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      if (bytesRead === 0) throw corrupt(meta.file, 'file shrank while reading', pos);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      pos += bytesRead;
      yield chunk;
    }
    const digest = hash.digest('hex');
    if (digest !== meta.checksum) {
      throw corrupt(meta.file, `data checksum ${digest} does not match ${meta.checksum}`);
    }
  } finally {
    await fh.close();
  }
}

/**
 * Verifies the file checksum and the data's: version 2, the data's SHA-256 (one pass) and
 * SHA-256(header | first 48 trailer bytes); version 1, SHA-256 of everything before the last 32
 * bytes, in the same pass.
 */
async function verifyFile(meta: SnapshotFileMeta): Promise<void> {
  const fh = await fs.open(meta.file, 'r');
  try {
    const { size } = await fh.stat();
    if (meta.trailer === 2) {
      const head = Buffer.allocUnsafe(meta.dataOffset);
      await readFully(fh, head, 0, meta.file);
      const tail = Buffer.allocUnsafe(SNAPSHOT_TRAILER_BYTES);
      await readFully(fh, tail, size - SNAPSHOT_TRAILER_BYTES, meta.file);
      const fileSum = createHash('sha256').update(head).update(tail.subarray(0, 48)).digest();
      if (!fileSum.equals(tail.subarray(48))) throw corrupt(meta.file, 'file checksum mismatch');
      const dataHash = createHash('sha256');
      let pos = meta.dataOffset;
      const end = meta.dataOffset + meta.size;
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, meta.size)));
      while (pos < end) {
        const n = Math.min(buf.length, end - pos);
        const { bytesRead } = await fh.read(buf, 0, n, pos);
        if (bytesRead === 0) throw corrupt(meta.file, 'file shrank while reading', pos);
        dataHash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      if (dataHash.digest('hex') !== meta.checksum) {
        throw corrupt(meta.file, 'data checksum mismatch');
      }
      return;
    }
    const hash = createHash('sha256');
    const dataHash = createHash('sha256');
    const covered = size - 32;
    let pos = 0;
    while (pos < covered) {
      const n = Math.min(READ_CHUNK, covered - pos);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      if (bytesRead === 0) throw corrupt(meta.file, 'file shrank while reading', pos);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      const dStart = Math.max(pos, meta.dataOffset);
      const dEnd = Math.min(pos + bytesRead, meta.dataOffset + meta.size);
      if (dEnd > dStart) dataHash.update(chunk.subarray(dStart - pos, dEnd - pos));
      pos += bytesRead;
    }
    const expect = Buffer.alloc(32);
    await fh.read(expect, 0, 32, covered);
    if (!hash.digest().equals(expect)) throw corrupt(meta.file, 'file checksum mismatch');
    if (dataHash.digest('hex') !== meta.checksum) {
      throw corrupt(meta.file, 'data checksum mismatch');
    }
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, at: number, file: string): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, at + off);
    if (bytesRead === 0) throw corrupt(file, 'file shrank while reading', at + off);
    off += bytesRead;
  }
}

class FileSnapshotReader implements SnapshotReader {
  readonly meta: SnapshotMeta;
  private readonly fileMeta: SnapshotFileMeta;

  constructor(m: SnapshotFileMeta) {
    this.fileMeta = m;
    const { file: _f, dataOffset: _d, trailer: _t, mtimeNs: _m, ...meta } = m;
    this.meta = meta;
  }

  read(): AsyncIterable<Uint8Array> {
    return streamData(this.fileMeta);
  }

  async readAll(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const c of this.read()) parts.push(c);
    return Buffer.concat(parts);
  }
}

let tmpSeq = 0;

class FileSnapshotWriter implements SnapshotWriter {
  private state: 'open' | 'committing' | 'done' = 'open';
  private size = 0;
  private readonly dataHash = createHash('sha256');
  private readonly fileHash = createHash('sha256');
  private chain: Promise<void> = Promise.resolve();
  private error: unknown;

  constructor(
    private readonly dir: string,
    private readonly tmp: string,
    private readonly fh: FileHandle,
    private readonly meta: {
      index: number;
      term: number;
      membership: Membership;
      createdAt: number;
    },
    headerBytes: number,
    /** Called once the writer is finished: with the published file and its stamp after a commit. */
    private readonly onDone: (published?: { file: string; stamp: FileStamp }) => void,
  ) {
    this.size = 0;
    this.pos = headerBytes;
  }

  private pos: number;

  static async create(
    dir: string,
    meta: { index: number; term: number; membership: Membership; createdAt: number },
    onDone: (published?: { file: string; stamp: FileStamp }) => void,
  ): Promise<FileSnapshotWriter> {
    const tmp = path.join(
      dir,
      `${snapshotName(meta.index, meta.term)}.tmp-${process.pid}-${tmpSeq++}`,
    );
    const fh = await fs.open(tmp, 'wx');
    const metaBuf = Buffer.from(JSON.stringify(meta), 'utf8');
    const head = Buffer.alloc(12);
    HEAD_MAGIC.copy(head, 0);
    head.writeUInt32LE(metaBuf.length, 8);
    const header = Buffer.concat([head, metaBuf]);
    try {
      await fh.write(header, 0, header.length, 0);
    } catch (err) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const w = new FileSnapshotWriter(dir, tmp, fh, meta, header.length, onDone);
    w.fileHash.update(header);
    return w;
  }

  write(chunk: Uint8Array, opts?: { readonly owned?: boolean }): Promise<void> {
    if (this.state !== 'open') {
      return Promise.reject(
        new StorageError('SYNOD_ERR_SNAPSHOT_STATE', `snapshot writer is ${this.state}`),
      );
    }
    if (!(chunk instanceof Uint8Array)) {
      return Promise.reject(
        new StorageError('SYNOD_ERR_INVALID_ARGUMENT', 'snapshot chunks must be Uint8Array'),
      );
    }
    // An owned chunk is not changed until the write settles: no copy (a streamed restore
    // writes a whole image through here).
    const copy = opts?.owned
      ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      : Buffer.from(chunk);
    const at = this.pos;
    this.pos += copy.length;
    this.size += copy.length;
    this.dataHash.update(copy);
    this.chain = this.chain.then(async () => {
      if (this.error) throw this.error;
      try {
        let off = 0;
        while (off < copy.length) {
          const { bytesWritten } = await this.fh.write(copy, off, copy.length - off, at + off);
          off += bytesWritten;
        }
      } catch (err) {
        this.error = err;
        throw err;
      }
    });
    return this.chain;
  }

  checksumSoFar(): string {
    return this.dataHash.copy().digest('hex');
  }

  async commit(): Promise<SnapshotMeta> {
    if (this.state !== 'open') {
      throw new StorageError('SYNOD_ERR_SNAPSHOT_STATE', `snapshot writer is ${this.state}`);
    }
    this.state = 'committing';
    try {
      await this.chain;
      const tail = Buffer.alloc(SNAPSHOT_TRAILER_BYTES);
      TAIL_MAGIC.copy(tail, 0);
      tail.writeUInt32LE((this.size % TWO32) >>> 0, 8);
      tail.writeUInt32LE(Math.floor(this.size / TWO32), 12);
      const checksum = this.dataHash.digest();
      checksum.copy(tail, 16);
      this.fileHash.update(tail.subarray(0, 48));
      this.fileHash.digest().copy(tail, 48);
      await this.fh.write(tail, 0, tail.length, this.pos);
      await this.fh.sync();
      const st = await this.fh.stat({ bigint: true });
      await this.fh.close();
      const final = path.join(this.dir, snapshotName(this.meta.index, this.meta.term));
      await fs.rename(this.tmp, final);
      await fsyncDir(this.dir);
      this.state = 'done';
      this.onDone({ file: final, stamp: { size: Number(st.size), mtimeNs: st.mtimeNs } });
      return { ...this.meta, size: this.size, checksum: checksum.toString('hex') };
    } catch (err) {
      this.state = 'done';
      await this.fh.close().catch(() => undefined);
      await fs.rm(this.tmp, { force: true });
      this.onDone();
      throw err instanceof StorageError
        ? err
        : new StorageError(
            isNoSpaceErrno(err) ? 'SYNOD_ERR_NO_SPACE' : 'SYNOD_ERR_IO',
            `snapshot ${this.tmp} could not be written: ${(err as Error).message}`,
            { file: this.tmp },
            err,
          );
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    await this.chain.catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    await fs.rm(this.tmp, { force: true });
    this.onDone();
  }
}

export class FileSnapshotStore implements SnapshotStore {
  readonly dir: string;
  private lock: DirLock | undefined;
  private readonly clock: Clock;
  private readonly onCorrupt: ((info: { file: string; reason: string }) => void) | undefined;
  private closed = false;
  private readonly writers = new Set<FileSnapshotWriter>();
  /** Snapshots found corrupted by the last `latest()` (newest first). */
  skipped: { file: string; reason: string }[] = [];
  /**
   * Files this store published or verified in full, with their size and modification time
   * then: `prune` does not read and hash them again while both are unchanged (a 6.5 MB KV
   * image cost two SHA-256 passes per kept snapshot on every prune, i.e. after every snapshot).
   */
  private readonly verified = new Map<string, FileStamp>();

  private constructor(dir: string, lock: DirLock | undefined, opts: FileSnapshotStoreOptions) {
    this.dir = dir;
    this.lock = lock;
    this.clock = opts.clock ?? systemClock;
    this.onCorrupt = opts.onCorrupt;
  }

  static async open(dir: string, opts: FileSnapshotStoreOptions = {}): Promise<FileSnapshotStore> {
    const abs = path.resolve(dir);
    await fs.mkdir(abs, { recursive: true });
    const lock = opts.lock === false ? undefined : await acquireDirLock(abs);
    try {
      for (const n of await fs.readdir(abs)) {
        if (n.includes('.tmp')) await fs.rm(path.join(abs, n), { force: true });
      }
    } catch (err) {
      await lock?.release();
      throw err;
    }
    return new FileSnapshotStore(abs, lock, opts);
  }

  async create(
    meta: Omit<SnapshotMeta, 'size' | 'checksum' | 'createdAt'>,
  ): Promise<SnapshotWriter> {
    this.assertOpen();
    if (meta === null || typeof meta !== 'object') {
      throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', 'snapshot meta must be an object');
    }
    const full = {
      index: checkInteger('index', meta.index, 0),
      term: checkInteger('term', meta.term, 0),
      membership: checkMembership(meta.membership),
      createdAt: this.clock.wallNow(),
    };
    const w: FileSnapshotWriter = await FileSnapshotWriter.create(this.dir, full, (published) => {
      this.writers.delete(w);
      if (published) this.verified.set(published.file, published.stamp);
    });
    this.writers.add(w);
    return w;
  }

  /** Metadata of every readable snapshot, newest first (headers and trailers only). */
  async list(): Promise<SnapshotMeta[]> {
    this.assertOpen();
    return (await this.scan()).metas.map(
      ({ file: _f, dataOffset: _d, trailer: _t, mtimeNs: _m, ...m }) => m,
    );
  }

  async latest(): Promise<SnapshotReader | undefined> {
    this.assertOpen();
    const { metas, broken } = await this.scan();
    this.skipped = [...broken];
    for (const m of metas) {
      try {
        await this.verify(m);
        for (const s of this.skipped) this.onCorrupt?.(s);
        return new FileSnapshotReader(m);
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        this.skipped.push({ file: m.file, reason: err.message });
      }
    }
    for (const s of this.skipped) this.onCorrupt?.(s);
    return undefined;
  }

  /**
   * Keeps the newest `keep` snapshots that verify and deletes older ones. Corrupted
   * snapshots are renamed to `*.corrupt` (kept for inspection, ignored from then on).
   */
  async prune(keep: number): Promise<void> {
    this.assertOpen();
    checkInteger('keep', keep, 0);
    const { metas, broken } = await this.scan();
    let valid = 0;
    const quarantine = broken.map((b) => b.file);
    for (const m of metas) {
      if (valid >= keep) {
        this.verified.delete(m.file);
        await fs.rm(m.file, { force: true });
        continue;
      }
      try {
        if (!this.knownGood(m)) await this.verify(m);
        valid++;
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        quarantine.push(m.file);
      }
    }
    for (const f of quarantine) {
      this.verified.delete(f);
      await fs.rename(f, `${f}.corrupt`).catch(() => undefined);
    }
    await fsyncDir(this.dir);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const w of [...this.writers]) await w.abort();
    this.closed = true;
    await this.lock?.release();
    this.lock = undefined;
  }

  private async scan(): Promise<{
    metas: SnapshotFileMeta[];
    broken: { file: string; reason: string }[];
  }> {
    const names = (await fs.readdir(this.dir)).filter((n) => n.endsWith('.snap'));
    const metas: SnapshotFileMeta[] = [];
    const broken: { file: string; reason: string }[] = [];
    for (const n of names) {
      const file = path.join(this.dir, n);
      try {
        metas.push(await readMeta(file));
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
        broken.push({ file, reason: err.message });
      }
    }
    metas.sort((a, b) => b.index - a.index || b.term - a.term || b.createdAt - a.createdAt);
    return { metas, broken };
  }

  /** Verifies both digests of `m` (throws `SYNOD_ERR_SNAPSHOT_CORRUPT`) and remembers it as good. */
  private async verify(m: SnapshotFileMeta): Promise<void> {
    this.verified.delete(m.file);
    await verifyFile(m);
    this.verified.set(m.file, {
      size: m.dataOffset + m.size + SNAPSHOT_TRAILER_BYTES,
      mtimeNs: m.mtimeNs,
    });
  }

  /** Whether `m` was published or verified by this store and has not changed since (size, mtime). */
  private knownGood(m: SnapshotFileMeta): boolean {
    const s = this.verified.get(m.file);
    return (
      s !== undefined &&
      s.mtimeNs === m.mtimeNs &&
      s.size === m.dataOffset + m.size + SNAPSHOT_TRAILER_BYTES
    );
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError('SYNOD_ERR_STORE_CLOSED', `snapshot store ${this.dir} is closed`);
    }
  }
}
