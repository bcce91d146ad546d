/**
 * Applied records are built only for someone who reads them: the learner core leaves out
 * `cmd` records while `recordCommands` is off, a node's learner publishes no `applied-batch`
 * events unless asked (`appliedEvents`), and `MultiPaxosLog` asks for command records only
 * while a proposal waits on it or `applied$` is observed — without losing a result, an
 * applied index, a barrier or an `applied$` entry.
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MultiLearnerCore } from '../../actors/paxos/multi-learner.js';
import { commandValue, type SlotEntry, type SlotValue } from '../../actors/paxos/multi-messages.js';
import { PaxosActorCluster } from '../../actors/paxos/sim-actors.js';
import type { AppliedEntry } from '../../lib/replicated-log.js';

const wv = (seq: number, key: string, value: unknown): SlotValue =>
  commandValue({ clientId: 'c', seq, op: { f: 'write', key, value } }, 1);
const decide = (entries: [number, SlotValue][]) => ({
  type: 'mp.decide' as const,
  from: 'P',
  entries: entries.map(([slot, value]): SlotEntry => ({ slot, value })),
});
const w = (key: string, value: unknown) => ({ f: 'write', key, value });

t.test(
  'core: with recordCommands off, commands apply but only noop records come out',
  async (t) => {
    const sm = new KvStateMachine();
    const l = new MultiLearnerCore({
      id: 'L1',
      peers: ['L1', 'L2', 'L3'],
      stateMachine: sm,
      snapshotEvery: 0,
    });
    l.recordCommands = false;
    const out = l.step(
      decide([
        [1, wv(1, 'x', 'a')],
        [2, { k: 'noop', t: 1, b: 'r1' }],
        [3, { ...wv(1, 'x', 'a'), t: 2 }],
        [4, wv(2, 'y', 'b')],
      ]),
      0,
    );
    t.same(
      out.applied.map((r) => [r.kind, r.index]),
      [['noop', 2]],
      'the barrier is still reported; commands and the duplicate are not',
    );
    t.equal(l.applied, 4, 'the applied index covers every slot');
    t.equal(sm.read('y'), 'b');
    t.equal(sm.applied, 2, 'the duplicate was still recognised without a record');
    l.recordCommands = true;
    const next = l.step(decide([[5, wv(3, 'x', 'c')]]), 1);
    t.same(
      next.applied.map((r) => (r.kind === 'cmd' ? [r.index, r.result, r.duplicate] : r.kind)),
      [[5, null, false]],
      'records come back once asked for',
    );
  },
);

t.test('a node publishes applied-batch events only when asked', async (t) => {
  for (const appliedEvents of [false, true]) {
    const c = new PaxosActorCluster({ seed: 7, nodes: ['a', 'b', 'c'], node: { appliedEvents } });
    await c.start();
    const batches = new Map<string, number>();
    for (const n of ['a', 'b', 'c']) {
      c.member(n).paxos.learner.events$.subscribe((e) => {
        if (e.type === 'applied-batch') batches.set(n, (batches.get(n) ?? 0) + 1);
      });
    }
    const leader = await c.waitForLeader();
    const r = await c.sim.await(c.propose(leader, 'cl', 1, w('x', 1)), { timeout: 2000 });
    await c.sim.runUntil(() => ['a', 'b', 'c'].every((n) => c.appliedIndex(n) >= r.index), {
      timeout: 2000,
    });
    const total = [...batches.values()].reduce((a, b) => a + b, 0);
    if (appliedEvents) t.ok(total >= 3, `appliedEvents: true: ${total} applied-batch events`);
    else t.equal(total, 0, 'appliedEvents: false: no applied-batch event');
    c.stop();
  }
});

t.test('followers build no command records, yet their log stays exact', async (t) => {
  const nodes = ['a', 'b', 'c'];
  const c = new PaxosActorCluster({ seed: 11, nodes, node: { appliedEvents: false } });
  await c.start();
  const leader = await c.waitForLeader();
  const follower = nodes.find((n) => n !== leader) as string;
  const flog = c.member(follower).paxos.log;
  const indexes: number[] = [];
  const sub = flog.appliedIndex$.subscribe((i) => indexes.push(i));
  for (let seq = 1; seq <= 5; seq++) {
    const r = await c.sim.await(c.propose(leader, 'cl', seq, w('x', seq)), { timeout: 2000 });
    t.equal(r.result, null, `write ${seq} resolved at the leader with the machine's result`);
  }
  const top = c.member(leader).paxos.log.appliedIndex;
  t.ok(
    await c.sim.runUntil(() => flog.appliedIndex >= top, { timeout: 2000 }),
    'the follower log learns the applied index without command records',
  );
  t.equal(indexes.at(-1), flog.appliedIndex, 'appliedIndex$ follows it');
  t.equal(c.member(follower).sm.read('x'), 5);
  // an applied$ reader on the follower gets every command from then on, with its result
  const seen: AppliedEntry[] = [];
  const sub2 = flog.applied$.subscribe((e) => seen.push(e));
  const r6 = await c.sim.await(c.propose(leader, 'cl', 6, w('x', 6)), { timeout: 2000 });
  await c.sim.runUntil(() => flog.appliedIndex >= r6.index, { timeout: 2000 });
  t.same(
    seen.map((e) => [e.index, e.command.seq]),
    [[r6.index, 6]],
    'applied$ on a follower saw the command applied while it was observed',
  );
  // a barrier through the log (a noop record) still resolves on the leader
  const idx = await c.sim.await(c.member(leader).paxos.log.readBarrier(), { timeout: 2000 });
  t.ok(idx >= r6.index);
  sub.unsubscribe();
  sub2.unsubscribe();
  c.stop();
});
