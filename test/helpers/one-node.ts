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
  const dir = mkdtempSync(path.join(tmpdir(), `synod-${cluster}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const dataDir = path.join(dir, 'n1');
  const node = await startNode({
    id: 'n1',
    listen: { host: '127.0.0.1', port },
    peers: [],
    dataDir,
    cluster,
    logger: silentLogger,
    heartbeatMs: 20,
    electionMs: 100,
    ...extra,
  });
  t.teardown(() => node.stop());
  await until('a leader', async () => ((await node.status()).role === 'leader' ? true : undefined));
  return { node, port, dataDir, cluster };
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
