import t from 'tap';
import type { WebSocket } from 'ws';
import type { TransportDeadLetter } from '../../lib/transport.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { BatchDecoder } from '../../transports/websocket/frames.js';
import { OutboundQueue } from '../../transports/websocket/outbound-queue.js';
import { identity, rawAcceptor } from '../helpers/ws-raw-peer.js';
import { env, linkUp, ManualClock, startNode, until } from '../helpers/ws-util.js';

t.test('OutboundQueue bounds and batches', async (t) => {
  const q = new OutboundQueue(3, 100);
  const e = (n: number) => env('b/x', n);
  t.ok(q.push(e(1), 40));
  t.ok(q.push(e(2), 40));
  t.notOk(q.push(e(3), 40), 'byte bound');
  t.ok(q.push(e(4), 10));
  t.notOk(q.push(e(5), 1), 'count bound');
  t.equal(q.bytes, 90);
  t.equal(q.peekSize(), 40);
  const first = q.takeBatch(60, 10);
  t.same(
    first.envelopes.map((x) => x.m),
    [1],
    'batch respects byte limit',
  );
  t.equal(first.bytes, 40);
  t.same(
    q.takeBatch(1000, 10).envelopes.map((x) => x.m),
    [2, 4],
    'in order',
  );
  t.equal(q.length, 0);
  t.equal(q.bytes, 0);
  t.equal(q.peekSize(), undefined);
  for (let i = 0; i < 3; i++) q.push(e(i), 1);
  t.equal(q.takeBatch(1000, 2).envelopes.length, 2, 'batch respects envelope limit');
  t.same(
    q.drain().map((x) => x.m),
    [2],
  );
});

t.test('a peer that is down: queue bounded, overflow dead-lettered with a code', async (t) => {
  const clock = new ManualClock();
  const a = await startNode('a', {
    peers: ['b=ws://127.0.0.1:9'], // nothing listens on the discard port
    clock,
    maxQueueEnvelopes: 100,
    queueWhileDownMs: 10_000,
  });
  t.teardown(() => a.t.close());
  const dead: TransportDeadLetter[] = [];
  a.t.deadLetters$.subscribe((d) => dead.push(d));
  let accepted = 0;
  for (let i = 0; i < 150; i++) if (a.t.send(env('b/x', i))) accepted++;
  t.equal(accepted, 100, 'queue holds its bound');
  t.equal(dead.length, 50);
  t.ok(dead.every((d) => d.code === ErrorCode.QUEUE_FULL && d.reason.includes('full')));
  t.same(
    dead.map((d) => d.envelope.m),
    Array.from({ length: 50 }, (_, i) => 100 + i),
    'the refused ones',
  );
  t.equal(a.t.counters().queueFull, 50);
  t.equal(a.t.queueDepth('b')?.envelopes, 100);
  // unknown node
  t.notOk(a.t.send(env('zz/x', 1)));
  t.equal(dead.at(-1)?.code, ErrorCode.UNKNOWN_PEER);
  // a malformed envelope is refused, not queued
  t.notOk(a.t.send({ v: 1, k: 'nope', to: 'b/x', m: 1 } as never));
  t.equal(dead.at(-1)?.code, ErrorCode.BAD_ENVELOPE);
  // an unencodable body
  t.notOk(a.t.send(env('b/x', { f: () => 1, big: 2n ** 70n })));
  // after queueWhileDownMs the queue goes to dead letters and sends fail fast
  clock.advance(10_001);
  t.equal(a.t.queueDepth('b')?.envelopes, 0, 'queue drained');
  t.equal(dead.filter((d) => d.code === ErrorCode.PEER_UNREACHABLE).length, 100);
  t.notOk(a.t.send(env('b/x', 'late')));
  t.equal(dead.at(-1)?.code, ErrorCode.PEER_UNREACHABLE);
  t.equal(a.t.counters().deadLettered, dead.length, 'every dead letter counted');
});

t.test('a slow peer: socket buffer respected, queue bounded, nothing else lost', async (t) => {
  let peerSocket: WebSocket | undefined;
  let received = 0;
  const b = await rawAcceptor(identity('b'), (ws) => {
    peerSocket = ws;
    const decoder = new BatchDecoder(); // record structures live as long as the connection
    ws.on('message', (d: Buffer) => {
      received += decoder.decode(d, 'b').length;
    });
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  });
  const maxBufferedBytes = 64 * 1024;
  const a = await startNode('a', {
    peers: [`b=${b.url}`],
    maxBufferedBytes,
    batchBytes: 16 * 1024,
    maxQueueBytes: 512 * 1024,
    maxQueueEnvelopes: 1_000_000,
  });
  t.teardown(async () => {
    await a.t.close(10);
    await b.close();
  });
  await linkUp(a.t, 'b');
  const dead: TransportDeadLetter[] = [];
  a.t.deadLetters$.subscribe((d) => dead.push(d));
  const body = new Uint8Array(1000);
  let accepted = 0;
  let maxBuffered = 0;
  const conn = () =>
    (a.t as unknown as { links: Map<string, { active?: { bufferedAmount: number } }> }).links.get(
      'b',
    )?.active;
  // keep sending until the queue overflows; yield so the batcher runs
  for (let round = 0; round < 10_000 && dead.length === 0; round++) {
    for (let i = 0; i < 100; i++) if (a.t.send(env('b/x', body))) accepted++;
    maxBuffered = Math.max(maxBuffered, conn()?.bufferedAmount ?? 0);
    await new Promise((r) => setImmediate(r));
  }
  t.ok(dead.length > 0, 'overflow reached');
  t.ok(
    dead.every((d) => d.code === ErrorCode.QUEUE_FULL),
    'overflow is QUEUE_FULL',
  );
  t.ok((a.t.queueDepth('b')?.bytes ?? 0) <= 512 * 1024, 'queue within its byte bound');
  t.ok(maxBuffered <= maxBufferedBytes + 16 * 1024 + 100, `socket buffer bounded (${maxBuffered})`);
  // the peer starts reading again: everything accepted arrives
  (peerSocket as unknown as { _socket: { resume(): void } })._socket.resume();
  await until(() => received === accepted, 20_000, `all ${accepted} accepted envelopes delivered`);
  t.equal(received, accepted, 'accepted = delivered');
  t.equal(a.t.counters().sent, accepted);
});
