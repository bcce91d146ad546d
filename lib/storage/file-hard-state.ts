/**
 * FileHardStateStore: a small record (Raft term/vote/commit, a Paxos acceptor's promised
 * and accepted ballots) replaced atomically: write `name.tmp`, fsync, rename over `name`,
 * fsync the directory.
 *
 * File format: magic "SYNODHS1", payload length u32 LE, payload (msgpack, lib/codec.ts),
 * SHA-256 of everything before it (32 bytes).
 *
 * A save refused for lack of space (ENOSPC/EDQUOT) rejects with SYNOD_ERR_NO_SPACE and
 * leaves the previous record in place; the store stays usable. Any other failure is
 * SYNOD_ERR_IO and final (reopen).
 *
 * Concurrent saves coalesce: while one replacement is in flight, later saves wait and only
 * the newest value is written next; every waiter resolves once a replacement at least as
 * new as its value is durable.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { decodeValue, encodeValue } from '../codec.js';
import { isNoSpaceErrno, StorageError } from './errors.js';
import { acquireDirLock, atomicWriteFile, type DirLock } from './fs-util.js';
import type { HardStateStore } from './types.js';

const MAGIC = Buffer.from('SYNODHS1', 'ascii');

export interface FileHardStateOptions {
  /** File name inside the directory. Default 'hardstate'. */
  name?: string;
  /**
   * Take the lock file `dir/<name>.LOCK` (default true), so that two processes cannot own
   * the same record while several records (different names) share a directory.
   * `openDataDir` locks the whole directory instead.
   */
  lock?: boolean;
}

/**
 * Hard state must round-trip exactly: plain objects, arrays, strings, finite or not
 * numbers, booleans, null, undefined and Uint8Array. Anything msgpack would silently
 * change (functions become undefined, Maps become objects, bigints become numbers) is
 * refused with the path to the offending value.
 */
function checkPlain(value: unknown, at: string, depth: number): void {
  if (depth > 64) {
    throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', `hard state nests too deep at ${at}`);
  }
  if (value === null || value === undefined) return;
  const ty = typeof value;
  if (ty === 'string' || ty === 'number' || ty === 'boolean') return;
  if (value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkPlain(value[i], `${at}[${i}]`, depth + 1);
    return;
  }
  if (ty === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      for (const [k, v] of Object.entries(value as object)) checkPlain(v, `${at}.${k}`, depth + 1);
      return;
    }
  }
  const what = ty === 'object' ? ((value as object).constructor?.name ?? 'object') : ty;
  throw new StorageError(
    'SYNOD_ERR_INVALID_ARGUMENT',
    `hard state cannot hold a ${what} (at ${at}): use plain objects, arrays, strings, numbers, booleans, null and Uint8Array`,
    { path: at },
  );
}

export function encodeHardState(value: unknown): Buffer {
  checkPlain(value, 'state', 0);
  let payload: Uint8Array;
  try {
    payload = encodeValue(value);
  } catch (err) {
    throw new StorageError(
      'SYNOD_ERR_INVALID_ARGUMENT',
      `hard state cannot be encoded: ${(err as Error).message}`,
      {},
      err,
    );
  }
  const head = Buffer.alloc(12);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(payload.byteLength, 8);
  const hash = createHash('sha256').update(head).update(payload).digest();
  return Buffer.concat([head, payload, hash]);
}

export function decodeHardState(buf: Buffer, file: string): unknown {
  const bad = (reason: string) =>
    new StorageError(
      'SYNOD_ERR_HARDSTATE_CORRUPT',
      `hard state ${file} is corrupted (${reason}); refusing to guess a term or vote — restore it from a backup or a peer`,
      { file, offset: 0, reason },
    );
  if (buf.length < 44 || !buf.subarray(0, 8).equals(MAGIC)) throw bad('bad header');
  const len = buf.readUInt32LE(8);
  if (buf.length !== 12 + len + 32) throw bad(`length ${buf.length} does not match ${len}`);
  const hash = createHash('sha256')
    .update(buf.subarray(0, 12 + len))
    .digest();
  if (!hash.equals(buf.subarray(12 + len))) throw bad('checksum mismatch');
  try {
    return decodeValue(buf.subarray(12, 12 + len));
  } catch (err) {
    throw bad(`undecodable payload: ${(err as Error).message}`);
  }
}

export class FileHardStateStore<T> implements HardStateStore<T> {
  readonly file: string;
  private current: Buffer | undefined;
  private lock: DirLock | undefined;
  private writing = false;
  private next:
    | { bytes: Buffer; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }
    | undefined;
  private closed = false;
  private failure: StorageError | undefined;
  private idle: (() => void)[] = [];
  /** Replacements written (for tests). */
  writes = 0;

  private constructor(file: string, current: Buffer | undefined, lock: DirLock | undefined) {
    this.file = file;
    this.current = current;
    this.lock = lock;
  }

  static async open<T>(
    dir: string,
    opts: FileHardStateOptions = {},
  ): Promise<FileHardStateStore<T>> {
    const name = opts.name ?? 'hardstate';
    if (name.includes('/') || name === '' || name === 'LOCK' || name.endsWith('.LOCK')) {
      throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', `bad hard state name "${name}"`);
    }
    const abs = path.resolve(dir);
    await fs.mkdir(abs, { recursive: true });
    const lock = opts.lock === false ? undefined : await acquireDirLock(abs, `${name}.LOCK`);
    try {
      const file = path.join(abs, name);
      await fs.rm(`${file}.tmp`, { force: true });
      let current: Buffer | undefined;
      try {
        current = await fs.readFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (current) decodeHardState(current, file);
      return new FileHardStateStore<T>(file, current, lock);
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  async load(): Promise<T | undefined> {
    this.assertOpen();
    const latest = this.next?.bytes ?? this.current;
    return latest === undefined ? undefined : (decodeHardState(latest, this.file) as T);
  }

  save(state: T): Promise<void> {
    try {
      this.assertOpen();
      if (this.failure) throw this.failure;
      const bytes = encodeHardState(state);
      return new Promise<void>((resolve, reject) => {
        if (!this.next) this.next = { bytes, waiters: [] };
        this.next.bytes = bytes;
        this.next.waiters.push({ resolve, reject });
        if (!this.writing) void this.pump();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.writing) await new Promise<void>((r) => this.idle.push(r));
    this.closed = true;
    await this.lock?.release();
    this.lock = undefined;
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.next) {
        const job = this.next;
        this.next = undefined;
        try {
          await atomicWriteFile(this.file, job.bytes);
          this.writes++;
          this.current = job.bytes;
          for (const w of job.waiters) w.resolve();
        } catch (err) {
          if (isNoSpaceErrno(err)) {
            // The old record is intact (the rename did not happen, or happened and only its
            // directory sync failed, which a retry repeats): refuse these saves, stay usable.
            await fs.rm(`${this.file}.tmp`, { force: true }).catch(() => undefined);
            const e = new StorageError(
              'SYNOD_ERR_NO_SPACE',
              `hard state ${this.file} could not be written for lack of space; nothing was changed, retry once space is freed: ${(err as Error).message}`,
              { file: this.file },
              err,
            );
            for (const w of job.waiters) w.reject(e);
            continue;
          }
          this.failure = new StorageError(
            'SYNOD_ERR_IO',
            `hard state ${this.file} could not be written; reopen the store: ${(err as Error).message}`,
            { file: this.file },
            err,
          );
          for (const w of job.waiters) w.reject(this.failure);
          const queued = this.next as typeof job | undefined;
          for (const w of queued?.waiters ?? []) w.reject(this.failure);
          this.next = undefined;
        }
      }
    } finally {
      this.writing = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError('SYNOD_ERR_STORE_CLOSED', `hard state ${this.file} is closed`);
    }
  }
}
