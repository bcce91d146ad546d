/**
 * Decisions by slot number (`mp.chosen`): the leader names the chosen slots and their ballot,
 * and a learner takes each value from its co-located acceptor. Checked here: the leader sends
 * slot runs to the learners that have an acceptor and values to the others; a learner takes a
 * value only from a proposal in a ballot at least the decided one (an older ballot's proposal
 * for that slot may hold another value); a slot its acceptor lacks is looked up again and
 * otherwise fetched by catch-up; malformed runs are refused. The simulations
 * (multi-sim, multi-actor-sim) run every cluster in this mode.
 */
import t from 'tap';
import { type Ballot, ballot } from '../../actors/paxos/ballot.js';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MultiLeaderCore, slotRuns } from '../../actors/paxos/multi-leader.js';
import { MultiLearnerCore } from '../../actors/paxos/multi-learner.js';
import {
  commandValue,
  fromWire,
  MAX_CHOSEN_SPAN,
  type MOutbound,
  multiMessageProblem,
  type SlotValue,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';
import { Random } from '../../lib/random.js';

const w = (seq: number, value: unknown, t = 1): SlotValue =>
  commandValue({ clientId: 'c', seq, op: { f: 'write', key: 'x', value } }, t);

function learner(local: Map<number, { ballot: Ballot; value: SlotValue }>) {
  const sm = new KvStateMachine();
  const l = new MultiLearnerCore({
    id: 'L1',
    peers: ['L1', 'L2'],
    stateMachine: sm,
    snapshotEvery: 0,
    catchupRetryMs: 100,
    localValue: (slot) => local.get(slot),
  });
  return { l, sm };
}
const chosen = (b: Ballot, runs: number[]) => ({
  type: 'mp.chosen' as const,
  from: 'P',
  ballot: b,
  runs,
});

t.test('slot runs', async (t) => {
  t.same(slotRuns([]), []);
  t.same(slotRuns([1, 2, 3, 7, 5, 6, 6].map((slot) => ({ slot }))), [[1, 3, 5, 7]]);
  const big = Array.from({ length: MAX_CHOSEN_SPAN + 5 }, (_, i) => ({ slot: i + 1 }));
  const groups = slotRuns(big);
  t.equal(groups.length, 2, 'split so no message names more than MAX_CHOSEN_SPAN slots');
  for (const g of groups) t.equal(multiMessageProblem(chosen(ballot(1, 'P'), g)), undefined);
});

t.test(
  'the leader sends slot numbers to learners with an acceptor, values to others',
  async (t) => {
    const acceptors = ['A', 'B', 'C'];
    const p = new MultiLeaderCore({
      id: 'P',
      quorums: majorityQuorums(acceptors),
      proposers: ['P'],
      learners: ['LA', 'LB', 'LX'],
      localLearner: 'LA',
      learnersWithAcceptor: new Set(['LA', 'LB']),
      random: new Random(1),
    });
    const start = p.tick(10_000);
    const b = ((start.send[0] as MOutbound).msg as unknown as { ballot: Ballot }).ballot;
    for (const a of acceptors)
      p.step({ type: 'mp.promise', from: a, ballot: b, floor: 0, accepted: [] }, 10_001);
    p.submit({ clientId: 'c', seq: 1, op: 1 }, 10_002);
    p.submit({ clientId: 'c', seq: 2, op: 2 }, 10_002);
    const acc = (from: string) =>
      p.step(
        { type: 'mp.accepted', from, ballot: b, slots: [1, 2], sentAt: 10_002, floor: 0 },
        10_003,
      );
    acc('A');
    const out = acc('B');
    const to = (l: string) => out.send.filter((s: MOutbound) => s.to === l).map((s) => s.msg);
    t.same(to('LA'), [{ type: 'mp.chosen', from: 'P', ballot: b, runs: [1, 2] }]);
    t.same(to('LB'), to('LA'), 'the same message to every learner with an acceptor');
    const lx = to('LX');
    t.equal(lx.length, 1);
    t.equal(lx[0]?.type, 'mp.decide', 'a learner without an acceptor gets the values');
    t.same(
      (lx[0] as unknown as { entries: { slot: number }[] }).entries.map((e) => e.slot),
      [1, 2],
    );
  },
);

t.test('a learner takes values from its acceptor, never from an older ballot', async (t) => {
  const b1 = ballot(1, 'P');
  const b2 = ballot(2, 'Q');
  const local = new Map<number, { ballot: Ballot; value: SlotValue }>([
    [1, { ballot: b2, value: w(1, 'one') }],
    [2, { ballot: b1, value: w(2, 'stale') }], // accepted in b1; b2 chose another value
    [3, { ballot: b2, value: w(3, 'three') }],
  ]);
  const { l, sm } = learner(local);
  const out = l.step(chosen(b2, [1, 3]), 0);
  t.same(
    out.applied.map((r) => r.index),
    [1],
    'slot 1 applies; slot 2 is chosen in b2 but the acceptor holds only b1',
  );
  t.equal(sm.read('x'), 'one');
  // Slot 2 is fetched: catch-up asks a peer.
  const c = l.tick(200);
  const ask = c.send.find((s) => s.msg.type === 'mp.catchup');
  t.ok(ask, 'the missing slot is fetched by catch-up');
  t.same((ask?.msg as unknown as { fromSlot: number } | undefined)?.fromSlot, 2);
  // The acceptor gets b2's proposal: the next step finds it.
  local.set(2, { ballot: b2, value: w(2, 'two') });
  const after = l.tick(210);
  t.same(
    after.applied.map((r) => r.index),
    [2, 3],
  );
  t.equal(sm.read('x'), 'three');
  t.equal(l.view().pending, 0);
});

t.test('a higher ballot at the acceptor carries the chosen value', async (t) => {
  const local = new Map([[1, { ballot: ballot(5, 'Q'), value: w(1, 'v') }]]);
  const { l, sm } = learner(local);
  t.same(
    l.step(chosen(ballot(3, 'P'), [1, 1]), 0).applied.map((r) => r.index),
    [1],
  );
  t.equal(sm.read('x'), 'v');
});

t.test('catch-up fills what the acceptor never had', async (t) => {
  const { l, sm } = learner(new Map());
  l.step(chosen(ballot(1, 'P'), [1, 2]), 0);
  t.equal(l.applied, 0);
  const r = l.step(
    {
      type: 'mp.catchup-reply',
      from: 'L2',
      entries: [
        { slot: 1, value: w(1, 'a') },
        { slot: 2, value: w(2, 'b') },
      ],
      decidedUpTo: 2,
    },
    150,
  );
  t.same(
    r.applied.map((x) => x.index),
    [1, 2],
  );
  t.equal(sm.read('x'), 'b');
});

t.test('malformed mp.chosen is refused', async (t) => {
  const b = ballot(1, 'P');
  t.equal(
    (fromWire(toWire(chosen(b, [1, 4]))) as { type?: string }).type,
    'mp.chosen',
    'well-formed crosses the wire',
  );
  for (const [what, runs] of [
    ['odd length', [1]],
    ['hi below lo', [5, 4]],
    ['slot 0', [0, 3]],
    ['not numbers', ['a', 'b']],
    ['too many slots', [1, MAX_CHOSEN_SPAN + 1]],
  ] as const) {
    t.match(multiMessageProblem(chosen(b, runs as unknown as number[])), /runs/, what);
  }
  t.match(multiMessageProblem({ type: 'mp.chosen', from: 'P', runs: [1, 1] }), /ballot/);
});
