/**
 * `removePeer(id)` over real sockets: the link closes with SYNOD_ERR_PEER_REMOVED, nothing is
 * redialled, the queue goes to dead letters with the reason, later sends are refused, no timer
 * of the link is left, and `addPeer` brings the peer back.
 */
import t from 'tap';
import type { TransportDeadLetter } from '../../lib/transport.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { CountingClock } from '../helpers/counting-clock.js';
import { collect, env, linkUp, startNode, waitFor } from '../helpers/ws-util.js';

t.test('removing a live peer closes the link on both sides and refuses later sends', async (t) => {
  const b = await startNode('b');
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close(100);
    await b.t.close(100);
  });
  await linkUp(a.t, 'b');
  await linkUp(b.t, 'a');
  const bSees = waitFor(b.t.links$, (s) => s.peer === 'a' && s.state !== 'up', 10_000, 'b: a gone');
  const aSays = waitFor(a.t.links$, (s) => s.peer === 'b' && s.state === 'down', 10_000, 'down');
  t.equal(a.t.removePeer('b', 'left the cluster'), true, 'removePeer returns true');
  const down = await aSays;
  t.match(down.reason, /^SYNOD_ERR_PEER_REMOVED: node b left the cluster/, 'down, with the code');
  t.match((await bSees).reason, /SYNOD_ERR_PEER_REMOVED/, 'the peer is told why (close reason)');
  t.same(a.t.peers(), [], 'b is no longer a peer');
  t.equal(a.t.linkStatus('b'), undefined, 'no link status for b');
  const dl = collect(a.t.deadLetters$, 1);
  t.equal(a.t.send(env('b/x', 1)), false, 'a send to b is refused');
  t.equal((await dl)[0]?.code, ErrorCode.UNKNOWN_PEER, 'as an unknown peer');
  t.equal(a.t.removePeer('b'), false, 'removing it again: false');
});

t.test('removing a peer that is down: queue dead-lettered, no redial, no timer left', async (t) => {
  const clock = new CountingClock();
  const b1 = await startNode('b');
  const port = b1.t.address()?.port as number;
  const a = await startNode('a', {
    clock,
    peers: [`b=${b1.url}`],
    backoff: { initialMs: 10, maxMs: 20 },
  });
  t.teardown(() => a.t.close(100));
  await linkUp(a.t, 'b');
  const gone = waitFor(a.t.links$, (s) => s.peer === 'b' && s.state !== 'up');
  await b1.t.close(100);
  await gone;
  for (let i = 0; i < 3; i++) t.ok(a.t.send(env('b/x', i)), `queued ${i} while b is away`);
  const letters: TransportDeadLetter[] = [];
  const sub = a.t.deadLetters$.subscribe((d) => letters.push(d));
  const before = clock.pending.size;
  t.ok(before > 0, `a holds timers for b while it is away (${before})`);
  t.ok(a.t.removePeer('b', 'left the cluster (backup agent)'));
  sub.unsubscribe();
  t.same(
    letters.map((d) => [d.envelope.m, d.code]),
    [
      [0, ErrorCode.PEER_REMOVED],
      [1, ErrorCode.PEER_REMOVED],
      [2, ErrorCode.PEER_REMOVED],
    ],
    'the queue went to dead letters with SYNOD_ERR_PEER_REMOVED',
  );
  t.match(letters[0]?.reason, /left the cluster \(backup agent\)/, 'with the reason given');
  t.same(clock.left(), [], 'no reconnect or unreachable timer is left for b');
  // b comes back at the same address: a does not dial it (nothing to wait for: no timer).
  const connections = a.t.counters().connections;
  const b2 = await startNode('b', { listen: { host: '127.0.0.1', port } });
  t.teardown(() => b2.t.close(100));
  t.same(clock.left(), [], 'still no timer: nothing will redial b');
  t.equal(a.t.counters().connections, connections, 'no new connection to b');
  // addPeer: the operator (or a re-join) brings it back.
  a.t.addPeer(`b=${b2.url}`);
  const up = await linkUp(a.t, 'b');
  t.equal(up.incarnation, b2.t.incarnation, 'addPeer after removePeer links again');
  const got = collect(b2.t.inbound$, 1);
  t.ok(a.t.send(env('b/y', 'back')));
  t.equal((await got)[0]?.m, 'back', 'and traffic flows');
});
