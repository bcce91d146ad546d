/**
 * demos/eventual-store.ts end to end on a virtual clock: the partition makes the sides
 * disagree, the heal converges (equal Merkle roots, no hint left) within a bound, the cart's
 * concurrent writes come back as two siblings that a write with the read's context resolves,
 * and the CRDTs lose nothing.
 */
import t from 'tap';
import { runEventualStoreDemo } from '../../demos/eventual-store.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

t.test(
  'the eventual-store demo shows divergence, convergence, siblings and CRDT merges',
  async (t) => {
    const clock = new VirtualClock();
    const lines: string[] = [];
    let finished = false;
    let failure: unknown;
    const done = runEventualStoreDemo({ clock, print: (l) => lines.push(l) }).then(
      (r) => {
        finished = true;
        return r;
      },
      (e) => {
        finished = true;
        failure = e;
        return undefined;
      },
    );
    const limit = clock.now() + 120_000;
    while (!finished && clock.now() < limit) await advance(clock, 20);
    t.ok(finished, 'the demo finished within 120 s of virtual time');
    const r = await done;
    if (failure !== undefined) throw failure;
    if (!r) return;
    t.same(r.leftSaw, ['milk, eggs'], 'the left side saw only its own write');
    t.same(r.rightSaw, ['milk, bread'], 'the right side saw only its own write');
    t.ok(r.hinted > 0, `${r.hinted} writes stored as hints during the split`);
    t.same(r.siblings, ['milk, bread', 'milk, eggs'], 'both concurrent writes kept as siblings');
    t.equal(r.resolved, 'milk, bread, eggs', 'a write with the read context resolves them');
    t.equal(r.likes, 7, 'every increment from both sides counted');
    t.same(r.tags, ['fresh', 'organic'], 'both adds kept');
    t.ok(
      r.convergedMs <= 30_000,
      `converged ${r.convergedMs} virtual ms after the heal (bound 30 s)`,
    );
    t.equal(lines.length, 11, 'every step printed');
    t.match(lines.join('\n'), /converged \d+ ms after the heal/);
  },
);
