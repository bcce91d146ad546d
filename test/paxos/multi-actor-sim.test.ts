/**
 * Randomised runs of the Multi-Paxos *actors* in lib/sim (network faults, partitions,
 * crash-restarts losing unsynced writes), clients through MultiPaxosLog, safety after every
 * step, linearizability of the history, liveness after healing. The bulk of the randomised
 * coverage is the core-level simulation (multi-sim.test.ts); this runs the real shells.
 * Odd seeds run the learners' size-based snapshot rule (the library default, scaled down),
 * even seeds a fixed interval. SYNOD_PAXOS_ACTOR_SEEDS (default 6) sets the number of seeds;
 * a failure prints its seed.
 */
import t from 'tap';
import { runActorSim } from '../../actors/paxos/sim-actors.js';

const SEEDS = Number(process.env.SYNOD_PAXOS_ACTOR_SEEDS ?? 6);

t.test(`${SEEDS} randomised actor-level runs`, async (t) => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await runActorSim({
      seed,
      faultPhaseMs: 1500,
      healPhaseMs: 2000,
      nodes: seed % 5 === 0 ? 5 : 3,
      ...(seed % 3 === 0 ? { leaseMs: 60 } : {}),
      ...(seed % 2 === 0 ? { reads: 'log' as const } : {}),
    });
    if (r.violation) {
      t.fail(
        `seed ${seed}: ${r.violation} (reproduce: npm run sim -- paxos --actors --seed ${seed})`,
      );
      return;
    }
    t.ok(r.okAfterHeal > 0, `seed ${seed}: ${r.okOps} ops ok, ${r.okAfterHeal} after healing`);
  }
});

t.test("the learners' size-based snapshot rule runs in the randomised runs", async (t) => {
  const opts = { seed: 1, faultPhaseMs: 1500, healPhaseMs: 2000 };
  const every = await runActorSim({ ...opts, snapshotRule: 'every' });
  const ratio = await runActorSim({ ...opts, snapshotRule: 'ratio' });
  t.equal(ratio.violation, undefined, 'safe, linearizable and live under the size-based rule');
  t.ok(ratio.snapshots > 0, `it snapshots (${ratio.snapshots} saved)`);
  t.ok(
    ratio.snapshots < every.snapshots,
    `it defers snapshots that a fixed interval takes (${ratio.snapshots} vs ${every.snapshots})`,
  );
});

t.test('negative control: reads without a barrier are not linearizable', async (t) => {
  let caught = 0;
  for (let seed = 1; seed <= 4 && caught === 0; seed++) {
    const r = await runActorSim({ seed, unsafeReads: true, clients: 4 });
    if (r.violation?.startsWith('history violation')) caught++;
  }
  t.ok(caught > 0, 'the checker flagged a stale read');
});
