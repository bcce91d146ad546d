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

export class TrackedState<Op> {
  private digest = new StateDigest();
  /** key → index of its last change, for changes after `trackedSince`. */
  private changedAt = new Map<string, number>();
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
    this.index = index;
    this.term = term;
    this.time = time;
    this.trackedSince = index;
    this.changedAt.clear();
  }

  private rebuildDigest(): void {
    this.digest = new StateDigest();
    for (const [k, v] of this.state.entries()) this.digest.add(k, v);
  }

  get digestHex(): string {
    return this.digest.hex();
  }

  get keyCount(): number {
    return this.digest.count;
  }

  apply(op: Op, meta: { index: number; term: number; time: number }): unknown {
    const keys = [...new Set(this.state.keysTouched(op))];
    const before = keys.map((k) => this.state.get(k));
    const result = this.state.apply(op, meta);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      const old = before[i];
      const now = this.state.get(k);
      if (old === now) continue;
      if (old !== undefined) this.digest.remove(k, old);
      if (now !== undefined) this.digest.add(k, now);
      this.changedAt.set(k, meta.index);
    }
    this.index = meta.index;
    this.term = meta.term;
    this.time = meta.time;
    return result;
  }

  /** Advances past an entry that carries no command (a leader's no-op, a config change). */
  skip(meta: { index: number; term: number; time: number }): void {
    this.index = meta.index;
    this.term = meta.term;
    this.time = meta.time;
  }

  /** Marks keys as changed at `index` (keys touched by entries archived before tracking began). */
  noteChanged(keys: Iterable<string>, index: number): void {
    for (const k of keys) if (!this.changedAt.has(k)) this.changedAt.set(k, index);
  }

  captureFull(): Capture {
    const records: Array<[string, Uint8Array]> = [];
    let bytes = 0;
    for (const [k, v] of this.state.entries()) {
      records.push([k, v]);
      bytes += k.length + v.byteLength + 9;
    }
    records.sort((a, b) => compareKeys(a[0], b[0]));
    return this.capture(records, bytes);
  }

  /** Keys changed after `since`, with their values now (undefined = deleted). */
  captureChanges(since: number): Capture {
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

  /** Forgets changes at or before `index` (no future backup's parent is older). */
  forgetUpTo(index: number): void {
    for (const [k, at] of this.changedAt) if (at <= index) this.changedAt.delete(k);
    if (index > this.trackedSince) this.trackedSince = index;
  }

  private capture(records: Array<[string, Uint8Array | undefined]>, bytes: number): Capture {
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
