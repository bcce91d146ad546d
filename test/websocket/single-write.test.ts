/**
 * Batch frames leave as one socket write each (header in the encoder's headroom,
 * `Connection.sendBatch`), in both directions and for all three WebSocket length encodings;
 * a dialler with `maskFrames` still goes through `ws` (random masks) and is read the same.
 */
import net from 'node:net';
import t from 'tap';
import { BatchEncoder, FRAME_HEADROOM } from '../../transports/websocket/frames.js';
import { collect, env, linkUp, startNode } from '../helpers/ws-util.js';

/** Counts `socket.write` calls (ws's own path makes two per frame: header, then payload). */
function spyWrites(): { count: () => number; firstBytes: number[]; restore: () => void } {
  const proto = net.Socket.prototype as unknown as { write: (...args: unknown[]) => boolean };
  const own = Object.hasOwn(proto, 'write');
  const original = proto.write;
  let n = 0;
  const firstBytes: number[] = [];
  proto.write = function (this: net.Socket, ...args: unknown[]) {
    // only the loopback TCP sockets of the links (not tap's own output pipe)
    if (this.remotePort !== undefined) {
      n++;
      const data = args[0];
      if (data instanceof Uint8Array && data.length > 0) firstBytes.push(data[0] as number);
    }
    return original.apply(this, args);
  };
  return {
    count: () => n,
    firstBytes,
    restore: () => {
      if (own) proto.write = original;
      else delete (proto as { write?: unknown }).write;
    },
  };
}

t.test('the encoder leaves FRAME_HEADROOM bytes in front of every frame', async (t) => {
  const enc = new BatchEncoder();
  for (const size of [10, 200, 70_000]) {
    const frame = enc.encode([env('b/x', 'y'.repeat(size), 'a/z')]);
    t.ok(frame.byteOffset >= FRAME_HEADROOM, `headroom before a ${frame.length}-byte frame`);
    t.equal(frame[0], 0x10, 'starts with the BATCH tag');
  }
});

t.test('one socket write per batch frame, both directions, every length encoding', async (t) => {
  const quiet = { heartbeatIntervalMs: 60_000, heartbeatTimeoutMs: 120_000 };
  const b = await startNode('b', quiet);
  const a = await startNode('a', { ...quiet, peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  await linkUp(b.t, 'a');
  // payloads for a 7-bit, a 16-bit and a 64-bit WebSocket length
  const sizes = [20, 1_000, 40_000, 100_000];
  for (const [from, to, name] of [
    [a, b, 'dialler → acceptor (zero mask)'],
    [b, a, 'acceptor → dialler (unmasked)'],
  ] as const) {
    for (const size of sizes) {
      const body = `${size}:${'x'.repeat(size)}`;
      const got = collect(to.t.inbound$, 1);
      const spy = spyWrites();
      const framesBefore = from.t.counters().framesSent;
      try {
        t.ok(from.t.send(env(`${to.t.nodeId}/sink`, body, `${from.t.nodeId}/src`)));
        const [e] = await got;
        t.equal(e?.m, body, `${name}: ${size}-byte body arrives intact`);
      } finally {
        spy.restore();
      }
      t.equal(from.t.counters().framesSent - framesBefore, 1, 'one frame');
      t.equal(spy.count(), 1, `${name}: ${size}-byte body in one socket write`);
      t.equal(spy.firstBytes[0], 0x82, 'a final binary WebSocket frame');
    }
  }
  // many envelopes in one run: in order, still one write per frame
  const n = 5_000;
  const got = collect(b.t.inbound$, n);
  const spy = spyWrites();
  const framesBefore = a.t.counters().framesSent;
  try {
    for (let i = 0; i < n; i++) a.t.send(env('b/sink', i, 'a/src'));
    const envs = await got;
    t.same(
      envs.map((e) => e.m),
      Array.from({ length: n }, (_, i) => i),
      'a burst arrives in order',
    );
  } finally {
    spy.restore();
  }
  t.equal(spy.count(), a.t.counters().framesSent - framesBefore, 'one write per frame');
});

t.test('maskFrames: frames go through ws with random masks and are read the same', async (t) => {
  const b = await startNode('b');
  const a = await startNode('a', { peers: [`b=${b.url}`], maskFrames: true });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  for (const size of [20, 1_000, 100_000]) {
    const body = 'm'.repeat(size);
    const got = collect(b.t.inbound$, 1);
    t.ok(a.t.send(env('b/sink', body, 'a/src')));
    t.equal((await got)[0]?.m, body, `masked ${size}-byte body arrives intact`);
    const back = collect(a.t.inbound$, 1);
    t.ok(b.t.send(env('a/sink', body, 'b/src')));
    t.equal((await back)[0]?.m, body, `reply of ${size} bytes arrives intact`);
  }
});
