/**
 * Randomized simulation runs of RaftNode clusters (see test/helpers/raft-random.ts), part 1
 * of 4 (each part runs its own block of seeds, so tap runs them in parallel): drops,
 * duplicates, reordering, partitions and crash-restarts losing unsynced writes in every
 * run, clients doing reads, writes and cas; invariants after every step, linearizable
 * histories, liveness after heal. 500 actor-level seeds in all by default;
 * SYNOD_RAFT_SIM_SEEDS=N sets the seeds per part. `npm run sim -- raft --seeds N` runs
 * many more. A failure prints its seed; `npm run sim -- raft --seed S` replays it.
 */
import t from 'tap';
import { runRandomSeed } from '../../helpers/raft-random.js';
import { randomRunPart } from '../../helpers/raft-random-part.js';

randomRunPart(t, 0);

t.test(
  'negative control: reads that skip ReadIndex are caught by the linearizability checker',
  async (t) => {
    let caught = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const r = await runRandomSeed(seed, { staleReads: true });
      if (!r.ok && r.verdict === 'violation') caught++;
    }
    t.ok(caught >= 1, `${caught} of 5 seeds flagged`);
  },
);
