/**
 * The core's view of the log: everything after the last snapshot, held in memory. Entries
 * up to `stableIndex` are durable (the shell persisted them and called `advance`); the
 * rest are unstable and are handed out in the next `Ready` to be persisted.
 *
 * Index bookkeeping: `snapIndex`/`snapTerm` is the compaction point; entry i lives at
 * `entries[i - snapIndex - 1]`. `applied ≤ applying ≤ committed ≤ lastIndex()` and
 * `snapIndex ≤ stableIndex ≤ inProgress ≤ lastIndex()`.
 *
 * Asynchronous storage writes: entries in (stableIndex, inProgress] were handed out to be
 * persisted and their write has not been confirmed yet; several such writes may be in
 * flight. A confirmation carries the `LogMark` of the hand-out; it is honoured only if no
 * entry was truncated or replaced since (`truncSeq` unchanged), so a write that completes
 * after its entries were overwritten can never mark the new, unwritten ones durable.
 */
import { entrySize, type LogEntry, type LogMark, RaftError } from './types.js';

/** Log versions are unique across all logs in the process (a restarted node gets new ones). */
let versionSeq = 0;

export class RaftLog {
  snapIndex: number;
  snapTerm: number;
  private entries: LogEntry[] = [];
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
    return this.snapIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) as number;
  }

  /** Term at `i`, the snapshot term at the compaction point, or undefined. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return (this.entries[i - this.snapIndex - 1] as LogEntry).term;
  }

  entryAt(i: number): LogEntry | undefined {
    if (i <= this.snapIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapIndex - 1];
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
      this.entries.length = first - this.snapIndex - 1;
      if (this.stableIndex >= first) this.stableIndex = first - 1;
      if (this.inProgress >= first) this.inProgress = first - 1;
      this.truncSeq++;
    }
    for (const e of ents) this.entries.push(e);
    this.version = ++versionSeq;
    return this.lastIndex();
  }

  /** Entries in [lo, hi), at most `maxBytes` (but at least one entry if any). */
  slice(lo: number, hi: number, maxBytes = Number.POSITIVE_INFINITY): LogEntry[] {
    if (lo <= this.snapIndex) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_STATE', `entry ${lo} is compacted`);
    }
    hi = Math.min(hi, this.lastIndex() + 1);
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.snapIndex - 1] as LogEntry;
      bytes += entrySize(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet known durable (including those being written). */
  unstableEntries(): LogEntry[] {
    if (this.stableIndex >= this.lastIndex()) return [];
    return this.entries.slice(this.stableIndex - this.snapIndex);
  }

  /** Whether entries wait to be handed out for persistence. */
  hasToPersist(): boolean {
    return this.inProgress < this.lastIndex();
  }

  /** Hands out the entries not yet given to storage: they are in progress from now on. */
  takeToPersist(): LogEntry[] {
    if (this.inProgress >= this.lastIndex()) return [];
    const out = this.entries.slice(this.inProgress - this.snapIndex);
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
    return this.slice(this.applying + 1, this.committed + 1, maxBytes);
  }

  appliedTo(i: number): void {
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
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
    this.entries.splice(0, upTo - this.snapIndex);
    this.version = ++versionSeq;
    this.snapIndex = upTo;
    this.snapTerm = t;
  }

  /** Replaces the whole log by a snapshot's compaction point. */
  restore(index: number, term: number): void {
    this.entries = [];
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

  /** All entries held, for inspection by tests and invariant checkers. */
  all(): readonly LogEntry[] {
    return this.entries;
  }
}
