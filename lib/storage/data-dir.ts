/**
 * One call to get a node's three stores.
 *
 *   const dd = await openDataDir('/var/lib/synod/n1');   // takes /var/lib/synod/n1/LOCK
 *   dd.log; dd.hardState; dd.snapshots; await dd.close();
 *
 * Layout: LOCK, log/ (segments + COMPACT), hardstate, snapshots/. The memory variant,
 * `openMemoryDataDir(disk)`, returns the same shape on a MemoryDisk for the simulation.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import { FileHardStateStore } from './file-hard-state.js';
import { FileLogStore, type FileLogStoreOptions, type RecoveryReport } from './file-log.js';
import { FileSnapshotStore } from './file-snapshots.js';
import { acquireDirLock } from './fs-util.js';
import type { MemoryDisk } from './memory-disk.js';
import { MemoryHardStateStore } from './memory-hard-state.js';
import { MemoryLogStore } from './memory-log.js';
import { MemorySnapshotStore } from './memory-snapshots.js';
import type { HardStateStore, LogStore, RaftHardState, SnapshotStore } from './types.js';

export interface DataDir<H = RaftHardState> {
  log: LogStore;
  hardState: HardStateStore<H>;
  snapshots: SnapshotStore;
  /** What the log's recovery did on open (file stores only). */
  recovery?: RecoveryReport;
  /** Closes the three stores (waiting for writes in flight) and releases the lock. */
  close(): Promise<void>;
}

export interface DataDirOptions {
  log?: Omit<FileLogStoreOptions, 'lock'>;
  /** Source of snapshot `createdAt`. */
  clock?: Clock;
}

export async function openDataDir<H = RaftHardState>(
  dir: string,
  opts: DataDirOptions = {},
): Promise<DataDir<H> & { log: FileLogStore; dir: string }> {
  const abs = path.resolve(dir);
  await fs.mkdir(abs, { recursive: true });
  const lock = await acquireDirLock(abs);
  const opened: { close(): Promise<void> }[] = [];
  try {
    const log = await FileLogStore.open(path.join(abs, 'log'), { ...opts.log, lock: false });
    opened.push(log);
    const hardState = await FileHardStateStore.open<H>(abs, { name: 'hardstate', lock: false });
    opened.push(hardState);
    const snapshots = await FileSnapshotStore.open(path.join(abs, 'snapshots'), {
      lock: false,
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    opened.push(snapshots);
    let closed = false;
    return {
      dir: abs,
      log,
      hardState,
      snapshots,
      recovery: log.recovery,
      close: async () => {
        if (closed) return;
        closed = true;
        await Promise.allSettled(opened.map((s) => s.close()));
        await lock.release();
      },
    };
  } catch (err) {
    await Promise.allSettled(opened.map((s) => s.close()));
    await lock.release();
    throw err;
  }
}

export async function openMemoryDataDir<H = RaftHardState>(
  disk: MemoryDisk,
  opts: { clock?: Clock; maxEntryBytes?: number } = {},
): Promise<DataDir<H>> {
  const log = await MemoryLogStore.open(disk, {
    ...(opts.maxEntryBytes !== undefined ? { maxEntryBytes: opts.maxEntryBytes } : {}),
  });
  const hardState = await MemoryHardStateStore.open<H>(disk);
  const snapshots = await MemorySnapshotStore.open(disk, opts.clock ? { clock: opts.clock } : {});
  let closed = false;
  return {
    log,
    hardState,
    snapshots,
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.allSettled([log.close(), hardState.close(), snapshots.close()]);
    },
  };
}
