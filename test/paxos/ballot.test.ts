import fc from 'fast-check';
import t from 'tap';
import {
  assertBallot,
  ballotAtLeast,
  ballotGreater,
  compareBallots,
  isBallot,
  nextBallot,
  ZERO_BALLOT,
} from '../../actors/paxos/ballot.js';

const arbBallot = fc.record({
  round: fc.nat({ max: 50 }),
  proposer: fc.constantFrom('a', 'b', 'c', 'p1', 'p10'),
});

t.test('ballots order by round, then by proposer id', async (t) => {
  t.equal(compareBallots({ round: 1, proposer: 'b' }, { round: 2, proposer: 'a' }), -1);
  t.equal(compareBallots({ round: 2, proposer: 'b' }, { round: 2, proposer: 'a' }), 1);
  t.equal(compareBallots({ round: 2, proposer: 'a' }, { round: 2, proposer: 'a' }), 0);
  t.ok(ballotGreater({ round: 1, proposer: 'a' }, ZERO_BALLOT));
});

t.test('the order is total, antisymmetric and transitive', async (t) => {
  fc.assert(
    fc.property(arbBallot, arbBallot, arbBallot, (a, b, c) => {
      const ab = compareBallots(a, b);
      if (ab !== -compareBallots(b, a)) return false;
      if (ab === 0 && (a.round !== b.round || a.proposer !== b.proposer)) return false;
      if (ab <= 0 && compareBallots(b, c) <= 0 && compareBallots(a, c) > 0) return false;
      return true;
    }),
  );
  t.pass('property held');
});

t.test('nextBallot is the smallest own ballot strictly above', async (t) => {
  fc.assert(
    fc.property(arbBallot, fc.constantFrom('a', 'b', 'c', 'p1', 'p10'), (above, me) => {
      const n = nextBallot(above, me);
      if (n.proposer !== me || !ballotGreater(n, above)) return false;
      // no smaller own ballot is above `above`
      const smaller = { round: n.round - 1, proposer: me };
      return n.round === 1 || !ballotGreater(smaller, above);
    }),
  );
  t.same(nextBallot(ZERO_BALLOT, 'a'), { round: 1, proposer: 'a' });
  t.same(nextBallot({ round: 3, proposer: 'b' }, 'a'), { round: 4, proposer: 'a' });
  t.same(nextBallot({ round: 3, proposer: 'a' }, 'b'), { round: 3, proposer: 'b' });
  t.ok(ballotAtLeast({ round: 3, proposer: 'b' }, { round: 3, proposer: 'b' }));
});

t.test('validation rejects malformed ballots with a stable code', async (t) => {
  t.ok(isBallot({ round: 0, proposer: '' }));
  t.notOk(isBallot({ round: -1, proposer: 'a' }));
  t.notOk(isBallot({ round: 1.5, proposer: 'a' }));
  t.notOk(isBallot({ round: 1 }));
  t.notOk(isBallot(null));
  t.throws(() => assertBallot('x', 'prepare.ballot'), { code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE' });
});
