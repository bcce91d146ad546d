/**
 * `readFanout: 'quorum'`: a ReadIndex round asks only as many voters as a quorum needs (the
 * last round's first confirmer first), and asks everyone once a read has waited two ticks or
 * a regular heartbeat goes out. Same safety as 'all': a read is served only after a quorum
 * acknowledged a heartbeat sent after it arrived.
 */
import t from 'tap';
import { RaftCore } from '../../actors/raft/core/raft-core.js';
import type { RaftCoreOptions } from '../../actors/raft/core/types.js';
import { CoreNet } from '../helpers/raft-net.js';

function readStates(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readStates);
}
function readFailures(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readFailures);
}
function readHeartbeats(net: CoreNet, context: string): string[] {
  return net.queue
    .filter((m) => m.type === 'heartbeat' && m.context === context)
    .map((m) => m.to)
    .sort();
}

// Regular heartbeats every 5 ticks, so the widening after 2 ticks can be seen on its own.
const quorum: Partial<RaftCoreOptions> = {
  readFanout: 'quorum',
  heartbeatTick: 5,
  electionTick: 50,
};

function ready3(): CoreNet {
  const net = new CoreNet(['a', 'b', 'c'], quorum);
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.queue.length = 0;
  return net;
}

t.test('a read asks one follower of three, and is served on its acknowledgement', async (t) => {
  const net = ready3();
  const a = net.core('a');
  a.readIndex('r1');
  net.drain('a');
  const asked = readHeartbeats(net, 'r1');
  t.equal(asked.length, 1, 'one heartbeat, not two');
  t.same(readStates(net, 'a'), [], 'not before the acknowledgement');
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
  // The next round asks the follower that confirmed this one.
  a.readIndex('r2');
  net.drain('a');
  t.same(readHeartbeats(net, 'r2'), asked, 'the confirmer is asked again');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 2);
});

t.test("'all' (the core's default) asks every follower", async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { heartbeatTick: 5, electionTick: 50 });
  net.elect('a');
  net.stabilize();
  net.queue.length = 0;
  net.core('a').readIndex('r1');
  net.drain('a');
  t.same(readHeartbeats(net, 'r1'), ['b', 'c']);
});

t.test('an unanswered read is asked of every follower after two ticks', async (t) => {
  const net = ready3();
  const a = net.core('a');
  a.readIndex('r1');
  net.drain('a');
  const [first] = readHeartbeats(net, 'r1');
  const other = first === 'b' ? 'c' : 'b';
  net.isolate(first as string);
  net.stabilize(); // the heartbeat to `first` is lost
  t.same(readStates(net, 'a'), [], 'no quorum yet');
  net.tick('a');
  t.same(readHeartbeats(net, 'r1'), [], 'one tick: still waiting');
  net.tick('a');
  t.same(readHeartbeats(net, 'r1'), ['b', 'c'], 'two ticks: everyone is asked');
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
  // The follower that answered is now the one asked first.
  a.readIndex('r2');
  net.drain('a');
  t.same(readHeartbeats(net, 'r2'), [other]);
});

t.test('a regular heartbeat carries the pending read to every follower', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { ...quorum, heartbeatTick: 2, electionTick: 20 });
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.queue.length = 0;
  const a = net.core('a');
  a.tick(); // heartbeatElapsed 1: the next tick sends the regular heartbeat
  net.drain('a');
  net.queue.length = 0;
  a.readIndex('r1');
  net.drain('a');
  const [first] = readHeartbeats(net, 'r1');
  net.isolate(first as string);
  net.stabilize();
  net.tick('a');
  t.same(readHeartbeats(net, 'r1'), ['b', 'c'], 'the regular heartbeat asks both');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 1);
});

t.test('five voters: a read asks two followers', async (t) => {
  const net = new CoreNet(['a', 'b', 'c', 'd', 'e'], quorum);
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.queue.length = 0;
  const a = net.core('a');
  a.readIndex('r1');
  net.drain('a');
  t.equal(readHeartbeats(net, 'r1').length, 2);
  // One acknowledgement is not a quorum of five.
  const acks: string[] = [];
  net.filter = (m) => {
    if (m.type === 'heartbeatResp' && m.context === 'r1') {
      acks.push(m.from);
      return acks.length === 1;
    }
    return true;
  };
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'one of the two acknowledgements lost: no quorum');
  net.filter = undefined;
  net.tick('a', 2);
  net.stabilize();
  t.equal(readStates(net, 'a').length, 1, 'served once everyone was asked');
});

t.test('a deposed leader asking one follower serves no read', async (t) => {
  const net = ready3();
  const a = net.core('a');
  net.isolate('a');
  a.readIndex('r1');
  net.drain('a');
  t.equal(readHeartbeats(net, 'r1').length, 1);
  net.run(120); // b or c takes over; check-quorum (every 50 ticks) demotes a
  t.same(readStates(net, 'a'), []);
  t.same(
    readFailures(net, 'a').map((f) => f.context),
    ['r1'],
  );
});

t.test('learners are never asked to confirm a read', async (t) => {
  const net = new CoreNet(['a', 'b', 'c', 'l'], quorum, 1, ['a', 'b', 'c'], ['l']);
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.queue.length = 0;
  const a = net.core('a');
  for (const ctx of ['r1', 'r2', 'r3']) {
    a.readIndex(ctx);
    net.drain('a');
    const asked = readHeartbeats(net, ctx);
    t.equal(asked.length, 1);
    t.notOk(asked.includes('l'));
    net.stabilize();
  }
  t.equal(readStates(net, 'a').length, 3);
});

t.test('a single voter serves reads without any heartbeat', async (t) => {
  const net = new CoreNet(['a'], quorum);
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.core('a').readIndex('r1');
  net.drain('a');
  t.equal(readStates(net, 'a').length, 1);
});

t.test('an unknown readFanout is refused', async (t) => {
  t.throws(
    () =>
      new RaftCore({
        id: 'a',
        random: { int: () => 0 },
        readFanout: 'some' as never,
      }),
    { code: 'SYNOD_ERR_RAFT_BAD_STATE' },
  );
});
