/**
 * What the backup agent needs from a state machine: the commands it applies, which keys a
 * command may change, and a key → value view of the whole state. A full backup serializes
 * that view in key order; differential and incremental backups serialize only the keys
 * changed since their parent. Any state machine whose state is a map of byte values
 * (including a session table stored under reserved keys) can be backed up this way.
 *
 * `MapState` is the generic key → value state machine used until the KV state machine
 * (actors/kv) provides its own adapter.
 */

export interface KeyedState<Op = unknown> {
  /** Applies one committed command; must be deterministic. */
  apply(op: Op, meta: { index: number; term: number }): unknown;
  /** Every key `op` may change (a superset is fine: unchanged keys are stored again). */
  keysTouched(op: Op): Iterable<string>;
  get(key: string): Uint8Array | undefined;
  readonly size: number;
  /**
   * Every key and value, in any order. Values are never mutated in place, and neither are the
   * pairs yielded (an implementation may yield the same pair object each time).
   */
  entries(): IterableIterator<[string, Uint8Array]>;
  /** Replaces the whole state. */
  load(entries: Iterable<readonly [string, Uint8Array]>): void;
}

export type KeyedStateFactory<Op = unknown> = () => KeyedState<Op>;

export type MapOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'batch'; readonly ops: readonly MapOp[] };

export class MapState implements KeyedState<MapOp> {
  private readonly map = new Map<string, Uint8Array>();

  apply(op: MapOp): number {
    switch (op.type) {
      case 'put':
        this.map.set(op.key, op.value);
        return 1;
      case 'delete':
        return this.map.delete(op.key) ? 1 : 0;
      case 'batch': {
        let n = 0;
        for (const o of op.ops) n += this.apply(o);
        return n;
      }
      default:
        return 0; // unknown operations change nothing (and are ignored the same way on replay)
    }
  }

  *keysTouched(op: MapOp): Iterable<string> {
    if (op.type === 'batch') {
      for (const o of op.ops) yield* this.keysTouched(o);
    } else if (op.type === 'put' || op.type === 'delete') {
      yield op.key;
    }
  }

  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  get size(): number {
    return this.map.size;
  }

  entries(): IterableIterator<[string, Uint8Array]> {
    return this.map.entries();
  }

  load(entries: Iterable<readonly [string, Uint8Array]>): void {
    this.map.clear();
    for (const [k, v] of entries) this.map.set(k, v);
  }
}

/** Sorts keys the way every backup does (UTF-16 code unit order, as `<` on strings). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
