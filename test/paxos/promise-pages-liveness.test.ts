/**
 * Liveness of phase 1 in pages (session 14's reviewer, F1 and F2 on 1d7398f), on the cores
 * under virtual time: a candidate and three acceptors, every message delivered `oneWayMs`
 * after it was sent. Before the fixes, a phase 1 of more pages than an election timeout's
 * worth of round trips never completed (the candidate started over at its deadline: 21
 * elections in 10 s), and the retransmission tick asked again for the page in flight.
 */
import t from 'tap';
import { ballot } from '../../actors/paxos/ballot.js';
import { MultiAcceptorCore } from '../../actors/paxos/multi-acceptor.js';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import {
  commandValue,
  type MOutbound,
  type MultiPaxosMessage,
} from '../../actors/paxos/multi-messages.js';
import { leaderOptions } from '../helpers/paxos-leader.js';

const cmd = (n: number) =>
  commandValue({ clientId: 'c', seq: n, op: { n, pad: 'x'.repeat(150) } }, 1);

function run(slots: number, pageBytes: number, oneWayMs: number, untilMs: number) {
  const acceptors = new Map<string, MultiAcceptorCore>();
  for (const id of ['A', 'B', 'C']) {
    const a = new MultiAcceptorCore({ id });
    for (let s = 1; s <= slots; s += 500) {
      const entries = [];
      for (let k = s; k < Math.min(s + 500, slots + 1); k++)
        entries.push({ slot: k, value: cmd(k) });
      a.step({ type: 'mp.accept', from: 'X', ballot: ballot(1, 'X'), entries, sentAt: 0 });
    }
    acceptors.set(id, a);
  }
  const p = new MultiLeaderCore(
    leaderOptions({ promisePageBytes: pageBytes, electionTimeoutMs: 300, maxBatch: 256 }),
    5,
    0,
  );
  const inFlight: { at: number; to: string; msg: MultiPaxosMessage }[] = [];
  let elections = 0;
  let prepares = 0;
  const asked = new Map<string, number>(); // ballot/acceptor/fromSlot -> times asked
  let dupPrepares = 0;
  let leaderAt: number | undefined;
  const post = (sends: MOutbound[], now: number) => {
    for (const s of sends) {
      const m = s.msg;
      if (m.type === 'mp.prepare') {
        prepares++;
        const k = `${m.ballot.round}/${s.to}/${m.fromSlot}`;
        const n = (asked.get(k) ?? 0) + 1;
        asked.set(k, n);
        if (n > 1) dupPrepares++;
      }
      if (!['A', 'B', 'C', 'P'].includes(s.to)) continue;
      inFlight.push({ at: now + oneWayMs, to: s.to, msg: m });
    }
  };
  for (let now = 0; now <= untilMs && leaderAt === undefined; now++) {
    if (now % 10 === 0) {
      const out = p.tick(now);
      elections += out.events.filter((e) => e.type === 'election-started').length;
      post(out.send, now);
    }
    for (;;) {
      const i = inFlight.findIndex((m) => m.at <= now);
      if (i < 0) break;
      const { to, msg } = inFlight.splice(i, 1)[0] as (typeof inFlight)[number];
      const a = acceptors.get(to);
      if (a) {
        if (msg.type === 'mp.prepare') post(a.step(msg, now).send, now);
        continue;
      }
      const out = p.step(msg, now);
      elections += out.events.filter((e) => e.type === 'election-started').length;
      post(out.send, now);
      if (p.isLeader && leaderAt === undefined) leaderAt = now;
    }
  }
  return { leaderAt, elections, prepares, dupPrepares };
}

t.test('a phase 1 needing more round trips than the election timeout completes', async (t) => {
  // 4,000 slots of ~230 B = ~0.9 MB per acceptor; 64 KiB pages = 15 pages per acceptor.
  // 25 ms one way: 50 ms a page, 700 ms for all pages, above the [300, 600] ms deadline.
  const slow = run(4000, 64 * 1024, 25, 10_000);
  t.comment(JSON.stringify(slow));
  const fast = run(4000, 64 * 1024, 5, 10_000);
  t.comment(JSON.stringify(fast));
  t.ok(fast.leaderAt !== undefined, 'with 10 ms round trips the candidate is elected');
  t.ok(
    slow.leaderAt !== undefined,
    'with 50 ms round trips (14 pages = 700 ms) the candidate is elected within 10 s',
  );
  t.equal(slow.elections, 1, 'in its first election: pages that progress push its deadline');
  t.equal(slow.dupPrepares, 0, 'and no page was asked for twice');
});

t.test(
  'the retransmission tick does not ask again for a page asked for a moment ago',
  async (t) => {
    const p = new MultiLeaderCore(leaderOptions({ promisePageBytes: 100 }), 5, 0);
    const first = p.tick(700).send.find((s) => s.msg.type === 'mp.prepare');
    if (first?.msg.type !== 'mp.prepare') throw new Error('no prepare');
    const b = first.msg.ballot;
    const page = {
      type: 'mp.promise',
      from: 'A',
      ballot: b,
      floor: 0,
      accepted: [{ slot: 1, ballot: ballot(1, 'X'), value: cmd(1) }],
      more: 2,
    } as MultiPaxosMessage;
    const at795 = p.step(page, 795).send.filter((s) => s.to === 'A' && s.msg.type === 'mp.prepare');
    t.equal(at795.length, 1, 'page 2 asked for at 795');
    const at800 = p.tick(800).send.filter((s) => s.to === 'A' && s.msg.type === 'mp.prepare');
    t.same(at800, [], 'no second request for page 2 5 ms later (its answer cannot be overdue)');
  },
);

const campaignsIn = (out: { send: MOutbound[] }) =>
  out.send.filter((s) => s.msg.type === 'mp.campaign').map((s) => s.to);

t.test(
  'a candidate whose pages progress tells the other proposers, once per heartbeat',
  async (t) => {
    const p = new MultiLeaderCore(leaderOptions({ promisePageBytes: 100 }), 5, 0);
    const first = p.tick(700).send.find((s) => s.msg.type === 'mp.prepare');
    if (first?.msg.type !== 'mp.prepare') throw new Error('no prepare');
    const b = first.msg.ballot;
    const page = (slot: number, more?: number) =>
      ({
        type: 'mp.promise',
        from: 'A',
        ballot: b,
        floor: 0,
        accepted: [{ slot, ballot: ballot(1, 'X'), value: cmd(slot) }],
        ...(more !== undefined ? { more } : {}),
      }) as MultiPaxosMessage;
    t.same(campaignsIn(p.step(page(1, 2), 710)), ['P2'], 'a page with new slots: P2 is told');
    t.same(campaignsIn(p.step(page(2, 3), 720)), [], 'not again within a heartbeat (50 ms)');
    t.same(campaignsIn(p.step(page(2, 3), 790)), [], 'a repeated page is no progress');
    t.same(campaignsIn(p.step(page(3, 4), 790)), ['P2'], 'the next new page after 50 ms is');
  },
);

t.test('a follower told of a progressing phase 1 holds off its own election', async (t) => {
  // Election timeout 300 ms: a follower elects itself at a random time in [300, 600].
  const quiet = new MultiLeaderCore(leaderOptions(), 0, 0);
  let electedAt: number | undefined;
  for (let now = 0; now <= 700 && electedAt === undefined; now += 10)
    if (quiet.tick(now).events.some((e) => e.type === 'election-started')) electedAt = now;
  t.ok(electedAt !== undefined && electedAt <= 600, `untold, it campaigns at ${electedAt} ms`);

  const p = new MultiLeaderCore(leaderOptions(), 0, 0);
  const campaign = { type: 'mp.campaign', from: 'P2', ballot: ballot(7, 'P2') } as const;
  let started = false;
  for (let now = 0; now <= 3000; now += 10) {
    if (now % 100 === 0) p.step(campaign, now);
    if (p.tick(now).events.some((e) => e.type === 'election-started')) started = true;
  }
  t.notOk(started, 'told every 100 ms for 3 s, it never campaigns');
  let after: number | undefined;
  let round = 0;
  for (let now = 3010; now <= 4000 && after === undefined; now += 10) {
    const e = p.tick(now).events.find((x) => x.type === 'election-started');
    if (e) {
      after = now;
      round = e.ballot.round;
    }
  }
  t.ok(
    after !== undefined && after <= 3000 + 600,
    `once the notices stop it campaigns within an election timeout (at ${after} ms)`,
  );
  t.ok(round > 7, `with a ballot above the one it was told of (round ${round})`);
});

t.test('a candidate of a lower ballot steps down when told of a higher one', async (t) => {
  const p = new MultiLeaderCore(leaderOptions(), 0, 0);
  p.tick(700);
  t.equal(p.view().role, 'candidate');
  p.step({ type: 'mp.campaign', from: 'P2', ballot: ballot(1, 'A') }, 701);
  t.equal(p.view().role, 'candidate', 'a lower (or equal) ballot changes nothing');
  p.step({ type: 'mp.campaign', from: 'P2', ballot: ballot(50, 'P2') }, 702);
  t.equal(p.view().role, 'follower', 'a higher one: it steps down and waits');
  p.step({ type: 'mp.campaign', from: 'P', ballot: ballot(60, 'P') }, 703);
  t.equal(p.view().role, 'follower', 'its own id is ignored');
});

t.test('an acceptor that promises another proposer tells its own proposer', async (t) => {
  const a = new MultiAcceptorCore({ id: 'n2/acceptor', localProposer: 'n2/proposer' });
  const b5 = ballot(5, 'n1/proposer');
  const out = a.step({ type: 'mp.prepare', from: 'n1/proposer', ballot: b5, fromSlot: 1 });
  t.same(
    out.send.map((s) => [s.to, s.msg.type]),
    [
      ['n1/proposer', 'mp.promise'],
      ['n2/proposer', 'mp.campaign'],
    ],
  );
  t.same(out.send[1]?.msg, { type: 'mp.campaign', from: 'n1/proposer', ballot: b5 });
  const own = a.step({
    type: 'mp.prepare',
    from: 'n2/proposer',
    ballot: ballot(6, 'n2/proposer'),
    fromSlot: 1,
  });
  t.same(campaignsIn(own), [], 'not for its own proposer');
  const nacked = a.step({ type: 'mp.prepare', from: 'n3/proposer', ballot: b5, fromSlot: 1 });
  t.same(
    nacked.send.map((s) => s.msg.type),
    ['mp.nack'],
    'not for a ballot it refuses: a lower candidate suppresses no one',
  );
  const plain = new MultiAcceptorCore({ id: 'A' });
  t.same(
    campaignsIn(plain.step({ type: 'mp.prepare', from: 'P', ballot: b5, fromSlot: 1 })),
    [],
    'and nothing without a local proposer (the option is unset)',
  );
});
