/**
 * MIT 6.5840 Raft lab scenarios, part A (leader election), on RaftNode actors in the
 * deterministic simulation. Invariants are checked after every simulation step.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that replays it.
 */
import t from 'tap';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(1);

t.test('InitialElection', async (t) => {
  const c = new RaftCluster({ seed: SEED, ids: ['a', 'b', 'c'] });
  await c.start();
  const t0 = c.now();
  const l = await c.waitLeader(1000);
  t.ok(l, `a leader within 1 s (took ${c.now() - t0} ms)`);
  await c.sim.runFor(100);
  const terms = new Set(['a', 'b', 'c'].map((id) => c.core(id)?.term));
  t.equal(terms.size, 1, 'all agree on the term');
  const term = c.core(l!)!.term;
  t.ok(term >= 1);
  await c.sim.runFor(2000);
  t.equal(c.core(l!)!.term, term, 'no fault: the term does not change for 2 s');
  t.same(c.leaders(), [l], 'and the leader stays');
});

t.test('ReElection', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 1, ids });
  await c.start();
  const l1 = (await c.waitLeader(1000))!;
  c.partition([[l1], ids.filter((i) => i !== l1)]);
  const l2 = await c.waitLeader(
    1000,
    ids.filter((i) => i !== l1),
  );
  t.ok(l2 && l2 !== l1, `new leader ${l2} after the leader was cut off`);
  const term2 = c.core(l2!)!.term;
  c.heal();
  await c.sim.runFor(1000);
  t.same(c.leaders(), [l2], 'the old leader came back as a follower');
  t.equal(c.core(l2!)!.term, term2, 'without disturbing the new leader');
  t.equal(c.core(l1)!.leader, l2);
  // two of three cut off: no leader
  const others = ids.filter((i) => i !== l2);
  c.partition([[l2!], [others[0]!], [others[1]!]]);
  await c.sim.runFor(1000);
  t.same(c.leaders(), [], 'no leader without a quorum (check-quorum demoted it)');
  c.partition([[l2!, others[0]!], [others[1]!]]);
  const l3 = await c.waitLeader(1000, [l2!, others[0]!]);
  t.ok(l3, 'a leader once a quorum is back');
  c.heal();
  t.ok(await c.waitLeader(1000), 'and with everyone');
});

t.test('ManyElections', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const c = new RaftCluster({ seed: SEED + 2, ids });
  await c.start();
  t.ok(await c.waitLeader(1000));
  for (let round = 0; round < 10; round++) {
    const cut = c.sim.random.shuffle([...ids]).slice(0, 3);
    const rest = ids.filter((i) => !cut.includes(i));
    c.partition([rest, ...cut.map((x) => [x])]);
    const l = await c.waitLeader(2000, rest);
    t.ok(l, `round ${round}: a leader among the 4 connected`);
    const inRest = c.leaders().filter((x) => rest.includes(x));
    t.equal(inRest.length, 1, `round ${round}: exactly one leader among them`);
    c.heal();
  }
  t.ok(await c.waitLeader(1000));
});

t.test(
  'PreVoteRejoin: a partitioned node that rejoins does not disrupt a healthy leader',
  async (t) => {
    const ids = ['a', 'b', 'c'];
    const c = new RaftCluster({ seed: SEED + 3, ids });
    await c.start();
    const l = (await c.waitLeader(1000))!;
    const term = c.core(l)!.term;
    const f = ids.find((i) => i !== l)!;
    c.partition([[f], ids.filter((i) => i !== f)]);
    await c.sim.runFor(3000);
    t.equal(c.core(f)!.term, term, 'the isolated node did not bump its term (pre-vote)');
    c.heal();
    await c.sim.runFor(1000);
    t.same(c.leaders(), [l]);
    t.equal(c.core(l)!.term, term, 'the leader was not disturbed');
  },
);

t.test('CheckQuorum: an isolated leader steps down', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 4, ids });
  await c.start();
  const l = (await c.waitLeader(1000))!;
  c.partition([[l], ids.filter((i) => i !== l)]);
  const stepped = await c.sim.runUntil(() => c.core(l)?.role !== 'leader', { timeout: 1000 });
  t.ok(stepped, 'the isolated leader stepped down within two election timeouts');
  const roles: string[] = [];
  c.node(l).role$.subscribe((r) => roles.push(r));
  t.ok(roles.length > 0 && roles[roles.length - 1] !== 'leader', 'role$ reports it');
});
