import t from 'tap';
import { Random } from '../../lib/random.js';
import { Backoff } from '../../transports/websocket/backoff.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
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
  'a stale connection of an old incarnation is dropped when the new one connects',
  async (t) => {
    const a = await startNode('a');
    const b1 = await startNode('b', { peers: [`a=${a.url}`], listen: undefined });
    await linkUp(a.t, 'b');
    await linkUp(b1.t, 'a');
    const inc1 = b1.t.incarnation;
    const b1Down = waitFor(b1.t.links$, (s) => s.peer === 'a' && s.state !== 'up');
    // a second process claiming node b (the restarted one) connects while b1's link is up
    const b2 = await startNode('b', { peers: [`a=${a.url}`], listen: undefined });
    t.teardown(async () => {
      await b1.t.close();
      await b2.t.close();
      await a.t.close();
    });
    const up = await waitFor(
      a.t.links$,
      (s) => s.peer === 'b' && s.state === 'up' && s.incarnation === b2.t.incarnation,
    );
    t.not(up.incarnation, inc1);
    t.match((await b1Down).reason, ErrorCode.LINK_REPLACED, 'old connection closed as replaced');
    // the old incarnation is refused from now on
    await until(
      () => (b1.t.counters().errors[ErrorCode.STALE_INCARNATION] ?? 0) > 0,
      10_000,
      'stale refused',
    );
    t.equal(
      a.t.linkStatus('b')?.incarnation,
      b2.t.incarnation,
      'link stays with the new incarnation',
    );
    const got = collect(b2.t.inbound$, 1);
    a.t.send(env('b/x', 'to the new one'));
    t.equal((await got)[0]!.m, 'to the new one');
  },
);
