/**
 * Property tests: for every key type (DVV siblings and the four CRDTs) merges are
 * commutative, associative and idempotent, and delivering the deltas of a history in any
 * order, with duplicates, gives the state of a replica that saw them in order.
 * States come from random histories (operations at 3 replicas, random syncs between
 * them), so every state tested is one a real cluster can reach.
 */
import fc from 'fast-check';
import t from 'tap';
import { canonical } from '../../actors/gossip/hash.js';
import { HybridLogicalClock } from '../../actors/gossip/hlc.js';
import {
  applyOp,
  dvvContextOf,
  emptyRecord,
  KEY_TYPES,
  type KeyRecord,
  type KeyType,
  mergeRecords,
  type Operation,
  tokenOf,
} from '../../actors/gossip/record.js';

const REPLICAS = ['a', 'b', 'c'] as const;

type Action =
  | { kind: 'op'; at: number; pick: number; value: number; useContext: boolean }
  | { kind: 'sync'; from: number; to: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({
    kind: fc.constant('op' as const),
    at: fc.integer({ min: 0, max: 2 }),
    pick: fc.integer({ min: 0, max: 9 }),
    value: fc.integer({ min: -5, max: 5 }),
    useContext: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('sync' as const),
    from: fc.integer({ min: 0, max: 2 }),
    to: fc.integer({ min: 0, max: 2 }),
  }),
);

function opFor(type: KeyType, pick: number, value: number): Operation {
  switch (type) {
    case 'dvv':
    case 'lww':
      return pick < 2 ? { op: 'delete' } : { op: 'put', value: `v${value}` };
    case 'mv':
      return { op: 'put', value: `v${value}` };
    case 'pn':
      return { op: 'increment', by: value };
    case 'orset':
      return pick < 4
        ? { op: 'remove', element: `e${Math.abs(value) % 4}` }
        : { op: 'add', element: `e${Math.abs(value) % 4}` };
  }
}

interface History {
  states: KeyRecord[];
  deltas: KeyRecord[];
}

/** Runs a history; physical clocks are skewed per replica to exercise the HLC. */
function run(type: KeyType, actions: readonly Action[]): History {
  let time = 1000;
  const skew = [0, 37, -20];
  const clocks = REPLICAS.map(
    (id, i) => new HybridLogicalClock(id, { physical: () => time + (skew[i] as number) }),
  );
  const states: KeyRecord[] = REPLICAS.map(() => emptyRecord(type));
  const deltas: KeyRecord[] = [];
  for (const a of actions) {
    time += 1;
    if (a.kind === 'op') {
      const cur = states[a.at] as KeyRecord;
      const token = tokenOf(cur);
      const context = dvvContextOf(a.useContext ? token : undefined);
      const r = applyOp(cur, type, opFor(type, a.pick, a.value), {
        id: REPLICAS[a.at] as string,
        hlc: clocks[a.at] as HybridLogicalClock,
        context,
      });
      states[a.at] = r.record;
      deltas.push(r.delta);
    } else {
      states[a.to] = mergeRecords(states[a.to] as KeyRecord, states[a.from] as KeyRecord);
    }
  }
  return { states, deltas };
}

const same = (x: KeyRecord, y: KeyRecord) => canonical(x) === canonical(y);

for (const type of KEY_TYPES) {
  t.test(`${type}: merge is commutative, associative and idempotent`, async (t) => {
    fc.assert(
      fc.property(fc.array(action, { maxLength: 40 }), (actions) => {
        const { states } = run(type, actions);
        const [a, b, c] = states as [KeyRecord, KeyRecord, KeyRecord];
        return (
          same(mergeRecords(a, b), mergeRecords(b, a)) &&
          same(mergeRecords(a, mergeRecords(b, c)), mergeRecords(mergeRecords(a, b), c)) &&
          same(mergeRecords(a, a), a) &&
          same(mergeRecords(mergeRecords(a, b), b), mergeRecords(a, b))
        );
      }),
      { numRuns: 300 },
    );
    t.pass('properties held');
  });

  t.test(`${type}: any delivery order of the deltas, with duplicates, converges`, async (t) => {
    fc.assert(
      fc.property(
        fc.array(action, { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.integer(),
        (actions, dupPicks, seed) => {
          const { states, deltas } = run(type, actions);
          // reference: the join of every replica's final state (which holds every delta)
          const full = states.reduce((x, y) => mergeRecords(x, y));
          const stream = [...deltas];
          for (const p of dupPicks)
            if (deltas.length > 0) stream.push(deltas[p % deltas.length] as KeyRecord);
          // deterministic shuffle from the seed
          let s = seed >>> 0;
          for (let i = stream.length - 1; i > 0; i--) {
            s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
            const j = s % (i + 1);
            [stream[i], stream[j]] = [stream[j] as KeyRecord, stream[i] as KeyRecord];
          }
          const got = stream.reduce((x, d) => mergeRecords(x, d), emptyRecord(type));
          return same(got, full);
        },
      ),
      { numRuns: 300 },
    );
    t.pass('converged');
  });
}

t.test('negative control: a non-idempotent "merge" (summing counters) is caught', async (t) => {
  const badMerge = (a: KeyRecord, b: KeyRecord): KeyRecord => {
    if (a.t !== 'pn' || b.t !== 'pn') return a;
    const p: Record<string, number> = { ...a.s.p };
    for (const [k, v] of Object.entries(b.s.p)) p[k] = (p[k] ?? 0) + v;
    return { t: 'pn', s: { p, n: a.s.n } };
  };
  const result = fc.check(
    fc.property(fc.array(action, { maxLength: 20 }), (actions) => {
      const [a] = run('pn', actions).states as [KeyRecord];
      return same(badMerge(a, a), a);
    }),
    { numRuns: 200 },
  );
  t.ok(result.failed, 'the property test flags the broken merge');
});
