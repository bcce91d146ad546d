/**
 * The core's view of the log: everything after the last snapshot, held in memory. Entries
 * up to `stableIndex` are durable (the shell persisted them and called `advance`); the
 * rest are unstable and are handed out in the next `Ready` to be persisted.
 *
 * Index bookkeeping: `snapIndex`/`snapTerm` is the compaction point; entry i is at
 * position `k = i - snapIndex - 1` of the flat arrays (see the class). `applied ≤ applying ≤ committed ≤ lastIndex()` and
 * `snapIndex ≤ stableIndex ≤ inProgress ≤ lastIndex()`.
 *
 * Asynchronous storage writes: entries in (stableIndex, inProgress] were handed out to be
 * persisted and their write has not been confirmed yet; several such writes may be in
 * flight. A confirmation carries the `LogMark` of the hand-out; it is honoured only if no
 * entry was truncated or replaced since (`truncSeq` unchanged), so a write that completes
 * after its entries were overwritten can never mark the new, unwritten ones durable.
 */
import type { EntryType } from '../../../lib/storage/types.js';
import { type LogEntry, type LogMark, RaftError } from './types.js';

/** Log versions are unique across all logs in the process (a restarted node gets new ones). */
let versionSeq = 0;

const TYPES: readonly EntryType[] = ['normal', 'config', 'noop'];

function typeCode(t: EntryType): number {
  return t === 'normal' ? 0 : t === 'config' ? 1 : 2;
}

/** Fields per entry in `meta`: term, type code, byte offset, byte length. */
const STRIDE = 4;

/**
 * Entries are kept in flat arrays, not as one object and one byte view each until
 * compaction: `meta` holds four numbers per entry and `bufs` the memory its bytes live in
 * (shared by every entry of one message or one encoding buffer). An object and a view per
 * entry, alive until the next snapshot (10,000 entries by default), were copied and
 * promoted by the young-generation collector on every node; numbers in an array cost it
 * nothing.
 *
 * The entry objects of the recent tail are kept as well (`hot`): those appended and not
 * yet applied, which the node is about to persist, send and apply — so that work makes no
 * new objects. They are dropped once applied. Older entries (a lagging follower's, a
 * checker's) are made when asked for; `all()`, for tests and checkers, keeps every one
 * from its first call on, so repeated calls see the same objects.
 */
export class RaftLog {
  snapIndex: number;
  snapTerm: number;
  private meta: number[] = [];
  private bufs: ArrayBufferLike[] = [];
  /** Number of entries held. */
  private count = 0;
  /** Entry objects for indexes [hotFirst, hotFirst + hot.length), ending at lastIndex(). */
  private hot: LogEntry[] = [];
  private hotFirst = 1;
  /** Set by `all()`: `hot` then holds every entry and is not trimmed when entries apply. */
  private keepAll = false;
  /** Highest index known durable. */
  stableIndex: number;
  /** Highest index handed out for persistence (durable or being written). */
  inProgress: number;
  /** Incremented whenever entries are truncated or the log is replaced by a snapshot. */
  truncSeq = 0;
  committed: number;
  /** Incremented whenever entries are added, removed or replaced (for cheap change checks). */
  version = ++versionSeq;
  /** Highest index handed out for application (not yet necessarily applied). */
  applying: number;
  applied: number;

  constructor(snapIndex = 0, snapTerm = 0) {
    this.snapIndex = snapIndex;
    this.snapTerm = snapTerm;
    this.stableIndex = snapIndex;
    this.inProgress = snapIndex;
    this.committed = snapIndex;
    this.applying = snapIndex;
    this.applied = snapIndex;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastIndex(): number {
    return this.snapIndex + this.count;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) as number;
  }

  /** Term at `i`, the snapshot term at the compaction point, or undefined. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.snapIndex + this.count) return undefined;
    return this.meta[(i - this.snapIndex - 1) * STRIDE] as number;
  }

  /** The type of the entry at `i`, if held. */
  typeAt(i: number): EntryType | undefined {
    if (i <= this.snapIndex || i > this.snapIndex + this.count) return undefined;
    return TYPES[this.meta[(i - this.snapIndex - 1) * STRIDE + 1] as number];
  }

  /** The entry at position `k` (index snapIndex + 1 + k), as a new object. */
  private make(k: number): LogEntry {
    const o = k * STRIDE;
    const meta = this.meta;
    return {
      index: this.snapIndex + 1 + k,
      term: meta[o] as number,
      type: TYPES[meta[o + 1] as number] as EntryType,
      data: new Uint8Array(this.bufs[k] as ArrayBuffer, meta[o + 2], meta[o + 3]),
    };
  }

  /** The entry at `i` (held: the caller checked the range). */
  private get(i: number): LogEntry {
    const h = i - this.hotFirst;
    if (h >= 0 && h < this.hot.length) return this.hot[h] as LogEntry;
    return this.make(i - this.snapIndex - 1);
  }

  entryAt(i: number): LogEntry | undefined {
    if (i <= this.snapIndex || i > this.lastIndex()) return undefined;
    return this.get(i);
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Raft §5.4.1: is a log ending at (index, term) at least as up to date as ours? */
  isUpToDate(index: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && index >= this.lastIndex());
  }

  /** The first of `ents` whose term differs from ours at its index (0 if none). */
  findConflict(ents: readonly LogEntry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (stopping at the compaction point),
   * with that term. Used on both sides of fast log backtracking: every entry above the
   * returned index has a term greater than `term`, so none of them can match.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.snapIndex; i--) {
      const t = this.term(i) as number;
      if (t <= term) return { index: i, term: t };
    }
    return { index: this.snapIndex, term: this.snapTerm };
  }

  /** Appends entries, truncating any conflicting suffix first. Returns the new last index. */
  append(ents: readonly LogEntry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const first = (ents[0] as LogEntry).index;
    if (first <= this.committed) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_SAFETY',
        `refusing to overwrite committed entry ${first} (committed ${this.committed})`,
      );
    }
    if (first > this.lastIndex() + 1) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `gap in log: appending ${first} after ${this.lastIndex()}`,
      );
    }
    if (first <= this.lastIndex()) {
      this.truncateTo(first - this.snapIndex - 1);
      if (this.stableIndex >= first) this.stableIndex = first - 1;
      if (this.inProgress >= first) this.inProgress = first - 1;
      this.truncSeq++;
    }
    this.hotFrom(first);
    const meta = this.meta;
    const bufs = this.bufs;
    const hot = this.hot;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i] as LogEntry;
      const d = e.data;
      meta.push(e.term, typeCode(e.type), d.byteOffset, d.byteLength);
      bufs.push(d.buffer);
      hot.push(e);
    }
    this.count += ents.length;
    this.version = ++versionSeq;
    return this.lastIndex();
  }

  /** Appends one entry at the end (the leader's proposals); returns its index. */
  appendOne(term: number, type: EntryType, data: Uint8Array): number {
    const index = this.lastIndex() + 1;
    this.hotFrom(index);
    this.meta.push(term, typeCode(type), data.byteOffset, data.byteLength);
    this.bufs.push(data.buffer);
    this.hot.push({ index, term, type, data });
    this.count++;
    this.version = ++versionSeq;
    return index;
  }

  /** Makes `hot` end just before `index` (the next entry appended), filling or restarting it. */
  private hotFrom(index: number): void {
    const hot = this.hot;
    if (hot.length === 0) this.hotFirst = index;
    else if (this.hotFirst + hot.length !== index) {
      if (this.keepAll)
        for (let i = this.hotFirst + hot.length; i < index; i++) hot.push(this.get(i));
      else {
        this.hot = [];
        this.hotFirst = index;
      }
    }
  }

  /** Drops the hot objects of indexes ≤ `i`. */
  private dropHotTo(i: number): void {
    const n = Math.min(i - this.hotFirst + 1, this.hot.length);
    if (n <= 0) return;
    if (n === this.hot.length) this.hot = [];
    else this.hot.splice(0, n);
    this.hotFirst += n;
  }

  /** Keeps the first `n` entries held. */
  private truncateTo(n: number): void {
    this.meta.length = n * STRIDE;
    this.bufs.length = n;
    this.count = n;
    const keep = this.snapIndex + 1 + n - this.hotFirst;
    if (keep < this.hot.length) this.hot.length = Math.max(0, keep);
  }

  /** Entries in [lo, hi), at most `maxBytes` (but at least one entry if any). */
  slice(lo: number, hi: number, maxBytes = Number.POSITIVE_INFINITY): LogEntry[] {
    if (lo <= this.snapIndex) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', `entry ${lo} is compacted`);
    }
    return this.range(lo, Math.min(hi, this.lastIndex() + 1), maxBytes);
  }

  private range(lo: number, hi: number, maxBytes: number): LogEntry[] {
    const out: LogEntry[] = [];
    const meta = this.meta;
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const k = i - this.snapIndex - 1;
      bytes += (meta[k * STRIDE + 3] as number) + 16;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(this.get(i));
    }
    return out;
  }

  /** Entries not yet known durable (including those being written). */
  unstableEntries(): LogEntry[] {
    if (this.stableIndex >= this.lastIndex()) return [];
    return this.range(this.stableIndex + 1, this.lastIndex() + 1, Number.POSITIVE_INFINITY);
  }

  /** Whether entries wait to be handed out for persistence. */
  hasToPersist(): boolean {
    return this.inProgress < this.lastIndex();
  }

  /** Hands out the entries not yet given to storage: they are in progress from now on. */
  takeToPersist(): LogEntry[] {
    if (this.inProgress >= this.lastIndex()) return [];
    const out = this.range(this.inProgress + 1, this.lastIndex() + 1, Number.POSITIVE_INFINITY);
    this.inProgress = this.lastIndex();
    return out;
  }

  /** The mark a storage write of everything handed out so far confirms. */
  mark(): LogMark {
    return { index: this.inProgress, term: this.term(this.inProgress) ?? 0, seq: this.truncSeq };
  }

  /** Marks entries up to (i, t) durable, unless they were replaced in the meantime. */
  stableTo(i: number, t: number): void {
    if (i > this.stableIndex && this.matchTerm(i, t)) this.stableIndex = i;
  }

  /**
   * A storage write handed out at `m` is durable (writes complete in the order they were
   * issued). Ignored if the log was truncated or replaced since the hand-out: the write
   * that covers the replacement will confirm it.
   */
  persistedTo(m: LogMark): boolean {
    if (m.seq !== this.truncSeq || m.index <= this.stableIndex) return false;
    if (m.index > this.inProgress || !this.matchTerm(m.index, m.term)) return false;
    this.stableIndex = m.index;
    return true;
  }

  commitTo(i: number): boolean {
    if (i <= this.committed) return false;
    if (i > this.lastIndex()) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_SAFETY',
        `commit ${i} is beyond the last index ${this.lastIndex()}`,
      );
    }
    this.committed = i;
    return true;
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applying;
  }

  /** Committed entries not yet handed out, at most `maxBytes` (at least one). */
  nextCommitted(maxBytes: number): LogEntry[] {
    if (!this.hasNextCommitted()) return [];
    return this.range(this.applying + 1, this.committed + 1, maxBytes);
  }

  appliedTo(i: number): void {
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
    if (!this.keepAll) this.dropHotTo(this.applied);
  }

  /** Discards entries ≤ upTo (which must be applied and durable). */
  compact(upTo: number): void {
    if (upTo <= this.snapIndex) return;
    if (upTo > this.applied || upTo > this.stableIndex) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_STATE',
        `cannot compact to ${upTo}: applied ${this.applied}, stable ${this.stableIndex}`,
      );
    }
    const t = this.term(upTo) as number;
    const n = upTo - this.snapIndex;
    // Copy the kept tail (usually far shorter than what goes: `splice` would also build
    // an array of everything removed).
    this.meta = this.meta.slice(n * STRIDE);
    this.bufs = this.bufs.slice(n);
    this.count -= n;
    this.dropHotTo(upTo);
    this.version = ++versionSeq;
    this.snapIndex = upTo;
    this.snapTerm = t;
  }

  /** Replaces the whole log by a snapshot's compaction point. */
  restore(index: number, term: number): void {
    this.meta = [];
    this.bufs = [];
    this.count = 0;
    this.hot = [];
    this.version = ++versionSeq;
    this.snapIndex = index;
    this.snapTerm = term;
    this.stableIndex = index;
    this.inProgress = index;
    this.truncSeq++;
    this.committed = index;
    this.applying = index;
    this.applied = index;
  }

  /**
   * All entries held, for inspection by tests and invariant checkers. From the first call
   * on, every entry object is kept (the same object for the same entry on every call).
   */
  all(): readonly LogEntry[] {
    const first = this.snapIndex + 1;
    if (!this.keepAll || this.hot.length === 0 || this.hotFirst !== first) {
      const objs: LogEntry[] = [];
      for (let i = first; i <= this.lastIndex(); i++) objs.push(this.get(i));
      this.hot = objs;
      this.hotFirst = first;
      this.keepAll = true;
    }
    return this.hot;
  }
}
