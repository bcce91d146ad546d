/**
 * Randomized simulation runs of RaftNode clusters (see test/helpers/raft-random.ts):
 * drops, duplicates, reordering, partitions, crash-restarts losing unsynced writes,
 * clients doing reads, writes and cas; invariants after every step, linearizable
 * histories, liveness after heal. SYNOD_RAFT_SIM_SEEDS=N (default 60) and
 * SYNOD_RAFT_SIM_FROM=S choose the seeds; `npm run sim -- raft --seeds N` runs many more.
 * A failure prints its seed; `npm run sim -- raft --seed S` replays it.
 */
import t from 'tap';
import { runRandomSeed } from '../../helpers/raft-random.js';

const SEEDS = Number(process.env.SYNOD_RAFT_SIM_SEEDS ?? 60);
const FROM = Number(process.env.SYNOD_RAFT_SIM_FROM ?? 1000);

t.test('randomized RaftNode clusters stay safe, linearizable and live', async (t) => {
  let ops = 0;
  let committed = 0;
  for (let seed = FROM; seed < FROM + SEEDS; seed++) {
    const r = await runRandomSeed(seed, { nodes: seed % 3 === 0 ? 5 : 3 });
    if (!r.ok) {
      t.fail(`seed ${seed}: ${r.error} (replay: npm run sim -- raft --seed ${seed})`);
      return;
    }
    ops += r.okOps;
    committed += r.committed;
  }
  t.ok(
    ops > SEEDS * 10,
    `${ops} client operations acknowledged, ${committed} entries committed over ${SEEDS} seeds`,
  );
});

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
