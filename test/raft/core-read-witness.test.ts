/**
 * Witnessed reads in the pure core (docs/raft.md, "Witnessed reads"): a read registered under a
 * witness key is served once a quorum (the leader included) confirmed the leader's term after
 * the read was invoked — by followers' witnesses sent at invocation, by heartbeat
 * acknowledgements, or both; a witness never confirms any other read; and when witnesses do not
 * come, the usual heartbeat round serves the read.
 */
import t from 'tap';
import { raftMessageProblem } from '../../actors/raft/core/messages.js';
import type { RaftCoreOptions, RaftMessage } from '../../actors/raft/core/types.js';
import { CoreNet } from '../helpers/raft-net.js';

function readStates(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readStates);
}
function readFailures(net: CoreNet, id: string) {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readFailures);
}
const heartbeats = (net: CoreNet): RaftMessage[] => net.queue.filter((m) => m.type === 'heartbeat');
const witnesses = (net: CoreNet): RaftMessage[] =>
  net.queue.filter((m) => m.type === 'readWitness');

// Regular heartbeats every 5 ticks, so a fallback after 2 ticks can be seen on its own.
const opts: Partial<RaftCoreOptions> = { readFanout: 'quorum', heartbeatTick: 5, electionTick: 50 };

function cluster(ids: string[], o: Partial<RaftCoreOptions> = opts): CoreNet {
  const net = new CoreNet(ids, o);
  net.elect(ids[0] as string);
  net.propose(ids[0] as string, 'x');
  net.stabilize();
  net.queue.length = 0;
  return net;
}

t.test('a witness arriving after the read serves it without a heartbeat round', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.drain('a');
  t.same(heartbeats(net), [], 'the leader waits for the witnesses instead of asking');
  t.same(readStates(net, 'a'), []);
  net.core('b').witnessRead('w1');
  net.drain('b');
  const w = witnesses(net);
  t.equal(w.length, 1);
  t.match(w[0], { type: 'readWitness', from: 'b', to: 'a', term: a.term, key: 'w1', v: 1 });
  t.equal(raftMessageProblem(w[0]), undefined, 'a valid wire message');
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
  t.same(heartbeats(net), [], 'still no heartbeat');
});

t.test('a witness arriving before the read is kept, and serves it at once', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  net.core('c').witnessRead('w1');
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'nothing to serve yet');
  a.readIndex('r1', 'w1');
  net.drain('a');
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
  t.equal(net.queue.length, 0, 'not one message for the read');
});

t.test('a kept witness expires after a few ticks', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  net.core('c').witnessRead('w1');
  net.stabilize();
  net.tick('a', 11);
  net.queue.length = 0;
  a.readIndex('r1', 'w1');
  net.drain('a');
  t.same(readStates(net, 'a'), [], 'the old witness no longer counts');
});

t.test('lost witnesses: the heartbeat round serves the read two ticks later', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.drain('a');
  t.same(heartbeats(net), []);
  net.tick('a', 2);
  t.equal(heartbeats(net).length, 2, 'every follower asked');
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);

  // Both followers are now known to miss witnesses: the next read asks at once.
  net.queue.length = 0;
  a.readIndex('r2', 'w2');
  net.drain('a');
  t.equal(heartbeats(net).length, 1, 'a quorum heartbeat at once, as without a witness');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 2);

  // A witness from b again: the next read waits for witnesses.
  net.core('b').witnessRead('w-other');
  net.stabilize();
  net.queue.length = 0;
  a.readIndex('r3', 'w3');
  net.drain('a');
  t.same(heartbeats(net), [], 'b witnesses again');
  net.core('b').witnessRead('w3');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 3);
});

t.test('a duplicated witness counts once', async (t) => {
  const net = cluster(['a', 'b', 'c', 'd', 'e']);
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.drain('a');
  net.core('b').witnessRead('w1');
  net.drain('b');
  const w = witnesses(net)[0] as RaftMessage;
  net.queue.push({ ...w });
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'a and b are not a quorum of five');
  net.core('c').witnessRead('w1');
  net.stabilize();
  t.same(readStates(net, 'a'), [{ context: 'r1', index: a.log.committed }]);
});

t.test('witnesses confirm their own read only, never one queued before it', async (t) => {
  const net = cluster(['a', 'b', 'c', 'd', 'e']);
  const a = net.core('a');
  net.filter = (m) => m.type !== 'heartbeat' && m.type !== 'heartbeatResp';
  a.readIndex('r1'); // a plain read, queued first
  a.readIndex('r2', 'w2');
  net.drain('a');
  net.core('b').witnessRead('w2');
  net.core('c').witnessRead('w2');
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['r2'],
    'r2 served by its witnesses; r1 still waits (w2 may predate its invocation)',
  );
  net.filter = undefined;
  net.tick('a', 5); // the regular heartbeat carries the last context (r2's)
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['r2', 'r1'],
    "heartbeat acks for r2's context serve r1 (sent after both arrived), r2 not twice",
  );
});

t.test('a witness and a heartbeat ack together confirm that read alone', async (t) => {
  const net = cluster(['a', 'b', 'c', 'd', 'e']);
  const a = net.core('a');
  // Only d's heartbeat ack gets through.
  net.filter = (m) =>
    (m.type !== 'heartbeat' && m.type !== 'heartbeatResp') || m.from === 'd' || m.to === 'd';
  a.readIndex('r1');
  a.readIndex('r2', 'w2');
  net.drain('a');
  net.core('b').witnessRead('w2');
  net.tick('a', 5);
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['r2'],
    'a + b (witness) + d (heartbeat) serve r2; for r1 only a and d confirmed after it',
  );
  t.same(readFailures(net, 'a'), []);
});

t.test('a follower in a higher term confirms nothing: the old leader serves no read', async (t) => {
  // Without check-quorum the isolated leader stays leader: a stale leader to read from.
  const net = cluster(['a', 'b', 'c'], { ...opts, checkQuorum: false });
  const a = net.core('a');
  const oldTerm = a.term;
  net.isolate('a');
  net.elect('b');
  t.ok(net.core('b').term > oldTerm);
  a.readIndex('r1', 'w1');
  net.drain('a');
  net.heal();
  // c follows b in the new term: its witness goes to b, which has no such read.
  net.core('c').witnessRead('w1');
  net.drain('c');
  const w = witnesses(net);
  t.match(w, [{ from: 'c', to: 'b', key: 'w1' }]);
  // Even forced to a, a witness in the higher term only deposes it.
  net.queue.push({ ...(w[0] as RaftMessage), to: 'a' });
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'never served by the deposed leader');
  t.same(
    readFailures(net, 'a').map((f) => f.context),
    ['r1'],
    'failed when it stepped down',
  );
  t.equal(a.role, 'follower');
});

t.test('a witness in a lower term is ignored', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.drain('a');
  net.queue.push({ type: 'readWitness', from: 'b', to: 'a', term: a.term - 1, v: 1, key: 'w1' });
  net.stabilize();
  t.same(readStates(net, 'a'), []);
});

t.test('nodes without a leader, candidates and the leader send no witness', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], opts);
  net.drainAll();
  net.core('b').witnessRead('w');
  net.drain('b');
  t.same(witnesses(net), [], 'no leader known');
  net.elect('a');
  net.queue.length = 0;
  net.core('a').witnessRead('w');
  net.drain('a');
  t.same(witnesses(net), [], 'the leader itself');
  t.throws(() => net.core('b').witnessRead(''), { code: 'SYNOD_ERR_RAFT_BAD_MESSAGE' });
  t.throws(() => net.core('b').witnessRead('k'.repeat(257)), {
    code: 'SYNOD_ERR_RAFT_BAD_MESSAGE',
  });
});

t.test('learners’ witnesses do not count', async (t) => {
  const net = new CoreNet(['a', 'b', 'c', 'l'], opts, 1, ['a', 'b', 'c'], ['l']);
  net.elect('a');
  net.propose('a', 'x');
  net.stabilize();
  net.queue.length = 0;
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.drain('a');
  net.core('l').witnessRead('w1');
  net.stabilize();
  t.same(readStates(net, 'a'), []);
  net.core('b').witnessRead('w1');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 1);
});

t.test('joint configuration: witnesses from both majorities are needed', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], opts);
  net.elect('a');
  net.addNode('d');
  net.addNode('e');
  const a = net.core('a');
  a.proposeConfChange(
    [
      { type: 'addVoter', node: 'd' },
      { type: 'addVoter', node: 'e' },
      { type: 'remove', node: 'b' },
      { type: 'remove', node: 'c' },
    ],
    { autoLeave: false },
  );
  net.run(5);
  t.ok(a.config.joint);
  net.queue.length = 0;
  a.readIndex('r1', 'w1');
  net.drain('a');
  net.core('d').witnessRead('w1');
  net.core('e').witnessRead('w1');
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'the incoming majority (a, d, e) alone is not enough');
  net.core('b').witnessRead('w1');
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['r1'],
    'with b, the outgoing one too',
  );
});

t.test('a read that arrives before the leader commits in its term keeps its witness', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], opts);
  net.drainAll();
  net.filter = (m) => m.type !== 'append';
  net.elect('a');
  net.tick('a', 5); // a heartbeat: b learns its leader
  net.stabilize();
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.core('b').witnessRead('w1');
  net.stabilize();
  t.same(readStates(net, 'a'), [], 'deferred: the commit index may be stale');
  net.filter = undefined;
  net.sent.length = 0;
  net.run(5);
  const rs = readStates(net, 'a');
  t.equal(rs.length, 1);
  t.notOk(
    net.sent.some((m) => m.type === 'heartbeat' && m.context !== undefined),
    'served by the kept witness, not by a heartbeat round',
  );
  t.ok((rs[0]?.index ?? 0) >= 2, 'served at an index covering the no-op');
});

t.test('a readWitness of another version is malformed', async (t) => {
  const m = { type: 'readWitness', from: 'b', to: 'a', term: 1, key: 'k' };
  t.equal(raftMessageProblem({ ...m, v: 1 }), undefined);
  t.match(raftMessageProblem({ ...m, v: 2 }), /version 2 is not supported/);
  t.match(raftMessageProblem(m), /version undefined/);
  t.equal(raftMessageProblem({ ...m, v: 1, key: '' }), 'bad witness key');
});

t.test('a served witnessed read is not failed again when leadership is lost', async (t) => {
  const net = cluster(['a', 'b', 'c']);
  const a = net.core('a');
  a.readIndex('r1', 'w1');
  net.core('b').witnessRead('w1');
  net.stabilize();
  t.equal(readStates(net, 'a').length, 1);
  net.isolate('a');
  net.run(120);
  t.equal(a.role, 'follower');
  t.same(readFailures(net, 'a'), []);
});
