/**
 * Content-addressed chunk storage. A chunk is stored once, under its content address
 * (SHA-256 of the plain bytes, or HMAC-SHA256 under the repository's id key when
 * encrypted), at chunks/<first two hex digits>/<address>. File layout:
 *
 *     0  "SYNC"          magic
 *     4  u8 version (1)
 *     5  u8 flags        bit 0: deflated (raw deflate), bit 1: AES-256-GCM sealed,
 *                        bit 2: brotli-compressed, bit 3: LZ4 (block, u32 LE plain length
 *                        first; lz4.ts) (at most one of bits 0, 2 and 3)
 *     6  u16 reserved (0)
 *     8  u32 plainLen    bytes of the chunk before compression
 *    12  u32 payloadLen
 *    16  payload         (sealed: iv | ciphertext | tag, the header and the address as AAD)
 *
 * A read checks everything: structure, the GCM tag, decompression, the plain length and the
 * content address, so a flipped bit, a truncated file or a chunk copied under another name
 * is refused as SYNOD_ERR_BACKUP_CHUNK_CORRUPT.
 *
 * The codec is recorded per chunk (the flags), so a repository may hold chunks written with
 * different codecs (a repository created with deflate keeps restoring after new chunks are
 * written with brotli). Hashing, compression and decompression run on worker threads
 * (chunk-pool.ts); decompression is capped at the plain length the header states.
 */
import path from 'node:path';
import {
  type ChunkSlabs,
  chunkPool,
  type DecodedChunk,
  DecompressError,
  MIN_WORKER_BYTES,
  type PendingChunk,
  type RecordsMode,
} from './chunk-pool.js';
import { open, type RepoKeys, seal } from './crypto.js';
import { BackupError } from './errors.js';
import type { RepoFs } from './fs.js';
import { lz4Available } from './lz4.js';

const MAGIC = 0x53594e43; // "SYNC"
const HEADER = 16;
const F_DEFLATE = 1;
const F_SEALED = 2;
const F_BROTLI = 4;
const F_LZ4 = 8;
const KNOWN_FLAGS = F_DEFLATE | F_SEALED | F_BROTLI | F_LZ4;
const CODEC_FLAGS = F_DEFLATE | F_BROTLI | F_LZ4;

export type CompressionAlgo = 'brotli' | 'deflate' | 'lz4' | 'none';

export interface CompressionParams {
  algo: CompressionAlgo;
  /** zlib level 1..9 for deflate; brotli quality 0..11; lz4 0 (it has no levels). */
  level: number;
}

/** Levels each codec accepts. */
export const COMPRESSION_LEVELS: Readonly<Record<CompressionAlgo, readonly [number, number]>> = {
  brotli: [0, 11],
  deflate: [1, 9],
  lz4: [0, 0],
  none: [0, 9],
};

/**
 * Brotli at quality 1: what new repositories use when LZ4 is not available, and what an LZ4
 * repository stores new chunks with on a machine without the native module. Measured on this
 * machine against deflate level 1 (benchmarks/backup.md): about 3× less CPU to compress the
 * benchmark's half-random values at a ratio within 1%, and a better ratio on text.
 */
export const BROTLI_DEFAULT: CompressionParams = { algo: 'brotli', level: 1 };
const LZ4_FALLBACK = BROTLI_DEFAULT;

/**
 * What a new repository uses unless told otherwise (`synod backup init --compress`): **LZ4**
 * when the native module (`lz4-napi`, an optional dependency) loads here, else brotli 1.
 * LZ4 costs a quarter to a half of brotli 1's CPU per MB on both sides (benchmarks/backup.md,
 * sessions 9 and 10) at the same ratio on the benchmark's half-random values (0.508 against
 * 0.504), but stores about 1.55× brotli's bytes on text-like values (0.252 against 0.162 of
 * the plain size): `--compress brotli` when space matters more than backup time.
 */
export function defaultCompression(): CompressionParams {
  return lz4Available() ? { algo: 'lz4', level: 0 } : { ...BROTLI_DEFAULT };
}

/** Throws SYNOD_ERR_BACKUP_INVALID_ARGUMENT unless `c` names a known codec and level. */
export function validateCompression(c: CompressionParams): void {
  const range = Object.hasOwn(COMPRESSION_LEVELS, c.algo) ? COMPRESSION_LEVELS[c.algo] : undefined;
  if (!range) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `unknown compression ${String(c.algo)} (known: brotli, deflate, lz4, none)`,
    );
  }
  if (!Number.isInteger(c.level) || c.level < range[0] || c.level > range[1]) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `compression ${c.algo}: level must be an integer ${range[0]}..${range[1]} (got ${String(c.level)})`,
    );
  }
}

export interface ChunkRef {
  /** Content address. */
  readonly id: string;
  /** Plain size in bytes. */
  readonly size: number;
  /** Bytes on disk (0 when the chunk was already stored by an earlier backup). */
  readonly stored: number;
}

/**
 * Chunk files being made durable (fsync, then rename) in the background while later chunks
 * are still being hashed and compressed. Measured (benchmarks/backup.md, session 7): doing all
 * of this after the last chunk left the CPU idle for 10-15 % of a full backup.
 */
const DURABLE_PARALLEL = 4;
/** Directory fsyncs in flight at once at the end of a backup (up to 256 directories). */
const DIR_SYNC_PARALLEL = 16;

export class ChunkStore {
  private readonly dirty = new Set<string>();
  /** Chunks written to .tmp files and not yet synced and renamed: address → final path. */
  private readonly pending = new Map<string, string>();
  /** Chunks known to exist on disk (written or seen in this process). */
  private readonly known = new Set<string>();
  /**
   * Every chunk address in the repository when `listAll` ran (the caller holds the repository
   * lock, so nothing else adds chunks meanwhile): an address not in it, nor written since, is
   * new without asking the file system. Undefined: ask (stat) for each chunk.
   */
  private listing: Set<string> | undefined;
  /**
   * While `listing` is held, in an unencrypted repository: shared buffers the workers write
   * each new chunk's stored bytes into, after room for its header (`put`), reused from chunk
   * to chunk (chunk-pool.ts `hashForWrite`).
   */
  private out: ChunkSlabs | undefined;
  /** Chunks written and waiting for a background fsync + rename (address, final path). */
  private readonly durableQueue: Array<[string, string]> = [];
  /** Background fsync + rename workers running. */
  private durableRunning = 0;
  /** Settles when the background workers are idle. */
  private durableIdle: Promise<void> = Promise.resolve();
  private markIdle: (() => void) | undefined;
  /** The first background failure since the last sync/abandon (reported by `sync`). */
  private durableError: unknown;

  constructor(
    private readonly fs: RepoFs,
    readonly root: string,
    private readonly keys: RepoKeys,
    private readonly compression: CompressionParams,
  ) {}

  pathOf(id: string): string {
    return path.join(this.root, id.slice(0, 2), id);
  }

  /**
   * Stores a chunk unless an identical one is already stored. The chunk is written to a
   * temporary file without fsync; `sync` makes every such file durable (fsyncs issued
   * together, so the file system can batch them), then renames it into place: a chunk
   * is visible under its address only once its bytes are durable.
   */
  async put(plain: Buffer): Promise<ChunkRef> {
    const size = plain.length;
    // The chunk goes to a worker (plain is not used here again, unless it is in shared memory,
    // which the caller reuses only after this resolves): it is hashed, and compressed only
    // when this address is new.
    // During a full backup (a listing of the stored chunks is held) a chunk is almost always
    // new: the worker compresses it with the hash, in one job (chunk-pool.ts `hashForWrite`).
    const out =
      this.listing !== undefined && this.out !== undefined && size >= MIN_WORKER_BYTES
        ? this.out.take(HEADER + size)
        : undefined;
    let pending: PendingChunk;
    try {
      pending = await chunkPool.hashForWrite(
        this.keys,
        plain,
        this.listing !== undefined
          ? { ...this.codec(), ...(out ? { out, at: HEADER } : {}) }
          : undefined,
      );
    } catch (err) {
      if (out) this.out?.give(out);
      throw err;
    }
    try {
      const id = pending.address;
      const file = this.pathOf(id);
      if (this.pending.has(id)) return { id, size, stored: 0 };
      // With a listing, it alone says what is stored (chunks made durable since are added to
      // it): `known` may remember a chunk another process's expire has deleted since.
      const stored =
        this.listing !== undefined
          ? await this.holds(id)
          : this.known.has(id) || ((await this.fs.size(file)) ?? 0) > HEADER;
      if (stored) {
        this.known.add(id);
        return { id, size, stored: 0 };
      }
      if (this.pending.has(id)) return { id, size, stored: 0 };
      this.pending.set(id, file);
      const bytes = await this.encode(id, size, pending, out);
      const dir = path.dirname(file);
      if (!this.dirty.has(dir)) {
        await this.fs.mkdirp(dir);
        this.dirty.add(dir);
      }
      await this.fs.writeFile(`${file}.tmp`, bytes);
      this.makeDurable(id, file);
      return { id, size, stored: bytes.length };
    } finally {
      // A chunk not taken (already stored, or an error on the way) is released in the worker.
      pending.drop();
      // Its stored bytes are written (or will never be): the buffer takes the next chunk.
      if (out) this.out?.give(out);
    }
  }

  /**
   * Lists the repository's chunks once, so that `put` of a chunk that is not there needs no
   * stat (a full backup writes mostly new chunks; a stat each went through libuv's thread pool
   * behind the chunk fsyncs, between a chunk's hash and its compression). Only while the
   * repository lock is held; `forgetListing` ends it.
   */
  async listAll(maxChunk: number): Promise<void> {
    this.listing = new Set(await this.list());
    this.out = this.keys.encrypted ? undefined : chunkPool.slabs(HEADER + maxChunk);
  }

  /**
   * Whether the listing taken by `listAll` (under the repository lock, which every writer and
   * expire holds) has the chunk, and its file is more than a header: a full backup reuses an
   * earlier chunk only if this says so (an expire may have deleted it since). False without a
   * listing.
   */
  async holds(id: string): Promise<boolean> {
    if (!this.listing?.has(id)) return false;
    return ((await this.fs.size(this.pathOf(id))) ?? 0) > HEADER;
  }

  forgetListing(): void {
    this.listing = undefined;
    this.out = undefined;
  }

  /**
   * Forgets chunks written but not synced (their .tmp files, and chunks already renamed into
   * place, are swept by expire as orphans), once the background work has stopped.
   */
  async abandon(): Promise<void> {
    this.durableQueue.length = 0;
    await this.durableIdle;
    this.durableError = undefined;
    this.pending.clear();
  }

  /**
   * Makes every chunk written so far durable: waits for the background fsync + rename of each
   * (started as each chunk was written), then fsyncs their directories and the chunk root.
   * A chunk is renamed under its address only after its own fsync, so a crash at any point
   * leaves either no file, a .tmp file, or a complete durable chunk under its address.
   */
  async sync(): Promise<void> {
    await this.durableIdle;
    if (this.durableError !== undefined) {
      const err = this.durableError;
      this.durableError = undefined;
      throw err;
    }
    const dirs = [...this.dirty].sort();
    let next = 0;
    const worker = async () => {
      while (next < dirs.length) await this.fs.fsyncDir(dirs[next++] as string);
    };
    await Promise.all(Array.from({ length: Math.min(DIR_SYNC_PARALLEL, dirs.length) }, worker));
    if (this.dirty.size > 0) await this.fs.fsyncDir(this.root);
    this.dirty.clear();
  }

  /** Queues a written chunk's fsync + rename on the background workers. */
  private makeDurable(id: string, file: string): void {
    this.durableQueue.push([id, file]);
    if (this.durableRunning >= DURABLE_PARALLEL) return;
    if (this.durableRunning === 0) {
      this.durableIdle = new Promise<void>((resolve) => {
        this.markIdle = resolve;
      });
    }
    this.durableRunning++;
    void this.durableWorker();
  }

  private async durableWorker(): Promise<void> {
    for (;;) {
      const job = this.durableQueue.shift();
      if (!job) break;
      const [id, file] = job;
      if (this.durableError !== undefined) continue; // stop after a failure; sync reports it
      try {
        await this.fs.fsyncFile(`${file}.tmp`);
        await this.fs.rename(`${file}.tmp`, file);
        this.known.add(id);
        this.listing?.add(id);
        this.pending.delete(id);
      } catch (err) {
        if (this.durableError === undefined) this.durableError = err;
      }
    }
    this.durableRunning--;
    if (this.durableRunning === 0) this.markIdle?.();
  }

  /** Reads and fully checks a chunk. */
  async get(id: string, expectedSize?: number): Promise<Buffer> {
    return (await this.getWithDigests(id, expectedSize, false)).plain;
  }

  /**
   * Reads and fully checks a chunk; with `records`, also returns the state-digest hash of each
   * put record in it (digest-pool.ts), computed off the calling thread with the address.
   */
  async getWithDigests(
    id: string,
    expectedSize: number | undefined,
    records: RecordsMode,
  ): Promise<Omit<DecodedChunk, 'address'>> {
    let raw: Buffer;
    try {
      raw = await this.fs.readFile(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BackupError('SYNOD_ERR_BACKUP_CHUNK_MISSING', `chunk ${id} is missing`, {
          chunk: id,
          file: this.pathOf(id),
        });
      }
      throw new BackupError(
        'SYNOD_ERR_BACKUP_IO',
        `cannot read chunk ${id}: ${(err as Error).message}`,
        { chunk: id },
        err,
      );
    }
    return this.decode(id, raw, expectedSize, records);
  }

  /** Lists every stored chunk address. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const d of (await this.fs.readdir(this.root)).sort()) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await this.fs.readdir(path.join(this.root, d))) {
        if (/^[0-9a-f]{64}$/.test(f)) out.push(f);
      }
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    await this.fs.unlink(this.pathOf(id));
    this.known.delete(id);
    this.listing?.delete(id);
    this.dirty.add(path.dirname(this.pathOf(id)));
  }

  /** Removes leftovers of interrupted writes. */
  async removeTemporaries(): Promise<number> {
    let n = 0;
    for (const d of await this.fs.readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await this.fs.readdir(path.join(this.root, d))) {
        if (f.endsWith('.tmp')) {
          await this.fs.unlink(path.join(this.root, d, f));
          n++;
        }
      }
    }
    return n;
  }

  /**
   * The codec new chunks are stored with: the repository's, except that an LZ4 repository on
   * a machine without the native module stores them with brotli 1 (recorded per chunk, so
   * both kinds read back; lz4.ts).
   */
  private codec(): { codec: CompressionAlgo; level: number } {
    const { algo, level } =
      this.compression.algo === 'lz4' && !lz4Available() ? LZ4_FALLBACK : this.compression;
    return { codec: algo, level };
  }

  private async encode(
    id: string,
    plainLen: number,
    pending: PendingChunk,
    out?: Buffer,
  ): Promise<Buffer> {
    let flags = 0;
    const { codec: algo, level } = this.codec();
    const taken = await pending.take(algo, level);
    const payload = taken.bytes;
    // The worker wrote the payload into `out` after room for the header: the header goes in
    // front of it there, and the file is written from that one buffer (no concatenation).
    const inPlace =
      out !== undefined &&
      !this.keys.encrypted &&
      payload.buffer === out.buffer &&
      payload.byteOffset === out.byteOffset + HEADER;
    if (taken.codec === 'brotli') flags |= F_BROTLI;
    else if (taken.codec === 'deflate') flags |= F_DEFLATE;
    else if (taken.codec === 'lz4') flags |= F_LZ4;
    if (this.keys.encrypted) flags |= F_SEALED;
    const header = inPlace ? out.subarray(0, HEADER) : Buffer.alloc(HEADER);
    header.writeUInt32BE(MAGIC, 0);
    header[4] = 1;
    header[5] = flags;
    // Reserved, 0 (a reused output buffer may hold anything here).
    header.writeUInt16BE(0, 6);
    header.writeUInt32BE(plainLen, 8);
    if (flags & F_SEALED) {
      const sealedLen = payload.length + 12 + 16;
      header.writeUInt32BE(sealedLen, 12);
      const sealed = seal(this.keys, payload, Buffer.concat([header, Buffer.from(id, 'ascii')]));
      return Buffer.concat([header, sealed]);
    }
    header.writeUInt32BE(payload.length, 12);
    return inPlace ? out.subarray(0, HEADER + payload.length) : Buffer.concat([header, payload]);
  }

  private async decode(
    id: string,
    raw: Buffer,
    expectedSize: number | undefined,
    records: RecordsMode,
  ): Promise<Omit<DecodedChunk, 'address'>> {
    const corrupt = (why: string): never => {
      throw new BackupError('SYNOD_ERR_BACKUP_CHUNK_CORRUPT', `chunk ${id} is corrupt: ${why}`, {
        chunk: id,
        file: this.pathOf(id),
      });
    };
    if (raw.length < HEADER || raw.readUInt32BE(0) !== MAGIC) corrupt('bad header');
    if (raw[4] !== 1) corrupt(`unknown version ${raw[4]}`);
    const flags = raw[5] as number;
    if ((flags & ~KNOWN_FLAGS) !== 0) corrupt(`unknown flags 0x${flags.toString(16)}`);
    const codecBits = flags & CODEC_FLAGS;
    if ((codecBits & (codecBits - 1)) !== 0) corrupt('flags name two codecs');
    const plainLen = raw.readUInt32BE(8);
    const payloadLen = raw.readUInt32BE(12);
    if (raw.length !== HEADER + payloadLen) {
      corrupt(`file is ${raw.length} bytes, header says ${HEADER + payloadLen}`);
    }
    if (expectedSize !== undefined && plainLen !== expectedSize) {
      corrupt(`plain size ${plainLen}, manifest says ${expectedSize}`);
    }
    let payload: Buffer = raw.subarray(HEADER);
    if (flags & F_SEALED) {
      if (!this.keys.encrypted) corrupt('chunk is encrypted but the repository is not');
      const opened = open(
        this.keys,
        payload,
        Buffer.concat([raw.subarray(0, HEADER), Buffer.from(id, 'ascii')]),
      );
      if (!opened)
        corrupt('authentication failed (tampered, truncated or stored under another name)');
      payload = opened as Buffer;
    } else if (this.keys.encrypted) {
      corrupt('chunk is not encrypted but the repository is');
    }
    let d: DecodedChunk;
    try {
      // Stored plain or compressed, a chunk is hashed (and its records) off this thread.
      d = await chunkPool.decode(
        this.keys,
        payload,
        flags & F_BROTLI
          ? 'brotli'
          : flags & F_DEFLATE
            ? 'deflate'
            : flags & F_LZ4
              ? 'lz4'
              : 'none',
        plainLen,
        records,
      );
    } catch (err) {
      if (!(err instanceof DecompressError)) throw err;
      return corrupt(`does not decompress (${err.message})`);
    }
    const plain = d.plain;
    if (plain.length !== plainLen)
      corrupt(`decoded ${plain.length} bytes, header says ${plainLen}`);
    if (d.address !== id) corrupt('content does not match its address');
    return {
      plain,
      ...(d.recordHashes ? { recordHashes: d.recordHashes } : {}),
      ...(d.fullScan ? { fullScan: d.fullScan } : {}),
    };
  }
}
