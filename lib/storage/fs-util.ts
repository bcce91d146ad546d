/**
 * Small durable-file helpers: fsync a directory, replace a file atomically, and the data
 * directory lock file.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StorageError } from './errors.js';

/** fsync a directory so that file creations, renames and unlinks in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `file` atomically and durably: write `file.tmp`, fsync it, rename it over
 * `file`, fsync the directory. A crash at any point leaves either the old or the new
 * content, never a mix.
 */
export async function atomicWriteFile(file: string, data: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'w');
  try {
    let off = 0;
    while (off < data.byteLength) {
      const { bytesWritten } = await fh.write(data, off, data.byteLength - off, off);
      off += bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

export interface DirLock {
  readonly file: string;
  release(): Promise<void>;
}

interface LockContent {
  pid: number;
  host: string;
}

const heldInThisProcess = new Set<string>();

function parseLock(text: string): LockContent | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockContent>;
    if (typeof v.pid === 'number' && typeof v.host === 'string') {
      return { pid: v.pid, host: v.host };
    }
  } catch {
    // fall through
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockedError(file: string, holder: LockContent | undefined, why: string): StorageError {
  return new StorageError(
    'SYNOD_ERR_DATADIR_LOCKED',
    `data directory ${path.dirname(file)} is locked: ${why} (lock file ${file}; remove it only if no process uses the directory)`,
    { file, pid: holder?.pid, host: holder?.host },
  );
}

/**
 * Takes the lock file `dir/LOCK` (or `dir/<lockName>`; created with O_EXCL, holding pid
 * and host). A lock left by
 * a dead process on this host is stale and is taken over; a lock of a live process, of
 * another host, or held by this very process fails with SYNOD_ERR_DATADIR_LOCKED.
 */
export async function acquireDirLock(dir: string, lockName = 'LOCK'): Promise<DirLock> {
  const file = path.join(path.resolve(dir), lockName);
  if (heldInThisProcess.has(file)) {
    throw lockedError(
      file,
      { pid: process.pid, host: os.hostname() },
      'already open in this process',
    );
  }
  const mine: LockContent = { pid: process.pid, host: os.hostname() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fs.open(file, 'wx');
      try {
        await fh.writeFile(`${JSON.stringify(mine)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncDir(path.dirname(file));
      heldInThisProcess.add(file);
      let released = false;
      return {
        file,
        release: async () => {
          if (released) return;
          released = true;
          heldInThisProcess.delete(file);
          await fs.rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    const holder = parseLock(text);
    if (holder && holder.host !== os.hostname()) {
      throw lockedError(file, holder, `held by pid ${holder.pid} on host ${holder.host}`);
    }
    if (holder && holder.pid === process.pid) {
      throw lockedError(file, holder, 'already open in this process');
    }
    if (holder && pidAlive(holder.pid)) {
      throw lockedError(file, holder, `held by live process ${holder.pid}`);
    }
    if (!holder && text.length > 0) {
      // Unparseable content is not ours to judge as stale.
      throw lockedError(file, undefined, 'lock file content is not recognised');
    }
    // Stale (dead pid, or empty: the holder died between create and write). Reap it by
    // renaming to a private name, then check that what we reaped is still the stale lock.
    const reap = `${file}.reap.${process.pid}`;
    try {
      await fs.rename(file, reap);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const reaped = parseLock(await fs.readFile(reap, 'utf8').catch(() => ''));
    if (reaped && reaped.pid !== holder?.pid && pidAlive(reaped.pid)) {
      // We raced with another opener that had just taken the lock: put it back.
      await fs.link(reap, file).catch(() => undefined);
      await fs.rm(reap, { force: true });
      throw lockedError(file, reaped, `held by live process ${reaped.pid}`);
    }
    await fs.rm(reap, { force: true });
  }
  throw lockedError(file, undefined, 'could not take the lock after 3 attempts');
}
