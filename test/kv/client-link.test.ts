/**
 * The KV client and a link that is still coming up: a node's `status` asked before the node
 * listens (the client's transport is being refused and redials) is answered once the node is up,
 * within the request's timeout, instead of failing after one attempt. A node that never comes up
 * fails at the deadline with the link's state in the message.
 *
 * The node here is an in-process actor system on the WebSocket transport with a stand-in KV
 * service that answers `kv.status`, so the test needs no node process. The node starts 2 s after
 * the ask on purpose (a slow start being modelled, not a wait for something): one attempt of the
 * old client (1 s) would have failed.
 */
import t from 'tap';
import type { KvRequest, StatusValue } from '../../actors/kv/messages.js';
import { Actor, type Replies } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { systemClock } from '../../lib/clock.js';
import { connect } from '../../lib/kv-client/connect.js';
import { MemoryLogger, silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort, TEST_SECRET } from '../helpers/node-processes.js';

class StatusOnly extends Actor<KvRequest> {
  receive(msg: KvRequest): void {
    if (msg.type !== 'kv.status') return;
    const value: StatusValue = {
      nodeId: 'n1',
      leader: 'n1',
      appliedIndex: 7,
      commitIndex: 7,
      revision: 3,
      keys: 1,
      ready: true,
      compactedRevision: 0,
      freshness: undefined,
    };
    this.ctx.reply(msg, { ok: true, value, token: { index: 7, rev: 3 }, servedBy: 'n1' });
  }
}

/** A stand-in admin actor: the member list a node reports (`node.status`). */
class MembersOnly extends Actor<{ type: 'node.status' } & Replies<unknown>> {
  constructor(private readonly members: Record<string, string>) {
    super();
  }
  receive(msg: { type: 'node.status' } & Replies<unknown>): void {
    if (msg.type === 'node.status') this.ctx.reply(msg, { members: this.members });
  }
}

async function startNode(port: number, id = 'n1', members?: Record<string, string>) {
  const transport = await WebSocketTransport.create({
    nodeId: id,
    listen: { host: '127.0.0.1', port },
    secret: TEST_SECRET,
    random: new Random(1),
    logger: silentLogger,
  });
  const system = new ActorSystem({
    nodeId: id,
    transport,
    random: new Random(2),
    logger: silentLogger,
  });
  system.spawn('kv', new StatusOnly());
  if (members) system.spawn('admin', new MembersOnly(members));
  return {
    close: async () => {
      await system.shutdown();
      await transport.close(100);
    },
  };
}

t.test('status waits for a link that is coming up, within its timeout', async (t) => {
  const port = await freePort();
  const kv = await connect([`n1=ws://127.0.0.1:${port}`], {
    secret: TEST_SECRET,
    discover: false,
    timeoutMs: 30_000,
    logger: silentLogger,
  });
  t.teardown(() => kv.disconnect());
  const asked = kv.status('n1');
  let node: Awaited<ReturnType<typeof startNode>> | undefined;
  t.teardown(() => node?.close());
  await new Promise<void>((resolve) =>
    systemClock.setTimer(2000, () =>
      startNode(port).then((n) => {
        node = n;
        resolve();
      }),
    ),
  );
  const st = await asked;
  t.equal(st.outcome, 'ok', `status answered once the node came up ${JSON.stringify(st)}`);
  t.equal(st.outcome === 'ok' && st.value.nodeId, 'n1', 'from n1');
  t.equal(
    st.outcome === 'ok' && st.servedBy,
    'n1',
    'served by n1 itself (a status is never redirected)',
  );
});

t.test('status of a node that never comes up fails at its deadline, saying why', async (t) => {
  const port = await freePort();
  const kv = await connect([`n1=ws://127.0.0.1:${port}`], {
    secret: TEST_SECRET,
    discover: false,
    logger: silentLogger,
  });
  t.teardown(() => kv.disconnect());
  const st = await kv.status('n1', { timeoutMs: 1500 });
  t.equal(st.outcome, 'failed');
  t.match(st.outcome !== 'ok' && st.error, {
    code: 'SYNOD_ERR_KV_UNAVAILABLE',
    message: /no link to node n1 within 1500 ms \(reconnecting: .*\)/,
  });
  const bad = await kv.status('n1', { timeoutMs: -1 });
  t.match(
    bad.outcome !== 'ok' && bad.error,
    { code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' },
    'a bad timeout is refused',
  );
});

t.test('connect with bare URLs while a listed node is down: members from the others', async (t) => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
  const members = { n1: url(0), n2: `${url(1)}/`, n3: url(2) };
  const up = [await startNode(ports[0] as number, 'n1', members)];
  up.push(await startNode(ports[2] as number, 'n3', members));
  t.teardown(async () => {
    for (const n of up) await n.close();
  });
  const log = new MemoryLogger();
  const kv = await connect([url(0), url(1), url(2)], {
    secret: TEST_SECRET,
    discoverTimeoutMs: 3000,
    logger: log,
  });
  t.teardown(() => kv.disconnect());
  t.same(kv.nodes, ['n1', 'n2', 'n3'], 'the down n2 is known by its id, in the listed order');
  t.same(
    log.lines.filter((l) => l.level === 'warn' && /nothing listens/.test(l.message)),
    [],
    'no warning: a member list names the down URL',
  );
  const st = await kv.status('n3', { timeoutMs: 10_000 });
  t.equal(st.outcome, 'ok', 'an up node answers');

  // A down URL that no member list names is reported once, and the rest still work.
  const stray = await freePort();
  const log2 = new MemoryLogger();
  const kv2 = await connect([url(0), `ws://127.0.0.1:${stray}`], {
    secret: TEST_SECRET,
    discover: false,
    logger: log2,
  });
  t.teardown(() => kv2.disconnect());
  t.same(kv2.nodes, ['n1']);
  t.match(
    log2.lines.filter((l) => l.level === 'warn').map((l) => l.message),
    [
      /^nothing listens at ws:\/\/127\.0\.0\.1:\d+ \(connection refused\): is the node running, and is that its address and port\?; using the nodes that answered \(n1\)$/,
    ],
  );

  // Nothing answers: connect fails with the one URL's reason.
  await t.rejects(connect([`ws://127.0.0.1:${stray}`], { logger: silentLogger }), {
    code: 'SYNOD_ERR_KV_UNAVAILABLE',
    message:
      /^nothing listens at ws:\/\/127\.0\.0\.1:\d+ \(connection refused\): is the node running, and is that its address and port\?$/,
  });
  const stray2 = await freePort();
  await t.rejects(
    connect([`ws://127.0.0.1:${stray}`, `ws://127.0.0.1:${stray2}`], { logger: silentLogger }),
    { code: 'SYNOD_ERR_KV_UNAVAILABLE', message: /^no listed node answered: / },
  );
});
