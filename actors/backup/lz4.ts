/**
 * LZ4 (block format with the plain length prepended, u32 little-endian) through the npm
 * package `lz4-napi` (lz4_flex, compiled; its prebuilt binary for each platform is a package of
 * the npm registry, nothing is downloaded or built at install time). Loaded on first use, so a
 * platform without the binary can still use every other codec; a repository whose chunks are
 * LZ4 then fails with SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE, saying what to install.
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
