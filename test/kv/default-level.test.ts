/**
 * Issue 8's cluster-wide default read level on Raft and on Multi-Paxos in the deterministic
 * simulation (actors/kv/testing/scenarios.ts `defaultLevelScenario`): a read that names no level
 * gets the cluster's default, a read that names one gets it (weaker or stronger). Seeds:
 * SYNOD_KV_SEEDS=N runs N seeds per backend (default 1); SYNOD_SEED=S sets the base seed;
 * SYNOD_SIM_SEED=S replays the simulation that printed S.
 */
import t from 'tap';
import { paxosBackend, raftBackend } from '../../actors/kv/testing/backends.js';
import { defaultLevelScenario, seeds, type T } from '../../actors/kv/testing/scenarios.js';

for (const [backend, base] of [
  [raftBackend, 303],
  [paxosBackend, 404],
] as const) {
  t.test(`${backend.name}: cluster default read level`, async (t) => {
    for (const seed of seeds(base)) await defaultLevelScenario(t as unknown as T, backend, seed);
  });
}
