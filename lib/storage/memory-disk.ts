/**
 * MemoryDisk: one simulated node's durable state, for the deterministic simulation.
 *
 * Stores that live on a MemoryDisk (MemoryLogStore, MemoryHardStateStore,
 * MemorySnapshotStore) apply every write to their in-memory view at once and queue it on
 * the disk; the write becomes durable only when the disk "syncs", which happens
 * asynchronously (after a microtask, or after `syncDelayMs` on an injected Clock), and the
 * write's promise resolves only then — the same contract as the file stores.
 * `crash()` throws away every write not yet synced (optionally keeping a random prefix of
 * them with the last one torn), invalidates every open store, and leaves the durable state
 * for the node's restart to reopen.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Random } from '../random.js';
import { StorageError } from './errors.js';

export interface MemoryDiskOptions {
  /**
   * When given, syncs are driven by this clock: a sync completes `syncDelayMs` after the
   * first write it covers (0: `clock.schedule`). Without a clock a sync completes after a
   * microtask.
   */
  clock?: Clock;
  /** A fixed delay, or a range drawn from `random` for each sync. Default 0. */
  syncDelayMs?: number | { min: number; max: number };
  /** Needed for a ranged `syncDelayMs`. */
  random?: Random;
}

export interface CrashOptions {
  /**
   * Keep a random prefix of the unsynced writes (the OS may have flushed some before the
   * power went) and tear the last one kept: an append keeps only a prefix of its entries;
   * writes that are atomic on a real disk (hard state, snapshots) are kept whole.
   */
  tearLastUnsynced?: boolean;
  /** The randomness for `tearLastUnsynced` (required with it). */
  random?: Random;
}

export interface CrashReport {
  /** Unsynced writes lost entirely. */
  lost: number;
  /** Unsynced writes that survived (whole or torn). */
  kept: number;
  /** Whether the last kept write was torn. */
  torn: boolean;
}

/** A write queued on the disk by a store. */
export interface DiskWrite {
  /** Makes the write durable: applies it to the durable state. */
  apply(): void;
  /** Applies a torn version of the write (a prefix), when the write can tear. */
  tear?(random: Random): void;
}

interface Queued {
  write: DiskWrite;
  resolve: () => void;
}

export class MemoryDisk {
  private readonly durable = new Map<string, unknown>();
  private queue: Queued[] = [];
  private syncScheduled = false;
  private timer: TimerHandle | undefined;
  private generation = 0;
  private readonly openNames = new Set<string>();
  private readonly clock: Clock | undefined;
  private readonly syncDelay: number | { min: number; max: number };
  private readonly random: Random | undefined;
  /** Completed syncs. */
  syncs = 0;
  /** Crashes so far. */
  crashes = 0;

  constructor(opts: MemoryDiskOptions = {}) {
    this.clock = opts.clock;
    this.syncDelay = opts.syncDelayMs ?? 0;
    this.random = opts.random;
    if (typeof this.syncDelay === 'object' && !this.random) {
      throw new StorageError(
        'SYNOD_ERR_INVALID_ARGUMENT',
        'MemoryDisk: a ranged syncDelayMs needs a random',
      );
    }
  }

  /** Incremented by every crash; stores opened before a crash are dead. */
  get epoch(): number {
    return this.generation;
  }

  /** Writes queued but not yet durable. */
  get unsynced(): number {
    return this.queue.length;
  }

  /** The durable state a store keeps under `name` (for stores and fault-injection tests). */
  durableState<T>(name: string): T | undefined {
    return this.durable.get(name) as T | undefined;
  }

  setDurableState(name: string, value: unknown): void {
    this.durable.set(name, value);
  }

  /** Registers an open store under `name`; two open stores may not share a name. */
  claim(name: string): void {
    if (this.openNames.has(name)) {
      throw new StorageError(
        'SYNOD_ERR_DATADIR_LOCKED',
        `memory disk: "${name}" is already open (close it first, or crash the disk)`,
        { name },
      );
    }
    this.openNames.add(name);
  }

  release(name: string, epoch: number): void {
    if (epoch === this.generation) this.openNames.delete(name);
  }

  /**
   * Queues a write; resolves when a sync has made it durable. A write queued from a store
   * opened before the latest crash is refused.
   */
  write(epoch: number, w: DiskWrite): Promise<void> {
    if (epoch !== this.generation) {
      return Promise.reject(
        new StorageError('SYNOD_ERR_STORE_CLOSED', 'memory disk crashed: this store is dead'),
      );
    }
    return new Promise<void>((resolve) => {
      this.queue.push({ write: w, resolve });
      this.scheduleSync();
    });
  }

  /** Resolves once every write queued so far is durable (or never, if a crash comes first). */
  flushed(epoch: number): Promise<void> {
    if (this.queue.length === 0 || epoch !== this.generation) return Promise.resolve();
    return this.write(epoch, { apply: () => {} });
  }

  /** Loses every unsynced write; open stores become dead. */
  crash(opts: CrashOptions = {}): CrashReport {
    if (opts.tearLastUnsynced && !opts.random) {
      throw new StorageError(
        'SYNOD_ERR_INVALID_ARGUMENT',
        'MemoryDisk.crash: tearLastUnsynced needs a random',
      );
    }
    const pending = this.queue;
    this.queue = [];
    this.timer?.cancel();
    this.timer = undefined;
    this.syncScheduled = false;
    this.generation++;
    this.crashes++;
    this.openNames.clear();
    let kept = 0;
    let torn = false;
    if (opts.tearLastUnsynced && pending.length > 0) {
      const random = opts.random as Random;
      kept = random.int(pending.length + 1);
      for (let i = 0; i < kept; i++) {
        const w = (pending[i] as Queued).write;
        if (i === kept - 1 && w.tear) {
          w.tear(random);
          torn = true;
        } else {
          w.apply();
        }
      }
    }
    // The callers' promises never settle: the process they belonged to is gone.
    return { lost: pending.length - kept, kept, torn };
  }

  private scheduleSync(): void {
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    const gen = this.generation;
    const run = () => {
      if (gen !== this.generation) return;
      this.timer = undefined;
      this.syncScheduled = false;
      this.sync();
    };
    const delay =
      typeof this.syncDelay === 'number'
        ? this.syncDelay
        : (this.random as Random).between(this.syncDelay.min, this.syncDelay.max);
    if (!this.clock) queueMicrotask(run);
    else if (delay <= 0) this.clock.schedule(run);
    else this.timer = this.clock.setTimer(delay, run);
  }

  /** Makes every queued write durable now (also used by a scheduled sync). */
  sync(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    for (const q of batch) q.write.apply();
    this.syncs++;
    for (const q of batch) q.resolve();
  }
}
