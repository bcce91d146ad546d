import t from 'tap';
import type { WebSocket } from 'ws';
import { encodeEnvelope } from '../../lib/codec.js';
import type { LinkStatus } from '../../lib/transport.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { FrameType } from '../../transports/websocket/frames.js';
import { identity, rawAcceptor } from '../helpers/ws-raw-peer.js';
import { env, linkUp, ManualClock, startNode, waitFor } from '../helpers/ws-util.js';

const opts = { heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 3000 };

t.test('a hung peer (no pongs, no data) is detected within the timeout', async (t) => {
  const b = await rawAcceptor(identity('b'), () => {}, { autoPong: false });
  const clock = new ManualClock();
  const a = await startNode('a', { ...opts, clock, peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close(10);
    await b.close();
  });
  await linkUp(a.t, 'b');
  const states: LinkStatus[] = [];
  a.t.links$.subscribe((s) => states.push(s));
  clock.advance(3000);
  t.equal(a.t.linkStatus('b')?.state, 'up', 'still up at the timeout boundary');
  const down = waitFor(a.t.links$, (s) => s.state !== 'up');
  clock.advance(1000);
  const s = await down;
  t.equal(s.state, 'down');
  t.match(s.reason, ErrorCode.HEARTBEAT_TIMEOUT);
  t.equal(a.t.counters().errors[ErrorCode.HEARTBEAT_TIMEOUT], 1);
  t.equal(a.t.linkStatus('b')?.state, 'reconnecting', 'then reconnecting with backoff');
  t.ok(
    a.log.lines.some((l) => l.message.includes(ErrorCode.HEARTBEAT_TIMEOUT)),
    'logged',
  );
});

t.test('negative control: a peer that answers is never declared dead', async (t) => {
  let ticks = 0;
  const b = await rawAcceptor(identity('b'), (ws: WebSocket) => {
    // after each ping (auto-answered with a pong) send one envelope, so the test knows
    // the pong has been written before it moves the clock again
    ws.on('ping', () => {
      const e = encodeEnvelope(env('a/x', ticks++));
      ws.send(Buffer.concat([Buffer.from([FrameType.BATCH]), e]));
    });
  });
  const clock = new ManualClock();
  const a = await startNode('a', { ...opts, clock, peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close(10);
    await b.close();
  });
  await linkUp(a.t, 'b');
  for (let i = 0; i < 12; i++) {
    const got = waitFor(a.t.inbound$, () => true);
    clock.advance(1000);
    await got;
  }
  t.equal(a.t.linkStatus('b')?.state, 'up', 'up after 4x the timeout of virtual time');
  t.notOk(a.t.counters().errors[ErrorCode.HEARTBEAT_TIMEOUT]);
});
