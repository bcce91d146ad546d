/**
 * One block of randomized RaftNode runs for tap (test/raft/sim/random*.test.ts): part `p`
 * runs seeds FROM + p×SEEDS … FROM + (p+1)×SEEDS − 1 (SYNOD_RAFT_SIM_SEEDS, default 125;
 * SYNOD_RAFT_SIM_FROM, default 1000). Every run must include every fault kind.
 */
import type { Test } from 'tap';
import { runRandomSeed } from './raft-random.js';

export function randomRunPart(t: Test, part: number): void {
  const seeds = Number(process.env.SYNOD_RAFT_SIM_SEEDS ?? 125);
  const from = Number(process.env.SYNOD_RAFT_SIM_FROM ?? 1000) + part * seeds;
  t.test(`randomized RaftNode clusters, seeds ${from}–${from + seeds - 1}`, async (t) => {
    let ops = 0;
    let committed = 0;
    let duplicated = 0;
    let crashes = 0;
    let partitions = 0;
    for (let seed = from; seed < from + seeds; seed++) {
      const r = await runRandomSeed(seed, { nodes: seed % 3 === 0 ? 5 : 3 });
      const f = r.faults;
      const missing = [
        f.crashes === 0 ? 'crash' : '',
        f.restarts === 0 ? 'restart' : '',
        f.partitions === 0 ? 'partition' : '',
        f.dropped === 0 ? 'drop' : '',
      ].filter(Boolean);
      if (!r.ok || missing.length > 0) {
        const why = r.ok ? `no ${missing.join('/')} fault` : r.error;
        t.fail(`seed ${seed}: ${why} (replay: npm run sim -- raft --seed ${seed})`);
        return;
      }
      ops += r.okOps;
      committed += r.committed;
      duplicated += f.duplicated;
      crashes += f.crashes;
      partitions += f.partitions;
    }
    t.ok(
      ops > seeds * 10,
      `${ops} client operations acknowledged, ${committed} entries committed over ${seeds} seeds`,
    );
    t.ok(
      duplicated > seeds,
      `${crashes} crash-restarts, ${partitions} partitions, ${duplicated} duplicated messages`,
    );
  });
}
