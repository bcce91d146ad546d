import t from 'tap';
import { digest } from '../../actors/gossip/hash.js';
import { MerkleIndex } from '../../actors/gossip/merkle.js';

t.test('equal contents give equal roots, whatever the insertion order', async (t) => {
  const a = new MerkleIndex(4);
  const b = new MerkleIndex(4);
  const items = Array.from({ length: 100 }, (_, i) => [`k${i}`, digest(`v${i}`)] as const);
  for (const [k, d] of items) a.set(k, 0, d);
  for (const [k, d] of [...items].reverse()) b.set(k, 0, d);
  t.equal(a.root(0), b.root(0));
  t.equal(a.root(7), new MerkleIndex(4).root(7), 'empty segments agree');
  t.not(a.root(0), a.root(7));
});

t.test('a difference is found by leaf and key, and updates are incremental', async (t) => {
  const a = new MerkleIndex(4);
  const b = new MerkleIndex(4);
  for (let i = 0; i < 50; i++) {
    a.set(`k${i}`, 1, digest(`v${i}`));
    b.set(`k${i}`, 1, digest(`v${i}`));
  }
  b.set('k7', 1, digest('changed'));
  t.not(a.root(1), b.root(1));
  const diff = a.diffLeaves(1, b.leaves(1));
  t.equal(diff.length, 1);
  t.same(a.diffLeaves(1, b.leaves(1)), [a.leafOf('k7')]);
  const keysA = new Map(a.keysIn(1, diff));
  const keysB = new Map(b.keysIn(1, diff));
  const differing = [...keysA].filter(([k, d]) => keysB.get(k) !== d).map(([k]) => k);
  t.same(differing, ['k7']);
  b.set('k7', 1, digest('v7'));
  t.equal(a.root(1), b.root(1), 'restoring the value restores the root');
  a.set('k7', 1, undefined);
  t.equal(a.size, 49);
  t.not(a.root(1), b.root(1), 'removal changes the root');
  t.throws(() => new MerkleIndex(17), RangeError);
});
