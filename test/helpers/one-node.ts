/**
 * A real one-node Raft cluster in this test's process (startNode on a fresh data directory, on
 * loopback, fast timers), and a client actor system on the WebSocket transport dialling it.
 * Both are torn down with the test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { startGossipNode } from '../../lib/node/gossip-node.js';
import { startPaxosNode } from '../../lib/node/paxos-node.js';
import { type NodeConfig, type RunningNode, startNode } from '../../lib/node/synod-node.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort, until } from './node-processes.js';

export interface OneNode {
  node: RunningNode;
  port: number;
  /** The node's data directory (`<tmp>/n1`). */
  dataDir: string;
  cluster: string;
}

/** Starts node n1 alone (its own leader) with `extra` config; resolves once it leads. */
export async function startOneNode(
  t: Test,
  cluster: string,
  extra: Partial<NodeConfig> = {},
): Promise<OneNode> {
  const { config, port, dataDir } = await aloneConfig(t, cluster, {
    heartbeatMs: 20,
    electionMs: 100,
    ...extra,
  });
  const node = await startNode(config);
  t.teardown(() => node.stop());
  await until('a leader', async () => ((await node.status()).role === 'leader' ? true : undefined));
  return { node, port, dataDir, cluster };
}

/** The config of node n1 alone on a free loopback port, its data in a directory of the test. */
async function aloneConfig(
  t: Test,
  cluster: string,
  extra: Partial<NodeConfig>,
): Promise<{ config: NodeConfig; port: number; dataDir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), `synod-${cluster}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const dataDir = path.join(dir, 'n1');
  const config: NodeConfig = {
    id: 'n1',
    listen: { host: '127.0.0.1', port },
    peers: [],
    dataDir,
    cluster,
    logger: silentLogger,
    ...extra,
  };
  return { config, port, dataDir };
}

/**
 * Starts node n1 alone on `protocol`: Raft as startOneNode does, Multi-Paxos, or a leaderless
 * keyspace of one replica (N = 1). The Multi-Paxos and leaderless nodes are typed as a Raft one
 * for what the tests use of them (`status()`, `stop()`).
 */
export async function startOneOf(
  t: Test,
  cluster: string,
  protocol: 'raft' | 'paxos' | 'gossip',
  extra: Partial<NodeConfig> = {},
): Promise<OneNode> {
  if (protocol === 'raft') return startOneNode(t, cluster, extra);
  const { config, port, dataDir } = await aloneConfig(t, cluster, extra);
  const node =
    protocol === 'paxos'
      ? await startPaxosNode(config)
      : await startGossipNode({ ...config, gossip: { n: 1 } });
  t.teardown(() => node.stop());
  return { node: node as unknown as RunningNode, port, dataDir, cluster };
}

/** An actor system `nodeId` whose transport knows n1 (and listens too, with `listen`). */
export async function clientOf(
  t: Test,
  one: OneNode,
  nodeId: string,
  opts: { listen?: boolean } = {},
): Promise<{ system: ActorSystem; transport: WebSocketTransport }> {
  const transport = await WebSocketTransport.create({
    nodeId,
    cluster: one.cluster,
    ...(opts.listen ? { listen: { host: '127.0.0.1', port: 0 } } : {}),
    peers: [`n1=ws://127.0.0.1:${one.port}`],
    random: new Random(5),
    logger: { log: () => {} },
  });
  const system = new ActorSystem({ nodeId, transport, logger: silentLogger });
  t.teardown(async () => {
    await system.shutdown();
    await transport.close(100);
  });
  return { system, transport };
}
