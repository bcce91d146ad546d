import t from 'tap';
import { Random } from '../../lib/random.js';
import type { Connection } from '../../transports/websocket/connection.js';
import { PeerLink } from '../../transports/websocket/peer-link.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort } from '../helpers/node-processes.js';
import { CapturingLogger, collect, env, linkUp, until } from '../helpers/ws-util.js';

function fake(role: 'dialer' | 'acceptor', inc = 'i1', state = 'open'): Connection {
  return { role, remoteIncarnation: inc, state } as unknown as Connection;
}

function link(peer: string): PeerLink {
  const limits = {
    maxQueueEnvelopes: 10,
    maxQueueBytes: 1000,
    maxFrameBytes: 1000,
    batchBytes: 1000,
    batchEnvelopes: 10,
    maxBufferedBytes: 1000,
  };
  return new PeerLink(
    peer,
    undefined,
    limits,
    { initialMs: 1, maxMs: 2, factor: 2, jitter: 0 },
    new Random(1),
    {
      deadLetter() {},
      countFrameOut() {},
      stateChanged() {},
    },
  );
}

t.test('arbitration: the connection dialled by the lower node id wins', async (t) => {
  // local a < peer b: a's outbound (dialer role at a) beats b's inbound
  let l = link('b');
  l.dialing = fake('dialer', 'i1', 'handshake');
  t.equal(l.arbitrate(fake('acceptor'), 'a'), undefined, "a refuses b's inbound");
  // local b > peer a: a's inbound (acceptor role at b) beats b's outbound
  l = link('a');
  const mine = fake('dialer', 'i1', 'handshake');
  l.dialing = mine;
  t.same(l.arbitrate(fake('acceptor'), 'b'), [mine], 'b drops its own dial');
  // an active link dialled by the lower id stays against a new dial from the higher id
  l = link('b');
  l.active = fake('dialer');
  t.equal(l.arbitrate(fake('acceptor'), 'a'), undefined, 'same incarnation duplicate refused');
  // ... unless the peer restarted
  const old = fake('dialer', 'i1');
  l.active = old;
  t.same(l.arbitrate(fake('acceptor', 'i2'), 'a'), [old], 'new incarnation replaces');
  // the same side dialling again replaces (it believes the old one is dead)
  l = link('a');
  const prev = fake('acceptor');
  l.active = prev;
  t.same(l.arbitrate(fake('acceptor'), 'b'), [prev], 'redial replaces');
});

t.test("both nodes dial at once: exactly one link, the lower id's dial", async (t) => {
  const rounds = Number(process.env.SYNOD_WS_DIAL_ROUNDS ?? 8);
  for (let round = 0; round < rounds; round++) {
    const [pa, pb] = [await freePort(), await freePort()];
    const mk = (id: string, port: number, peer: string, peerPort: number) =>
      new WebSocketTransport({
        nodeId: id,
        listen: { host: '127.0.0.1', port },
        peers: [`${peer}=ws://127.0.0.1:${peerPort}`],
        random: new Random(round * 2 + (id === 'a' ? 1 : 2)),
        logger: new CapturingLogger(),
      });
    const a = mk('a', pa, 'b', pb);
    const b = mk('b', pb, 'a', pa);
    await Promise.all([a.start(), b.start()]);
    await Promise.all([linkUp(a, 'b'), linkUp(b, 'a')]);
    await until(
      () => a.connectionsTo('b').length === 1 && b.connectionsTo('a').length === 1,
      10_000,
      'losing connections closed',
    );
    const ca = a.connectionsTo('b')[0]!;
    const cb = b.connectionsTo('a')[0]!;
    t.ok(ca.active && cb.active, `round ${round}: one active connection on each side`);
    t.equal(ca.role, 'dialer', `round ${round}: a (lower id) dialled the link`);
    t.equal(cb.role, 'acceptor', `round ${round}: b accepted it`);
    // traffic both ways works and links stayed up throughout
    const got = collect(b.inbound$, 10);
    for (let i = 0; i < 10; i++) a.send(env('b/x', i));
    t.equal((await got).length, 10);
    t.equal(a.linkStatus('b')?.state, 'up');
    t.equal(a.counters().linksUp, 1, `round ${round}: a's link came up once (no flapping)`);
    t.equal(b.counters().linksUp, 1, `round ${round}: b's link came up once (no flapping)`);
    t.equal(b.linkStatus('a')?.state, 'up');
    await Promise.all([a.close(), b.close()]);
  }
});
