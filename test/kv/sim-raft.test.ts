/**
 * Issue 8's simulation tests on Raft. Seeds: SYNOD_KV_SEEDS=N runs N seeds per scenario (default
 * 1); SYNOD_SEED=S sets the base seed;
 * SYNOD_SIM_SEED=S replays the simulation that printed S.
 */
import t from 'tap';
import { raftBackend } from '../../actors/kv/testing/backends.js';
import {
  boundedScenario,
  prefixScenario,
  seeds,
  sessionScenario,
  strongScenario,
  type T,
  watchScenario,
} from '../../actors/kv/testing/scenarios.js';

const scenarios = {
  strong: strongScenario,
  bounded: boundedScenario,
  session: sessionScenario,
  'prefix and eventual': prefixScenario,
  watch: watchScenario,
};

for (const [name, fn] of Object.entries(scenarios)) {
  t.test(`raft: ${name}`, async (t) => {
    for (const seed of seeds(101)) await fn(t as unknown as T, raftBackend, seed);
  });
}
