import t from 'tap';
import { AcceptorCore } from '../../actors/paxos/acceptor.js';
import { ballot } from '../../actors/paxos/ballot.js';

const b = ballot;

t.test('promises a higher ballot and persists it before the promise', async (t) => {
  const a = new AcceptorCore({ id: 'A', learners: ['L1'] });
  const out = a.step({ type: 'paxos.prepare', from: 'P', ballot: b(1, 'P') });
  t.same(out.persist, { promised: b(1, 'P'), accepted: null });
  t.same(out.send, [
    { to: 'P', msg: { type: 'paxos.promise', from: 'A', ballot: b(1, 'P'), accepted: null } },
  ]);
});

t.test('a duplicate prepare is promised again without a new write', async (t) => {
  const a = new AcceptorCore({ id: 'A' });
  a.step({ type: 'paxos.prepare', from: 'P', ballot: b(1, 'P') });
  const out = a.step({ type: 'paxos.prepare', from: 'P', ballot: b(1, 'P') });
  t.equal(out.persist, undefined);
  t.equal(out.send[0]?.msg.type, 'paxos.promise');
});

t.test('a lower prepare or accept is nacked with the promised ballot', async (t) => {
  const a = new AcceptorCore({ id: 'A' });
  a.step({ type: 'paxos.prepare', from: 'Q', ballot: b(5, 'Q') });
  const p = a.step({ type: 'paxos.prepare', from: 'P', ballot: b(4, 'Z') });
  t.same(p.send, [
    {
      to: 'P',
      msg: { type: 'paxos.nack', from: 'A', ballot: b(4, 'Z'), promised: b(5, 'Q') },
    },
  ]);
  t.equal(p.persist, undefined);
  const acc = a.step({ type: 'paxos.accept', from: 'P', ballot: b(5, 'P'), value: 'x' });
  t.equal(acc.send[0]?.msg.type, 'paxos.nack', '(5,P) < (5,Q)');
  t.equal(a.state.accepted, null, 'nothing accepted');
});

t.test('accepts at or above the promise, persists, tells proposer and learners', async (t) => {
  const a = new AcceptorCore({ id: 'A', learners: ['L1', 'L2'] });
  a.step({ type: 'paxos.prepare', from: 'P', ballot: b(2, 'P') });
  const out = a.step({ type: 'paxos.accept', from: 'P', ballot: b(2, 'P'), value: 'v' });
  t.same(out.persist, { promised: b(2, 'P'), accepted: { ballot: b(2, 'P'), value: 'v' } });
  t.same(
    out.send.map((s) => s.to),
    ['P', 'L1', 'L2'],
  );
  // later prepare reports the accepted proposal
  const p = a.step({ type: 'paxos.prepare', from: 'Q', ballot: b(3, 'Q') });
  t.same(p.send[0]?.msg, {
    type: 'paxos.promise',
    from: 'A',
    ballot: b(3, 'Q'),
    accepted: { ballot: b(2, 'P'), value: 'v' },
  });
  // an accept above the promise without a prepare is accepted too (phase 2 may skip ahead)
  const hi = a.step({ type: 'paxos.accept', from: 'R', ballot: b(9, 'R'), value: 'v' });
  t.same(hi.persist?.promised, b(9, 'R'));
});

t.test('a restarted acceptor keeps its promise', async (t) => {
  const a = new AcceptorCore({ id: 'A' });
  const out = a.step({ type: 'paxos.prepare', from: 'Q', ballot: b(7, 'Q') });
  const restarted = new AcceptorCore({ id: 'A' }, out.persist);
  const r = restarted.step({ type: 'paxos.accept', from: 'P', ballot: b(6, 'P'), value: 'x' });
  t.equal(r.send[0]?.msg.type, 'paxos.nack');
  t.equal(restarted.step({ type: 'paxos.query', from: 'x' }).send.length, 0, 'ignores others');
});
