/**
 * MemorySnapshotStore: SnapshotStore on a MemoryDisk. A committed snapshot becomes durable
 * on the disk's next sync (commit resolves then); a crash before that loses it. The data
 * is kept with its SHA-256 and verified on `latest()` and on read, so fault-injection
 * tests can corrupt a durable snapshot (`corruptMemorySnapshot`) and see the previous one
 * used, as with the file store.
 */
import { createHash } from 'node:crypto';
import { type Clock, systemClock } from '../clock.js';
import { StorageError } from './errors.js';
import { checkMembership } from './file-snapshots.js';
import { checkInteger } from './log-core.js';
import type { MemoryDisk } from './memory-disk.js';
import type { SnapshotMeta, SnapshotReader, SnapshotStore, SnapshotWriter } from './types.js';

export interface MemorySnapshotOptions {
  /** Name on the disk. Default 'snapshots'. */
  name?: string;
  /** Source of `createdAt`. Default: the system clock (pass the simulation's clock). */
  clock?: Clock;
}

interface StoredSnapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function corrupt(key: string, meta: SnapshotMeta): StorageError {
  return new StorageError(
    'SYNOD_ERR_SNAPSHOT_CORRUPT',
    `memory ${key}: snapshot at index ${meta.index} term ${meta.term} fails its checksum`,
    { file: `memory:${key}`, index: meta.index, term: meta.term },
  );
}

function order(a: StoredSnapshot, b: StoredSnapshot): number {
  return (
    b.meta.index - a.meta.index || b.meta.term - a.meta.term || b.meta.createdAt - a.meta.createdAt
  );
}

/** Flips one byte of a durable snapshot's data (fault injection for tests). */
export function corruptMemorySnapshot(
  disk: MemoryDisk,
  index: number,
  opts: { name?: string } = {},
): boolean {
  const list = disk.durableState<StoredSnapshot[]>(`snapshots:${opts.name ?? 'snapshots'}`);
  const s = list?.find((x) => x.meta.index === index);
  if (!s || s.data.length === 0) return false;
  const data = Uint8Array.from(s.data);
  data[0] = (data[0] as number) ^ 0xff;
  s.data = data;
  return true;
}

export class MemorySnapshotStore implements SnapshotStore {
  private readonly disk: MemoryDisk;
  private readonly key: string;
  private readonly epoch: number;
  private readonly clock: Clock;
  private live: StoredSnapshot[];
  private closed = false;
  skipped: { file: string; reason: string }[] = [];

  private constructor(disk: MemoryDisk, key: string, clock: Clock) {
    this.disk = disk;
    this.key = key;
    this.epoch = disk.epoch;
    this.clock = clock;
    const durable = disk.durableState<StoredSnapshot[]>(key);
    if (!durable) disk.setDurableState(key, []);
    this.live = [...(durable ?? [])];
  }

  static async open(
    disk: MemoryDisk,
    opts: MemorySnapshotOptions = {},
  ): Promise<MemorySnapshotStore> {
    const key = `snapshots:${opts.name ?? 'snapshots'}`;
    disk.claim(key);
    return new MemorySnapshotStore(disk, key, opts.clock ?? systemClock);
  }

  async create(
    meta: Omit<SnapshotMeta, 'size' | 'checksum' | 'createdAt'>,
  ): Promise<SnapshotWriter> {
    this.assertOpen();
    if (meta === null || typeof meta !== 'object') {
      throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', 'snapshot meta must be an object');
    }
    const base = {
      index: checkInteger('index', meta.index, 0),
      term: checkInteger('term', meta.term, 0),
      membership: checkMembership(meta.membership),
      createdAt: this.clock.wallNow(),
    };
    const chunks: Uint8Array[] = [];
    let state: 'open' | 'committing' | 'done' = 'open';
    const misuse = () =>
      new StorageError('SYNOD_ERR_SNAPSHOT_STATE', `snapshot writer is ${state}`);
    return {
      write: async (chunk: Uint8Array) => {
        if (state !== 'open') throw misuse();
        if (!(chunk instanceof Uint8Array)) {
          throw new StorageError(
            'SYNOD_ERR_INVALID_ARGUMENT',
            'snapshot chunks must be Uint8Array',
          );
        }
        this.assertOpen();
        chunks.push(Uint8Array.from(chunk));
      },
      commit: async () => {
        if (state !== 'open') throw misuse();
        this.assertOpen();
        state = 'committing';
        const data = Buffer.concat(chunks);
        const full: SnapshotMeta = { ...base, size: data.length, checksum: sha256(data) };
        const stored: StoredSnapshot = { meta: full, data };
        const replace = (list: StoredSnapshot[]) => {
          const i = list.findIndex((s) => s.meta.index === full.index && s.meta.term === full.term);
          if (i >= 0) list.splice(i, 1);
          list.push(stored);
        };
        replace(this.live);
        await this.disk.write(this.epoch, {
          apply: () => replace(this.durable()),
        });
        state = 'done';
        return { ...full, membership: checkMembership(full.membership) };
      },
      abort: async () => {
        state = 'done';
      },
    };
  }

  async list(): Promise<SnapshotMeta[]> {
    this.assertOpen();
    return [...this.live].sort(order).map((s) => ({ ...s.meta }));
  }

  async latest(): Promise<SnapshotReader | undefined> {
    this.assertOpen();
    this.skipped = [];
    // Verify against what is on the "disk" if it is there (fault injection lands there).
    const durable = this.durable();
    for (const s of [...this.live].sort(order)) {
      const onDisk = durable.find((d) => d.meta === s.meta) ?? s;
      if (sha256(onDisk.data) !== s.meta.checksum) {
        this.skipped.push({
          file: `memory:${this.key}`,
          reason: corrupt(this.key, s.meta).message,
        });
        continue;
      }
      const key = this.key;
      const meta = { ...s.meta };
      return {
        meta,
        async *read() {
          const data = onDisk.data;
          if (sha256(data) !== meta.checksum) throw corrupt(key, meta);
          yield Uint8Array.from(data);
        },
        async readAll() {
          if (sha256(onDisk.data) !== meta.checksum) throw corrupt(key, meta);
          return Uint8Array.from(onDisk.data);
        },
      };
    }
    return undefined;
  }

  async prune(keep: number): Promise<void> {
    this.assertOpen();
    checkInteger('keep', keep, 0);
    const durable = this.durable();
    const sorted = [...this.live].sort(order);
    const kept: StoredSnapshot[] = [];
    for (const s of sorted) {
      if (kept.length >= keep) break;
      const onDisk = durable.find((d) => d.meta === s.meta) ?? s;
      if (sha256(onDisk.data) === s.meta.checksum) kept.push(s);
    }
    this.live = kept;
    const keepMetas = new Set(kept.map((s) => s.meta));
    await this.disk.write(this.epoch, {
      apply: () => {
        const d = this.durable();
        const next = d.filter((s) => keepMetas.has(s.meta));
        d.length = 0;
        d.push(...next);
      },
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.disk.epoch === this.epoch) await this.disk.flushed(this.epoch);
    this.closed = true;
    this.disk.release(this.key, this.epoch);
  }

  private durable(): StoredSnapshot[] {
    return this.disk.durableState<StoredSnapshot[]>(this.key) as StoredSnapshot[];
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
