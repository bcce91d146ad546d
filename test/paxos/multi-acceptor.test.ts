import t from 'tap';
import { ballot } from '../../actors/paxos/ballot.js';
import { MultiAcceptorCore, SlotTable } from '../../actors/paxos/multi-acceptor.js';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import { commandValue, type SlotValue } from '../../actors/paxos/multi-messages.js';
import { quorumSystem } from '../../actors/paxos/quorum.js';
import { Random } from '../../lib/random.js';

const cmd = (n: number): SlotValue => commandValue({ clientId: 'c', seq: n, op: { n } }, 1);
const accept = (b: ReturnType<typeof ballot>, entries: [number, SlotValue][], from = 'P') =>
  ({
    type: 'mp.accept',
    from,
    ballot: b,
    entries: entries.map(([slot, value]) => ({ slot, value })),
    sentAt: 7,
  }) as const;

t.test(
  'one promise covers every slot; the promise reports accepted slots ≥ fromSlot',
  async (t) => {
    const a = new MultiAcceptorCore({ id: 'A' });
    const b1 = ballot(1, 'P');
    const acc = a.step(
      accept(b1, [
        [1, cmd(1)],
        [2, cmd(2)],
        [5, cmd(5)],
      ]),
    );
    t.same(acc.persist?.hard, { promised: b1, floor: 0 });
    t.equal(acc.persist?.records?.length, 3);
    t.same(acc.send[0]?.msg, {
      type: 'mp.accepted',
      from: 'A',
      ballot: b1,
      slots: [1, 2, 5],
      sentAt: 7,
      floor: 0,
    });
    const b2 = ballot(2, 'Q');
    const p = a.step({ type: 'mp.prepare', from: 'Q', ballot: b2, fromSlot: 2 });
    t.same(p.persist, { hard: { promised: b2, floor: 0 } });
    const msg = p.send[0]?.msg;
    t.equal(msg?.type, 'mp.promise');
    if (msg?.type === 'mp.promise')
      t.same(
        msg.accepted.map((x) => x.slot),
        [2, 5],
      );
  },
);

t.test('below the promise: nack with the promised ballot, nothing accepted', async (t) => {
  const a = new MultiAcceptorCore({ id: 'A' });
  a.step({ type: 'mp.prepare', from: 'Q', ballot: ballot(3, 'Q'), fromSlot: 1 });
  const out = a.step(accept(ballot(2, 'P'), [[1, cmd(1)]]));
  t.equal(out.persist, undefined);
  t.same(out.send[0]?.msg, {
    type: 'mp.nack',
    from: 'A',
    ballot: ballot(2, 'P'),
    promised: ballot(3, 'Q'),
  });
  t.equal(a.acceptedAt(1), undefined);
  const p = a.step({ type: 'mp.prepare', from: 'P', ballot: ballot(3, 'P'), fromSlot: 1 });
  t.equal(p.send[0]?.msg.type, 'mp.nack', '(3,P) < (3,Q)');
});

t.test('a duplicate accept needs no write; a higher ballot overwrites the slot', async (t) => {
  const a = new MultiAcceptorCore({ id: 'A' });
  a.step(accept(ballot(1, 'P'), [[1, cmd(1)]]));
  const dup = a.step(accept(ballot(1, 'P'), [[1, cmd(1)]]));
  t.equal(dup.persist, undefined);
  t.same((dup.send[0]!.msg as unknown as { slots: number[] }).slots, [1]);
  a.step(accept(ballot(2, 'Q'), [[1, cmd(9)]], 'Q'));
  t.same(a.acceptedAt(1)?.value, cmd(9));
});

t.test('compaction drops decided slots and raises the floor', async (t) => {
  const a = new MultiAcceptorCore({ id: 'A' });
  a.step(
    accept(ballot(1, 'P'), [
      [1, cmd(1)],
      [2, cmd(2)],
      [3, cmd(3)],
    ]),
  );
  const c = a.step({ type: 'mp.compact', from: 'L', upTo: 2 });
  t.same(c.persist, { hard: { promised: ballot(1, 'P'), floor: 2 }, compactTo: 2 });
  t.same(a.step({ type: 'mp.compact', from: 'L', upTo: 1 }), { send: [] }, 'never lowers');
  t.equal(a.acceptedAt(2), undefined);
  t.ok(a.acceptedAt(3));
  const late = a.step(
    accept(ballot(1, 'P'), [
      [2, cmd(2)],
      [4, cmd(4)],
    ]),
  );
  t.same((late.send[0]!.msg as unknown as { slots: number[]; floor: number }).slots, [4]);
  t.equal((late.send[0]!.msg as unknown as { floor: number }).floor, 2);
  const p = a.step({ type: 'mp.prepare', from: 'Q', ballot: ballot(5, 'Q'), fromSlot: 1 });
  const m = p.send[0]?.msg;
  if (m?.type === 'mp.promise') {
    t.equal(m.floor, 2);
    t.same(
      m.accepted.map((x) => x.slot),
      [3, 4],
    );
  } else t.fail('expected a promise');
  t.same(a.view().maxAcceptedSlot, 4);
});

t.test('restart from durable state keeps promises and accepted values', async (t) => {
  const a = new MultiAcceptorCore(
    { id: 'A' },
    {
      promised: ballot(4, 'Q'),
      floor: 1,
      accepted: [
        { slot: 1, ballot: ballot(1, 'P'), value: cmd(1) },
        { slot: 2, ballot: ballot(1, 'P'), value: cmd(2) },
        { slot: 2, ballot: ballot(3, 'Q'), value: cmd(7) },
        { slot: 2, ballot: ballot(2, 'P'), value: cmd(8) },
      ],
    },
  );
  t.equal(a.acceptedAt(1), undefined, 'below the floor');
  t.same(a.acceptedAt(2)?.value, cmd(7), 'the highest ballot per slot wins on replay');
  t.equal(a.step(accept(ballot(3, 'Z'), [[3, cmd(3)]])).send[0]?.msg.type, 'mp.nack');
});

t.test('leases: a holder blocks other proposers; a restart blocks everyone', async (t) => {
  const a = new MultiAcceptorCore({ id: 'A', leaseMs: 100 });
  a.step(accept(ballot(1, 'P'), [], 'P'), 1000);
  t.equal(a.view().leaseHolder, 'P');
  const blocked = a.step(
    { type: 'mp.prepare', from: 'Q', ballot: ballot(9, 'Q'), fromSlot: 1 },
    1050,
  );
  t.same(blocked.send[0]?.msg, {
    type: 'mp.nack',
    from: 'A',
    ballot: ballot(9, 'Q'),
    promised: ballot(1, 'P'),
    leased: true,
  });
  const self = a.step({ type: 'mp.prepare', from: 'P', ballot: ballot(2, 'P'), fromSlot: 1 }, 1050);
  t.equal(self.send[0]?.msg.type, 'mp.promise', 'the holder may re-run phase 1');
  const later = a.step(
    { type: 'mp.prepare', from: 'Q', ballot: ballot(9, 'Q'), fromSlot: 1 },
    1101,
  );
  t.equal(later.send[0]?.msg.type, 'mp.promise', 'after the lease expires');
  const restarted = new MultiAcceptorCore(
    { id: 'A', leaseMs: 100 },
    { promised: ballot(9, 'Q'), floor: 0, accepted: [] },
    5000,
  );
  const r1 = restarted.step(
    { type: 'mp.prepare', from: 'R', ballot: ballot(10, 'R'), fromSlot: 1 },
    5050,
  );
  t.equal(r1.send[0]?.msg.type, 'mp.nack');
  const r2 = restarted.step(
    { type: 'mp.prepare', from: 'R', ballot: ballot(10, 'R'), fromSlot: 1 },
    5100,
  );
  t.equal(r2.send[0]?.msg.type, 'mp.promise');
});

t.test('the slot table: holes, far slots, compaction and slot order', async (t) => {
  const tab = new SlotTable(11); // floor 10
  const b = ballot(1, 'P');
  const rec = (slot: number) => ({ slot, ballot: b, value: cmd(slot) });
  tab.set(rec(5)); // at or below the floor: ignored
  for (const s of [13, 11, 12, 20]) tab.set(rec(s));
  const far = 11 + SlotTable.MAX_SPAN + 5;
  tab.set(rec(far));
  t.equal(tab.size, 5);
  t.equal(tab.get(5), undefined);
  t.equal(tab.get(15), undefined, 'a hole');
  t.equal(tab.get(far)?.slot, far, 'a far slot is kept (in the map)');
  t.same(
    tab.from(12).map((a) => a.slot),
    [12, 13, 20, far],
    'in slot order from 12',
  );
  tab.set({ slot: 12, ballot: ballot(2, 'Q'), value: cmd(99) });
  t.equal(tab.size, 5, 'replacing a slot does not count it twice');
  t.equal(tab.get(12)?.ballot.round, 2);
  tab.dropUpTo(12);
  t.equal(tab.size, 3);
  t.equal(tab.get(12), undefined);
  t.same(
    tab.from(0).map((a) => a.slot),
    [13, 20, far],
  );
  tab.dropUpTo(far);
  t.equal(tab.size, 0);
  t.same(tab.from(0), []);
  tab.set(rec(far + 1));
  t.equal(tab.get(far + 1)?.slot, far + 1, 'stores again after a full compaction');
  // many slots in order, compacted in steps: the array is trimmed, lookups stay right
  const big = new SlotTable(1);
  for (let s = 1; s <= 5000; s++) big.set(rec(s));
  for (let upTo = 500; upTo <= 4500; upTo += 500) big.dropUpTo(upTo);
  t.equal(big.size, 500);
  t.equal(big.get(4500), undefined);
  t.equal(big.get(4501)?.slot, 4501);
  t.equal(big.get(5000)?.slot, 5000);
  t.same(
    big.from(4999).map((a) => a.slot),
    [4999, 5000],
  );
});

t.test('a proposer counts at most 31 acceptors', async (t) => {
  const acceptors = Array.from({ length: 32 }, (_, i) => `a${i}`);
  t.throws(
    () =>
      new MultiLeaderCore({
        id: 'P',
        quorums: quorumSystem({ acceptors }),
        proposers: ['P'],
        learners: [],
        random: new Random(1),
      }),
    { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' },
  );
  t.doesNotThrow(
    () =>
      new MultiLeaderCore({
        id: 'P',
        quorums: quorumSystem({ acceptors: acceptors.slice(0, 31) }),
        proposers: ['P'],
        learners: [],
        random: new Random(1),
      }),
  );
});
