/**
 * What the file and memory log stores share: argument validation (same error codes in both,
 * so protocol code cannot tell them apart) and the logical view of the log — the
 * compaction point and the term of every held entry — which both keep in memory and update
 * synchronously when a write is accepted (durability is signalled by the write's promise).
 */
import { StorageError } from './errors.js';
import type { EntryType, LogEntry } from './types.js';

export const ENTRY_TYPES: readonly EntryType[] = ['normal', 'config', 'noop'];
export const ENTRY_TYPE_CODE: Record<EntryType, number> = { normal: 0, config: 1, noop: 2 };

/** Default cap on one entry's data: 64 MiB. The hard cap is 1 GiB. */
export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024 * 1024;
export const HARD_MAX_ENTRY_BYTES = 1024 * 1024 * 1024;

export function checkInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new StorageError(
      'SYNOD_ERR_INVALID_ARGUMENT',
      `${name} must be a safe integer ≥ ${min}, got ${String(value)}`,
      { argument: name, value: String(value) },
    );
  }
  return value;
}

/** The logical state of a log: compaction point plus the terms of held entries. */
export class LogView {
  compactIndex: number;
  compactTerm: number;
  /** terms[i] is the term of entry `compactIndex + 1 + i`. */
  terms: number[] = [];

  constructor(compactIndex = 0, compactTerm = 0) {
    this.compactIndex = compactIndex;
    this.compactTerm = compactTerm;
  }

  firstIndex(): number {
    return this.compactIndex + 1;
  }

  lastIndex(): number {
    return this.compactIndex + this.terms.length;
  }

  term(index: number): number | undefined {
    if (!Number.isSafeInteger(index)) return undefined;
    if (index === this.compactIndex) return this.compactTerm;
    if (index < this.compactIndex || index > this.lastIndex()) return undefined;
    return this.terms[index - this.compactIndex - 1];
  }

  /**
   * Validates a batch for `append`. Returns the index from which the existing suffix has to
   * be truncated first, or undefined when the batch extends the log.
   */
  checkAppend(entries: readonly LogEntry[], maxEntryBytes: number): number | undefined {
    if (!Array.isArray(entries)) {
      throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', 'append expects an array of entries');
    }
    let prev: number | undefined;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e === null || typeof e !== 'object') {
        throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', `entry #${i} is not an object`);
      }
      // Labels are built only on failure: this runs for every entry of every append.
      if (!Number.isSafeInteger(e.index) || e.index < 1) {
        checkInteger(`entries[${i}].index`, e.index, 1);
      }
      if (!Number.isSafeInteger(e.term) || e.term < 0) {
        checkInteger(`entries[${i}].term`, e.term, 0);
      }
      if (e.type !== 'normal' && e.type !== 'config' && e.type !== 'noop') {
        throw new StorageError(
          'SYNOD_ERR_INVALID_ARGUMENT',
          `entries[${i}].type must be one of ${ENTRY_TYPES.join(', ')}, got ${String(e.type)}`,
        );
      }
      if (!(e.data instanceof Uint8Array)) {
        throw new StorageError(
          'SYNOD_ERR_INVALID_ARGUMENT',
          `entries[${i}].data must be a Uint8Array`,
          { index: e.index },
        );
      }
      if (e.data.byteLength > maxEntryBytes) {
        throw new StorageError(
          'SYNOD_ERR_LOG_ENTRY_TOO_LARGE',
          `entry ${e.index} has ${e.data.byteLength} bytes of data, more than maxEntryBytes ${maxEntryBytes}`,
          { index: e.index, size: e.data.byteLength, maxEntryBytes },
        );
      }
      if (prev !== undefined && e.index !== prev + 1) {
        throw new StorageError(
          'SYNOD_ERR_LOG_NOT_CONSECUTIVE',
          `append batch is not consecutive: index ${e.index} follows ${prev}`,
          { previous: prev, index: e.index },
        );
      }
      prev = e.index;
    }
    if (entries.length === 0) return undefined;
    const first = (entries[0] as LogEntry).index;
    const last = this.lastIndex();
    if (first <= this.compactIndex) {
      throw new StorageError(
        'SYNOD_ERR_LOG_COMPACTED',
        `cannot append at index ${first}: entries up to ${this.compactIndex} are compacted (first index is ${this.firstIndex()})`,
        { index: first, compactIndex: this.compactIndex },
      );
    }
    if (first > last + 1) {
      throw new StorageError(
        'SYNOD_ERR_LOG_GAP',
        `cannot append at index ${first}: the log ends at ${last}, the next index must be ${last + 1}`,
        { index: first, lastIndex: last },
      );
    }
    return first <= last ? first : undefined;
  }

  /** Validates `truncateSuffix(from)`; returns false when there is nothing to remove. */
  checkTruncate(from: number): boolean {
    checkInteger('fromIndex', from, 1);
    if (from <= this.compactIndex) {
      throw new StorageError(
        'SYNOD_ERR_LOG_COMPACTED',
        `cannot truncate from ${from}: entries up to ${this.compactIndex} are compacted into a snapshot`,
        { index: from, compactIndex: this.compactIndex },
      );
    }
    return from <= this.lastIndex();
  }

  /** Validates `entries(lo, hi, maxBytes)`. */
  checkRead(lo: number, hi: number, maxBytes: number | undefined): void {
    checkInteger('lo', lo, 0);
    checkInteger('hi', hi, 0);
    if (maxBytes !== undefined) checkInteger('maxBytes', maxBytes, 0);
    if (hi < lo) {
      throw new StorageError('SYNOD_ERR_INVALID_ARGUMENT', `entries(${lo}, ${hi}): hi < lo`);
    }
    if (lo === hi) return;
    if (lo <= this.compactIndex) {
      throw new StorageError(
        'SYNOD_ERR_LOG_COMPACTED',
        `entries(${lo}, ${hi}): entries up to ${this.compactIndex} are compacted (first index is ${this.firstIndex()})`,
        { lo, hi, compactIndex: this.compactIndex },
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new StorageError(
        'SYNOD_ERR_LOG_OUT_OF_RANGE',
        `entries(${lo}, ${hi}): the log ends at ${this.lastIndex()}`,
        { lo, hi, lastIndex: this.lastIndex() },
      );
    }
  }

  truncateFrom(from: number): void {
    if (from <= this.lastIndex()) this.terms.length = from - this.compactIndex - 1;
  }

  push(entries: readonly LogEntry[]): void {
    for (const e of entries) this.terms.push(e.term);
  }

  /**
   * Applies `compact(upTo, term)`. Returns 'noop' when already compacted that far,
   * 'prefix' when entries above `upTo` are kept, 'all' when the whole log is discarded
   * (`upTo` beyond the last entry, or the entry at `upTo` has a different term: the log
   * conflicts with the snapshot, as in Raft's InstallSnapshot rule).
   */
  compact(upTo: number, term: number): 'noop' | 'prefix' | 'all' {
    checkInteger('upTo', upTo, 0);
    checkInteger('term', term, 0);
    if (upTo < this.compactIndex) return 'noop';
    if (upTo === this.compactIndex) {
      if (term === this.compactTerm) return 'noop';
      // Same point, different term: the held entries follow a different history.
      this.compactTerm = term;
      this.terms = [];
      return 'all';
    }
    const held = this.term(upTo);
    if (held === term && upTo <= this.lastIndex()) {
      this.terms = this.terms.slice(upTo - this.compactIndex);
      this.compactIndex = upTo;
      this.compactTerm = term;
      return 'prefix';
    }
    this.terms = [];
    this.compactIndex = upTo;
    this.compactTerm = term;
    return 'all';
  }
}
