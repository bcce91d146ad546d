/**
 * Mutations of generated histories for checker tests: which reads completed ok, and a value
 * a read certainly cannot return (a stale value).
 */
import { type HistoryEvent, type Operation, pairEvents } from '../../lib/history/index.js';

export interface OkRead {
  index: number;
  event: HistoryEvent;
  op: Operation;
}

/** Ok reads/gets paired with their completion event index. */
export function okReads(events: HistoryEvent[], readF: string): OkRead[] {
  const { operations } = pairEvents(events);
  const out: OkRead[] = [];
  for (const op of operations) {
    if (op.f !== readF || op.outcome !== 'ok') continue;
    const index = op.source?.complete as number;
    out.push({ index, event: events[index] as HistoryEvent, op });
  }
  return out;
}

/**
 * A value the read certainly cannot return: written by exactly one op W1 on its key that
 * completed before another completed write W2 (different value) was invoked, and W2
 * completed before the read was invoked. Undefined if there is none.
 */
export function staleValueFor(events: HistoryEvent[], read: Operation): unknown {
  const { operations } = pairEvents(events);
  const sameKey = operations.filter((o) => o.key === read.key);
  const writers = new Map<string, number>();
  for (const o of sameKey) {
    const written = o.f === 'write' ? [o.input] : o.f === 'cas' ? [(o.input as unknown[])[1]] : [];
    for (const w of written)
      writers.set(JSON.stringify(w), (writers.get(JSON.stringify(w)) ?? 0) + 1);
  }
  const writes = sameKey.filter((o) => o.f === 'write' && o.outcome === 'ok');
  for (const w2 of writes) {
    if (!(w2.ret < read.call)) continue;
    for (const w1 of writes) {
      if (w1.ret < w2.call && JSON.stringify(w1.input) !== JSON.stringify(w2.input)) {
        if (writers.get(JSON.stringify(w1.input)) === 1) return w1.input;
      }
    }
  }
  return undefined;
}
