/**
 * Linearizable reads in the pure core: ReadIndex (thesis §6.4), forwarded from followers,
 * and lease reads (opt-in).
 */
import t from 'tap';
import { RaftError } from '../../actors/raft/core/types.js';
import { CoreNet } from '../helpers/raft-net.js';

function readStates(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readStates);
}
function readFailures(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readFailures);
}

t.test('ReadIndex on the leader is served after a quorum confirms leadership', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.propose('a', 'x');
  const a = net.core('a');
  net.queue.length = 0;
  a.readIndex('r1');
  net.drain('a');
  t.same(readStates(net, 'a'), [], 'not before the heartbeat round');
  const hbs = net.queue.filter((m) => m.type === 'heartbeat');
  t.ok(hbs.length === 2 && hbs.every((m) => m.type === 'heartbeat' && m.context === 'r1'));
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
});

t.test('a leader cut off from its quorum serves no read', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('a');
  net.core('a').readIndex('r1');
  net.run(5);
  t.same(readStates(net, 'a'), []);
  net.run(20); // check-quorum demotes it: the read fails
  t.same(
    readFailures(net, 'a').map((f) => f.context),
    ['r1'],
  );
});

t.test(
  'a follower forwards ReadIndex to the leader and gets the leader commit index',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.propose('a', 'x');
    net.core('b').readIndex('fr');
    net.stabilize();
    t.same(readStates(net, 'b'), [{ context: 'fr', index: net.core('a').log.committed }]);
  },
);

t.test('a node with no leader fails the read at once', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.drainAll();
  net.core('b').readIndex('x');
  net.drain('b');
  t.same(readFailures(net, 'b'), [{ context: 'x', reason: 'NotLeader' }]);
});

t.test('reads wait until the new leader commits an entry of its term', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.drainAll();
  // Hold every append so the no-op cannot commit yet.
  net.filter = (m) => m.type !== 'append';
  net.elect('a');
  const a = net.core('a');
  t.equal(a.role, 'leader');
  a.readIndex('early');
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'deferred: the commit index may be stale');
  net.filter = undefined;
  net.run(3);
  const rs = readStates(net, 'a');
  t.equal(rs.length, 1);
  t.ok(rs[0]!.index >= 2, 'served at an index covering the no-op');
});

t.test('lease reads are answered at once by a leader (checkQuorum required)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { readOnly: 'lease' });
  net.elect('a');
  net.queue.length = 0;
  net.core('a').readIndex('l1');
  net.drain('a');
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['l1'],
  );
  t.equal(net.queue.filter((m) => m.type === 'heartbeat').length, 0, 'no heartbeat round');
  t.throws(() => new CoreNet(['a'], { readOnly: 'lease', checkQuorum: false }), RaftError);
});

t.test('many reads share one confirmation round', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  const a = net.core('a');
  a.readIndex('r1');
  a.readIndex('r2');
  a.readIndex('r3');
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['r1', 'r2', 'r3'],
  );
});
