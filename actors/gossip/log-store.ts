/**
 * A KeyStore on any `LogStore` (lib/storage: MemoryLogStore on a simulated MemoryDisk,
 * FileLogStore on a real disk): every batch is one appended entry (msgpack), and loading
 * replays the log. A batch's promise resolves once the log says it is durable, so a crash
 * loses only writes the replica had not yet acknowledged or forwarded.
 *
 * Compaction, in the same log (no second file): the store mirrors the live image (the records
 * are the replica's own immutable objects, so the mirror costs a map, not a copy). When the log
 * holds more than `compactMinEntries` entries and more than `compactRatio` × the live records,
 * it appends a *checkpoint* — the whole image in chunks of `checkpointChunk` records, each chunk
 * captured at the moment it is appended — and once every chunk is durable, discards the log
 * before the first chunk (`LogStore.compact`). Replay order makes this safe with writes going
 * on meanwhile: a chunk holds each record as of its append, every later change is a later
 * entry, and every record live before the checkpoint is in exactly one chunk. A crash before
 * the discard replays the old prefix and then the chunks (idempotent: they set the same
 * values); a crash after replays from the checkpoint.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { LogStore } from '../../lib/storage/types.js';
import { isKeyRecord, type KeyRecord } from './record.js';
import type { KeyStore, StoreImage, StoreWrite } from './store.js';

type LogRecord =
  | { w: StoreWrite[] }
  | { meta: [string, unknown] }
  /** A checkpoint chunk: records, hints and (in the first chunk) every meta value. */
  | {
      cp: {
        data: Array<[string, KeyRecord]>;
        hints: Array<[string, string, KeyRecord]>;
        meta?: Record<string, unknown>;
      };
    };

export interface LogKeyStoreOptions {
  /** Never compact below this many log entries. Default 10 000. */
  readonly compactMinEntries?: number;
  /** Compact when entries exceed this multiple of the live records + hints. Default 2. */
  readonly compactRatio?: number;
  /** Records per checkpoint entry. Default 512. */
  readonly checkpointChunk?: number;
}

export interface LogKeyStoreStats {
  /** Checkpoints completed (log prefix discarded). */
  compactions: number;
  /** Entries in the log now. */
  entries: number;
  /** Entries discarded by compaction, in total. */
  discarded: number;
}

const SEP = '\u0000';

export class LogKeyStore implements KeyStore {
  private term = 1;
  private readonly data = new Map<string, KeyRecord>();
  private readonly hints = new Map<string, [string, string, KeyRecord]>();
  private readonly meta: Record<string, unknown> = {};
  private compacting: Promise<void> | undefined;
  private closed = false;
  private readonly minEntries: number;
  private readonly ratio: number;
  private readonly chunk: number;
  readonly stats: LogKeyStoreStats = { compactions: 0, entries: 0, discarded: 0 };
  /** The last compaction's failure, if any (compaction is retried on a later write). */
  lastCompactionError: unknown;

  constructor(
    private readonly log: LogStore,
    options: LogKeyStoreOptions = {},
  ) {
    this.minEntries = options.compactMinEntries ?? 10_000;
    this.ratio = options.compactRatio ?? 2;
    this.chunk = Math.max(1, options.checkpointChunk ?? 512);
  }

  async load(): Promise<StoreImage> {
    this.data.clear();
    this.hints.clear();
    for (const k of Object.keys(this.meta)) delete this.meta[k];
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    for (let lo = first; lo <= last; ) {
      const batch = await this.log.entries(lo, last + 1, 4 * 1024 * 1024);
      if (batch.length === 0) break;
      for (const e of batch) {
        this.replay(decodeValue(e.data) as LogRecord);
        lo = e.index + 1;
      }
    }
    this.stats.entries = this.entryCount();
    return { data: [...this.data], hints: [...this.hints.values()], meta: { ...this.meta } };
  }

  private replay(rec: LogRecord): void {
    if ('meta' in rec) this.meta[rec.meta[0]] = rec.meta[1];
    else if ('cp' in rec) {
      for (const [k, r] of rec.cp.data) if (isKeyRecord(r)) this.data.set(k, r);
      for (const [target, k, r] of rec.cp.hints)
        if (isKeyRecord(r)) this.hints.set(`${target}${SEP}${k}`, [target, k, r]);
      if (rec.cp.meta) Object.assign(this.meta, rec.cp.meta);
    } else this.apply(rec.w);
  }

  private apply(batch: readonly StoreWrite[]): void {
    for (const w of batch) {
      if (w.ns === 'data') {
        if (isKeyRecord(w.rec)) this.data.set(w.key, w.rec);
      } else if (w.rec === null) this.hints.delete(`${w.target}${SEP}${w.key}`);
      else if (isKeyRecord(w.rec))
        this.hints.set(`${w.target}${SEP}${w.key}`, [w.target, w.key, w.rec]);
    }
  }

  private entryCount(): number {
    return Math.max(0, this.log.lastIndex() - this.log.firstIndex() + 1);
  }

  private append(rec: LogRecord): Promise<void> {
    const index = this.log.lastIndex() + 1;
    const p = this.log.append([{ index, term: this.term, type: 'normal', data: encodeValue(rec) }]);
    this.stats.entries = this.entryCount();
    return p;
  }

  write(batch: readonly StoreWrite[]): Promise<void> {
    this.apply(batch);
    const p = this.append({ w: [...batch] });
    this.maybeCompact();
    return p;
  }

  saveMeta(key: string, value: unknown): Promise<void> {
    this.meta[key] = value;
    return this.append({ meta: [key, value] });
  }

  /** Starts a checkpoint when the log is long enough (in the background; one at a time). */
  private maybeCompact(): void {
    if (this.compacting || this.closed) return;
    const entries = this.entryCount();
    if (entries < this.minEntries) return;
    if (entries <= this.ratio * (this.data.size + this.hints.size)) return;
    void this.compact().catch((err) => {
      this.lastCompactionError = err;
    });
  }

  /**
   * Writes a checkpoint of the live image and discards the log before it. Resolves once the
   * prefix is discarded (durably); concurrent calls share one run.
   */
  compact(): Promise<void> {
    if (this.compacting) return this.compacting;
    const run = (async () => {
      const from = this.log.lastIndex() + 1;
      const keys = [...this.data.keys()];
      const hintKeys = [...this.hints.keys()];
      const appends: Promise<void>[] = [];
      let first = true;
      // Each chunk is captured and appended synchronously with respect to other writes: it
      // holds its records as of its position in the log.
      for (let i = 0; first || i < keys.length + hintKeys.length; i += this.chunk) {
        const data: Array<[string, KeyRecord]> = [];
        const hints: Array<[string, string, KeyRecord]> = [];
        for (let j = i; j < Math.min(i + this.chunk, keys.length + hintKeys.length); j++) {
          if (j < keys.length) {
            const k = keys[j] as string;
            const r = this.data.get(k);
            if (r) data.push([k, r]);
          } else {
            const h = this.hints.get(hintKeys[j - keys.length] as string);
            if (h) hints.push(h);
          }
        }
        appends.push(
          this.append({ cp: { data, hints, ...(first ? { meta: { ...this.meta } } : {}) } }),
        );
        first = false;
        // let other writes interleave between chunks (their entries follow this chunk)
        await Promise.resolve();
      }
      await Promise.all(appends);
      if (this.closed) return;
      const before = this.log.firstIndex();
      await this.log.compact(from - 1, this.term);
      this.stats.compactions++;
      this.stats.discarded += Math.max(0, from - before);
      this.stats.entries = this.entryCount();
    })();
    this.compacting = run;
    const clear = () => {
      if (this.compacting === run) this.compacting = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.compacting?.catch(() => undefined);
    return this.log.close();
  }
}
