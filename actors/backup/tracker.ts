/**
 * Wraps a KeyedState for the backup agent: applies commands while maintaining the state
 * digest incrementally and remembering, for every key changed since the newest full
 * backup, the index of its last change. That is enough to capture, at any index, a
 * consistent image for any backup type without stopping the apply loop:
 *
 *   full: every key and value, sorted (values are immutable, so this is a copy of
 *         references taken between two applies);
 *   diff/incr since index p: every key changed after p, with its value now or a delete.
 *
 * Changes are known from `trackedSince` on (the index the state was loaded at); a backup
 * relative to an older parent must first `noteChanged` the keys touched in between (the
 * agent reads them from the log archive).
 *
 * The digest and the change indices are kept **lazily**: an apply only remembers, for each
 * key it touches, the key's value before its first change since the digest was last settled
 * and the index of the latest touch. `settle()` folds those keys in (subtract the old
 * record's hash, add the current one's; a key whose value is the same object as before did
 * not change). It runs before anything reads the digest, the key count or the change indices
 * (a capture, `digestHex`, `keyCount`), and whenever SETTLE_KEYS keys are pending (bounded
 * memory). The additive digest telescopes, so the result is exactly the eager one; and
 * because every capture settles first, a parent's index is always at a settle point, so a
 * key's change index is on the same side of every parent's index as the eager tracker's.
 * What it saves: a key touched by many entries between two settles (the global revision,
 * a client's session, a hot key) is encoded and hashed once per settle instead of twice per
 * entry (measured in benchmarks/backup.md, session 10).
 */
import { StateDigest } from './digest.js';
import { compareKeys, type KeyedState } from './state.js';

export interface Capture {
  readonly index: number;
  readonly term: number;
  readonly time: number;
  readonly keyCount: number;
  readonly stateDigest: string;
  /** Sorted; value undefined = delete. */
  readonly records: ReadonlyArray<readonly [string, Uint8Array | undefined]>;
  /** Plain bytes of the records (approximate, for progress). */
  readonly bytes: number;
}

/**
 * Pending keys above which an apply settles the digest: bounds what the tracker holds on to
 * (a key, an index and a reference to the key's old value, which would otherwise be garbage).
 */
export const SETTLE_KEYS = 65_536;

export class TrackedState<Op> {
  private digest = new StateDigest();
  /** key → index of its last change, for changes after `trackedSince` (settled keys only). */
  private changedAt = new Map<string, number>();
  /** key → its value before its first change since the last settle (undefined: absent). */
  private pendingOld = new Map<string, Uint8Array | undefined>();
  /** key → index of the latest entry that touched it since the last settle. */
  private pendingAt = new Map<string, number>();
  /** The index the settled digest is of, and its hex (computed once per settle). */
  private settledIndex = 0;
  private settledHex: string | undefined;
  index = 0;
  term = 0;
  time = 0;
  trackedSince = 0;

  /** `digest`: the state's digest when the caller already knows it (saves a full pass). */
  constructor(
    readonly state: KeyedState<Op>,
    digest?: StateDigest,
  ) {
    if (digest) this.digest = digest.clone();
    else this.rebuildDigest();
  }

  /** Sets the position of the (unchanged) state after a restore: tracking starts here. */
  reset(index: number, term: number, time: number): void {
    this.settle();
    this.index = index;
    this.settledIndex = index;
    this.term = term;
    this.time = time;
    this.trackedSince = index;
    this.changedAt.clear();
  }

  private rebuildDigest(): void {
    this.digest = new StateDigest();
    for (const [k, v] of this.state.entries()) this.digest.add(k, v);
  }

  /** The digest of the state at `index` (settles what is pending). */
  get digestHex(): string {
    this.settle();
    return this.digest.hex();
  }

  /** Keys in the state at `index` (settles what is pending). */
  get keyCount(): number {
    this.settle();
    return this.digest.count;
  }

  /**
   * The digest and key count as last settled, at `index` of the result, without settling:
   * for a status published after every apply, where settling each time would cost what the
   * lazy digest saves.
   */
  settled(): { readonly index: number; readonly keyCount: number; readonly digest: string } {
    this.settledHex ??= this.digest.hex();
    return { index: this.settledIndex, keyCount: this.digest.count, digest: this.settledHex };
  }

  apply(op: Op, meta: { index: number; term: number; time: number }): unknown {
    const { pendingOld, pendingAt, state } = this;
    // Before applying: the value each touched key had before its first change since the settle.
    for (const k of state.keysTouched(op)) {
      if (!pendingOld.has(k)) pendingOld.set(k, state.get(k));
      pendingAt.set(k, meta.index);
    }
    const result = state.apply(op, meta);
    this.index = meta.index;
    this.term = meta.term;
    this.time = meta.time;
    if (pendingOld.size >= SETTLE_KEYS) this.settle();
    return result;
  }

  /** Folds the keys touched since the last settle into the digest and the change indices. */
  settle(): void {
    const { pendingOld, pendingAt, state } = this;
    if (pendingOld.size > 0) {
      for (const [k, old] of pendingOld) {
        const now = state.get(k);
        if (old === now) continue;
        if (old !== undefined) this.digest.remove(k, old);
        if (now !== undefined) this.digest.add(k, now);
        this.changedAt.set(k, pendingAt.get(k) as number);
      }
      this.settledHex = undefined;
      pendingOld.clear();
      pendingAt.clear();
    }
    this.settledIndex = this.index;
  }

  /** Advances past an entry that carries no command (a leader's no-op, a config change). */
  skip(meta: { index: number; term: number; time: number }): void {
    if (this.pendingOld.size === 0) this.settledIndex = meta.index;
    this.index = meta.index;
    this.term = meta.term;
    this.time = meta.time;
  }

  /** Marks keys as changed at `index` (keys touched by entries archived before tracking began). */
  noteChanged(keys: Iterable<string>, index: number): void {
    this.settle();
    for (const k of keys) if (!this.changedAt.has(k)) this.changedAt.set(k, index);
  }

  captureFull(): Capture {
    this.settle();
    const records: Array<readonly [string, Uint8Array]> = [];
    let bytes = 0;
    // The pairs as the state yields them (never mutated; no second pair per key).
    for (const e of this.state.entries()) {
      records.push(e);
      bytes += e[0].length + e[1].byteLength + 9;
    }
    records.sort((a, b) => compareKeys(a[0], b[0]));
    return this.capture(records, bytes);
  }

  /** Keys changed after `since`, with their values now (undefined = deleted). */
  captureChanges(since: number): Capture {
    this.settle();
    const records: Array<[string, Uint8Array | undefined]> = [];
    let bytes = 0;
    for (const [k, at] of this.changedAt) {
      if (at <= since) continue;
      const v = this.state.get(k);
      records.push([k, v]);
      bytes += k.length + (v?.byteLength ?? 0) + 9;
    }
    records.sort((a, b) => compareKeys(a[0], b[0]));
    return this.capture(records, bytes);
  }

  /**
   * Every key put or deleted after `index` (a superset: a key rewritten with another value
   * object counts), ascending as `Array.prototype.sort` orders strings; undefined when changes
   * that far back are not tracked (`index < trackedSince`). What a full backup may reuse an
   * earlier full's chunks by (repository.ts `ChunkReuse`).
   */
  keysChangedAfter(index: number): string[] | undefined {
    this.settle();
    if (index < this.trackedSince || index > this.index) return undefined;
    const out: string[] = [];
    for (const [k, at] of this.changedAt) if (at > index) out.push(k);
    return out.sort();
  }

  /** Forgets changes at or before `index` (no future backup's parent is older). */
  forgetUpTo(index: number): void {
    this.settle();
    for (const [k, at] of this.changedAt) if (at <= index) this.changedAt.delete(k);
    if (index > this.trackedSince) this.trackedSince = index;
  }

  private capture(
    records: Array<readonly [string, Uint8Array | undefined]>,
    bytes: number,
  ): Capture {
    return {
      index: this.index,
      term: this.term,
      time: this.time,
      keyCount: this.digest.count,
      stateDigest: this.digest.hex(),
      records,
      bytes,
    };
  }
}
