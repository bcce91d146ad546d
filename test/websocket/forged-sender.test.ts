/**
 * Sender verification: an authenticated peer (it holds the cluster secret) may only send as
 * itself. An inbound envelope whose `from` names another node than the one the connection
 * authenticated as is a forgery: the batch is dropped whole, the error counted and logged
 * with the peer and SYNOD_ERR_FORGED_SENDER, and the connection closed with 4006. `send`
 * refuses such an envelope before it leaves, so a correct node never trips the check.
 * Clients that are not cluster members (they dial in with their own node id) still ask and
 * get replies.
 */
import t from 'tap';
import { ActorSystem } from '../../lib/actor-system.js';
import { encodeEnvelope } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { TransportDeadLetter } from '../../lib/transport.js';
import { CloseCode, ErrorCode } from '../../transports/websocket/errors.js';
import {
  BatchDecoder,
  BatchEncoder,
  decodeBatch,
  FrameType,
} from '../../transports/websocket/frames.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { closed, identity, rawDial } from '../helpers/ws-raw-peer.js';
import { Echo, type EchoMsg } from '../helpers/ws-scenario-actors.js';
import { collect, env, linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

const SECRET = 'forged-sender-secret';
const frame = (...envs: Envelope[]) =>
  Buffer.concat([Buffer.from([FrameType.BATCH]), ...envs.map((e) => encodeEnvelope(e))]);

t.test('the decoder checks every sender against the authenticated peer', async (t) => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      return (err as { code?: string }).code;
    }
    return undefined;
  };
  const dec = (envs: Envelope[]) =>
    new BatchDecoder().decode(new BatchEncoder().encode(envs), 'b', 'a');
  t.equal(dec([env('b/x', 1, 'a/y'), env('b/x', 2, 'a'), env('b/x', 3)]).length, 3, 'own senders');
  t.equal(
    code(() => dec([env('b/x', 1, 'c/y')])),
    ErrorCode.FORGED_SENDER,
    'another node',
  );
  t.equal(
    code(() => dec([env('b/x', 1, 'a/y'), env('b/x', 2, 'c/y')])),
    ErrorCode.FORGED_SENDER,
  );
  t.equal(
    code(() => dec([env('b/x', 1, 'ab/y')])),
    ErrorCode.FORGED_SENDER,
    'a longer id',
  );
  t.equal(
    code(() => dec([env('b/x', 1, 'aa')])),
    ErrorCode.FORGED_SENDER,
    'a bare other id',
  );
  t.equal(
    code(() => dec([env('b/x', 1, '')])),
    ErrorCode.FORGED_SENDER,
    'an empty sender',
  );
  t.equal(
    code(() => dec([env('b/x', 1, '/a/y')])),
    ErrorCode.FORGED_SENDER,
    'no node part',
  );
  t.equal(
    code(() => dec([env('b/x', 1, 'c/y'), { v: 1, k: 'tell', to: 'b/x' } as never])),
    ErrorCode.BAD_ENVELOPE,
    'a malformed envelope in the batch is still reported as malformed',
  );
  t.equal(
    code(() => decodeBatch(frame(env('b/x', 1, 'c/y')), 'b')),
    undefined,
    'without a peer (a self-contained frame) no sender is checked',
  );
});

t.test('a peer forging senders is cut off; honest peers and senders are served', async (t) => {
  const target = await startNode('target', { secret: SECRET, queueWhileDownMs: 60_000 });
  const good = await startNode('good', { secret: SECRET, peers: [`target=${target.url}`] });
  t.teardown(async () => {
    await good.t.close();
    await target.t.close();
  });
  await linkUp(good.t, 'target');
  const delivered: Envelope[] = [];
  const sub = target.t.inbound$.subscribe((e) => delivered.push(e));
  t.teardown(() => sub.unsubscribe());

  // honest senders from a raw peer: its own actors, its bare node id, and no sender at all
  const honest = await rawDial(target.url, identity('mallory', SECRET), 'target');
  honest.send(
    frame(env('target/x', 1, 'mallory/y'), env('target/x', 2, 'mallory'), env('target/x', 3)),
  );
  await until(() => delivered.length === 3, 10_000, 'three honest envelopes');
  t.same(
    delivered.map((e) => e.m),
    [1, 2, 3],
  );
  t.equal(honest.readyState, honest.OPEN, 'an honest peer keeps its connection');
  honest.close();

  // the same peer now claims to be `good`: one frame with an honest and a forged envelope
  const forger = await rawDial(target.url, identity('mallory', SECRET), 'target');
  const shut = closed(forger, 10_000);
  forger.send(frame(env('target/x', 4, 'mallory/y'), env('target/raft', 5, 'good/raft')));
  const c = await shut;
  t.equal(c.code, CloseCode.FORGED_SENDER, 'closed with 4006');
  t.match(c.reason, /^SYNOD_ERR_FORGED_SENDER: /, 'the close reason names the code');
  t.equal(
    delivered.length,
    3,
    'nothing of the forged batch was delivered, not even the honest part',
  );
  t.equal(target.t.counters().errors[ErrorCode.FORGED_SENDER], 1, 'counted once');
  const line = target.log.lines.find((l) => l.message.includes(ErrorCode.FORGED_SENDER));
  t.ok(line, 'logged');
  t.equal(line?.level, 'warn');
  t.equal(line?.fields?.peer, 'mallory', 'the log names the authenticated peer');
  t.equal(line?.fields?.code, ErrorCode.FORGED_SENDER);
  t.match(line?.message ?? '', /claims sender "good\/raft".*authenticated as node mallory/);

  // the honest peer `good` was never disturbed and still delivers
  t.equal(target.t.linkStatus('good')?.state, 'up');
  t.equal(good.t.counters().linksUp, 1, 'the link to good never dropped');
  const more = collect(target.t.inbound$, 10);
  for (let i = 0; i < 10; i++) good.t.send(env('target/x', 100 + i, 'good/y'));
  t.same(
    (await more).map((e) => e.from),
    Array.from({ length: 10 }, () => 'good/y'),
  );
});

t.test('send refuses an envelope that claims a sender on another node', async (t) => {
  const b = await startNode('b');
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  const dead: TransportDeadLetter[] = [];
  const sub = a.t.deadLetters$.subscribe((d) => dead.push(d));
  t.teardown(() => sub.unsubscribe());
  t.equal(a.t.send(env('b/x', 1, 'c/y')), false, 'refused');
  t.equal(a.t.send(env('b/x', 2, 'ab/y')), false, 'a node id that only starts like ours');
  t.same(
    dead.map((d) => d.code),
    [ErrorCode.FORGED_SENDER, ErrorCode.FORGED_SENDER],
  );
  t.match(dead[0]?.reason ?? '', /claims sender "c\/y".*a node can only send as itself/);
  const got = collect(b.t.inbound$, 2);
  t.equal(a.t.send(env('b/x', 3, 'a/y')), true);
  t.equal(a.t.send(env('b/x', 4, 'a')), true);
  t.same(
    (await got).map((e) => e.m),
    [3, 4],
  );
  t.equal(b.t.counters().errors[ErrorCode.FORGED_SENDER], undefined, 'b saw no forgery');
  t.equal(a.t.linkStatus('b')?.state, 'up', 'the link stayed up');
});

t.test('a client that is not a cluster member asks and gets its replies', async (t) => {
  const random = new Random(7);
  const serverT = await WebSocketTransport.create({
    nodeId: 'n1',
    listen: { host: '127.0.0.1', port: 0 },
    secret: SECRET,
    random: random.fork(),
    logger: { log() {} },
  });
  const server = new ActorSystem({
    nodeId: 'n1',
    transport: serverT,
    random,
    logger: silentLogger,
  });
  server.spawn('echo', new Echo());
  const clientT = await WebSocketTransport.create({
    nodeId: 'kv-client-123',
    peers: [`n1=${serverT.address()?.url}`],
    secret: SECRET,
    random: random.fork(),
    logger: { log() {} },
  });
  const client = new ActorSystem({
    nodeId: 'kv-client-123',
    transport: clientT,
    random: random.fork(),
    logger: silentLogger,
  });
  client.spawn('echo', new Echo());
  t.teardown(async () => {
    await client.shutdown();
    await server.shutdown();
    await clientT.close();
    await serverT.close();
  });
  await linkUp(clientT, 'n1');
  const replies = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      client.ask<EchoMsg & { type: 'echo' }>('n1/echo', { type: 'echo', text: `${i}` }, 5000),
    ),
  );
  t.same(
    replies,
    Array.from({ length: 20 }, (_, i) => `n1:${i}`),
  );
  // the other way: the server asks an actor of the client over the client's connection
  await waitFor(serverT.links$, (s) => s.peer === 'kv-client-123' && s.state === 'up');
  t.equal(
    await server.ask<EchoMsg & { type: 'echo' }>(
      'kv-client-123/echo',
      { type: 'echo', text: 'x' },
      5000,
    ),
    'kv-client-123:x',
  );
  t.equal(serverT.counters().errors[ErrorCode.FORGED_SENDER], undefined);
});
