/**
 * MemoryLogStore: the LogStore contract on a MemoryDisk. Same validation, same error codes
 * and same durability contract as FileLogStore: a write changes what `lastIndex()`,
 * `term()` and `entries()` report at once, and its promise resolves once the disk synced it.
 * After `disk.crash()` the store is dead; `MemoryLogStore.open(disk)` recovers the durable
 * state, exactly as reopening the file store would.
 */
import { StorageError } from './errors.js';
import { checkInteger, DEFAULT_MAX_ENTRY_BYTES, LogView } from './log-core.js';
import type { MemoryDisk } from './memory-disk.js';
import type { LogEntry, LogStore } from './types.js';

export interface MemoryLogStoreOptions {
  /** Name of the log on the disk (several logs may share a disk). Default 'log'. */
  name?: string;
  maxEntryBytes?: number;
}

/** A log held in memory: the logical view plus the entries themselves. */
class MemLog {
  view: LogView;
  entries: LogEntry[];

  constructor(view = new LogView(), entries: LogEntry[] = []) {
    this.view = view;
    this.entries = entries;
  }

  clone(): MemLog {
    const v = new LogView(this.view.compactIndex, this.view.compactTerm);
    v.terms = [...this.view.terms];
    return new MemLog(v, [...this.entries]);
  }

  truncateFrom(from: number): void {
    this.view.truncateFrom(from);
    this.entries.length = this.view.terms.length;
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as LogEntry).index;
    if (first <= this.view.lastIndex()) this.truncateFrom(first);
    this.view.push(entries);
    for (const e of entries) this.entries.push(e);
  }

  compact(upTo: number, term: number): void {
    const before = this.view.compactIndex;
    const mode = this.view.compact(upTo, term);
    if (mode === 'prefix') this.entries = this.entries.slice(upTo - before);
    else if (mode === 'all') this.entries = [];
  }
}

function copyEntry(e: LogEntry): LogEntry {
  return { index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) };
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
    const copies = entries.map(copyEntry);
    this.live.append(copies);
    return this.disk.write(this.epoch, {
      apply: () => this.durable().append(copies),
      tear: (random) => this.durable().append(copies.slice(0, random.int(copies.length))),
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
    const base = this.live.view.compactIndex + 1;
    for (let i = lo; i < hi; i++) {
      const e = this.live.entries[i - base] as LogEntry;
      if (maxBytes !== undefined && out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      bytes += e.data.byteLength;
      out.push(e);
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
