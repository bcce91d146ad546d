import t from 'tap';
import { ballot } from '../../actors/paxos/ballot.js';
import { MultiLeaderCore, type MultiLeaderOptions } from '../../actors/paxos/multi-leader.js';
import { commandValue, type MOutbound, type SlotValue } from '../../actors/paxos/multi-messages.js';
import { acceptors, leaderOptions } from '../helpers/paxos-leader.js';

const base = leaderOptions;
const cmd = (n: number) => ({ clientId: 'c', seq: n, op: { n } });
const sendsOf = (out: { send: MOutbound[] }, type: string) =>
  out.send.filter((s) => s.msg.type === type);

function elect(p: MultiLeaderCore, now = 700) {
  const start = p.tick(now);
  const prep = sendsOf(start, 'mp.prepare');
  const b = (prep[0]!.msg as unknown as { ballot: ReturnType<typeof ballot> }).ballot;
  return { start, b };
}

t.test('a follower elects itself after the election timeout, persisting its round', async (t) => {
  const p = new MultiLeaderCore(base(), 4, 0);
  t.same(p.tick(299).send, [], 'not before the timeout');
  const { start, b } = elect(p, 700);
  t.same(start.persist, { round: 5 });
  t.same(b, ballot(5, 'P'));
  t.same(
    sendsOf(start, 'mp.prepare').map((s) => s.to),
    acceptors,
  );
  t.equal(p.view().role, 'candidate');
  t.same(p.submit(cmd(1), 700).result, { ok: false, code: 'NotLeader' });
});

t.test(
  'takeover re-proposes the highest-ballot value per slot and fills gaps with no-ops',
  async (t) => {
    const p = new MultiLeaderCore(base(), 0, 0);
    const { b } = elect(p);
    const v = (n: number, tt = 1): SlotValue => commandValue(cmd(n), tt);
    p.step(
      {
        type: 'mp.promise',
        from: 'A',
        ballot: b,
        floor: 0,
        accepted: [
          { slot: 1, ballot: ballot(1, 'X'), value: v(1) },
          { slot: 4, ballot: ballot(1, 'X'), value: v(4) },
        ],
      },
      701,
    );
    const won = p.step(
      {
        type: 'mp.promise',
        from: 'B',
        ballot: b,
        floor: 0,
        accepted: [{ slot: 1, ballot: ballot(2, 'Y'), value: v(11, 2) }],
      },
      702,
    );
    t.same(won.events[0], { type: 'elected', ballot: b, firstSlot: 1 });
    const acc = sendsOf(won, 'mp.accept').find(
      (s) => s.to === 'A' && (s.msg as unknown as { entries: unknown[] }).entries.length > 0,
    );
    t.same((acc!.msg as unknown as { entries: unknown[] }).entries, [
      { slot: 1, value: v(11, 2) },
      { slot: 2, value: { k: 'noop', t: b.round } },
      { slot: 3, value: { k: 'noop', t: b.round } },
      { slot: 4, value: v(4) },
    ]);
    t.equal(p.view().nextSlot, 5);
    t.ok(sendsOf(won, 'mp.heartbeat').length > 0, 'announces itself at once');
  },
);

t.test('slots at or below a reported floor are left to catch-up', async (t) => {
  const p = new MultiLeaderCore(base(), 0, 0);
  const { b } = elect(p);
  p.step({ type: 'mp.promise', from: 'A', ballot: b, floor: 6, accepted: [] }, 701);
  p.step({ type: 'mp.promise', from: 'B', ballot: b, floor: 0, accepted: [] }, 701);
  t.equal(p.view().chosenUpTo, 6);
  t.equal(p.view().nextSlot, 7);
});

function leader(over: Partial<MultiLeaderOptions> = {}) {
  const p = new MultiLeaderCore(base(over), 0, 0);
  const { b } = elect(p);
  p.step({ type: 'mp.promise', from: 'A', ballot: b, floor: 0, accepted: [] }, 701);
  p.step({ type: 'mp.promise', from: 'B', ballot: b, floor: 0, accepted: [] }, 701);
  t.ok(p.isLeader);
  return { p, b };
}

t.test('pipelined phase 2 within a bounded window; chosen on a phase-2 quorum', async (t) => {
  const { p, b } = leader();
  const outs = [1, 2, 3, 4, 5, 6].map((i) => p.submit(cmd(i), 710));
  t.ok(outs.every((o) => o.result.ok));
  t.equal(p.view().inFlight, 4, 'window of 4');
  t.equal(p.view().queued, 2);
  const a1 = p.step(
    { type: 'mp.accepted', from: 'A', ballot: b, slots: [1, 2], sentAt: 710, floor: 0 },
    711,
  );
  t.same(a1.chosen, []);
  const a2 = p.step(
    { type: 'mp.accepted', from: 'C', ballot: b, slots: [2, 1], sentAt: 710, floor: 0 },
    712,
  );
  t.same(
    a2.chosen.map((c) => c.slot),
    [2, 1],
  );
  const decide = sendsOf(a2, 'mp.decide');
  t.same(
    decide.map((d) => d.to),
    ['L', 'L2'],
  );
  t.equal(p.view().chosenUpTo, 2);
  t.equal(p.view().queued, 0, 'the window moved: queued values went out');
  t.same(
    (sendsOf(a2, 'mp.accept')[0]!.msg as unknown as { entries: { slot: number }[] }).entries.map(
      (e) => e.slot,
    ),
    [5, 6],
  );
  // a stale ballot's acks do not count
  const stale = p.step(
    { type: 'mp.accepted', from: 'A', ballot: ballot(0, 'P'), slots: [3], sentAt: 0, floor: 0 },
    713,
  );
  t.same(stale.chosen, []);
});

t.test('unanswered accepts are retransmitted to the silent acceptors only', async (t) => {
  const { p, b } = leader();
  p.submit(cmd(1), 710);
  p.step({ type: 'mp.accepted', from: 'A', ballot: b, slots: [1], sentAt: 710, floor: 0 }, 711);
  const out = p.tick(811);
  const re = sendsOf(out, 'mp.accept').filter(
    (s) => (s.msg as unknown as { entries: unknown[] }).entries.length > 0,
  );
  t.same(
    re.map((s) => s.to),
    ['B', 'C'],
  );
});

t.test('an acceptor that is only behind gets no retransmission; a lost accept does', async (t) => {
  const { p, b } = leader();
  const resentTo = (out: { send: MOutbound[] }) =>
    sendsOf(out, 'mp.accept')
      .filter((s) => (s.msg as unknown as { entries: unknown[] }).entries.length > 0)
      .map((s) => s.to);
  // B and C keep answering, but only messages sent before slot 1 (they are behind)
  p.step({ type: 'mp.accepted', from: 'B', ballot: b, slots: [], sentAt: 700, floor: 0 }, 705);
  p.step({ type: 'mp.accepted', from: 'C', ballot: b, slots: [], sentAt: 700, floor: 0 }, 705);
  p.submit(cmd(1), 710);
  p.step({ type: 'mp.accepted', from: 'A', ballot: b, slots: [1], sentAt: 710, floor: 0 }, 711);
  for (const at of [780, 800]) {
    p.step({ type: 'mp.accepted', from: 'B', ballot: b, slots: [], sentAt: 705, floor: 0 }, at);
    p.step({ type: 'mp.accepted', from: 'C', ballot: b, slots: [], sentAt: 705, floor: 0 }, at);
  }
  t.same(resentTo(p.tick(815)), [], 'behind but answering: nothing resent after retransmitMs');
  // C answers a message sent after slot 1 without having acknowledged slot 1: it was lost
  p.step({ type: 'mp.accepted', from: 'C', ballot: b, slots: [], sentAt: 760, floor: 0 }, 820);
  p.step({ type: 'mp.accepted', from: 'B', ballot: b, slots: [], sentAt: 705, floor: 0 }, 820);
  t.same(resentTo(p.tick(825)), ['C'], 'resent to the acceptor that skipped it');
  // B goes silent: after retransmitMs without an answer it gets the slot again too
  p.step({ type: 'mp.accepted', from: 'C', ballot: b, slots: [], sentAt: 705, floor: 0 }, 900);
  t.same(resentTo(p.tick(925)), ['B'], 'resent to the silent acceptor');
});

t.test('a nack with a higher ballot deposes the leader; fates of its proposals', async (t) => {
  const { p, b } = leader({ window: 1 });
  p.submit(cmd(1), 710);
  p.submit(cmd(2), 710);
  const out = p.step({ type: 'mp.nack', from: 'A', ballot: b, promised: ballot(9, 'P2') }, 720);
  t.equal(p.view().role, 'follower');
  t.same(
    out.fates.map((f) => f.kind),
    ['dropped', 'indeterminate'],
    'queued: never sent, definitely not chosen; in flight: may still be chosen',
  );
  t.same(p.submit(cmd(3), 721).result, { ok: false, code: 'NotLeader', leaderHint: 'P2' });
  // the next election goes above the nacked ballot
  const again = p.tick(5000);
  t.same(again.persist, { round: 10 });
});

t.test(
  'a heartbeat from a higher ballot makes a leader follow; a lower one is ignored',
  async (t) => {
    const { p } = leader();
    p.step({ type: 'mp.heartbeat', from: 'P2', ballot: ballot(0, 'P2'), chosenUpTo: 0 }, 720);
    t.ok(p.isLeader);
    const out = p.step(
      { type: 'mp.heartbeat', from: 'P2', ballot: ballot(7, 'P2'), chosenUpTo: 0 },
      721,
    );
    t.equal(out.events[0]?.type, 'stepped-down');
    t.equal(p.view().leader, 'P2');
    t.same(p.tick(900).send, [], 'the heartbeat reset the election timer');
  },
);

t.test('a leader cut off from a phase-2 quorum steps down', async (t) => {
  const { p } = leader();
  let now = 710;
  let stepped = false;
  for (; now < 3000 && !stepped; now += 10) {
    stepped = p.tick(now).events.some((e) => e.type === 'stepped-down');
  }
  t.ok(stepped, `stepped down at ${now}`);
});

t.test('the lease: held after a phase-2 quorum of keep-alive acks, until it expires', async (t) => {
  const { p, b } = leader({ leaseMs: 100, maxClockDrift: 0.1 });
  t.equal(p.leaseReadIndex(710), undefined, 'no lease before acks');
  p.submit(cmd(1), 710);
  p.step({ type: 'mp.accepted', from: 'A', ballot: b, slots: [1], sentAt: 710, floor: 0 }, 712);
  t.equal(p.leaseReadIndex(712), undefined, 'one ack is not a quorum');
  p.step({ type: 'mp.accepted', from: 'B', ballot: b, slots: [1], sentAt: 705, floor: 0 }, 713);
  t.equal(p.leaseReadIndex(713), 1, 'read index = highest assigned slot');
  t.equal(p.view(713).leaseUntil, 705 + 90, 'from the older send time, minus drift');
  t.equal(p.leaseReadIndex(795), undefined, 'expired');
});

t.test('confirmed reads: a phase-2 quorum acknowledges a round sent after the read', async (t) => {
  const { p, b } = leader();
  p.submit(cmd(1), 710);
  const acked = (from: string, rid: number, now: number) =>
    p.step({ type: 'mp.accepted', from, ballot: b, slots: [], sentAt: now, floor: 0, rid }, now);
  // Acknowledgements of messages sent before the read (round 0) never confirm it.
  const r1 = p.confirmRead('r1', 711);
  t.same(r1.result, { ok: true });
  const ka = sendsOf(r1.output, 'mp.accept');
  t.same(
    ka.map((s) => [
      s.to,
      (s.msg as { rid?: number }).rid,
      (s.msg as unknown as { entries: unknown[] }).entries,
    ]),
    acceptors.map((a) => [a, 1, []]),
    'a keep-alive of round 1 to every acceptor',
  );
  t.same(acked('A', 0, 712).reads, [], 'an ack of an older round');
  t.same(acked('B', 0, 712).reads, [], 'older rounds from a quorum still do not confirm');
  t.same(acked('A', 1, 713).reads, [], 'one acceptor is not a phase-2 quorum');
  // Round 1 has left: a later read needs a later round.
  const r2 = p.confirmRead('r2', 713, true);
  t.same(sendsOf(r2.output, 'mp.accept'), [], 'deferred: nothing sent until flush');
  t.same(acked('B', 1, 714).reads, [{ id: 'r1', index: 1 }], 'confirmed at the highest slot');
  const f = p.flush(715);
  t.same(
    sendsOf(f, 'mp.accept').map((s) => (s.msg as { rid?: number }).rid),
    [2, 2, 2],
    'r2 needs round 2',
  );
  t.same(acked('A', 2, 716).reads, []);
  t.same(acked('C', 5, 716).reads, [{ id: 'r2', index: 1 }]);
  t.same(p.confirmRead('r3', 717).result, { ok: true });
  const lost = p.step({ type: 'mp.nack', from: 'A', ballot: b, promised: ballot(9, 'P2') }, 718);
  t.same(lost.reads, [{ id: 'r3' }], 'leadership lost: the pending read fails');
  t.same(p.confirmRead('r4', 719).result, { ok: false, code: 'NotLeader', leaderHint: 'P2' });
});

t.test(
  'ignoreStalls: a stall of this process does not count towards the election timeout',
  async (t) => {
    const run = (ignoreStalls: boolean) => {
      const p = new MultiLeaderCore(base({ ignoreStalls }), 0, 0);
      for (let now = 10; now <= 100; now += 10) p.tick(now);
      const afterStall = p.tick(1100).events.some((e) => e.type === 'election-started');
      let electedAt = afterStall ? 1100 : -1;
      for (let now = 1110; electedAt < 0 && now < 3000; now += 10)
        if (p.tick(now).events.some((e) => e.type === 'election-started')) electedAt = now;
      return { afterStall, electedAt };
    };
    const plain = run(false);
    t.ok(plain.afterStall, 'without it, the first tick after a 1 s stall starts an election');
    const aware = run(true);
    t.notOk(aware.afterStall, 'with it, the stall does not start an election');
    t.ok(
      aware.electedAt > 1100 && aware.electedAt <= 1100 + 600,
      `the remaining timeout still runs out (election at ${aware.electedAt})`,
    );
    // A node whose every tick comes late (a saturated event loop) still elects: each tick
    // counts for one heartbeat interval.
    const slow = new MultiLeaderCore(base({ ignoreStalls: true }), 0, 0);
    let at = -1;
    for (let now = 150; at < 0 && now < 60_000; now += 150)
      if (slow.tick(now).events.some((e) => e.type === 'election-started')) at = now;
    t.ok(at > 0, `ticks 150 ms apart still start an election (at ${at} ms)`);
  },
);

t.test('bad configurations are refused with a stable code', async (t) => {
  t.throws(() => new MultiLeaderCore(base({ window: 0 })), { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' });
  t.throws(() => new MultiLeaderCore(base({ leaseMs: 400 })), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
  t.throws(() => new MultiLeaderCore(base({ maxClockDrift: 1 })), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
});

t.test('the queue is bounded', async (t) => {
  const { p } = leader({ window: 1, maxPending: 1 });
  t.ok(p.submit(cmd(1), 710).result.ok);
  t.ok(p.submit(cmd(2), 710).result.ok);
  t.same(p.submit(cmd(3), 710).result, { ok: false, code: 'Dropped' });
});
