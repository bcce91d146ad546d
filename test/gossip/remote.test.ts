/**
 * The leaderless keyspace over WebSockets: three nodes (each an actor system on its own
 * WebSocket transport with the cluster secret, running a `GossipReplica`) and a remote client
 * from `connectLeaderless` with bare URLs. Writes at W=all, reads at R=all/session, siblings
 * from two remote clients resolved through the read's context, a counter, and the refusals.
 * Waits are bounded (the cluster's readiness poll, promises with deadlines).
 */
import t from 'tap';
import { GossipReplica, type ReplicaMessage } from '../../actors/gossip/replica.js';
import type { ReplicaSnapshot } from '../../actors/gossip/replica-node.js';
import { MemoryKeyStore } from '../../actors/gossip/store.js';
import type { Replies } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { systemClock } from '../../lib/clock.js';
import { connectLeaderless } from '../../lib/kv-client/connect.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort } from '../helpers/ws-proc.js';

const SECRET = 'gossip-remote-test-secret-0123456789';
const NODES = ['g1', 'g2', 'g3'];

t.test('the KV client API on a leaderless keyspace over WebSockets', async (t) => {
  const ports = await Promise.all(NODES.map(() => freePort()));
  const url = (i: number) => `ws://127.0.0.1:${ports[i]}`;
  const systems: ActorSystem[] = [];
  const transports: WebSocketTransport[] = [];
  t.teardown(async () => {
    for (const s of systems) await s.shutdown();
    for (const tr of transports) await tr.close(100);
  });
  for (const [i, id] of NODES.entries()) {
    const transport = new WebSocketTransport({
      nodeId: id,
      listen: { host: '127.0.0.1', port: ports[i] as number },
      peers: NODES.flatMap((p, j) => (j === i ? [] : [`${p}=${url(j)}`])),
      secret: SECRET,
      random: new Random(10 + i),
      logger: silentLogger,
    });
    const system = new ActorSystem({
      nodeId: id,
      transport,
      logger: silentLogger,
      random: new Random(20 + i),
    });
    system.spawn(
      'gossip',
      new GossipReplica({
        store: new MemoryKeyStore(),
        seeds: i === 0 ? [] : ['g1'],
        n: 3,
        keyTypes: [{ prefix: 'pn/', type: 'pn' }],
        swim: { periodMs: 200, pingTimeoutMs: 100 },
      }),
    );
    await transport.start();
    systems.push(system);
    transports.push(transport);
  }
  const kv = await connectLeaderless(
    NODES.map((_, i) => url(i)),
    { secret: SECRET, node: 'g1' },
  );
  t.teardown(() => kv.disconnect());
  t.same([...kv.nodes], NODES, 'node ids resolved from the handshake');
  // bounded wait: every replica ready with three alive members
  const deadline = systemClock.now() + 30_000;
  for (;;) {
    const snaps = await Promise.all(
      NODES.map((n) =>
        kv.system
          .ask(
            `${n}/gossip`,
            { type: 'replica-snapshot' } as ReplicaMessage & Replies<ReplicaSnapshot>,
            1000,
          )
          .catch(() => undefined),
      ),
    );
    if (snaps.every((s) => s?.ready && s.members.filter((m) => m.state === 'alive').length === 3))
      break;
    if (systemClock.now() > deadline) throw new Error('the replicas did not form in 30 s');
    await new Promise<void>((r) => systemClock.setTimer(50, r));
  }

  const w = await kv.put('k', 'v1', { w: 'all' });
  t.equal(w.outcome, 'ok', 'W=all write over WebSockets');
  t.equal(w.outcome === 'ok' && w.value.acks, 3);
  const r = await kv.get('k', { r: 'all', level: 'session', node: 'g3' });
  t.equal(r.outcome === 'ok' && r.value.value, 'v1', 'R=all session read through another node');

  const other = await connectLeaderless([url(1)], { secret: SECRET });
  t.teardown(() => other.disconnect());
  t.equal(
    (await other.put('k', 'v2', { w: 'all' })).outcome,
    'ok',
    'a blind write from another client',
  );
  const both = await kv.get('k', { r: 'all' });
  t.same(
    both.outcome === 'ok' ? [...both.value.siblings].sort() : [],
    ['v1', 'v2'],
    'siblings reach the remote client',
  );
  t.equal((await kv.put('k', 'v3', { w: 'all' })).outcome, 'ok', 'resolve with the read context');
  const one = await other.get('k', { r: 'all' });
  t.same(one.outcome === 'ok' && one.value.siblings, ['v3'], 'resolved for every client');

  for (let i = 0; i < 5; i++) await (i % 2 ? kv : other).increment('pn/c', 1, { w: 'quorum' });
  const c = await kv.get('pn/c', { r: 'all' });
  t.equal(c.outcome === 'ok' && c.value.crdt, 5, 'counter over WebSockets');
  const strong = await kv.get('k', { level: 'strong' });
  t.equal(strong.outcome === 'failed' && strong.error.code, 'SYNOD_ERR_STRONG_UNSUPPORTED');
});
