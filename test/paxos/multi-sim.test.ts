/**
 * Randomised Multi-Paxos runs on the core-level cluster simulation (actors/paxos/sim-cluster.ts):
 * drops, duplicates, reordering, partitions and crash-restarts that lose unsynced writes, with
 * safety checked after every event and liveness after the network heals.
 * CI runs SYNOD_PAXOS_SIM_SEEDS (default 500) seeds; `npm run sim -- paxos --seeds N` runs more.
 * A failing seed is printed and reproduces with `npm run sim -- paxos --seed S`.
 */
import t from 'tap';
import type { QuorumSystem } from '../../actors/paxos/quorum.js';
import { runSimCluster, type SimClusterOptions } from '../../actors/paxos/sim-cluster.js';

const SEEDS = Number(process.env.SYNOD_PAXOS_SIM_SEEDS ?? 500);
const CI = {
  faultPhaseMs: 1200,
  healPhaseMs: 2000,
  faults: { faultRate: 4 },
} satisfies Partial<SimClusterOptions>;

t.test(`${SEEDS} random seeds: safe, and live after healing`, async (t) => {
  let ok = 0;
  let chosen = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const shape = seed % 4;
    const r = runSimCluster({
      seed,
      ...CI,
      nodes: shape === 0 ? 5 : 3,
      ...(shape === 1 ? { leaseMs: 60 } : {}),
      ...(shape === 2 ? { nodes: 5, phase1: 4, phase2: 2 } : {}),
    });
    if (r.violation) {
      t.fail(`seed ${seed}: ${r.violation} (reproduce: npm run sim -- paxos --seed ${seed})`);
      return;
    }
    if (!r.live) {
      t.fail(`seed ${seed}: no operation completed after healing`);
      return;
    }
    ok++;
    chosen += r.chosenSlots;
  }
  t.equal(ok, SEEDS, `${SEEDS} seeds safe and live, ${chosen} slots chosen in all`);
});

t.test('negative control: non-intersecting quorums are caught', async (t) => {
  const acceptors = [1, 2, 3, 4, 5].map((i) => `n${i}/acceptor`);
  const count = (m: ReadonlySet<string>) => acceptors.filter((a) => m.has(a)).length;
  const broken: QuorumSystem = {
    acceptors,
    isPhase1Quorum: (m) => count(m) >= 2,
    isPhase2Quorum: (m) => count(m) >= 2,
    describe: () => 'broken 2/2 of 5',
  };
  let caught = 0;
  for (let seed = 1; seed <= 20; seed++) {
    if (runSimCluster({ seed, ...CI, nodes: 5, unsafeQuorums: broken }).violation) caught++;
  }
  t.ok(caught > 0, `flagged ${caught} of 20 runs`);
});

t.test('negative control: acceptors that forget their state on restart are caught', async (t) => {
  let caught = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const r = runSimCluster({ seed, ...CI, amnesia: true, faults: { faultRate: 8 } });
    if (r.violation) caught++;
  }
  t.ok(caught > 0, `flagged ${caught} of 60 runs`);
});

t.test('negative control: reads served locally without a barrier are caught', async (t) => {
  let caught = 0;
  for (let seed = 1; seed <= 30; seed++) {
    const r = runSimCluster({ seed, ...CI, unsafeLocalReads: true, clients: 4 });
    if (r.violation?.startsWith('not linearizable')) caught++;
  }
  t.ok(caught > 0, `flagged ${caught} of 30 runs`);
});

t.test('the same seed replays the same run', async (t) => {
  const a = runSimCluster({ seed: 42, ...CI });
  const b = runSimCluster({ seed: 42, ...CI });
  t.equal(a.events, b.events);
  t.same(a.history, b.history);
});
