/**
 * A learner restarted alone resumes from an older snapshot (here none), so its state machine
 * holds less than the log had reported applied (review of ae9d6fb, F3). The log's applied
 * index goes back with it, so a barrier or KV read waits for the learner to catch up instead
 * of reading the older state; `applied$` does not emit the re-applied slots a second time; and
 * once the learner caught up, the state is whole again.
 */
import t from 'tap';
import { AppliedWaiters } from '../../actors/kv/applied-waiters.js';
import { PaxosActorCluster } from '../../actors/paxos/sim-actors.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';

t.test(
  'after a learner-alone restart, the applied index is what the state machine holds',
  async (t) => {
    const nodes = ['n1', 'n2', 'n3'];
    const c = new PaxosActorCluster({ seed: 5, nodes });
    await c.start();
    const leader = await c.waitForLeader();
    const f = nodes.find((n) => n !== leader) as string;
    const log = c.member(f).paxos.log;
    const emitted: number[] = [];
    const sub = log.applied$.subscribe((e) => emitted.push(e.index));
    let last = 0;
    for (let i = 1; i <= 3; i++) {
      const r = await c.sim.await(
        c.propose(leader, 'cl', i, { f: 'write', key: `k${i}`, value: i }),
        { timeout: 2000 },
      );
      last = r.index;
    }
    await c.sim.runUntil(() => log.appliedIndex >= last, { timeout: 2000 });
    const before = log.appliedIndex;
    const indexes: number[] = [];
    const sub2 = log.appliedIndex$.subscribe((i) => indexes.push(i));
    // The follower's state machine throws on its next apply: its learner restarts alone.
    c.member(f).sm.failApply();
    c.propose(leader, 'cl', 4, { f: 'write', key: 'k4', value: 4 }).catch(() => undefined);
    await c.sim.runUntil(() => c.learnerFaults > 0, { timeout: 2000 });
    // Cut off at once: no catch-up reaches it.
    c.sim.network.partition([[f], nodes.filter((n) => n !== f)]);
    await c.sim.runFor(50);
    t.equal(c.member(f).sm.read('k1'), null, 'the state machine was reset (no snapshot yet)');
    t.ok(log.appliedIndex < before, `the log says so: applied ${log.appliedIndex} < ${before}`);
    t.ok(
      indexes.some((i) => i < before),
      'appliedIndex$ went back (the KV service waits on it)',
    );
    c.sim.network.heal();
    await c.sim.runUntil(() => log.appliedIndex >= before + 1, { timeout: 3000 });
    t.equal(c.member(f).sm.read('k1'), 1, 'caught up: the state is whole again');
    t.same(
      emitted.filter((i, n) => emitted.indexOf(i) !== n),
      [],
      'applied$ emitted no slot twice',
    );
    sub.unsubscribe();
    sub2.unsubscribe();
    c.stop();
  },
);

t.test('AppliedWaiters: after going back, a wait above the new index waits', async (t) => {
  const w = new AppliedWaiters(new VirtualClock());
  w.advance(10);
  t.equal(await w.wait(8, 100), true);
  w.goBack(2);
  t.equal(w.index, 2);
  let done: boolean | undefined;
  void w.wait(8, Number.POSITIVE_INFINITY).then((ok) => {
    done = ok;
  });
  await Promise.resolve();
  t.equal(done, undefined, 'waits');
  w.advance(8);
  await Promise.resolve();
  t.equal(done, true, 'resolved once applied again');
});
