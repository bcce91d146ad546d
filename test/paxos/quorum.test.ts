import t from 'tap';
import { majorityQuorums, quorumSystem } from '../../actors/paxos/quorum.js';

const five = ['a', 'b', 'c', 'd', 'e'];

t.test('majority quorums by default', async (t) => {
  const q = majorityQuorums(five);
  t.notOk(q.isPhase1Quorum(new Set(['a', 'b'])));
  t.ok(q.isPhase1Quorum(new Set(['a', 'b', 'c'])));
  t.ok(q.isPhase2Quorum(new Set(['c', 'd', 'e'])));
  t.notOk(q.isPhase2Quorum(new Set(['c', 'd', 'x', 'y'])), 'non-members do not count');
  t.equal(q.describe(), 'phase1 3-of-5, phase2 3-of-5');
});

t.test('flexible threshold quorums: 4-of-5 phase 1 with 2-of-5 phase 2', async (t) => {
  const q = quorumSystem({ acceptors: five, phase1: 4, phase2: 2 });
  t.ok(q.isPhase2Quorum(new Set(['a', 'e'])));
  t.notOk(q.isPhase1Quorum(new Set(['a', 'b', 'c'])));
  t.ok(q.isPhase1Quorum(new Set(['a', 'b', 'c', 'd'])));
});

t.test('non-intersecting threshold quorums are refused', async (t) => {
  t.throws(() => quorumSystem({ acceptors: five, phase1: 3, phase2: 2 }), {
    code: 'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION',
  });
  t.throws(() => quorumSystem({ acceptors: ['a', 'b'], phase1: 1, phase2: 1 }), {
    code: 'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION',
  });
  // the boundary: q1 + q2 = n + 1 is fine
  t.doesNotThrow(() => quorumSystem({ acceptors: five, phase1: 5, phase2: 1 }));
});

t.test('malformed configurations are refused', async (t) => {
  t.throws(() => quorumSystem({ acceptors: [] }), { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' });
  t.throws(() => quorumSystem({ acceptors: ['a', 'a', 'b'] }), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
  t.throws(() => quorumSystem({ acceptors: five, phase1: 6, phase2: 3 }), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
  t.throws(() => quorumSystem({ acceptors: five, phase1: 0, phase2: 5 }), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
  t.throws(() => quorumSystem({ acceptors: five, phase1: 2.5, phase2: 5 }), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
});

t.test('explicit quorums: grid quorums intersect, disjoint ones are refused', async (t) => {
  // 2x2 grid a b / c d: phase 1 = a column, phase 2 = a row
  const q = quorumSystem({
    acceptors: ['a', 'b', 'c', 'd'],
    phase1Quorums: [
      ['a', 'c'],
      ['b', 'd'],
    ],
    phase2Quorums: [
      ['a', 'b'],
      ['c', 'd'],
    ],
  });
  t.ok(q.isPhase2Quorum(new Set(['c', 'd'])));
  t.notOk(q.isPhase2Quorum(new Set(['a', 'd'])));
  t.ok(q.isPhase1Quorum(new Set(['b', 'd', 'a'])));
  t.match(q.describe(), /phase1 \{a,c\}/);
  t.throws(
    () =>
      quorumSystem({
        acceptors: ['a', 'b', 'c', 'd'],
        phase1Quorums: [['a', 'b']],
        phase2Quorums: [['c', 'd']],
      }),
    { code: 'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION' },
  );
  t.throws(
    () =>
      quorumSystem({
        acceptors: ['a', 'b'],
        phase1Quorums: [['a', 'z']],
        phase2Quorums: [['a']],
      }),
    { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' },
  );
  t.throws(() => quorumSystem({ acceptors: ['a'], phase1Quorums: [], phase2Quorums: [['a']] }), {
    code: 'SYNOD_ERR_PAXOS_BAD_CONFIG',
  });
});
