import fc from 'fast-check';
import t from 'tap';
import { HashRing } from '../../actors/gossip/ring.js';

const keys = Array.from({ length: 3000 }, (_, i) => `key-${i}`);

t.test('preference lists hold n distinct members, stable across instances', async (t) => {
  const ring = new HashRing(['a', 'b', 'c', 'd', 'e'], 64);
  const again = new HashRing(['e', 'd', 'c', 'b', 'a'], 64);
  for (const k of keys.slice(0, 200)) {
    const p = ring.preferenceList(k, 3);
    t.equal(new Set(p).size, 3);
    t.same(p, again.preferenceList(k, 3), 'member order does not matter');
  }
  t.same(ring.preferenceList('x', 9).length, 5, 'at most the member count');
  t.same(new HashRing([], 8).preferenceList('x', 3), []);
  t.throws(() => new HashRing(['a'], 0), RangeError);
});

t.test('load is spread evenly with virtual nodes', async (t) => {
  const ring = new HashRing(['a', 'b', 'c', 'd', 'e'], 128);
  const count = new Map<string, number>();
  for (const k of keys) {
    const p = ring.preferenceList(k, 1)[0] as string;
    count.set(p, (count.get(p) ?? 0) + 1);
  }
  const shares = [...count.values()].map((c) => c / keys.length);
  t.comment(`primary shares: ${shares.map((s) => s.toFixed(3)).join(' ')}`);
  t.ok(Math.max(...shares) < 0.3 && Math.min(...shares) > 0.1, 'each member owns 10-30% of keys');
});

t.test('join/leave moves only the keys that must move (property)', async (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z]{1,6}$/), { minLength: 3, maxLength: 8 }),
      fc.stringMatching(/^[A-Z]{1,6}$/),
      fc.integer({ min: 1, max: 3 }),
      (members, joiner, n) => {
        const before = new HashRing(members, 32);
        const after = before.with(joiner);
        let moved = 0;
        for (const k of keys.slice(0, 600)) {
          const p0 = before.preferenceList(k, n);
          const p1 = after.preferenceList(k, n);
          if (p0.join() === p1.join()) continue;
          moved++;
          // the only change: the joiner entered; everyone else keeps their relative order
          if (!p1.includes(joiner)) return false;
          const rest = p1.filter((m) => m !== joiner);
          if (rest.join() !== p0.slice(0, rest.length).join()) return false;
        }
        // a fraction about n/(members+1) of keys moves; allow generous slack for 32 vnodes
        const expected = (Math.min(n, members.length + 1) / (members.length + 1)) * 600;
        if (moved > expected * 2 + 30) return false;
        // leaving is the exact inverse
        const back = after.without(joiner);
        return keys
          .slice(0, 100)
          .every((k) => back.preferenceList(k, n).join() === before.preferenceList(k, n).join());
      },
    ),
    { numRuns: 40 },
  );
  t.pass('minimal movement');
});

t.test('segments: every key of a segment has the segment preference list', async (t) => {
  const ring = new HashRing(['a', 'b', 'c', 'd'], 16);
  for (const k of keys.slice(0, 300)) {
    t.same(ring.walkSegment(ring.segmentOf(k), 3), ring.preferenceList(k, 3));
  }
  const segsOfA = ring.segmentsOf('a', 3);
  t.ok(segsOfA.length > 0 && segsOfA.length < ring.segmentCount);
});
