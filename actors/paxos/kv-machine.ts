/**
 * A small deterministic key/value register state machine (read, write, cas, delete) used by
 * the Paxos simulations and benchmark; results are plain data so they cross the codec.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { encodeValueSliced } from '../../lib/codec-sliced.js';
import type { StateMachine } from '../../lib/replicated-log.js';

export type KvOp =
  | { readonly f: 'read'; readonly key: string }
  | { readonly f: 'write'; readonly key: string; readonly value: unknown }
  | { readonly f: 'cas'; readonly key: string; readonly from: unknown; readonly to: unknown }
  | { readonly f: 'delete'; readonly key: string };

export class KvStateMachine implements StateMachine<KvOp, unknown> {
  private data = new Map<string, unknown>();
  applied = 0;

  apply(op: KvOp): unknown {
    this.applied++;
    switch (op.f) {
      case 'read':
        return this.data.get(op.key) ?? null;
      case 'write':
        this.data.set(op.key, op.value);
        return null;
      case 'cas': {
        const cur = this.data.get(op.key) ?? null;
        if (cur !== op.from) return false;
        this.data.set(op.key, op.to);
        return true;
      }
      case 'delete':
        return this.data.delete(op.key);
      default:
        return null;
    }
  }

  read(key: string): unknown {
    return this.data.get(key) ?? null;
  }

  snapshot(): Uint8Array {
    return encodeValue(this.image());
  }

  /** The same image, captured now (a fresh array; values are never mutated), encoded in slices. */
  snapshotAsync(pause: () => Promise<void>): Promise<Uint8Array> {
    return encodeValueSliced(this.image(), pause);
  }

  private image(): [string, unknown][] {
    return [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  restore(image: Uint8Array): void {
    this.data = new Map(decodeValue(image) as [string, unknown][]);
  }
}
