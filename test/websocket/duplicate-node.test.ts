/**
 * Identity takeover (review finding): a second process that holds the cluster secret and
 * claims the id of a node whose link is alive is refused with SYNOD_ERR_DUPLICATE_NODE,
 * logged on both sides, and the real node keeps its link; once the real node is gone the
 * newcomer takes over (a restart). On the old code the newcomer took the link and the real
 * node was locked out as a stale incarnation.
 */
import t from 'tap';
import type { LinkStatus } from '../../lib/transport.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import {
  collect,
  env,
  linkUp,
  ManualClock,
  startNode,
  until,
  waitFor,
} from '../helpers/ws-util.js';

// Heartbeats far longer than the test, so only the liveness probe (handshakeTimeoutMs / 2 =
// 1 s here) decides; the probe is answered within a round trip by a live node.
const quiet = { heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 60_000, handshakeTimeoutMs: 2000 };

t.test(
  'a second live process claiming a node id is refused; the real one keeps its link',
  async (t) => {
    const a = await startNode('a', { secret: 's', ...quiet });
    const b1 = await startNode('b', {
      secret: 's',
      peers: [`a=${a.url}`],
      listen: undefined,
      ...quiet,
    });
    await linkUp(b1.t, 'a');
    await until(() => a.t.linkStatus('b')?.state === 'up', 5000, 'a sees b1');
    const b1Events: LinkStatus[] = [];
    const sub = b1.t.links$.subscribe((s) => b1Events.push(s));
    const b2 = await startNode('b', {
      secret: 's',
      peers: [`a=${a.url}`],
      listen: undefined,
      backoff: { initialMs: 50, maxMs: 200 },
      ...quiet,
    });
    t.teardown(async () => {
      sub.unsubscribe();
      await b2.t.close();
      await b1.t.close();
      await a.t.close();
    });
    const refused = await waitFor(
      b2.t.links$,
      (s) => s.peer === 'a' && (s.reason ?? '').startsWith(ErrorCode.DUPLICATE_NODE),
      10_000,
      'b2 refused',
    );
    t.not(refused.state, 'up', 'the newcomer has no link');
    t.match(
      refused.reason,
      /node b is already connected to a from a live process; give each node its own id/,
    );
    // both sides log it at error level, each with what to do
    t.ok(
      a.log.lines.some(
        (l) =>
          l.level === 'error' &&
          l.message.includes(`${ErrorCode.DUPLICATE_NODE}: node b is already connected`) &&
          l.message.includes('answered a liveness probe') &&
          l.message.includes('stop the extra process or give it its own id'),
      ),
      'the node holding the link logs the refusal and the fix',
    );
    t.ok(
      b2.log.lines.some(
        (l) =>
          l.level === 'error' &&
          l.message.includes(`refused the connection: ${ErrorCode.DUPLICATE_NODE}`) &&
          l.message.includes('give each node its own id'),
      ),
      'the refused process logs it and the fix',
    );
    t.ok((a.t.counters().errors[ErrorCode.DUPLICATE_NODE] ?? 0) >= 1, 'counted by a');
    t.ok((b2.t.counters().errors[ErrorCode.DUPLICATE_NODE] ?? 0) >= 1, 'counted by b2');
    // the real b was never disturbed
    t.equal(a.t.linkStatus('b')?.incarnation, b1.t.incarnation, 'a keeps the real b');
    t.same(
      b1Events.filter((s) => s.state !== 'up'),
      [],
      'the real b never saw its link go down',
    );
    t.equal(
      b1.t.counters().errors[ErrorCode.STALE_INCARNATION],
      undefined,
      'real b not locked out',
    );
    const got = collect(b1.t.inbound$, 1);
    a.t.send(env('b/x', 'still to the real b'));
    t.equal((await got)[0]!.m, 'still to the real b');

    // A real restart: the old process goes away, and the waiting one takes over on a redial.
    await b1.t.close();
    const up = await waitFor(
      a.t.links$,
      (s) => s.peer === 'b' && s.state === 'up' && s.incarnation === b2.t.incarnation,
      10_000,
      'b2 up after b1 left',
    );
    t.equal(up.incarnation, b2.t.incarnation, 'the next incarnation takes over once b1 is gone');
    const got2 = collect(b2.t.inbound$, 1);
    a.t.send(env('b/x', 'to the new b'));
    t.equal((await got2)[0]!.m, 'to the new b');
  },
);

t.test('an impostor copying the live incarnation id is refused too', async (t) => {
  const a = await startNode('a', { secret: 's', ...quiet });
  const b = await startNode('b', {
    secret: 's',
    peers: [`a=${a.url}`],
    listen: undefined,
    ...quiet,
  });
  t.teardown(async () => {
    await b.t.close();
    await a.t.close();
  });
  await linkUp(b.t, 'a');
  await until(() => a.t.linkStatus('b')?.state === 'up', 5000, 'a sees b');
  // the incarnation id is not secret (every handshake shows it); a member can copy it
  const copy = { ...identity('b', 's'), inc: b.t.incarnation };
  const outcome = await rawDial(a.url, copy, 'a').then(
    (ws) => {
      ws.terminate();
      return 'accepted';
    },
    (err: Error) => err.message,
  );
  t.match(outcome, /closed 4023 SYNOD_ERR_DUPLICATE_NODE/, 'refused with close code 4023');
  t.equal(a.t.linkStatus('b')?.state, 'up', 'the real link stays up');
  const got = collect(b.t.inbound$, 1);
  a.t.send(env('b/x', 'still there'));
  t.equal((await got)[0]!.m, 'still there');
});

t.test(
  'the other dialler, same incarnation: tie-break during a simultaneous dial, probe after',
  async (t) => {
    // c (higher id) dialled b; a connection from "b" with b's incarnation would win the
    // tie-break (the lower id's dial is kept). Right after c's link came up that is what a
    // simultaneous dial looks like, so the tie-break applies; later it cannot be one, so the
    // current link is probed, b answers, and the newcomer is refused.
    const clock = new ManualClock();
    const b = await startNode('b', { secret: 's', ...quiet });
    const c = await startNode('c', {
      secret: 's',
      ...quiet,
      handshakeTimeoutMs: 1000,
      clock,
      peers: [`b=${b.url}`],
    });
    t.teardown(async () => {
      await c.t.close(0);
      await b.t.close();
    });
    await linkUp(c.t, 'b');
    const copy = { ...identity('b', 's'), inc: b.t.incarnation };
    clock.advance(2001); // past 2 × handshakeTimeoutMs since c's link came up
    const late = await rawDial(c.url, copy, 'c').then(
      (ws) => {
        ws.terminate();
        return 'accepted';
      },
      (err: Error) => err.message,
    );
    t.match(
      late,
      /closed 4023 SYNOD_ERR_DUPLICATE_NODE/,
      'outside the race window: probed and refused',
    );
    t.equal(c.t.linkStatus('b')?.state, 'up', 'the real link stays up');
    t.same(
      c.t
        .connectionsTo('b')
        .filter((x) => x.active)
        .map((x) => x.role),
      ['dialer'],
      'still the connection c dialled',
    );
    const got = collect(b.t.inbound$, 1);
    c.t.send(env('b/x', 'still to b'));
    t.equal((await got)[0]!.m, 'still to b');
  },
);
