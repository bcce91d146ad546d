import fc from 'fast-check';
import t from 'tap';
import { type CausalContext, EMPTY_CONTEXT } from '../../actors/gossip/causal-context.js';
import {
  contextOf,
  isDeleted,
  type Sibling,
  siblingValues,
  syncSiblings,
  writeSibling,
} from '../../actors/gossip/dvv.js';

t.test('two blind writes through the same coordinator become siblings', async (t) => {
  const w1 = writeSibling<string>([], EMPTY_CONTEXT, 'a', 'x');
  const w2 = writeSibling<string>(w1.siblings, EMPTY_CONTEXT, 'a', 'y');
  t.same(siblingValues(w2.siblings), ['x', 'y'], 'neither write is lost');
  t.same(contextOf(w2.siblings), { vv: { a: 2 }, dc: [] });
});

t.test('a write with the context of a read replaces what was read, and only that', async (t) => {
  const s1 = writeSibling<string>([], EMPTY_CONTEXT, 'a', 'x').siblings;
  const ctx = contextOf(s1);
  const s2 = writeSibling<string>(s1, EMPTY_CONTEXT, 'b', 'concurrent').siblings; // a blind write elsewhere
  const s3 = writeSibling<string>(s2, ctx, 'a', 'resolved').siblings;
  t.same(siblingValues(s3).sort(), ['concurrent', 'resolved']);
  const s4 = writeSibling<string>(s3, contextOf(s3), 'c', 'final').siblings;
  t.same(siblingValues(s4), ['final'], 'a write that saw everything leaves one value');
});

t.test('a delete is a tombstone sibling; the key reads as absent', async (t) => {
  const s1 = writeSibling<string>([], EMPTY_CONTEXT, 'a', 'x').siblings;
  const s2 = writeSibling<string>(s1, contextOf(s1), 'a', undefined, true).siblings;
  t.ok(isDeleted(s2));
  t.same(siblingValues(s2), []);
  // a concurrent write survives the delete
  const other = writeSibling<string>([], EMPTY_CONTEXT, 'b', 'late').siblings;
  const merged = syncSiblings(s2, other);
  t.notOk(isDeleted(merged));
  t.same(siblingValues(merged), ['late']);
});

t.test('sync drops versions superseded on the other side and keeps concurrent ones', async (t) => {
  const base = writeSibling<string>([], EMPTY_CONTEXT, 'a', 'v1').siblings;
  const onB = syncSiblings<string>([], base);
  const newerOnB = writeSibling<string>(onB, contextOf(onB), 'b', 'v2').siblings;
  const concurrentOnA = writeSibling<string>(base, EMPTY_CONTEXT, 'a', 'v3').siblings;
  const merged = syncSiblings(concurrentOnA, newerOnB);
  t.same(siblingValues(merged).sort(), ['v2', 'v3']);
  t.same(syncSiblings(merged, merged), merged, 'idempotent');
});

t.test('counters never repeat at a coordinator, whatever context clients send', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(5)), { maxLength: 30 }), (steps) => {
      let sibs: Sibling<number>[] = [];
      const seen = new Set<number>();
      for (const [withCtx, v] of steps) {
        const r = writeSibling(sibs, withCtx ? contextOf(sibs) : EMPTY_CONTEXT, 'a', v);
        if (seen.has(r.written.c)) return false;
        seen.add(r.written.c);
        sibs = r.siblings;
      }
      return true;
    }),
  );
  t.pass('unique dots');
});

t.test(
  'the number of siblings is bounded by the concurrent writers, not by the writes',
  async (t) => {
    // three clients each read-modify-write in a loop through coordinator a: siblings stay ≤ 3
    let sibs: Sibling<string>[] = [];
    const ctx: CausalContext[] = [EMPTY_CONTEXT, EMPTY_CONTEXT, EMPTY_CONTEXT];
    let max = 0;
    for (let round = 0; round < 50; round++) {
      for (let c = 0; c < 3; c++) {
        sibs = writeSibling(sibs, ctx[c] as CausalContext, 'a', `c${c}r${round}`).siblings;
        ctx[c] = contextOf(sibs);
        max = Math.max(max, sibs.length);
      }
    }
    t.ok(max <= 3, `max siblings ${max}`);
  },
);

t.test(
  "a write's context claims its own dot, not the coordinator's concurrent siblings",
  async (t) => {
    let sibs = writeSibling<string>([], EMPTY_CONTEXT, 'a', 'alice').siblings; // a:1
    sibs = writeSibling<string>(sibs, EMPTY_CONTEXT, 'a', 'bob').siblings; // a:2
    const carol = writeSibling<string>(sibs, EMPTY_CONTEXT, 'a', 'carol 1'); // a:3
    const ctx = contextOf([carol.written]);
    t.same(ctx, { vv: {}, dc: [['a', 3]] }, 'a:3 only: a vector entry a:3 would claim a:1 and a:2');
    const again = writeSibling<string>(carol.siblings, ctx, 'a', 'carol 2');
    t.same(siblingValues(again.siblings), ['alice', 'bob', 'carol 2'], 'replaces only carol 1');
    // another replica that still holds carol 1 drops it when the new version arrives
    t.same(
      siblingValues(syncSiblings(carol.siblings, [again.written])),
      ['alice', 'bob', 'carol 2'],
      'the replacement travels with the version (its dc), not just the coordinator',
    );
    t.same(contextOf(again.siblings), { vv: { a: 4 }, dc: [] }, 'contiguous again: one vector');
  },
);
