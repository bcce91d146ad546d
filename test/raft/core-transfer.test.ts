/**
 * Leadership transfer (thesis §3.10): TimeoutNow once the target has caught up.
 */
import t from 'tap';
import { CoreNet } from '../helpers/raft-net.js';

t.test('leadership moves to an up-to-date follower without pre-vote', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  const term = net.core('a').term;
  net.core('a').transferLeadership('b');
  net.stabilize();
  t.equal(net.core('b').role, 'leader');
  t.equal(net.core('b').term, term + 1);
  t.equal(net.core('a').leader, 'b');
  t.ok(net.sent.some((m) => m.type === 'timeoutNow' && m.to === 'b'));
});

t.test('a lagging target is caught up first, then gets TimeoutNow', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.heal();
  net.core('a').transferLeadership('c');
  t.throws(() => net.core('a').propose(new Uint8Array([1])), {
    code: 'SYNOD_ERR_RAFT_PROPOSAL_DROPPED',
  });
  net.run(3);
  t.equal(net.core('c').role, 'leader');
  t.same(net.commands('c'), ['v0', 'v1', 'v2', 'v3', 'v4']);
});

t.test('a transfer that cannot finish within an election timeout is abandoned', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('c');
  net.core('a').transferLeadership('c');
  t.equal(net.core('a').leadTransferee, 'c');
  for (let i = 0; i < 10; i++) net.tick('a');
  net.stabilize();
  t.equal(net.core('a').leadTransferee, undefined);
  t.equal(net.core('a').role, 'leader');
  net.core('a').propose(new Uint8Array([1]));
});

t.test('transfer to a learner or an unknown node is refused', async (t) => {
  const net = new CoreNet(['a', 'b', 'l'], {}, 1, ['a', 'b'], ['l']);
  net.elect('a');
  t.throws(() => net.core('a').transferLeadership('l'), { code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE' });
  t.throws(() => net.core('a').transferLeadership('zz'), {
    code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
  });
  t.throws(() => net.core('b').transferLeadership('a'), { code: 'SYNOD_ERR_RAFT_NOT_LEADER' });
});
