/**
 * RELIABILITY.md finding F5: after `close()` the transport must own no timer (a re-armed
 * "unreachable" or reconnect timer kept a closing process alive for `queueWhileDownMs`).
 * The transport runs on a clock that wraps the real one and counts the timers still pending,
 * so every scenario can assert "none left" right after `close()` resolves.
 */
import { createServer } from 'node:net';
import t from 'tap';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { CountingClock } from '../helpers/counting-clock.js';
import { env, linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

t.test('close() with a peer that cannot be reached leaves no timer', async (t) => {
  const clock = new CountingClock();
  const port = await deadPort();
  const a = await startNode('a', {
    clock,
    peers: [`b=ws://127.0.0.1:${port}`],
    backoff: { initialMs: 10, maxMs: 50 },
  });
  t.teardown(() => a.t.close(0));
  // two dials have failed once the second connection has been counted and closed
  await until(() => a.t.counters().connections >= 2, 10_000, 'a redial');
  t.ok(clock.pending.size > 0, `timers pending while the peer is away (${clock.pending.size})`);
  await a.t.close(100);
  t.same(clock.left(), [], 'no timer left after close()');
});

t.test('close() while start() is still listening leaves no timer', async (t) => {
  const clock = new CountingClock();
  const port = await deadPort();
  const a = new WebSocketTransport({
    nodeId: 'a',
    clock,
    listen: { host: '127.0.0.1', port: 0 },
    peers: [`b=ws://127.0.0.1:${port}`],
    logger: { log: () => {} },
  });
  t.teardown(() => a.close(0));
  const started = a.start();
  await a.close(100);
  await started.catch(() => undefined);
  t.same(clock.left(), [], 'no timer left once close() and start() have both finished');
});

t.test('close() after a link went down (peer gone) leaves no timer', async (t) => {
  const clock = new CountingClock();
  const b = await startNode('b');
  const a = await startNode('a', {
    clock,
    peers: [`b=${b.url}`],
    backoff: { initialMs: 10, maxMs: 50 },
  });
  t.teardown(() => a.t.close(0));
  await linkUp(a.t, 'b');
  const down = waitFor(a.t.links$, (s) => s.peer === 'b' && s.state !== 'up');
  await b.t.close(100);
  await down;
  t.ok(a.t.send(env('b/x', 1)), 'queued while b is away');
  await a.t.close(100);
  t.same(clock.left(), [], 'no timer left after close()');
});

t.test('close() with links up, inbound and outbound, leaves no timer', async (t) => {
  const clock = new CountingClock();
  const b = await startNode('b');
  const a = await startNode('a', { clock, peers: [`b=${b.url}`] });
  t.teardown(() => a.t.close(0));
  const c = await startNode('c', { peers: [`a=${a.url}`] });
  t.teardown(async () => {
    await b.t.close(100);
    await c.t.close(100);
  });
  await linkUp(a.t, 'b');
  await linkUp(a.t, 'c');
  await a.t.close(100);
  t.same(clock.left(), [], 'no timer left after close()');
  await until(() => c.t.linkStatus('a')?.state !== 'up', 10_000, 'c sees a go');
});
