/**
 * Multi-Paxos actors in the deterministic simulation: scenarios from the issue, each with
 * safety checked after every simulation step (PaxosActorCluster.checkSafety).
 */
import t from 'tap';
import { PaxosActorCluster } from '../../actors/paxos/sim-actors.js';
import { ProposeError } from '../../lib/replicated-log.js';

const w = (key: string, value: unknown) => ({ f: 'write', key, value });

t.test('elects a leader; propose resolves after local apply; readBarrier', async (t) => {
  const c = new PaxosActorCluster({ seed: 1, nodes: ['a', 'b', 'c'] });
  await c.start();
  const leader = await c.waitForLeader();
  const r = await c.sim.await(c.propose(leader, 'cl', 1, w('x', 1)), { timeout: 2000 });
  t.equal(r.index >= 1, true);
  t.equal(c.member(leader).sm.read('x'), 1, 'applied locally before resolving');
  const idx = await c.sim.await(c.member(leader).paxos.log.readBarrier(), { timeout: 2000 });
  t.ok(idx > r.index, 'the barrier is a later slot');
  // retry of the same (clientId, seq): applied once, same result
  const again = await c.sim.await(c.propose(leader, 'cl', 1, w('x', 1)), { timeout: 2000 });
  t.same(again.result, r.result);
  t.equal(c.member(leader).sm.applied, 1, 'the state machine saw the command once');
  // a follower refuses with a hint
  const follower = ['a', 'b', 'c'].find((n) => n !== leader) as string;
  await c.sim.runFor(200);
  const err = await c.sim
    .await(c.propose(follower, 'cl', 2, w('x', 2)), { timeout: 2000 })
    .catch((e: unknown) => e);
  t.ok(err instanceof ProposeError);
  t.equal((err as ProposeError).code, 'NotLeader');
  t.equal((err as ProposeError).leaderHint, leader);
  t.equal((err as ProposeError).indeterminate, false);
  await c.sim.runFor(500);
  for (const n of ['a', 'b', 'c']) t.equal(c.member(n).sm.read('x'), 1, `${n} converged`);
  c.stop();
});
