/**
 * Seeded randomized workloads of MapState commands, for tests, simulations and the
 * benchmark: puts (new and overwritten keys), deletes and batches over a key space, with a
 * reference model to compare restores against.
 */
import type { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
import type { MapOp } from './state.js';

export interface WorkloadOptions {
  /** Distinct keys drawn from. */
  readonly keySpace: number;
  /** Value size range in bytes. */
  readonly valueMin: number;
  readonly valueMax: number;
  /** Probabilities of a delete and of a batch (else a put). */
  readonly pDelete: number;
  readonly pBatch: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  keySpace: 500,
  valueMin: 0,
  valueMax: 200,
  pDelete: 0.15,
  pBatch: 0.1,
};

export function keyName(i: number): string {
  return `k${String(i).padStart(8, '0')}`;
}

export function randomValue(r: Random, min: number, max: number): Uint8Array {
  const n = r.between(min, max);
  const b = new Uint8Array(n);
  // half-compressible values: a random prefix, then a repeated byte
  const rnd = n >> 1;
  for (let i = 0; i < rnd; i++) b[i] = r.int(256);
  b.fill(r.int(256), rnd);
  return b;
}

export function randomOp(r: Random, o: WorkloadOptions = DEFAULT_WORKLOAD): MapOp {
  const one = (): MapOp => {
    const key = keyName(r.int(o.keySpace));
    if (r.chance(o.pDelete)) return { type: 'delete', key };
    return { type: 'put', key, value: randomValue(r, o.valueMin, o.valueMax) };
  };
  if (r.chance(o.pBatch)) {
    const n = r.between(2, 6);
    const ops: MapOp[] = [];
    for (let i = 0; i < n; i++) ops.push(one());
    return { type: 'batch', ops };
  }
  return one();
}

export function command(op: MapOp, seq: number): Command<MapOp> {
  return { clientId: 'workload', seq, op };
}
