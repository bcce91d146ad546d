import t from 'tap';
import { ballot } from '../../actors/paxos/ballot.js';
import { ProposerCore } from '../../actors/paxos/proposer.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';
import { Random } from '../../lib/random.js';

const acceptors = ['A', 'B', 'C'];
const mk = (lastRound = 0) =>
  new ProposerCore(
    {
      id: 'P',
      quorums: majorityQuorums(acceptors),
      learners: ['L'],
      random: new Random(1),
      backoff: { minMs: 10, maxMs: 400 },
      roundTimeoutMs: 100,
    },
    lastRound,
  );

t.test('phase 1: persists the round, prepares every acceptor', async (t) => {
  const p = mk();
  const out = p.propose('v');
  t.same(out.persist, { round: 1 });
  t.same(
    out.send.map((s) => [s.to, s.msg.type]),
    acceptors.map((a) => [a, 'paxos.prepare']),
  );
  t.equal(out.wakeAfterMs, 100);
  t.throws(() => p.propose('w'), { code: 'SYNOD_ERR_PAXOS_BUSY' });
});

t.test('a restarted proposer never reuses a round', async (t) => {
  const p = mk(7);
  t.same(p.propose('v').persist, { round: 8 });
});

t.test('adopts the value of the highest accepted proposal in the promises', async (t) => {
  const p = mk();
  p.propose('mine');
  const bb = ballot(1, 'P');
  t.equal(
    p.step({
      type: 'paxos.promise',
      from: 'A',
      ballot: bb,
      accepted: { ballot: ballot(0, 'Z'), value: 'old' },
    }).send.length,
    0,
  );
  const out = p.step({
    type: 'paxos.promise',
    from: 'B',
    ballot: bb,
    accepted: null,
  });
  t.same(out.send[0]?.msg, { type: 'paxos.accept', from: 'P', ballot: bb, value: 'old' });
  t.equal(out.send.length, 3);
});

t.test('uses its own value when no acceptor accepted anything; decides on a quorum', async (t) => {
  const p = mk();
  p.propose('mine');
  const bb = ballot(1, 'P');
  p.step({ type: 'paxos.promise', from: 'A', ballot: bb, accepted: null });
  p.step({ type: 'paxos.promise', from: 'A', ballot: bb, accepted: null });
  t.equal(p.view().phase, 'preparing', 'a duplicate promise is not a quorum');
  p.step({ type: 'paxos.promise', from: 'X', ballot: bb, accepted: null });
  t.equal(p.view().phase, 'preparing', 'a non-acceptor does not count');
  const acc = p.step({ type: 'paxos.promise', from: 'C', ballot: bb, accepted: null });
  t.equal((acc.send[0]?.msg as { value?: unknown } | undefined)?.value, 'mine');
  p.step({ type: 'paxos.accepted', from: 'A', ballot: bb, value: 'mine' });
  t.equal(
    p.step({ type: 'paxos.accepted', from: 'Z', ballot: bb, value: 'mine' }).chosen,
    undefined,
  );
  const done = p.step({ type: 'paxos.accepted', from: 'B', ballot: bb, value: 'mine' });
  t.same(done.chosen, { value: 'mine', ballot: bb });
  t.same(done.send, [{ to: 'L', msg: { type: 'paxos.decided', from: 'P', value: 'mine' } }]);
  t.same(p.propose('again').chosen?.value, 'mine', 'a decided proposer reports the decision');
});

t.test('a nack makes the next round skip above the promised ballot, after a backoff', async (t) => {
  const p = mk();
  p.propose('v');
  const out = p.step({
    type: 'paxos.nack',
    from: 'A',
    ballot: ballot(1, 'P'),
    promised: ballot(41, 'Q'),
  });
  t.equal(p.view().phase, 'backoff');
  t.ok(out.wakeAfterMs !== undefined && out.wakeAfterMs >= 10 && out.wakeAfterMs <= 400);
  const retry = p.tick();
  t.same(retry.persist, { round: 42 }, '(42,P) is the smallest ballot above (41,Q)');
  // stale nack for an old ballot is ignored
  t.same(
    p.step({ type: 'paxos.nack', from: 'B', ballot: ballot(1, 'P'), promised: ballot(41, 'Q') })
      .wakeAfterMs,
    undefined,
  );
});

t.test('a silent round times out into backoff; backoff windows widen', async (t) => {
  const p = mk();
  p.propose('v');
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) {
    const out = p.tick(); // timeout → backoff
    delays.push(out.wakeAfterMs ?? -1);
    p.tick(); // backoff → new round
  }
  t.ok(
    delays.every((d) => d >= 10 && d <= 400),
    `delays within bounds: ${delays}`,
  );
  t.equal(p.view().rounds, 13);
  t.ok(new Set(delays).size > 3, 'delays are randomised');
});

t.test('a decided message stops the proposer', async (t) => {
  const p = mk();
  p.propose('v');
  const out = p.step({ type: 'paxos.decided', from: 'L', value: 'w' });
  t.same(out.chosen?.value, 'w');
  t.same(out.send, []);
  t.same(p.tick().send, []);
});
