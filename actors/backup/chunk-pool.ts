/**
 * The CPU work of chunks, on worker threads: a chunk's content address (SHA-256, or
 * HMAC-SHA256 under the id key), its compression (backup) or decompression (restore, verify),
 * and on restore the state-digest hash of every record in it (digest.ts: SHA-256(u32 keyLen |
 * key | value) per put). CPU profiles of the benchmark put these at the top of the main
 * thread: per-record hashes on restore, the address (~1 ms of blocking work per MiB) and
 * deflate on backup. On workers they overlap the main thread's record encoding and decoding,
 * use a second core, and keep an event loop that also serves a node (the embedded agent) free.
 *
 * Buffers cross by transfer, not copy: the chunker's chunk goes to a worker, which hashes it,
 * keeps it, and compresses it only if the repository does not already hold that address
 * (`hashForWrite` → `compress` or `drop`, same worker); a stored payload goes to a worker and
 * its plain bytes come back. A backup's chunks are in shared memory instead (`ChunkSlabs`):
 * the same bytes go to that worker and, in a full backup, to the worker keeping the stream
 * digest (`streamHash`, fed in order), and the slab is reused once both are done with it.
 *
 * Workers start lazily, each job goes to the least busy one, and they are unreferenced while
 * idle (a process that is done exits). A worker runs a piece of plain JavaScript (no project
 * modules to resolve, so it works alike under tsx, tap and the compiled CLI); the `InThread`
 * functions below are the reference implementation, used for chunks under
 * `MIN_WORKER_BYTES` (a round trip costs more than the work) and when the pool size is 0, and
 * test/backup/chunk-pool.test.ts checks that both give the same bytes.
 *
 * Pool size: `SYNOD_BACKUP_WORKERS` (0 = everything in the calling thread, compression on
 * libuv's thread pool), else the number of CPUs, at most 4.
 */
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { chunkId, type RepoKeys } from './crypto.js';
import { recordHash, StateDigest, StreamDigest } from './digest.js';
import { BackupError } from './errors.js';
import { lz4, lz4Available, lz4DecodeBlock, lz4ModulePath, lz4PlainLength } from './lz4.js';
import { decodeRecords, forEachRecord } from './records.js';

export type Codec = 'brotli' | 'deflate' | 'lz4';

export interface DecodedChunk {
  readonly plain: Buffer;
  /** Content address (hex) of `plain`. */
  readonly address: string;
  /**
   * When asked for: the state-digest hash of each put record, in order, 32 bytes each
   * (deletes have none). Absent when the records do not parse (the caller's decoder says
   * where).
   */
  readonly recordHashes?: Buffer;
  /** When asked for (`records: 'full'` or `'scan'`): what a streamed restore checks (`FullScan`). */
  readonly fullScan?: FullScan;
}

/**
 * One chunk of a full backup's record stream, summed up on the worker: the state-digest sum of
 * its put records (digest.ts `recordHash`, added modulo 2^256, 32 bytes big-endian), how many
 * puts and deletes it holds, whether its keys ascend strictly (in JavaScript string order, as
 * the writer sorts them), and its first and last key (the caller checks the order across
 * chunks). Absent when the records do not parse.
 */
export interface FullScan {
  /** Absent in mode 'scan' (a version-2 full backup is checked by its stream digest). */
  readonly sum?: Buffer;
  readonly puts: number;
  readonly deletes: number;
  readonly ascending: boolean;
  readonly firstKey: string | undefined;
  readonly lastKey: string | undefined;
}

/**
 * What `decode` computes from the records besides the address: true, each put's digest hash;
 * 'full', the `FullScan` with the digest sum; 'scan', the `FullScan` without it (no per-record
 * hash at all).
 */
export type RecordsMode = boolean | 'full' | 'scan';

/** A chunk hashed for writing: take its bytes to store (if new), or drop it. */
export interface PendingChunk {
  readonly address: string;
  /**
   * The bytes to store: compressed with `codec` (and `codec` returned) when that makes them
   * smaller, else the plain chunk (codec undefined). 'none' returns the plain chunk.
   */
  take(codec: Codec | 'none', level: number): Promise<{ bytes: Buffer; codec?: Codec }>;
  drop(): void;
}

/** Thrown (inside) when a payload does not decompress; the chunk store names the chunk. */
export class DecompressError extends Error {
  override readonly name = 'DecompressError';
}

/** Below this many bytes a chunk's work is done in the calling thread. */
export const MIN_WORKER_BYTES = 16 * 1024;
/** Room above the expected size in a codec's single output buffer. */
const OUT_SLACK = 1024;

/** zlib's raw deflate on libuv's thread pool (also used by the log archive). */
export const deflateRaw = promisify(zlib.deflateRaw) as (
  b: Buffer,
  o: zlib.ZlibOptions,
) => Promise<Buffer>;
export const inflateRaw = promisify(zlib.inflateRaw) as (
  b: Buffer,
  o: zlib.ZlibOptions,
) => Promise<Buffer>;
const brotliCompress = promisify(zlib.brotliCompress) as (
  b: Buffer,
  o: zlib.BrotliOptions,
) => Promise<Buffer>;
const brotliDecompress = promisify(zlib.brotliDecompress) as (
  b: Buffer,
  o: zlib.BrotliOptions,
) => Promise<Buffer>;

function brotliParams(level: number, size: number): Record<number, number> {
  return {
    [zlib.constants.BROTLI_PARAM_QUALITY]: level,
    [zlib.constants.BROTLI_PARAM_SIZE_HINT]: size,
  };
}

/** The reference implementation (calling thread; zlib on libuv's thread pool). */
export const InThread = {
  async take(
    plain: Buffer,
    codec: Codec | 'none',
    level: number,
  ): Promise<{ bytes: Buffer; codec?: Codec }> {
    if (codec === 'none') return { bytes: plain };
    const z = await InThread.compress(plain, codec, level);
    return z ? { bytes: z, codec } : { bytes: plain };
  },

  async compress(plain: Buffer, codec: Codec, level: number): Promise<Buffer | undefined> {
    if (plain.length === 0) return undefined;
    const chunkSize = plain.length + OUT_SLACK;
    const z =
      codec === 'lz4'
        ? lz4().compressSync(plain)
        : codec === 'brotli'
          ? await brotliCompress(plain, { chunkSize, params: brotliParams(level, plain.length) })
          : await deflateRaw(plain, { level, chunkSize });
    return z.length < plain.length ? z : undefined;
  },

  async decompress(payload: Buffer, codec: Codec, plainLen: number): Promise<Buffer> {
    // One output buffer of the stated size; a stream that decodes to more is refused before
    // it is held in memory (maxOutputLength), not after.
    const opts = { chunkSize: plainLen + OUT_SLACK, maxOutputLength: Math.max(1, plainLen) };
    if (codec === 'lz4') {
      // The payload states its plain length first: checked before anything is allocated.
      const says = lz4PlainLength(payload);
      if (says !== plainLen) {
        throw new DecompressError(`LZ4 payload says ${String(says)} bytes, expected ${plainLen}`);
      }
      try {
        if (lz4Available()) return lz4().uncompressSync(payload);
        // No native module here: the JavaScript block decoder (lz4.ts) reads it all the same.
        const out = lz4DecodeBlock(payload);
        return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      } catch (err) {
        throw new DecompressError((err as Error).message);
      }
    }
    try {
      return codec === 'brotli'
        ? await brotliDecompress(payload, opts)
        : await inflateRaw(payload, opts);
    } catch (err) {
      throw new DecompressError((err as Error).message);
    }
  },

  fullScan(plain: Buffer, withSum = true): FullScan | undefined {
    const sum = new StateDigest();
    let puts = 0;
    let deletes = 0;
    let ascending = true;
    let firstKey: string | undefined;
    let prev: string | undefined;
    try {
      forEachRecord(plain, '?', (key, value) => {
        if (firstKey === undefined) firstKey = key;
        if (prev !== undefined && !(prev < key)) ascending = false;
        prev = key;
        if (value === undefined) deletes++;
        else {
          if (withSum) sum.add(key, value);
          puts++;
        }
      });
    } catch {
      return undefined;
    }
    return {
      ...(withSum ? { sum: sum.bytes() } : {}),
      puts,
      deletes,
      ascending,
      firstKey,
      lastKey: prev,
    };
  },

  recordHashes(plain: Buffer): Buffer | undefined {
    const out: Buffer[] = [];
    try {
      for (const r of decodeRecords(plain)) {
        if (r.value !== undefined) out.push(recordHash(r.key, r.value));
      }
    } catch {
      return undefined;
    }
    return Buffer.concat(out, out.length * 32);
  },
};

const WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const SLACK = ${OUT_SLACK};
// LZ4 (lz4.ts): the package's resolved path, loaded on first use.
const LZ4_PATH = ${JSON.stringify(lz4ModulePath() ?? null)};
let lz4m;
function lz4() {
  if (!lz4m) {
    if (!LZ4_PATH) throw new Error('LZ4 (npm package lz4-napi) is not installed');
    lz4m = require(LZ4_PATH);
  }
  return lz4m;
}
const kept = new Map();
let scratch = Buffer.allocUnsafe(64 * 1024);
const view = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
// A buffer of its own (never a slice of Node's shared pool) can be transferred.
const own = (b) => (b.buffer.byteLength > Buffer.poolSize ? b : new Uint8Array(b));
const address = (plain, idKey) =>
  idKey
    ? crypto.createHmac('sha256', Buffer.from(idKey)).update(plain).digest('hex')
    : crypto.hash('sha256', plain, 'hex');
// SHA-256 of a put record as digest.ts \`recordHash\` defines it: key length (4 bytes), key, value.
function putRecordHash(plain, kStart, keyLen, vStart, vLen) {
  const need = 4 + keyLen + vLen;
  if (need > scratch.length) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  scratch.writeUInt32BE(keyLen, 0);
  plain.copy(scratch, 4, kStart, kStart + keyLen);
  plain.copy(scratch, 4 + keyLen, vStart, vStart + vLen);
  return crypto.hash('sha256', scratch.subarray(0, need), 'buffer');
}
function recordHashes(plain) {
  const out = [];
  let off = 0;
  while (off < plain.length) {
    if (off + 5 > plain.length) return undefined;
    const kind = plain[off];
    const keyLen = plain.readUInt32BE(off + 1);
    const kStart = off + 5;
    if (kStart + keyLen > plain.length) return undefined;
    let next = kStart + keyLen;
    if (kind === 0) {
      if (next + 4 > plain.length) return undefined;
      const vLen = plain.readUInt32BE(next);
      next += 4;
      if (next + vLen > plain.length) return undefined;
      out.push(putRecordHash(plain, kStart, keyLen, next, vLen));
      next += vLen;
    } else if (kind !== 1) {
      return undefined;
    }
    off = next;
  }
  return Buffer.concat(out, out.length * 32);
}
// A key's bytes hold a 4-byte UTF-8 sequence (a character outside the BMP): byte order and
// JavaScript's UTF-16 string order may differ, so such keys are compared as strings.
function astral(b, s, e) {
  for (let i = s; i < e; i++) if (b[i] >= 0xf0) return true;
  return false;
}
function fullScan(plain, withSum) {
  const acc = new Uint32Array(8);
  let puts = 0;
  let deletes = 0;
  let ascending = true;
  let pS = -1;
  let pE = -1;
  let pAstral = false;
  let fS = -1;
  let fE = -1;
  let off = 0;
  while (off < plain.length) {
    if (off + 5 > plain.length) return undefined;
    const kind = plain[off];
    const keyLen = plain.readUInt32BE(off + 1);
    const kStart = off + 5;
    const kEnd = kStart + keyLen;
    if (kEnd > plain.length) return undefined;
    let next = kEnd;
    if (kind === 0) {
      if (next + 4 > plain.length) return undefined;
      const vLen = plain.readUInt32BE(next);
      next += 4;
      if (next + vLen > plain.length) return undefined;
      if (withSum) {
        const h = putRecordHash(plain, kStart, keyLen, next, vLen);
        let carry = 0;
        for (let i = 0; i < 8; i++) {
          const s = acc[i] + h.readUInt32BE(28 - i * 4) + carry;
          acc[i] = s >>> 0;
          carry = s > 0xffffffff ? 1 : 0;
        }
      }
      puts++;
      next += vLen;
    } else if (kind === 1) {
      deletes++;
    } else {
      return undefined;
    }
    const kAstral = astral(plain, kStart, kEnd);
    if (fS < 0) {
      fS = kStart;
      fE = kEnd;
    } else if (ascending) {
      if (pAstral || kAstral) {
        ascending = plain.toString('utf8', pS, pE) < plain.toString('utf8', kStart, kEnd);
      } else {
        // buf.compare(target, tStart, tEnd, sStart, sEnd) orders the source (this key)
        // against the target (the previous one).
        ascending = plain.compare(plain, pS, pE, kStart, kEnd) > 0;
      }
    }
    pS = kStart;
    pE = kEnd;
    pAstral = kAstral;
    off = next;
  }
  let sum;
  if (withSum) {
    sum = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) sum.writeUInt32BE(acc[i], 28 - i * 4);
  }
  return {
    sum,
    puts,
    deletes,
    ascending,
    firstKey: fS < 0 ? undefined : plain.toString('utf8', fS, fE),
    lastKey: pS < 0 ? undefined : plain.toString('utf8', pS, pE),
  };
}
// A chunk's bytes to store: compressed when that makes them smaller, else the plain bytes.
function compress(plain, codec, level) {
  if (codec === 'none' || plain.length === 0) return { out: own(plain), raw: true };
  const chunkSize = plain.length + SLACK;
  const z =
    codec === 'lz4'
      ? lz4().compressSync(plain)
      : codec === 'brotli'
      ? zlib.brotliCompressSync(plain, {
          chunkSize,
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: level,
            [zlib.constants.BROTLI_PARAM_SIZE_HINT]: plain.length,
          },
        })
      : zlib.deflateRawSync(plain, { level, chunkSize });
  return z.length < plain.length ? { out: own(z) } : { out: own(plain), raw: true };
}
// Stream digests (digest.ts StreamDigest, version 2): one Hash per stream id, fed in the order
// the messages arrive (a port delivers in the order posted).
const streams = new Map();
function handle(m) {
  if (m.op === 'stream') {
    let h = streams.get(m.sid);
    if (!h) {
      h = crypto.createHash('sha256');
      streams.set(m.sid, h);
    }
    h.update(view(m.buf));
    return { id: m.id };
  }
  if (m.op === 'stream-end') {
    const h = streams.get(m.sid) || crypto.createHash('sha256');
    streams.delete(m.sid);
    return { id: m.id, hex: h.digest('hex') };
  }
  if (m.op === 'stream-drop') {
    streams.delete(m.sid);
    return undefined;
  }
  if (m.op === 'hash') {
    const plain = view(m.buf);
    const addr = address(plain, m.idKey);
    // Speculative (a chunk the repository most likely lacks): compressed at once, while its
    // bytes are still in this core's cache, and returned with the address: no second message.
    if (m.codec !== undefined) {
      const c = compress(plain, m.codec, m.level);
      if (!m.out) return { id: m.id, address: addr, ...c };
      // Into the caller's shared buffer, after \`at\` bytes of room for the file header: no
      // new memory for the caller's heap to account for (see ChunkPool.hashForWrite).
      const dst = view(m.out);
      if (m.at + c.out.length > dst.length) return { id: m.id, error: 'output buffer too small' };
      dst.set(c.out, m.at);
      return { id: m.id, address: addr, outLen: c.out.length, raw: c.raw };
    }
    kept.set(m.id, plain);
    return { id: m.id, address: addr };
  }
  if (m.op === 'drop') {
    kept.delete(m.id);
    return undefined;
  }
  if (m.op === 'compress') {
    const plain = kept.get(m.id);
    kept.delete(m.id);
    if (!plain) return { id: m.id, error: 'no such chunk' };
    return { id: m.id, ...compress(plain, m.codec, m.level) };
  }
  if (m.op === 'decode') {
    const payload = view(m.buf);
    const opts = { chunkSize: m.plainLen + SLACK, maxOutputLength: Math.max(1, m.plainLen) };
    let plain;
    try {
      if (m.codec === 'lz4' && (payload.length < 4 || payload.readUInt32LE(0) !== m.plainLen)) {
        throw new Error('LZ4 payload does not state the expected plain length ' + m.plainLen);
      }
      plain =
        m.codec === 'none'
          ? payload
          : m.codec === 'lz4'
            ? lz4().uncompressSync(payload)
            : m.codec === 'brotli'
            ? zlib.brotliDecompressSync(payload, opts)
            : zlib.inflateRawSync(payload, opts);
    } catch (err) {
      return { id: m.id, decompress: String((err && err.message) || err) };
    }
    const hashes = m.records === true ? recordHashes(plain) : undefined;
    const scan =
      m.records === 'full' || m.records === 'scan' ? fullScan(plain, m.records === 'full') : undefined;
    return {
      id: m.id,
      plain: own(plain),
      address: address(plain, m.idKey),
      hashes: hashes ? own(hashes) : undefined,
      scan,
    };
  }
  return { id: m.id, error: 'unknown op ' + m.op };
}
parentPort.on('message', (m) => {
  let r;
  try {
    r = handle(m);
  } catch (err) {
    r = { id: m.id, error: String((err && err.message) || err) };
  }
  if (!r) return;
  const list = [];
  // Shared memory (a chunk the main thread allocated as a SharedArrayBuffer) is not
  // transferred: both threads see it already.
  for (const k of ['out', 'plain', 'hashes']) {
    if (r[k] && !(r[k].buffer instanceof SharedArrayBuffer)) list.push(r[k].buffer);
  }
  parentPort.postMessage(r, list);
});
`;

interface Reply {
  id: number;
  address?: string;
  /** Bytes written into the caller's `out` buffer (a speculative hash with `out`). */
  outLen?: number;
  /** A stream digest (op 'stream-end'). */
  hex?: string;
  out?: Uint8Array;
  raw?: boolean;
  plain?: Uint8Array;
  hashes?: Uint8Array;
  scan?: Omit<FullScan, 'sum'> & { sum?: Uint8Array };
  decompress?: string;
  error?: string;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
  /** Chunks kept by the worker between `hash` and `compress`/`drop`. */
  kept: number;
}

function defaultSize(): number {
  const env = process.env.SYNOD_BACKUP_WORKERS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (Number.isInteger(n) && n >= 0 && n <= 64) return n;
  }
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** A worker's `FullScan` (the sum, when there is one, as a Buffer). */
function scanReply(s: NonNullable<Reply['scan']>): FullScan {
  const { sum, ...rest } = s;
  return sum ? { ...rest, sum: buf(sum) } : rest;
}

/** A Buffer view of a Uint8Array that came back from a worker. */
function buf(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * The bytes of `b` in a form that can be transferred: `b` itself when its memory is its own
 * (the caller must not use `b` afterwards), else a copy. Node's small buffers share one pool
 * ArrayBuffer, which must never be transferred.
 */
function transferable(b: Buffer): Uint8Array {
  return b.buffer.byteLength > Buffer.poolSize ? b : new Uint8Array(b);
}

/** Whether `b` lies in shared memory (posted to a worker as it is: never transferred). */
function isShared(b: Uint8Array): boolean {
  return b.buffer instanceof SharedArrayBuffer;
}

/**
 * SHA-256 of a sequence of chunks fed in order: a full backup's stream digest (digest.ts,
 * version 2). `update` returns at once; the hash may run on a worker.
 */
export interface OrderedHash {
  /**
   * Feeds the next chunk. A chunk in shared memory is read by the worker later: its bytes must
   * not change until the promise returned settles (any other chunk is copied at once). The
   * promise never rejects: errors surface in `hex`.
   */
  update(chunk: Buffer): Promise<void>;
  /** SHA-256 (hex) of everything fed; rejects with the first failure (a worker gone). */
  hex(): Promise<string>;
  /** Gives up on the stream (after a failure elsewhere): frees it in the worker; never throws. */
  abandon(): void;
}

/**
 * The stream digest on one worker: every update goes to the same worker, whose port delivers
 * messages in the order they were posted, so the hash sees the chunks in order while the
 * calling thread serializes the next ones. Each update is acknowledged (so the pool counts it
 * as a job when it picks the least busy worker for other chunks' work).
 */
class WorkerStream implements OrderedHash {
  private failure: unknown;
  private ended = false;

  constructor(
    /** Posts a job to the stream's worker. */
    private readonly post: (msg: Record<string, unknown>) => Promise<Reply>,
    /** Posts a message that has no reply (if the worker is still there). */
    private readonly postNoReply: (msg: Record<string, unknown>) => void,
    private readonly sid: number,
  ) {}

  update(chunk: Buffer): Promise<void> {
    if (this.ended) throw new Error('stream digest already finished');
    if (this.failure !== undefined) return Promise.resolve();
    // Shared memory is read in place; anything else is copied by the port (the caller's
    // buffer may be transferred to another worker right after this call).
    return this.post({ op: 'stream', sid: this.sid, buf: chunk }).then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err;
      },
    );
  }

  async hex(): Promise<string> {
    if (this.ended) throw new Error('stream digest already finished');
    this.ended = true;
    let r: Reply | undefined;
    try {
      r = await this.post({ op: 'stream-end', sid: this.sid });
    } catch (err) {
      this.failure ??= err;
    }
    // A failed update fails the digest even when the end message got through.
    if (this.failure !== undefined) throw this.failure;
    return (r as Reply).hex as string;
  }

  abandon(): void {
    if (this.ended) return;
    this.ended = true;
    this.postNoReply({ op: 'stream-drop', sid: this.sid });
  }
}

/** The stream digest in the calling thread. */
class InThreadStream implements OrderedHash {
  private readonly digest = new StreamDigest();

  update(chunk: Buffer): Promise<void> {
    this.digest.update(chunk);
    return Promise.resolve();
  }

  async hex(): Promise<string> {
    return this.digest.hex();
  }

  abandon(): void {}
}

/**
 * Shared memory for a backup's chunks. The chunker writes records straight into a slab; a cut
 * chunk is a view of it that goes, without a copy, to the worker hashing the stream digest and
 * to the one hashing its address and compressing it (both read the same bytes); once both are
 * done with it (`give`), the slab takes the next chunk. Reusing slabs spares the copy out of
 * the chunker's buffer and the page faults and garbage of a fresh buffer per chunk (measured
 * in benchmarks/backup.md, session 11).
 */
export class ChunkSlabs {
  private readonly free: SharedArrayBuffer[] = [];
  /** Slabs made so far (a leak check for tests; bounded by the chunks in flight). */
  made = 0;

  constructor(
    readonly slabSize: number,
    private readonly keep = 16,
  ) {}

  /** A slab of at least `len` bytes (a larger one, for a huge record, is not reused). */
  take(len: number): Buffer {
    const sab = len <= this.slabSize ? this.free.pop() : undefined;
    if (sab) return Buffer.from(sab);
    this.made++;
    return Buffer.from(new SharedArrayBuffer(Math.max(len, this.slabSize)));
  }

  /**
   * Gives back the slab under `chunk`: only when no thread reads it any more (its chunk is
   * written or dropped, and the stream digest has hashed it).
   */
  give(chunk: Uint8Array): void {
    const sab = chunk.buffer;
    if (
      sab instanceof SharedArrayBuffer &&
      sab.byteLength === this.slabSize &&
      this.free.length < this.keep &&
      !this.free.includes(sab)
    ) {
      this.free.push(sab);
    }
  }
}

/**
 * Decides where a stream is hashed from its first chunk: on a worker when the pool has
 * workers and the chunk is worth a round trip (MIN_WORKER_BYTES), else in the calling thread
 * (a small backup, or a repository with tiny chunks).
 */
class LazyStream implements OrderedHash {
  private inner: OrderedHash | undefined;

  constructor(private readonly pool: ChunkPool) {}

  update(chunk: Buffer): Promise<void> {
    this.inner ??=
      chunk.length >= MIN_WORKER_BYTES ? this.pool.workerStream() : new InThreadStream();
    return this.inner.update(chunk);
  }

  hex(): Promise<string> {
    this.inner ??= new InThreadStream();
    return this.inner.hex();
  }

  abandon(): void {
    this.inner?.abandon();
  }
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private nextJob = 1;

  private sizeNow: number;

  constructor(size: number = defaultSize()) {
    this.sizeNow = size;
  }

  /** Workers at most (0: every job runs in the calling thread). */
  get size(): number {
    return this.sizeNow;
  }

  /**
   * From now on, runs every job in the calling thread, as `SYNOD_BACKUP_WORKERS=0` does,
   * unless a worker is running already or `SYNOD_BACKUP_WORKERS` says how many to use. For a
   * process whose whole work is a few megabytes (a one-off `synod backup --cluster` of a small
   * state): starting a worker costs it ~50 ms of CPU (a V8 isolate, the LZ4 module), more than
   * hashing and compressing a few MiB here (benchmarks/backup.md, session 13). Returns
   * whether it switched.
   */
  useCallingThread(): boolean {
    const env = process.env.SYNOD_BACKUP_WORKERS;
    if (this.slots.length > 0 || (env !== undefined && env !== '')) return false;
    this.sizeNow = 0;
    return true;
  }

  /**
   * Buffers for a backup's chunks, `slabSize` bytes each (the chunker's largest chunk plus
   * room for its last record), reused from chunk to chunk; undefined when this pool has no
   * workers (the chunker then copies each chunk out of its own buffer, as it always did).
   */
  slabs(slabSize: number): ChunkSlabs | undefined {
    return this.size === 0 ? undefined : new ChunkSlabs(slabSize);
  }

  /**
   * A stream digest (SHA-256 of chunks in order; digest.ts StreamDigest) hashed on one worker
   * when the first chunk is large enough for it, else in the calling thread.
   */
  streamHash(): OrderedHash {
    return this.size === 0 ? new InThreadStream() : new LazyStream(this);
  }

  /** A stream digest on the least busy worker (every update to that one). */
  workerStream(): OrderedHash {
    const slot = this.pick();
    return new WorkerStream(
      (msg) => this.call(slot, msg, []),
      (msg) => {
        if (this.slots.includes(slot)) slot.worker.postMessage(msg);
      },
      this.nextJob++,
    );
  }

  /**
   * Hashes a chunk about to be written. With a worker, `plain`'s memory is transferred to it
   * (do not use `plain` after this call); the worker keeps it until `compress` or `drop`.
   *
   * With `speculate` (a chunk the caller expects to be new, as nearly every chunk of a full
   * backup is), the worker compresses it in the same job and sends the stored bytes back
   * with the address: one message each way per chunk instead of two, the chunk compressed
   * while its bytes are still in that core's cache, and no wait in the worker's queue between
   * the hash and the compression. `take` must then ask for that codec and level; if the
   * address turns out to be stored already, the compression was wasted (nothing else is).
   *
   * With `speculate.out` (shared memory of at least `at` + the chunk's length), the worker
   * writes the stored bytes into it at offset `at` and `take` returns a view of them: the
   * caller can put a file header in front without a copy, and its heap gets no new buffer
   * per chunk. That matters in a process holding a large state (the agent): each megabyte
   * that arrived as a new buffer counted as external memory, and every ~64 MB of it started
   * a full mark of the heap (1 GB of state: a million keys and values; benchmarks/backup.md,
   * session 12). `out` must stay untouched until the bytes taken are written.
   */
  async hashForWrite(
    keys: RepoKeys,
    plain: Buffer,
    speculate?: { codec: Codec | 'none'; level: number; out?: Buffer; at?: number },
  ): Promise<PendingChunk> {
    if (this.size === 0 || plain.length < MIN_WORKER_BYTES) {
      const address = chunkId(keys, plain);
      return {
        address,
        take: (codec, level) => InThread.take(plain, codec, level),
        drop: () => {},
      };
    }
    // SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE here, not in a worker.
    if (speculate?.codec === 'lz4') lz4();
    const out = speculate?.out;
    const at = speculate?.at ?? 0;
    if (out && (!isShared(out) || out.length < at + plain.length)) {
      throw new Error('hashForWrite: out must be shared memory of at least at + plain.length');
    }
    const slot = this.pick();
    // Shared memory is posted as it is (the stream digest's worker may be reading it too).
    const shared = isShared(plain);
    const data = shared ? plain : transferable(plain);
    const r = await this.call(
      slot,
      {
        op: 'hash',
        buf: data,
        idKey: keys.id ?? null,
        ...(speculate ? { codec: speculate.codec, level: speculate.level } : {}),
        ...(out ? { out, at } : {}),
      },
      shared ? [] : [data.buffer as ArrayBuffer],
    );
    if (speculate) {
      let taken = false;
      return {
        address: r.address as string,
        take: async (codec, level) => {
          if (taken) throw new Error('chunk already taken or dropped');
          if (codec !== speculate.codec || level !== speculate.level) {
            throw new Error(
              `chunk was compressed as ${speculate.codec} ${speculate.level}, not ${codec} ${level}`,
            );
          }
          taken = true;
          const bytes = out
            ? out.subarray(at, at + (r.outLen as number))
            : buf(r.out as Uint8Array);
          return r.raw || codec === 'none' ? { bytes } : { bytes, codec };
        },
        drop: () => {
          taken = true;
        },
      };
    }
    slot.kept++;
    let open = true;
    const release = () => {
      if (!open) return false;
      open = false;
      slot.kept--;
      return true;
    };
    const drop = () => {
      if (!release()) return;
      if (this.slots.includes(slot)) slot.worker.postMessage({ op: 'drop', id: r.id });
    };
    return {
      address: r.address as string,
      take: async (codec, level) => {
        if (codec === 'lz4') {
          try {
            lz4(); // SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE here, not in a worker
          } catch (err) {
            drop();
            throw err;
          }
        }
        if (!release()) throw new Error('chunk already taken or dropped');
        const c = await this.call(slot, { op: 'compress', id: r.id, codec, level }, [], r.id);
        const bytes = buf(c.out as Uint8Array);
        return c.raw || codec === 'none' ? { bytes } : { bytes, codec };
      },
      drop,
    };
  }

  /**
   * Decompresses a payload ('none': takes it as it is) and hashes the result (and, with
   * `records`, each put record). With a worker, `payload`'s memory is transferred to it. Throws DecompressError when the
   * payload does not decode to at most `plainLen` bytes.
   */
  async decode(
    keys: RepoKeys,
    payload: Buffer,
    codec: Codec | 'none',
    plainLen: number,
    records: RecordsMode,
  ): Promise<DecodedChunk> {
    // Without the native LZ4 module the workers cannot decode LZ4: this thread does (lz4.ts).
    if (this.size === 0 || plainLen < MIN_WORKER_BYTES || (codec === 'lz4' && !lz4Available())) {
      const plain =
        codec === 'none' ? payload : await InThread.decompress(payload, codec, plainLen);
      return this.digest(keys, plain, records);
    }
    if (codec === 'lz4') lz4(); // SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE here, not in a worker
    const slot = this.pick();
    const data = transferable(payload);
    const r = await this.call(
      slot,
      { op: 'decode', buf: data, codec, plainLen, idKey: keys.id ?? null, records },
      [data.buffer as ArrayBuffer],
    );
    if (r.decompress !== undefined) throw new DecompressError(r.decompress);
    return {
      plain: buf(r.plain as Uint8Array),
      address: r.address as string,
      ...(r.hashes ? { recordHashes: buf(r.hashes) } : {}),
      ...(r.scan ? { fullScan: scanReply(r.scan) } : {}),
    };
  }

  /** Address (and record hashes) of a chunk's plain bytes, in the calling thread. */
  digest(keys: RepoKeys, plain: Buffer, records: RecordsMode): DecodedChunk {
    const address = chunkId(keys, plain);
    if (!records) return { plain, address };
    if (records === 'full' || records === 'scan') {
      const fullScan = InThread.fullScan(plain, records === 'full');
      return fullScan ? { plain, address, fullScan } : { plain, address };
    }
    const recordHashes = InThread.recordHashes(plain);
    return recordHashes ? { plain, address, recordHashes } : { plain, address };
  }

  /** Chunks hashed for writing and neither taken nor dropped yet (a leak check for tests). */
  keptChunks(): number {
    return this.slots.reduce((n, s) => n + s.kept, 0);
  }

  /** Stops every worker (jobs in flight fail). */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private call(
    slot: Slot,
    msg: Record<string, unknown>,
    transfer: ArrayBuffer[],
    id = this.nextJob++,
  ): Promise<Reply> {
    if (!this.slots.includes(slot)) {
      return Promise.reject(
        new BackupError('SYNOD_ERR_BACKUP_IO', 'chunk worker failed: it exited'),
      );
    }
    return new Promise<Reply>((resolve, reject) => {
      if (slot.jobs.size === 0) slot.worker.ref();
      slot.jobs.set(id, { resolve, reject });
      slot.worker.postMessage({ ...msg, id }, transfer);
    }).then((r) => {
      if (r.error !== undefined) {
        throw new BackupError('SYNOD_ERR_BACKUP_IO', `chunk worker failed: ${r.error}`);
      }
      return r;
    });
  }

  private pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.slots) if (!best || s.jobs.size < best.jobs.size) best = s;
    if (best && (best.jobs.size === 0 || this.slots.length >= this.size)) return best;
    return this.spawn();
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    worker.unref();
    const slot: Slot = { worker, jobs: new Map(), kept: 0 };
    const failAll = (why: string) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      for (const j of slot.jobs.values()) {
        j.reject(new BackupError('SYNOD_ERR_BACKUP_IO', `chunk worker failed: ${why}`));
      }
      slot.jobs.clear();
    };
    worker.on('message', (m: Reply) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      if (slot.jobs.size === 0) worker.unref();
      job.resolve(m);
    });
    worker.on('error', (err) => failAll(err.message));
    worker.on('exit', (code) => failAll(`exited with code ${code}`));
    this.slots.push(slot);
    return slot;
  }
}

/** The process's pool (lazy: no worker starts until a chunk of MIN_WORKER_BYTES comes). */
export const chunkPool = new ChunkPool();
