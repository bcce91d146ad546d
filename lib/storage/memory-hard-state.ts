/**
 * MemoryHardStateStore: HardStateStore on a MemoryDisk. A save replaces the value the
 * store reports at once and becomes durable on the disk's next sync (the promise resolves
 * then); a crash before that sync keeps the previous durable value, as an atomic rename
 * that never reached the disk would.
 */
import { StorageError } from './errors.js';
import { decodeHardState, encodeHardState } from './file-hard-state.js';
import type { MemoryDisk } from './memory-disk.js';
import type { HardStateStore } from './types.js';

export interface MemoryHardStateOptions {
  /** Name on the disk. Default 'hardstate'. */
  name?: string;
}

export class MemoryHardStateStore<T> implements HardStateStore<T> {
  private readonly disk: MemoryDisk;
  private readonly key: string;
  private readonly epoch: number;
  private current: Buffer | undefined;
  private closed = false;

  private constructor(disk: MemoryDisk, key: string, current: Buffer | undefined) {
    this.disk = disk;
    this.key = key;
    this.epoch = disk.epoch;
    this.current = current;
  }

  static async open<T>(
    disk: MemoryDisk,
    opts: MemoryHardStateOptions = {},
  ): Promise<MemoryHardStateStore<T>> {
    const key = `hardstate:${opts.name ?? 'hardstate'}`;
    disk.claim(key);
    const current = disk.durableState<Buffer>(key);
    if (current) decodeHardState(current, `memory:${key}`);
    return new MemoryHardStateStore<T>(disk, key, current);
  }

  async load(): Promise<T | undefined> {
    this.assertOpen();
    return this.current === undefined
      ? undefined
      : (decodeHardState(this.current, `memory:${this.key}`) as T);
  }

  save(state: T): Promise<void> {
    try {
      this.assertOpen();
      const bytes = encodeHardState(state);
      this.current = bytes;
      return this.disk.write(this.epoch, {
        apply: () => this.disk.setDurableState(this.key, bytes),
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.disk.epoch === this.epoch) await this.disk.flushed(this.epoch);
    this.closed = true;
    this.disk.release(this.key, this.epoch);
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError('SYNOD_ERR_STORE_CLOSED', `memory ${this.key} is closed`);
    }
    if (this.disk.epoch !== this.epoch) {
      throw new StorageError(
        'SYNOD_ERR_STORE_CLOSED',
        `memory ${this.key}: the disk crashed; reopen the store`,
      );
    }
  }
}
