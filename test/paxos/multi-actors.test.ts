/**
 * Multi-Paxos actors in the deterministic simulation: scenarios from the issue, each with
 * safety checked after every simulation step (PaxosActorCluster.checkSafety).
 */
import t from 'tap';
import { unpackSlotEntries } from '../../actors/paxos/multi-messages.js';
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
  const before = c.member(leader).paxos.proposer.getSnapshot()?.nextSlot;
  const idx = await c.sim.await(c.member(leader).paxos.log.readBarrier(), { timeout: 2000 });
  t.ok(idx >= r.index, 'the read index covers the acknowledged write');
  t.equal(
    c.member(leader).paxos.proposer.getSnapshot()?.nextSlot,
    before,
    'a confirmed read uses no log slot',
  );
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

t.test('reads through the log (reads: log): the barrier is a later slot', async (t) => {
  const c = new PaxosActorCluster({ seed: 2, nodes: ['a', 'b', 'c'], node: { reads: 'log' } });
  await c.start();
  const leader = await c.waitForLeader();
  const r = await c.sim.await(c.propose(leader, 'cl', 1, w('x', 1)), { timeout: 2000 });
  const idx = await c.sim.await(c.member(leader).paxos.log.readBarrier(), { timeout: 2000 });
  t.ok(idx > r.index, 'the barrier is a later slot');
  c.stop();
});

t.test('a minority of acceptors down still decides (5 nodes, 2 crashed)', async (t) => {
  const nodes = ['a', 'b', 'c', 'd', 'e'];
  const c = new PaxosActorCluster({ seed: 2, nodes });
  await c.start();
  const leader = await c.waitForLeader();
  const others = nodes.filter((n) => n !== leader);
  c.sim.crash(others[0] as string);
  c.sim.crash(others[1] as string);
  for (let i = 1; i <= 5; i++) {
    const r = await c.sim.await(c.propose(leader, 'cl', i, w('k', i)), { timeout: 3000 });
    t.ok(r.index > 0, `write ${i} decided at slot ${r.index}`);
  }
  t.equal(c.member(leader).sm.read('k'), 5);
  c.stop();
});

t.test('a majority down blocks; after restart it resumes and keeps chosen values', async (t) => {
  const nodes = ['a', 'b', 'c'];
  const c = new PaxosActorCluster({ seed: 3, nodes });
  await c.start();
  const leader = await c.waitForLeader();
  await c.sim.await(c.propose(leader, 'cl', 1, w('k', 'before')), { timeout: 2000 });
  const others = nodes.filter((n) => n !== leader);
  for (const n of others) c.sim.crash(n);
  const blocked = await c.sim
    .await(c.propose(leader, 'cl', 2, w('k', 'during')), { timeout: 3000 })
    .catch((e: unknown) => e);
  t.ok(blocked instanceof ProposeError, 'no decision without a majority');
  t.ok(
    (blocked as ProposeError).code === 'Timeout' ||
      (blocked as ProposeError).code === 'Dropped' ||
      (blocked as ProposeError).code === 'NotLeader',
  );
  t.equal(c.member(leader).sm.read('k'), 'before', 'nothing applied while blocked');
  for (const n of others) await c.sim.restart(n);
  const again = await c.waitForLeader(5000);
  const r = await c.sim.await(c.propose(again, 'cl', 3, w('k', 'after')), { timeout: 3000 });
  t.ok(r.index > 1);
  await c.sim.runFor(1000);
  for (const n of nodes) {
    t.equal(c.member(n).sm.read('k'), 'after', `${n} has the new value`);
  }
  t.equal(c.appliedAt.get(1), `cl:1:${JSON.stringify(w('k', 'before'))}`, 'slot 1 kept its value');
  c.stop();
});

t.test(
  'leader change mid-pipeline keeps every chosen value and fills gaps with no-ops',
  async (t) => {
    const nodes = ['a', 'b', 'c'];
    const c = new PaxosActorCluster({ seed: 4, nodes, node: { window: 64 } });
    await c.start();
    const leader = await c.waitForLeader();
    await c.sim.await(c.propose(leader, 'cl', 1, w('k', 1)), { timeout: 2000 });
    const base = c.appliedIndex(leader);
    const gapSlot = base + 3;
    // the leader's accepts for one slot never arrive anywhere: a hole in the pipeline
    c.sim.network.setFilter(({ message }) => {
      // entries cross the wire packed (actors/paxos/multi-messages.ts toWire)
      const m = message as { type?: string; entries?: Uint8Array };
      if (m.type !== 'mp.accept' || !(m.entries instanceof Uint8Array)) return 'deliver';
      if (unpackSlotEntries(m.entries).some((e) => e.slot === gapSlot)) return 'drop';
      return 'deliver';
    });
    // (the crashed leader's promises never settle: its node, timers included, is gone)
    const resolved: { i: number; index: number }[] = [];
    for (const i of [2, 3, 4, 5, 6, 7]) {
      // one at a time: each goes out in its own accept message
      c.propose(leader, 'cl', i, w(`k${i}`, i)).then(
        (r) => resolved.push({ i, index: r.index }),
        () => undefined,
      );
      await c.sim.runFor(3);
    }
    await c.sim.runFor(100);
    const chosenBefore = new Map(c.appliedAt);
    c.sim.crash(leader);
    c.sim.network.setFilter(undefined);
    const next = await c.waitForLeader(5000);
    t.not(next, leader, 'a new leader took over');
    await c.sim.runFor(1000);
    const survivors = nodes.filter((n) => n !== leader);
    for (const n of survivors) {
      t.ok(c.appliedIndex(n) >= base + 6, `${n} applied past the gap`);
    }
    t.equal(c.appliedAt.get(gapSlot), 'noop:', `slot ${gapSlot} was filled with a no-op`);
    for (const [slot, key] of chosenBefore)
      t.equal(c.appliedAt.get(slot), key, `slot ${slot} kept`);
    t.ok(resolved.length > 0, `${resolved.length} writes resolved before the crash`);
    for (const r of resolved) {
      t.not(r.index, gapSlot, `write ${r.i} resolved at ${r.index}`);
      t.equal(c.appliedAt.get(r.index), `cl:${r.i}:${JSON.stringify(w(`k${r.i}`, r.i))}`);
    }
    c.stop();
  },
);

t.test(
  'flexible quorums: 4-of-5 phase 1, 2-of-5 phase 2 decides with 3 acceptors down',
  async (t) => {
    const nodes = ['a', 'b', 'c', 'd', 'e'];
    const c = new PaxosActorCluster({ seed: 5, nodes, quorums: { phase1: 4, phase2: 2 } });
    await c.start();
    const leader = await c.waitForLeader();
    const others = nodes.filter((n) => n !== leader);
    for (const n of others.slice(0, 3)) c.sim.crash(n);
    for (let i = 1; i <= 3; i++) {
      const r = await c.sim.await(c.propose(leader, 'cl', i, w('k', i)), { timeout: 3000 });
      t.ok(r.index > 0, `decided with 2 of 5 acceptors at slot ${r.index}`);
    }
    c.stop();
  },
);

t.test('a non-intersecting configuration is refused before anything starts', async (t) => {
  const c = new PaxosActorCluster({
    seed: 6,
    nodes: ['a', 'b', 'c', 'd', 'e'],
    quorums: { phase1: 2, phase2: 3 },
  });
  await t.rejects(c.start(), { code: 'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION' });
  c.stop();
});

t.test('a crashed node catches up through a snapshot; acceptors compact', async (t) => {
  const nodes = ['a', 'b', 'c'];
  const c = new PaxosActorCluster({
    seed: 7,
    nodes,
    node: { snapshotEvery: 10, keepAfterSnapshot: 0 },
  });
  await c.start();
  const leader = await c.waitForLeader();
  const lagging = nodes.find((n) => n !== leader) as string;
  c.sim.crash(lagging);
  for (let i = 1; i <= 40; i++) {
    await c.sim.await(c.propose(leader, 'cl', i, w(`k${i % 7}`, i)), { timeout: 3000 });
  }
  const acc = c.member(leader).paxos.acceptor.getSnapshot();
  t.ok((acc?.floor ?? 0) >= 30, `the leader's acceptor compacted up to ${acc?.floor}`);
  t.ok((acc?.acceptedSlots ?? 99) <= 15, `and holds ${acc?.acceptedSlots} accepted slots`);
  await c.sim.restart(lagging);
  const ok = await c.sim.runUntil(() => c.appliedIndex(lagging) >= c.appliedIndex(leader), {
    timeout: 5000,
  });
  t.ok(ok, 'the restarted node caught up');
  t.same(c.member(lagging).sm.snapshot(), c.member(leader).sm.snapshot(), 'same state');
  t.ok((c.member(lagging).paxos.learner.getSnapshot()?.snapshotIndex ?? 0) >= 30, 'via a snapshot');
  c.stop();
});

t.test('with a leader lease, reads skip the barrier', async (t) => {
  const nodes = ['a', 'b', 'c'];
  const c = new PaxosActorCluster({ seed: 8, nodes, node: { leaseMs: 100 } });
  await c.start();
  const leader = await c.waitForLeader();
  await c.sim.await(c.propose(leader, 'cl', 1, w('k', 1)), { timeout: 2000 });
  await c.sim.runFor(100);
  const slotsBefore = c.appliedAt.size;
  const idx = await c.sim.await(c.member(leader).paxos.log.readBarrier(), { timeout: 2000 });
  t.ok(idx >= 1);
  t.equal(c.appliedAt.size, slotsBefore, 'no barrier slot was used');
  c.stop();
});

t.test(
  'proposals time out at their own deadlines (one timer per log, FIFO per timeout)',
  async (t) => {
    const nodes = ['a', 'b', 'c'];
    const c = new PaxosActorCluster({ seed: 11, nodes });
    await c.start();
    const leader = await c.waitForLeader();
    const ok = await c.sim.await(c.propose(leader, 'cl', 1, w('k', 1), 400), { timeout: 2000 });
    t.ok(ok.index > 0, 'a proposal applied before its deadline resolves');
    for (const n of nodes.filter((x) => x !== leader)) c.sim.crash(n);
    const t0 = c.sim.clock.now();
    const settled: { seq: number; at: number; code: string }[] = [];
    const track = (seq: number, ms: number) =>
      c.propose(leader, 'cl', seq, w('k', seq), ms).then(
        () => settled.push({ seq, at: c.sim.clock.now() - t0, code: 'ok' }),
        (e: ProposeError) => settled.push({ seq, at: c.sim.clock.now() - t0, code: e.code }),
      );
    track(2, 300);
    track(3, 150);
    track(4, 300);
    await c.sim.runFor(140);
    t.same(settled, [], 'nothing settles before the first deadline');
    await c.sim.runFor(20);
    t.same(settled, [{ seq: 3, at: 150, code: 'Timeout' }], 'the 150 ms proposal timed out at 150');
    await c.sim.runFor(200);
    t.same(
      settled.map((s) => [s.seq, s.at, s.code]),
      [
        [3, 150, 'Timeout'],
        [2, 300, 'Timeout'],
        [4, 300, 'Timeout'],
      ],
      'the 300 ms ones at 300, in order; the resolved one never times out',
    );
    c.stop();
  },
);
