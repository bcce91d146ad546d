import t from 'tap';
import { ballot } from '../../actors/paxos/ballot.js';
import { LearnerCore, sameValue } from '../../actors/paxos/learner.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';

const q = majorityQuorums(['A', 'B', 'C']);

t.test('learns on a quorum of accepts in the same ballot only', async (t) => {
  const l = new LearnerCore({ id: 'L', quorums: q });
  l.step({ type: 'paxos.accepted', from: 'A', ballot: ballot(1, 'P'), value: 'x' });
  const other = l.step({ type: 'paxos.accepted', from: 'B', ballot: ballot(2, 'Q'), value: 'x' });
  t.equal(other.learned, undefined, 'votes from different ballots do not add up');
  const out = l.step({ type: 'paxos.accepted', from: 'B', ballot: ballot(1, 'P'), value: 'x' });
  t.same(out.learned, { value: 'x' });
  t.same(l.learned, { value: 'x' });
  t.equal(
    l.step({ type: 'paxos.accepted', from: 'C', ballot: ballot(1, 'P'), value: 'x' }).learned,
    undefined,
    'learns once',
  );
});

t.test('answers queries once it knows; queries peers while it does not', async (t) => {
  const l = new LearnerCore({ id: 'L', quorums: q, peers: ['L2', 'L3'] });
  t.same(
    l.query().send.map((s) => s.to),
    ['L2', 'L3'],
  );
  t.same(l.step({ type: 'paxos.query', from: 'L2' }).send, []);
  l.step({ type: 'paxos.decided', from: 'L2', value: { k: [1, 2] } });
  t.same(l.query().send, []);
  t.same(l.step({ type: 'paxos.query', from: 'L3' }).send, [
    { to: 'L3', msg: { type: 'paxos.decided', from: 'L', value: { k: [1, 2] } } },
  ]);
});

t.test('contradictions are flagged, never swallowed', async (t) => {
  const l = new LearnerCore({ id: 'L', quorums: q });
  l.step({ type: 'paxos.accepted', from: 'A', ballot: ballot(1, 'P'), value: 'x' });
  t.throws(
    () => l.step({ type: 'paxos.accepted', from: 'B', ballot: ballot(1, 'P'), value: 'y' }),
    { code: 'SYNOD_ERR_PAXOS_BAD_STATE' },
  );
  l.step({ type: 'paxos.decided', from: 'M', value: 'x' });
  t.throws(() => l.step({ type: 'paxos.decided', from: 'M', value: 'z' }), {
    code: 'SYNOD_ERR_PAXOS_BAD_STATE',
  });
});

t.test('sameValue is structural equality on plain data', async (t) => {
  t.ok(sameValue({ a: [1, { b: 'c' }] }, { a: [1, { b: 'c' }] }));
  t.ok(sameValue(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
  t.notOk(sameValue(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
  t.notOk(sameValue({ a: 1 }, { a: 1, b: 2 }));
  t.notOk(sameValue([1], { 0: 1 }));
  t.ok(sameValue(Number.NaN, Number.NaN));
  t.notOk(sameValue(null, {}));
});
