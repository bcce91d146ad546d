/**
 * Randomized test of the pure core: random message delivery order, drops, duplicates,
 * partitions, crash-restarts, snapshots and proposals, with every safety invariant
 * checked after every step; then the network heals and the cluster must make progress.
 * SYNOD_RAFT_CORE_SEEDS=N runs more seeds; a failure prints its seed.
 */
import t from 'tap';
import { runCoreFuzz } from '../helpers/raft-fuzz.js';

const SEEDS = Number(process.env.SYNOD_RAFT_CORE_SEEDS ?? 500);
const FIRST = Number(process.env.SYNOD_RAFT_CORE_SEED ?? 1);

t.test('randomized core runs keep every invariant and make progress after heal', async (t) => {
  let total = 0;
  for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
    try {
      total += runCoreFuzz(seed).commits;
    } catch (err) {
      t.fail(`seed ${seed}: ${(err as Error).message}`);
      return;
    }
  }
  t.ok(total > SEEDS * 5, `committed entries across seeds: ${total}`);
});
