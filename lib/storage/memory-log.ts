/**
 * MemoryLogStore: the LogStore contract on a MemoryDisk. Same validation, same error codes
 * and same durability contract as FileLogStore: a write changes what `lastIndex()`,
 * `term()` and `entries()` report at once, and its promise resolves once the disk synced it.
 * After `disk.crash()` the store is dead; `MemoryLogStore.open(disk)` recovers the durable
 * state, exactly as reopening the file store would.
 */
import { StorageError } from './errors.js';
import {
  checkInteger,
  DEFAULT_MAX_ENTRY_BYTES,
  ENTRY_TYPE_CODE,
  ENTRY_TYPES,
  LogView,
} from './log-core.js';
import type { MemoryDisk } from './memory-disk.js';
import type { EntryType, LogEntry, LogStore } from './types.js';

export interface MemoryLogStoreOptions {
  /** Name of the log on the disk (several logs may share a disk). Default 'log'. */
  name?: string;
  maxEntryBytes?: number;
}

/**
 * One `append` call's entries as the store keeps them: their data copied into a single
 * buffer (one allocation and one copy per batch instead of one per entry), with terms,
 * types and byte ranges in flat arrays. Entries are only materialized as objects when read.
 * The live and the durable log share the batch (it is never mutated).
 */
class Batch {
  readonly terms: number[];
  readonly types: number[];
  readonly ends: number[];
  readonly data: Uint8Array;

  constructor(entries: readonly LogEntry[]) {
    const n = entries.length;
    this.terms = new Array<number>(n);
    this.types = new Array<number>(n);
    this.ends = new Array<number>(n);
    let size = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i] as LogEntry;
      this.terms[i] = e.term;
      this.types[i] = ENTRY_TYPE_CODE[e.type];
      size += e.data.byteLength;
      this.ends[i] = size;
    }
    this.data = new Uint8Array(size);
    let off = 0;
    for (let i = 0; i < n; i++) {
      const d = (entries[i] as LogEntry).data;
      this.data.set(d, off);
      off += d.byteLength;
    }
  }
}

/**
 * A log held in memory: the logical view (terms) plus the batches holding the entries'
 * data, one segment per `append` (not one slot per entry: an append costs the same three
 * array pushes whatever its size, on the live and on the durable copy). Segment `s` holds
 * entries from `segFirst[s]` up to the next segment's first (or the last index), starting
 * at position `segSlot[s]` of batch `segBatch[s]`.
 */
class MemLog {
  view: LogView;
  private segBatch: Batch[];
  private segFirst: number[];
  private segSlot: number[];

  constructor(
    view = new LogView(),
    segBatch: Batch[] = [],
    segFirst: number[] = [],
    segSlot: number[] = [],
  ) {
    this.view = view;
    this.segBatch = segBatch;
    this.segFirst = segFirst;
    this.segSlot = segSlot;
  }

  clone(): MemLog {
    const v = new LogView(this.view.compactIndex, this.view.compactTerm);
    v.terms = [...this.view.terms];
    return new MemLog(v, [...this.segBatch], [...this.segFirst], [...this.segSlot]);
  }

  truncateFrom(from: number): void {
    this.view.truncateFrom(from);
    // Segments starting at or after `from` go; the one before it now ends at `from - 1`.
    let n = this.segFirst.length;
    while (n > 0 && (this.segFirst[n - 1] as number) >= from) n--;
    this.segBatch.length = n;
    this.segFirst.length = n;
    this.segSlot.length = n;
  }

  /** Appends the first `count` entries of `b` (all of them by default), which starts at `first`. */
  append(b: Batch, first: number, count = b.terms.length): void {
    if (count === 0) return;
    if (first <= this.view.lastIndex()) this.truncateFrom(first);
    const terms = this.view.terms;
    for (let i = 0; i < count; i++) terms.push(b.terms[i] as number);
    this.segBatch.push(b);
    this.segFirst.push(first);
    this.segSlot.push(0);
  }

  /** The batch and position there of the entry at `index` (held). */
  private locate(index: number): { b: Batch; i: number } {
    const firsts = this.segFirst;
    let lo = 0;
    let hi = firsts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((firsts[mid] as number) <= index) lo = mid;
      else hi = mid - 1;
    }
    return {
      b: this.segBatch[lo] as Batch,
      i: (this.segSlot[lo] as number) + index - (firsts[lo] as number),
    };
  }

  /** The entry at `index` (held: the caller checked the range). */
  entry(index: number): LogEntry {
    const { b, i } = this.locate(index);
    return {
      index,
      term: b.terms[i] as number,
      type: ENTRY_TYPES[b.types[i] as number] as EntryType,
      data: b.data.subarray(i === 0 ? 0 : (b.ends[i - 1] as number), b.ends[i] as number),
    };
  }

  /** Bytes of data of the entry at `index` (held). */
  size(index: number): number {
    const { b, i } = this.locate(index);
    return (b.ends[i] as number) - (i === 0 ? 0 : (b.ends[i - 1] as number));
  }

  compact(upTo: number, term: number): void {
    const mode = this.view.compact(upTo, term);
    if (mode === 'prefix') {
      // Drop the segments wholly at or below `upTo`; the first kept one starts at upTo + 1.
      const first = upTo + 1;
      const firsts = this.segFirst;
      let k = 0;
      while (k + 1 < firsts.length && (firsts[k + 1] as number) <= first) k++;
      if (k > 0) {
        this.segBatch = this.segBatch.slice(k);
        this.segFirst = firsts.slice(k);
        this.segSlot = this.segSlot.slice(k);
      }
      if (this.segFirst.length > 0) {
        const f0 = this.segFirst[0] as number;
        if (f0 < first) {
          this.segSlot[0] = (this.segSlot[0] as number) + first - f0;
          this.segFirst[0] = first;
        }
      }
      if (this.view.lastIndex() < first) {
        this.segBatch = [];
        this.segFirst = [];
        this.segSlot = [];
      }
    } else if (mode === 'all') {
      this.segBatch = [];
      this.segFirst = [];
      this.segSlot = [];
    }
  }
}

export class MemoryLogStore implements LogStore {
  private readonly disk: MemoryDisk;
  private readonly name: string;
  private readonly epoch: number;
  private readonly live: MemLog;
  private readonly maxEntryBytes: number;
  private closed = false;

  private constructor(disk: MemoryDisk, name: string, live: MemLog, maxEntryBytes: number) {
    this.disk = disk;
    this.name = name;
    this.epoch = disk.epoch;
    this.live = live;
    this.maxEntryBytes = maxEntryBytes;
  }

  /** Opens the log `name` on `disk` from its durable state (empty if never written). */
  static async open(disk: MemoryDisk, opts: MemoryLogStoreOptions = {}): Promise<MemoryLogStore> {
    const name = `log:${opts.name ?? 'log'}`;
    const maxEntryBytes = checkInteger(
      'maxEntryBytes',
      opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES,
      0,
    );
    disk.claim(name);
    let durable = disk.durableState<MemLog>(name);
    if (!durable) {
      durable = new MemLog();
      disk.setDurableState(name, durable);
    }
    return new MemoryLogStore(disk, name, durable.clone(), maxEntryBytes);
  }

  firstIndex(): number {
    return this.live.view.firstIndex();
  }

  lastIndex(): number {
    return this.live.view.lastIndex();
  }

  term(index: number): number | undefined {
    return this.live.view.term(index);
  }

  compactPoint(): { index: number; term: number } {
    return { index: this.live.view.compactIndex, term: this.live.view.compactTerm };
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    try {
      this.assertOpen();
      this.live.view.checkAppend(entries, this.maxEntryBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    if (entries.length === 0) return this.disk.flushed(this.epoch);
    // Copied now (mutating `entries` afterwards changes nothing), once for the batch.
    const batch = new Batch(entries);
    const first = (entries[0] as LogEntry).index;
    this.live.append(batch, first);
    return this.disk.write(this.epoch, {
      apply: () => this.durable().append(batch, first),
      tear: (random) => this.durable().append(batch, first, random.int(batch.terms.length)),
    });
  }

  truncateSuffix(fromIndex: number): Promise<void> {
    try {
      this.assertOpen();
      if (!this.live.view.checkTruncate(fromIndex)) return this.disk.flushed(this.epoch);
    } catch (err) {
      return Promise.reject(err);
    }
    this.live.truncateFrom(fromIndex);
    return this.disk.write(this.epoch, { apply: () => this.durable().truncateFrom(fromIndex) });
  }

  compact(upTo: number, term: number): Promise<void> {
    try {
      this.assertOpen();
      checkInteger('upTo', upTo, 0);
      checkInteger('term', term, 0);
    } catch (err) {
      return Promise.reject(err);
    }
    const before = this.live.view.compactIndex;
    const beforeTerm = this.live.view.compactTerm;
    this.live.compact(upTo, term);
    if (this.live.view.compactIndex === before && this.live.view.compactTerm === beforeTerm) {
      return this.disk.flushed(this.epoch);
    }
    return this.disk.write(this.epoch, { apply: () => this.durable().compact(upTo, term) });
  }

  entries(lo: number, hi: number, maxBytes?: number): Promise<LogEntry[]> {
    try {
      this.assertOpen();
      this.live.view.checkRead(lo, hi, maxBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const size = this.live.size(i);
      if (maxBytes !== undefined && out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(this.live.entry(i));
    }
    return Promise.resolve(out);
  }

  /** Resolves once every write accepted so far is durable. */
  sync(): Promise<void> {
    try {
      this.assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.disk.flushed(this.epoch);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.disk.epoch === this.epoch) await this.disk.flushed(this.epoch);
    this.closed = true;
    this.disk.release(this.name, this.epoch);
  }

  private durable(): MemLog {
    return this.disk.durableState<MemLog>(this.name) as MemLog;
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError('SYNOD_ERR_STORE_CLOSED', `memory log "${this.name}" is closed`);
    }
    if (this.disk.epoch !== this.epoch) {
      throw new StorageError(
        'SYNOD_ERR_STORE_CLOSED',
        `memory log "${this.name}": the disk crashed; reopen the store`,
      );
    }
  }
}
