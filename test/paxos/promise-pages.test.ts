/**
 * Phase 1 in pages (reviewer F4 of session 13). A new leader must recover every slot above
 * what its local learner decided: after a learner or whole-node restart, every slot above its
 * snapshot (up to `snapshotEveryMax`, 100,000 by default). In one promise that could be tens of
 * MB, above the WebSocket transport's 16 MiB frame limit, and the promise was dead-lettered:
 * that acceptor could never complete the leader's phase 1. The proposer now asks for pages of
 * about `promisePageBytes` (`MPrepare.maxBytes`); an acceptor answers at most that much and
 * names the next slot (`MPromise.more`); the promise counts once its last page arrived.
 */
import t from 'tap';
import { type Ballot, ballot } from '../../actors/paxos/ballot.js';
import { MultiAcceptorCore, SlotTable } from '../../actors/paxos/multi-acceptor.js';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import {
  type AcceptedSlot,
  commandValue,
  type MOutbound,
  type MPromise,
  type MultiPaxosMessage,
  multiMessageProblem,
  type SlotValue,
  slotValueBytes,
} from '../../actors/paxos/multi-messages.js';
import { leaderOptions } from '../helpers/paxos-leader.js';

const cmd = (n: number, pad = 0): SlotValue =>
  commandValue({ clientId: 'c', seq: n, op: { n, pad: 'x'.repeat(pad) } }, 1);

function acceptorWith(slots: number[], b: Ballot, pad = 60): MultiAcceptorCore {
  const a = new MultiAcceptorCore({ id: 'A' });
  a.step({
    type: 'mp.accept',
    from: 'P',
    ballot: b,
    entries: slots.map((slot) => ({ slot, value: cmd(slot, pad) })),
    sentAt: 0,
  });
  return a;
}

function promiseOf(out: { send: MOutbound[] }): MPromise {
  const m = out.send[0]?.msg;
  if (m?.type !== 'mp.promise') throw new Error(`expected a promise, got ${m?.type}`);
  return m;
}

t.test('an acceptor answers a paged prepare in pages that add up to the whole', async (t) => {
  const slots = Array.from({ length: 40 }, (_, i) => i + 1);
  const whole = promiseOf(
    acceptorWith(slots, ballot(1, 'P')).step({
      type: 'mp.prepare',
      from: 'Q',
      ballot: ballot(2, 'Q'),
      fromSlot: 3,
    }),
  );
  t.equal(whole.more, undefined, 'no maxBytes (a proposer of an earlier version): one promise');
  t.same(
    whole.accepted.map((a) => a.slot),
    slots.slice(2),
  );

  const a = acceptorWith(slots, ballot(1, 'P'));
  const maxBytes = 400;
  const got: AcceptedSlot[] = [];
  let from = 3;
  let pages = 0;
  for (;;) {
    const p = promiseOf(
      a.step({ type: 'mp.prepare', from: 'Q', ballot: ballot(2, 'Q'), fromSlot: from, maxBytes }),
    );
    pages++;
    t.ok(p.accepted.length >= 1, 'every page carries at least one slot');
    const bytes = p.accepted.reduce((n, x) => n + slotValueBytes(x.value), 0);
    const lastValue = p.accepted[p.accepted.length - 1]?.value as SlotValue;
    t.ok(bytes - slotValueBytes(lastValue) < maxBytes, 'a page stops once it reached maxBytes');
    got.push(...p.accepted);
    if (p.more === undefined) break;
    t.equal(p.more, (p.accepted[p.accepted.length - 1] as AcceptedSlot).slot + 1);
    from = p.more;
    if (pages > 100) throw new Error('pages never end');
  }
  t.ok(pages > 3, `the 38 slots took ${pages} pages`);
  t.same(got, whole.accepted, 'the pages together are the one-shot promise');
});

t.test('a page with a far slot keeps slot order and leaves nothing out', async (t) => {
  const table = new SlotTable(1);
  const b = ballot(1, 'P');
  for (const s of [1, 2, 3, 4, 5, 6]) table.put(s, b, cmd(s, 60));
  table.put(2_000_000, b, cmd(2_000_000, 60));
  const whole = table.from(1).map((x) => x.slot);
  t.same(whole, [1, 2, 3, 4, 5, 6, 2_000_000]);
  const got: number[] = [];
  let from = 1;
  for (let i = 0; i < 20; i++) {
    const p = table.page(from, 1);
    got.push(...p.accepted.map((x) => x.slot));
    if (p.more === undefined) break;
    from = p.more;
  }
  t.same(got, whole, 'one slot per page, in order, the far one last');
  const firstPage = table.page(1, 3 * slotValueBytes(cmd(1, 60)));
  t.same(
    firstPage.accepted.map((x) => x.slot),
    [1, 2, 3],
  );
  t.equal(firstPage.more, 4, 'the far slot is not sent before the slots below it');
});

t.test('the wire check refuses a bad maxBytes or more', async (t) => {
  const b = ballot(1, 'P');
  t.equal(
    multiMessageProblem({ type: 'mp.prepare', from: 'P', ballot: b, fromSlot: 1 }),
    undefined,
  );
  t.match(
    multiMessageProblem({ type: 'mp.prepare', from: 'P', ballot: b, fromSlot: 1, maxBytes: 0 }),
    /maxBytes/,
  );
  t.match(
    multiMessageProblem({ type: 'mp.prepare', from: 'P', ballot: b, fromSlot: 1, maxBytes: 1.5 }),
    /maxBytes/,
  );
  const promise = { type: 'mp.promise', from: 'A', ballot: b, floor: 0, accepted: [] };
  t.equal(multiMessageProblem({ ...promise, more: 9 }), undefined);
  t.match(multiMessageProblem({ ...promise, more: -1 }), /more/);
  t.match(multiMessageProblem({ ...promise, more: '9' }), /more/);
});

/**
 * A candidate and three acceptor cores wired directly (every message delivered at once, in
 * order). Each acceptor accepted slots 1..n at ballot 1; acceptor C accepted other values for
 * slots 20..n at ballot 2 (so they must win).
 */
t.test('a candidate completes phase 1 page by page and recovers every slot', async (t) => {
  const n = 60;
  const b1 = ballot(1, 'X');
  const b2 = ballot(2, 'Y');
  const acceptors = new Map<string, MultiAcceptorCore>();
  for (const id of ['A', 'B', 'C']) {
    const a = new MultiAcceptorCore({ id });
    a.step({
      type: 'mp.accept',
      from: 'X',
      ballot: b1,
      entries: Array.from({ length: n }, (_, i) => ({ slot: i + 1, value: cmd(i + 1, 40) })),
      sentAt: 0,
    });
    acceptors.set(id, a);
  }
  (acceptors.get('B') as MultiAcceptorCore).step({
    type: 'mp.accept',
    from: 'Y',
    ballot: b2,
    entries: Array.from({ length: n - 19 }, (_, i) => ({ slot: i + 20, value: cmd(1000 + i, 40) })),
    sentAt: 0,
  });
  const p = new MultiLeaderCore(leaderOptions({ promisePageBytes: 300, maxBatch: 1000 }), 5, 0);
  const prepares: { to: string; fromSlot: number; maxBytes?: number }[] = [];
  const accepts = new Map<number, SlotValue>();
  let pending: MOutbound[] = p.tick(700).send;
  let becameLeaderAfter = -1;
  let delivered = 0;
  while (pending.length > 0) {
    const next: MOutbound[] = [];
    for (const s of pending) {
      const m = s.msg;
      if (m.type === 'mp.prepare') {
        prepares.push({
          to: s.to,
          fromSlot: m.fromSlot,
          ...(m.maxBytes ? { maxBytes: m.maxBytes } : {}),
        });
        // C is slow: it never answers, so the quorum is A and B.
        if (s.to === 'C') continue;
        const out = (acceptors.get(s.to) as MultiAcceptorCore).step(m, 701);
        for (const r of out.send) {
          delivered++;
          const before = p.view().role;
          next.push(...p.step(r.msg as MultiPaxosMessage, 702).send);
          if (before !== 'leader' && p.view().role === 'leader') becameLeaderAfter = delivered;
        }
      } else if (m.type === 'mp.accept' && s.to === 'A') {
        for (const e of m.entries) accepts.set(e.slot, e.value);
      }
    }
    pending = next;
  }
  t.equal(p.view().role, 'leader');
  t.ok(
    prepares.every((x) => x.maxBytes === 300),
    'every prepare asks for pages of promisePageBytes',
  );
  const toA = prepares.filter((x) => x.to === 'A').map((x) => x.fromSlot);
  t.ok(toA.length > 5, `A was asked for ${toA.length} pages`);
  t.same(
    toA,
    [...toA].sort((x, y) => x - y),
    'each page from where the last one stopped',
  );
  t.equal(becameLeaderAfter, delivered, 'leader only once the last page of the quorum arrived');
  for (let s = 1; s <= n; s++) {
    const want = s >= 20 ? cmd(1000 + s - 20, 40) : cmd(s, 40);
    t.same(accepts.get(s), want, `slot ${s} re-proposed with the highest-ballot value`);
  }
});

t.test('repeated and stale pages do not lose or duplicate slots', async (t) => {
  const p = new MultiLeaderCore(leaderOptions({ promisePageBytes: 100, maxBatch: 1000 }), 0, 0);
  const prep = p.tick(700).send.find((s) => s.msg.type === 'mp.prepare');
  if (!prep) throw new Error('no prepare');
  const b = (prep.msg as { ballot: Ballot }).ballot;
  const acc = (slot: number): AcceptedSlot => ({ slot, ballot: ballot(1, 'X'), value: cmd(slot) });
  const page = (from: string, slots: number[], more?: number) =>
    ({
      type: 'mp.promise',
      from,
      ballot: b,
      floor: 0,
      accepted: slots.map(acc),
      ...(more !== undefined ? { more } : {}),
    }) as MultiPaxosMessage;
  const asked = (out: { send: MOutbound[] }) =>
    out.send
      .filter((s) => s.msg.type === 'mp.prepare')
      .map((s) => [s.to, (s.msg as { fromSlot: number }).fromSlot]);
  t.same(
    asked(p.step(page('A', [1, 2], 3), 701)),
    [['A', 3]],
    'the next page is asked for at once',
  );
  t.same(asked(p.step(page('A', [1, 2], 3), 702)), [], 'the same page again asks nothing new');
  t.same(asked(p.step(page('A', [3, 4], 5), 703)), [['A', 5]]);
  t.same(asked(p.step(page('B', [1, 2, 3, 4, 5, 6]), 704)), [], 'B answers at once (no more)');
  t.equal(p.view().role, 'candidate', 'A has not finished: no quorum yet');
  // A stale answer to A's first request, arriving late, repeats slots 1-2 and says more=3.
  p.step(page('A', [1, 2], 3), 705);
  t.equal(p.view().role, 'candidate');
  // The retransmission tick asks A again from where it stands (5), not from the start.
  t.same(
    asked(p.tick(900)).filter(([to]) => to === 'A'),
    [['A', 5]],
  );
  const out = p.step(page('A', [5, 6]), 901);
  t.equal(p.view().role, 'leader');
  const slots = out.send
    .filter((s) => s.to === 'A' && s.msg.type === 'mp.accept')
    .flatMap((s) =>
      (s.msg as unknown as { entries: { slot: number }[] }).entries.map((e) => e.slot),
    );
  t.same(slots, [1, 2, 3, 4, 5, 6], 'each slot once, in order');
});
