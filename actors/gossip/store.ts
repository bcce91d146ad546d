/**
 * Durable storage of a replica: key records, hinted records held for unreachable
 * replicas, and a little metadata (the SWIM incarnation, so a restarted node starts above
 * its previous one). A write promise resolves only once the data is durable: the replica
 * persists before it acknowledges or forwards anything.
 */
import type { KeyRecord } from './record.js';

export type StoreWrite =
  | { readonly ns: 'data'; readonly key: string; readonly rec: KeyRecord }
  | {
      readonly ns: 'hint';
      /** The node the hint is held for. */
      readonly target: string;
      readonly key: string;
      /** null: the hint was delivered and is dropped. */
      readonly rec: KeyRecord | null;
    };

export interface StoreImage {
  readonly data: ReadonlyArray<readonly [string, KeyRecord]>;
  readonly hints: ReadonlyArray<readonly [string, string, KeyRecord]>;
  readonly meta: Readonly<Record<string, unknown>>;
}

export interface KeyStore {
  /** Everything durable. Called once when the replica starts. */
  load(): Promise<StoreImage>;
  /** Applies a batch atomically; resolves once durable. */
  write(batch: readonly StoreWrite[]): Promise<void>;
  saveMeta(key: string, value: unknown): Promise<void>;
  close(): Promise<void>;
}

/**
 * An in-memory store that outlives the replica using it: a simulation keeps one per node
 * and hands it to the restarted replica, like a disk. Every write is durable at once
 * (nothing unsynced to lose); `corruptOnNextLoad` and counters help tests.
 */
export class MemoryKeyStore implements KeyStore {
  private readonly data = new Map<string, KeyRecord>();
  private readonly hints = new Map<string, KeyRecord>();
  private readonly meta = new Map<string, unknown>();
  writes = 0;
  closed = false;

  async load(): Promise<StoreImage> {
    this.closed = false;
    return {
      data: [...this.data],
      hints: [...this.hints].map(([k, rec]) => {
        const sep = k.indexOf('\u0000');
        return [k.slice(0, sep), k.slice(sep + 1), rec] as const;
      }),
      meta: Object.fromEntries(this.meta),
    };
  }

  async write(batch: readonly StoreWrite[]): Promise<void> {
    for (const w of batch) {
      if (w.ns === 'data') this.data.set(w.key, w.rec);
      else if (w.rec === null) this.hints.delete(`${w.target}\u0000${w.key}`);
      else this.hints.set(`${w.target}\u0000${w.key}`, w.rec);
    }
    this.writes++;
  }

  async saveMeta(key: string, value: unknown): Promise<void> {
    this.meta.set(key, value);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Number of keys stored (test helper). */
  get size(): number {
    return this.data.size;
  }
}
