/**
 * The delay relay on its own (test/chaos/harness/delay-relay.ts), on loopback without root:
 * a byte stream through it arrives whole and in order however the jitter falls and however
 * much is queued (backpressure), only the configured direction is held, and `reset` closes
 * every relayed connection. The latency it adds between namespaced nodes is tested in
 * latency.test.ts (root).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { Random } from '../../lib/random.js';
import { freePort } from '../helpers/node-processes.js';
import { type Relay, startRelay } from './harness/delay-relay.js';

/** A server that answers each connection with a digest of everything it received. */
async function digestServer(): Promise<{ port: number; close: () => void }> {
  const port = await freePort();
  const srv = net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (b: Buffer) => {
      h.update(b);
      n += b.length;
    });
    s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  return { port, close: () => srv.close() };
}

async function sendThrough(port: number, chunks: Buffer[]): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  let reply = '';
  const done = new Promise<string>((r, j) => {
    s.on('data', (b: Buffer) => {
      reply += b.toString();
    });
    s.on('end', () => r(reply));
    s.on('error', j);
  });
  for (const c of chunks) if (!s.write(c)) await new Promise((r) => s.once('drain', r));
  s.end();
  return done;
}

async function relayTo(
  target: number,
  delayed: 'up' | 'down',
  seed = 1,
): Promise<{ relay: Relay; port: number }> {
  const port = await freePort();
  const relay = await startRelay(
    '127.0.0.1',
    [{ listenPort: port, host: '127.0.0.1', port: target, delayed }],
    new Random(seed),
  );
  return { relay, port };
}

t.test('a stream arrives whole and in order under jitter and backpressure', async (t) => {
  const srv = await digestServer();
  const { relay, port } = await relayTo(srv.port, 'up');
  t.teardown(async () => {
    await relay.close();
    srv.close();
  });
  relay.settings.delayMs = 15;
  relay.settings.jitterMs = 15; // due times vary by 30 ms; bytes must still leave in order
  const r = new Random(7);
  // 24 MiB in chunks of 1 B .. 256 KiB: above the relay's high-water mark, so it must pause.
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < 24 * 1024 * 1024) {
    const c = Buffer.alloc(1 + r.int(256 * 1024));
    for (let i = 0; i < c.length; i += 997) c[i] = r.int(256);
    chunks.push(c);
    total += c.length;
  }
  const want = `${total} ${createHash('sha256').update(Buffer.concat(chunks)).digest('hex')}`;
  t.equal(
    await sendThrough(port, chunks),
    want,
    `${chunks.length} chunks, ${total} bytes, same digest`,
  );
  t.ok(relay.stats.delayedChunks > 0, `chunks were held (${relay.stats.delayedChunks})`);
  t.ok((relay.stats.minHeldMs ?? 0) >= 0, 'held times recorded');
});

t.test('only the configured direction is held', async (t) => {
  const srv = await digestServer();
  const up = await relayTo(srv.port, 'down');
  t.teardown(async () => {
    await up.relay.close();
    srv.close();
  });
  up.relay.settings.delayMs = 50;
  const reply = await sendThrough(up.port, [Buffer.from('hello')]);
  t.match(reply, /^5 /, 'the answer came back');
  t.equal(up.relay.stats.passedChunks >= 1, true, 'the client side passed at once');
  t.equal(up.relay.stats.delayedChunks, 1, 'only the answer (one chunk) was held');
  t.ok((up.relay.stats.minHeldMs ?? 0) >= 49, `for the delay (${up.relay.stats.minHeldMs} ms)`);
});

t.test('reset closes every relayed connection and zeroes the delay', async (t) => {
  const srv = await digestServer();
  const { relay, port } = await relayTo(srv.port, 'up');
  t.teardown(async () => {
    await relay.close();
    srv.close();
  });
  relay.settings.delayMs = 1000;
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  s.write('held for a second');
  const closed = new Promise((r) => s.once('close', r));
  s.on('error', () => {});
  while (relay.stats.open === 0) await new Promise((r) => setImmediate(r));
  relay.reset();
  await closed;
  t.equal(relay.stats.open, 0, 'no connection left');
  t.equal(relay.settings.delayMs, 0, 'delay back to 0');
  t.equal(relay.stats.connections, 0, 'counters start again');
});
