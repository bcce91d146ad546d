/**
 * A KeyStore on any `LogStore` (lib/storage: MemoryLogStore on a simulated MemoryDisk,
 * FileLogStore on a real disk): every batch is one appended entry (msgpack), and loading
 * replays the log. A batch's promise resolves once the log says it is durable, so a crash
 * loses only writes the replica had not yet acknowledged or forwarded.
 *
 * Limit: the log is never compacted (no snapshot of the map is taken yet), so it grows
 * with the number of writes; fine for tests, simulations and moderate workloads.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { LogStore } from '../../lib/storage/types.js';
import { isKeyRecord, type KeyRecord } from './record.js';
import type { KeyStore, StoreImage, StoreWrite } from './store.js';

type LogRecord = { w: StoreWrite[] } | { meta: [string, unknown] };

export class LogKeyStore implements KeyStore {
  private term = 1;

  constructor(private readonly log: LogStore) {}

  async load(): Promise<StoreImage> {
    const data = new Map<string, KeyRecord>();
    const hints = new Map<string, [string, string, KeyRecord]>();
    const meta: Record<string, unknown> = {};
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    for (let lo = first; lo <= last; ) {
      const batch = await this.log.entries(lo, last + 1, 4 * 1024 * 1024);
      if (batch.length === 0) break;
      for (const e of batch) {
        const rec = decodeValue(e.data) as LogRecord;
        if ('meta' in rec) meta[rec.meta[0]] = rec.meta[1];
        else
          for (const w of rec.w) {
            if (w.ns === 'data') {
              if (isKeyRecord(w.rec)) data.set(w.key, w.rec);
            } else if (w.rec === null) hints.delete(`${w.target}\u0000${w.key}`);
            else if (isKeyRecord(w.rec))
              hints.set(`${w.target}\u0000${w.key}`, [w.target, w.key, w.rec]);
          }
        lo = e.index + 1;
      }
    }
    return { data: [...data], hints: [...hints.values()], meta };
  }

  private async append(rec: LogRecord): Promise<void> {
    const index = this.log.lastIndex() + 1;
    await this.log.append([{ index, term: this.term, type: 'normal', data: encodeValue(rec) }]);
  }

  write(batch: readonly StoreWrite[]): Promise<void> {
    return this.append({ w: [...batch] });
  }

  saveMeta(key: string, value: unknown): Promise<void> {
    return this.append({ meta: [key, value] });
  }

  close(): Promise<void> {
    return this.log.close();
  }
}
