/**
 * LZ4 (block format with the plain length prepended, u32 little-endian) through the npm
 * package `lz4-napi` (lz4_flex, compiled; its prebuilt binary for each platform is a package of
 * the npm registry, nothing is downloaded or built at install time). Loaded on first use, so a
 * platform without the binary can still use every other codec. Without it, LZ4 chunks are
 * still **read** by the JavaScript block decoder below (`lz4DecodeBlock`, slower: a restore of
 * an LZ4 repository works on any machine), and a backup into an LZ4 repository stores its new
 * chunks with brotli 1 instead (the codec is recorded per chunk); `lz4()` itself, for callers
 * that need the native module, fails with SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE saying what to
 * install.
 *
 * Why a native codec (benchmarks/backup.md, session 9): on 1 MiB chunks of the benchmark's
 * half-random values LZ4 compresses in 0.6–0.7 CPU ms/MB and decompresses in 1.2, against
 * brotli 1's 2.5 and 3.0, to the same ratio (0.508 against 0.504); on JSON-like text it stores
 * 1.55× what brotli 1 does (0.252 against 0.162). Node 20's zlib has nothing near that speed.
 */
import { createRequire } from 'node:module';
import { BackupError } from './errors.js';

interface Lz4Module {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
}

const require = createRequire(import.meta.url);
let loaded: Lz4Module | undefined;
let failure: BackupError | undefined;

/** The resolved path of the package (handed to the chunk workers), or undefined. */
export function lz4ModulePath(): string | undefined {
  try {
    return require.resolve('lz4-napi');
  } catch {
    return undefined;
  }
}

/** The LZ4 module, loaded once; SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE when it cannot be. */
export function lz4(): Lz4Module {
  if (loaded) return loaded;
  if (failure === undefined) {
    try {
      loaded = loadLz4((id) => require(id));
      return loaded;
    } catch (err) {
      failure = err as BackupError;
    }
  }
  throw failure;
}

/** Loads the module through `load` (a test passes one that fails). */
export function loadLz4(load: (id: string) => unknown): Lz4Module {
  try {
    return load('lz4-napi') as Lz4Module;
  } catch (err) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE',
      `LZ4 is not available on this machine (npm package lz4-napi and its binary for ${process.platform}-${process.arch}: ${String((err as Error).message).split('\n')[0]}); a repository written with --compress lz4 needs it: install it (npm install lz4-napi)`,
    );
  }
}

/**
 * The plain length an LZ4 payload says it decodes to (its first four bytes): checked against
 * the chunk header before anything is allocated for it.
 */
export function lz4PlainLength(payload: Uint8Array): number | undefined {
  if (payload.byteLength < 4) return undefined;
  return (
    ((payload[0] as number) |
      ((payload[1] as number) << 8) |
      ((payload[2] as number) << 16) |
      ((payload[3] as number) << 24)) >>>
    0
  );
}

let hidden = false;

/**
 * Tests: behave as on a machine without the native module (`lz4Available()` false) while
 * `hide` is true, to exercise the fallbacks (JavaScript decoder, brotli for new chunks).
 */
export function hideNativeLz4ForTests(hide: boolean): void {
  hidden = hide;
}

/** True when the native LZ4 module loads here (new repositories then default to LZ4). */
export function lz4Available(): boolean {
  if (hidden) return false;
  try {
    lz4();
    return true;
  } catch {
    return false;
  }
}

/** Thrown by `lz4DecodeBlock` for a payload that is not a well-formed LZ4 block of its size. */
export class Lz4FormatError extends Error {
  override name = 'Lz4FormatError';
}

/**
 * Decodes an LZ4 payload as `lz4-napi` writes it (u32 LE plain length, then one LZ4 block)
 * in plain JavaScript: the fallback when the native module is not there. Every length and
 * offset is checked against the input and the stated output size, so damaged input is an
 * Lz4FormatError, never a read or write out of bounds. Self-contained (no imports, no
 * closures) on purpose.
 */
export function lz4DecodeBlock(payload: Uint8Array): Uint8Array {
  const fail = (why: string): never => {
    throw new Lz4FormatError(`malformed LZ4 block: ${why}`);
  };
  if (payload.length < 4) fail('shorter than its length prefix');
  const n =
    ((payload[0] as number) |
      ((payload[1] as number) << 8) |
      ((payload[2] as number) << 16) |
      ((payload[3] as number) << 24)) >>>
    0;
  const out = new Uint8Array(n);
  let ip = 4;
  let op = 0;
  const end = payload.length;
  if (n === 0) {
    // lz4_flex writes one zero token for empty input
    if (end > 4 && !(end === 5 && payload[4] === 0)) fail('data after an empty block');
    return out;
  }
  for (;;) {
    if (ip >= end) fail('truncated (token)');
    const token = payload[ip++] as number;
    let lit = token >>> 4;
    if (lit === 15) {
      let b = 255;
      while (b === 255) {
        if (ip >= end) fail('truncated (literal length)');
        b = payload[ip++] as number;
        lit += b;
      }
    }
    if (lit > 0) {
      if (ip + lit > end) fail('literals run past the input');
      if (op + lit > n) fail('literals run past the stated size');
      out.set(payload.subarray(ip, ip + lit), op);
      ip += lit;
      op += lit;
    }
    if (ip === end) break; // the last sequence holds only literals
    if (ip + 2 > end) fail('truncated (offset)');
    const offset = (payload[ip] as number) | ((payload[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail(`match offset ${offset} at output ${op}`);
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b = 255;
      while (b === 255) {
        if (ip >= end) fail('truncated (match length)');
        b = payload[ip++] as number;
        len += b;
      }
    }
    if (op + len > n) fail('match runs past the stated size');
    let from = op - offset;
    if (offset === 1) {
      out.fill(out[from] as number, op, op + len);
      op += len;
    } else if (offset >= len) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping: copy in steps of `offset` (each step reads bytes already written).
      const stop = op + len;
      while (op < stop) {
        const step = Math.min(offset, stop - op);
        out.copyWithin(op, from, from + step);
        op += step;
        from += step;
      }
    }
  }
  if (op !== n) fail(`decoded ${op} bytes, the block states ${n}`);
  return out;
}
