/**
 * Refutation before the search: an operation that no order respecting real time can explain
 * makes its key a violation without an exhaustive search (which is exponential in the number
 * of operations before it, and blew a 600 s CI timeout on a generated history).
 * Budgets here are search steps, not time, so every assertion is deterministic.
 */
import t from 'tap';
import { generateHistory } from '../../lib/history/generate.js';
import {
  checkHistory,
  type HistoryEvent,
  kvModel,
  pairEvents,
  registerModel,
} from '../../lib/history/index.js';
import { Random } from '../../lib/random.js';
import { type OkRead, okReads, staleValueFor } from '../helpers/history-mutations.js';

/** The property test's mutation: the `pick`-th ok read gets a stale or never-written value. */
function mutateRead(events: HistoryEvent[], kv: boolean, pick: number): HistoryEvent[] {
  const reads = okReads(events, kv ? 'get' : 'read');
  const r = reads[pick % reads.length] as OkRead;
  let value = kv ? undefined : staleValueFor(events, r.op);
  if (value === undefined) value = kv ? `${String(r.event.value ?? '')}never;` : 'never-written';
  const out = events.map((e) => ({ ...e }));
  (out[r.index] as HistoryEvent).value = value;
  return out;
}

t.test('a stale register read among many unknown writes is refuted', async (t) => {
  // Found by the property test: one key, 291 operations, 20 % of them with an unknown
  // outcome, one read changed to the value of a write that a later completed write
  // overwrote. The search alone ran out of a 20 s budget on it; fast-check then shrank it
  // with 20 s checks until tap's 600 s timeout killed the file in CI.
  const c = { seed: 11, clients: 7, operations: 291, keys: 1, infoRate: 0.2, failRate: 0 };
  const { events } = generateHistory({
    ...c,
    maxLatency: 18,
    random: new Random(c.seed),
    model: 'register',
    uniqueValues: true,
  });
  t.equal(checkHistory(events, { model: 'register' }).result, 'linearizable', 'as generated');
  const mutated = mutateRead(events, false, 1466893216);
  const v = checkHistory(mutated, { model: 'register', maxSteps: 1_000_000 });
  t.equal(v.result, 'violation', 'refuted within a million search steps');
  t.match(v.explanation, /overwritten/);
  t.equal(v.violations[0]?.blocking?.f, 'read', 'the stale read is named');

  // Without the refutation, the same step budget does not decide it.
  const bare = { ...registerModel, refute: undefined };
  t.equal(
    checkHistory(mutated, { model: bare, maxSteps: 1_000_000 }).result,
    'unknown',
    'control: the search alone runs out',
  );
});

t.test('a kv get with a suffix nobody appended is refuted', async (t) => {
  const c = { seed: 1302169416, clients: 7, operations: 268, keys: 1, infoRate: 0, failRate: 0 };
  const { events } = generateHistory({
    ...c,
    maxLatency: 7,
    random: new Random(c.seed),
    model: 'kv',
    uniqueValues: true,
  });
  const mutated = mutateRead(events, true, 1930671961);
  const v = checkHistory(mutated, { model: 'kv', maxSteps: 1_000_000 });
  t.equal(v.result, 'violation');
  const bare = { ...kvModel, producible: undefined };
  t.equal(
    checkHistory(mutated, { model: bare, maxSteps: 1_000_000 }).result,
    'unknown',
    'control: the search alone runs out',
  );
});

t.test('refutation never flags a read another writer may explain', async (t) => {
  // w1 writes 1, w2 overwrites with 2 before the read begins, but a write of 1 with an
  // unknown outcome may take effect at any time after its invoke: the read of 1 is fine.
  const events: HistoryEvent[] = [
    { process: 1, type: 'invoke', f: 'write', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', value: 1, time: 1 },
    { process: 3, type: 'invoke', f: 'write', value: 1, time: 2 },
    { process: 2, type: 'invoke', f: 'write', value: 2, time: 3 },
    { process: 2, type: 'ok', f: 'write', value: 2, time: 4 },
    { process: 3, type: 'info', f: 'write', value: 1, time: 5 },
    { process: 4, type: 'invoke', f: 'read', time: 6 },
    { process: 4, type: 'ok', f: 'read', value: 1, time: 7 },
  ];
  t.equal(checkHistory(events).result, 'linearizable');
  // ... and a concurrent overwrite does not count: it may come after the read.
  const concurrent: HistoryEvent[] = [
    { process: 1, type: 'invoke', f: 'write', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', value: 1, time: 1 },
    { process: 2, type: 'invoke', f: 'write', value: 2, time: 2 },
    { process: 4, type: 'invoke', f: 'read', time: 3 },
    { process: 2, type: 'ok', f: 'write', value: 2, time: 4 },
    { process: 4, type: 'ok', f: 'read', value: 1, time: 5 },
  ];
  t.equal(checkHistory(concurrent).result, 'linearizable');
  // The stale read proper is explained with the longest prefix when the search finds it.
  const stale: HistoryEvent[] = [
    { process: 1, type: 'invoke', f: 'write', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', value: 1, time: 1 },
    { process: 2, type: 'invoke', f: 'write', value: 2, time: 2 },
    { process: 2, type: 'ok', f: 'write', value: 2, time: 3 },
    { process: 4, type: 'invoke', f: 'read', time: 4 },
    { process: 4, type: 'ok', f: 'read', value: 1, time: 5 },
  ];
  const v = checkHistory(stale);
  t.equal(v.result, 'violation');
  t.equal(v.violations[0]?.longestPrefix?.length, 2, 'the fuller explanation is kept');
  const refuted = registerModel.refute?.(
    pairEvents(stale).operations.map((o) => {
      const p = registerModel.prepare?.(
        { f: o.f, value: o.input },
        { known: true, value: o.output },
      ) as { input: { f: string; value: unknown }; output: { known: true; value: unknown } };
      return { ...p, call: o.call, ret: o.ret };
    }),
  );
  t.equal(refuted?.index, 2, 'the model alone names the read');
  t.match(refuted?.why, /overwritten/);
});
