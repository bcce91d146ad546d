/**
 * Long histories on one key, as a 30-minute chaos run records them (over 100,000 operations
 * per key): the checker must decide them within a small memory budget and a step budget that
 * grows linearly with the history. Both budgets are deterministic (no time budget here), so
 * a checker whose memoised configurations grow with the length of the history (a dense
 * bitset per configuration: O(n²) bytes) or whose search steps do, fails these tests.
 */
import t from 'tap';
import { generateHistory } from '../../lib/history/generate.js';
import { checkHistory, type HistoryEvent, pairEvents } from '../../lib/history/index.js';
import { Random } from '../../lib/random.js';

const OPERATIONS = 100_000;
const MEMORY = 64 * 1024 ** 2;

function longHistory(seed: number): HistoryEvent[] {
  return generateHistory({
    random: new Random(seed),
    model: 'register',
    clients: 13,
    operations: OPERATIONS,
    keys: 1,
    uniqueValues: true,
    // A chaos run's rates: a handful of unknown outcomes (they stay within the checker's
    // 30 untracked ones) and a few failures.
    infoRate: 0.0002,
    failRate: 0.001,
    maxLatency: 20,
  }).events;
}

t.test(
  '100,000 operations on one key: linearizable within 64 MiB and 10 steps per operation',
  (t) => {
    const events = longHistory(7001);
    const verdict = checkHistory(events, {
      model: 'register',
      maxMemoryBytes: MEMORY,
      maxSteps: 10 * OPERATIONS,
    });
    t.equal(verdict.result, 'linearizable', verdict.summary);
    t.ok(verdict.stats.operations >= OPERATIONS * 0.99, `${verdict.stats.operations} operations`);
    t.end();
  },
);

t.test('a stale read late in 100,000 operations is found', (t) => {
  const events = longHistory(7002);
  const { operations } = pairEvents(events);
  // An early definite write, and a read near the end that returns its (unique) value: many
  // definite writes of other values started after it returned and returned before the read.
  const early = operations.find((o) => o.f === 'write' && o.outcome === 'ok' && o.id > 100);
  const late = [...operations]
    .reverse()
    .find((o) => o.f === 'read' && o.outcome === 'ok' && o.id < OPERATIONS - 100);
  if (!early || !late) throw new Error('generator produced no early write or late read');
  const overwrites = operations.filter(
    (o) =>
      o.f === 'write' &&
      o.outcome === 'ok' &&
      o.call > early.ret &&
      o.ret < late.call &&
      o.input !== early.input,
  );
  t.ok(overwrites.length > 1000, `${overwrites.length} definite overwrites in between`);
  const index = late.source?.complete as number;
  const mutated = events.slice();
  mutated[index] = { ...(events[index] as HistoryEvent), value: early.input };
  const verdict = checkHistory(mutated, {
    model: 'register',
    maxMemoryBytes: MEMORY,
    maxSteps: 10 * OPERATIONS,
  });
  t.equal(verdict.result, 'violation', verdict.summary);
  const key = verdict.keys.find((k) => k.result === 'violation');
  t.equal(key?.blocking?.id, late.id, 'the stale read is the operation named');
  t.end();
});

t.test('memory per memoised configuration does not grow with the history', (t) => {
  // Same history shape at 10,000 and 100,000 operations: the memo's estimated bytes per
  // configuration must stay within a constant (a dense bitset grows 10×).
  const perEntry = (n: number) => {
    const events = generateHistory({
      random: new Random(7003),
      model: 'register',
      clients: 13,
      operations: n,
      keys: 1,
      uniqueValues: true,
      infoRate: 0,
      failRate: 0,
      maxLatency: 20,
    }).events;
    const verdict = checkHistory(events, { model: 'register', maxSteps: 10 * n });
    t.equal(verdict.result, 'linearizable', `${n}: ${verdict.summary}`);
    return verdict.stats.memoBytes / Math.max(1, verdict.stats.memoEntries);
  };
  const small = perEntry(10_000);
  const large = perEntry(100_000);
  t.ok(
    large < small * 1.5,
    `bytes per configuration: ${small.toFixed(1)} at 10k, ${large.toFixed(1)} at 100k`,
  );
  t.end();
});
