import t from 'tap';
import { Random } from '../../lib/random.js';
import { Backoff } from '../../transports/websocket/backoff.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import { collect, env, linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

t.test('backoff grows exponentially, is capped and jittered, and is seeded', async (t) => {
  const mk = () =>
    new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 }, new Random(7));
  const b = mk();
  const d = Array.from({ length: 8 }, () => b.next());
  const caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
  d.forEach((v, i) => {
    t.ok(
      v <= caps[i]! && v >= caps[i]! / 2,
      `attempt ${i}: ${v} within [${caps[i]! / 2}, ${caps[i]}]`,
    );
  });
  t.same(
    Array.from(
      { length: 8 },
      (
        (c) => () =>
          c.next()
      )(mk()),
    ),
    d,
    'same seed, same delays',
  );
  t.ok(new Set(d.slice(4)).size > 1, 'jitter spreads capped delays');
  b.reset();
  t.ok(b.next() <= 100, 'reset');
});

t.test(
  'peer restarts with a new incarnation: link recovers, queued traffic delivered',
  async (t) => {
    const b1 = await startNode('b');
    const port = b1.t.address()!.port;
    const a = await startNode('a', {
      peers: [`b=${b1.url}`],
      backoff: { initialMs: 20, maxMs: 200 },
    });
    t.teardown(() => a.t.close());
    const first = await linkUp(a.t, 'b');
    t.equal(first.incarnation, b1.t.incarnation);
    const down = waitFor(a.t.links$, (s) => s.state !== 'up');
    await b1.t.close();
    t.not((await down).state, 'up', 'a notices');
    await waitFor(a.t.links$, (s) => s.state === 'reconnecting', 5000, 'reconnecting');
    // sent while b is away: queued
    for (let i = 0; i < 5; i++) t.ok(a.t.send(env('b/x', i)));
    const b2 = await startNode('b', { listen: { host: '127.0.0.1', port } });
    t.teardown(() => b2.t.close());
    const got = collect(b2.t.inbound$, 5);
    const up = await linkUp(a.t, 'b', 15_000);
    t.equal(up.incarnation, b2.t.incarnation, 'new incarnation reported');
    t.not(up.incarnation, first.incarnation);
    t.equal(up.reason, 'peer restarted (new incarnation)');
    t.same(
      (await got).map((e) => e.m),
      [0, 1, 2, 3, 4],
      'queued envelopes delivered in order',
    );
    const back = collect(a.t.inbound$, 1);
    b2.t.send(env('a/y', 'hello again'));
    t.equal((await back)[0]!.m, 'hello again');
  },
);

t.test(
  'an old incarnation that stopped answering is replaced when the new one connects, then refused',
  async (t) => {
    // Long heartbeats, so only the liveness probe (handshakeTimeoutMs / 2 = 500 ms) can find
    // the hung old connection; a real restart must not wait for a's heartbeat timeout.
    const a = await startNode('a', {
      secret: 's',
      heartbeatIntervalMs: 30_000,
      heartbeatTimeoutMs: 60_000,
      handshakeTimeoutMs: 1000,
    });
    t.teardown(() => a.t.close());
    // The old b: a hung process (SIGSTOP, or a machine gone without a FIN) that completed
    // its handshake and then neither sends nor answers pings.
    const old = identity('b', 's');
    const hung = await rawDial(a.url, old, 'a', { autoPong: false });
    t.teardown(() => hung.terminate());
    await until(() => a.t.linkStatus('b')?.incarnation === old.inc, 5000, 'old b linked');
    const b2 = await startNode('b', {
      secret: 's',
      peers: [`a=${a.url}`],
      listen: undefined,
      backoff: { initialMs: 20, maxMs: 200 },
    });
    t.teardown(() => b2.t.close());
    const up = await waitFor(
      a.t.links$,
      (s) => s.peer === 'b' && s.state === 'up' && s.incarnation === b2.t.incarnation,
      10_000,
      'new b up',
    );
    t.equal(up.reason, 'peer restarted (new incarnation)');
    t.ok(
      a.log.has('warn', 'no sign of life within 500 ms of a liveness probe'),
      'a says why the old connection was dropped',
    );
    t.equal(
      b2.t.counters().errors[ErrorCode.DUPLICATE_NODE],
      undefined,
      'the restart was not refused',
    );
    // the old incarnation is refused from now on (it was replaced, not merely disconnected)
    const again = await rawDial(a.url, old, 'a').then(
      (ws) => {
        ws.terminate();
        return 'accepted';
      },
      (err: Error) => err.message,
    );
    t.match(again, /closed 4022 SYNOD_ERR_STALE_INCARNATION/, 'old incarnation refused');
    t.equal(a.t.linkStatus('b')?.incarnation, b2.t.incarnation, 'link stays with the new one');
    const got = collect(b2.t.inbound$, 1);
    a.t.send(env('b/x', 'to the new one'));
    t.equal((await got)[0]!.m, 'to the new one');
  },
);
