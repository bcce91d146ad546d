/**
 * `startMultiPaxosNode({ slicedSnapshots })` reaches the learner: by default every node encodes
 * its snapshots in slices (the state machine's `snapshotAsync`), and `false` encodes them in one
 * go (`snapshot()`), with the same state after either.
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { PaxosActorCluster } from '../../actors/paxos/sim-actors.js';

async function run(slicedSnapshots: boolean | undefined) {
  const calls = { sliced: 0, whole: 0 };
  const proto = KvStateMachine.prototype;
  const { snapshot, snapshotAsync } = proto;
  proto.snapshot = function (this: KvStateMachine) {
    calls.whole++;
    return snapshot.call(this);
  };
  proto.snapshotAsync = function (this: KvStateMachine, pause) {
    calls.sliced++;
    return snapshotAsync.call(this, pause);
  };
  try {
    const c = new PaxosActorCluster({
      seed: 11,
      nodes: ['a', 'b', 'c'],
      node: {
        snapshotEvery: 10,
        ...(slicedSnapshots !== undefined ? { slicedSnapshots } : {}),
      },
    });
    await c.start();
    const leader = await c.waitForLeader();
    // (each learner keeps its state machine's initial image, taken at its start in one go)
    calls.sliced = 0;
    calls.whole = 0;
    let last = 0;
    for (let seq = 1; seq <= 25; seq++) {
      const r = await c.sim.await(
        c.propose(leader, 'cl', seq, { f: 'write', key: `k${seq % 4}`, value: seq }),
        { timeout: 2000 },
      );
      last = r.index;
    }
    await c.sim.runUntil(() => ['a', 'b', 'c'].every((n) => c.appliedIndex(n) >= last), {
      timeout: 2000,
    });
    await c.sim.runFor(200);
    const reads = ['a', 'b', 'c'].map((n) => c.member(n).sm.read('k1'));
    c.stop();
    return { calls, reads };
  } finally {
    proto.snapshot = snapshot;
    proto.snapshotAsync = snapshotAsync;
  }
}

t.test('sliced by default', async (t) => {
  const { calls, reads } = await run(undefined);
  t.ok(calls.sliced >= 3, `snapshots encoded in slices (${calls.sliced})`);
  t.equal(calls.whole, 0, 'none in one go');
  t.same(reads, [25, 25, 25]);
});

t.test('slicedSnapshots: false encodes in one go', async (t) => {
  const { calls, reads } = await run(false);
  t.ok(calls.whole >= 3, `snapshots encoded in one go (${calls.whole})`);
  t.equal(calls.sliced, 0, 'none in slices');
  t.same(reads, [25, 25, 25]);
});
