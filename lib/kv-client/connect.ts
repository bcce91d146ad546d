/**
 * `connect(['n1=ws://10.0.0.1:7001', ...], { secret })`: a KV client for a remote cluster, on
 * its own actor system over the WebSocket transport (transports/websocket). Each entry names a
 * node and its URL (`id=ws://host:port` or `id=wss://host:port`): the node ids are those of the
 * KV services (`<id>/kv`). The transport is loaded when `connect` is called, so in-process users
 * do not load `ws` at all.
 */

import { KvError } from '../../actors/kv/errors.js';
import { ActorSystem } from '../actor-system.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { type Logger, silentLogger } from '../logger.js';
import { randomFromEntropy } from '../random.js';
import type { Transport } from '../transport.js';
import { KvClient, type KvClientOptions } from './client.js';

export interface ConnectOptions extends Partial<Omit<KvClientOptions, 'system' | 'nodes'>> {
  /** The cluster's shared secret (HMAC challenge-response in the transport). */
  secret?: string;
  /** Cluster name (default `synod`). */
  cluster?: string;
  /** This client's node id (default `kvc-<random>`). */
  nodeId?: string;
  clock?: Clock;
  /**
   * Learn the other members from the first node that answers (its `admin` actor's member list)
   * and use them too, so a client given one node still reaches the leader (default true).
   */
  discover?: boolean;
  /** Where the client's transport logs (default: warnings and errors on stderr; links going up are not news). */
  logger?: Logger;
}

const warnLogger: Logger = {
  log(level, message, fields) {
    if (level !== 'warn' && level !== 'error') return;
    const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
    process.stderr.write(`${level.toUpperCase()} [kv client] ${message}${extra}\n`);
  },
};

export interface RemoteKvClient extends KvClient {
  /** Closes the client, its actor system and its connections. */
  disconnect(): Promise<void>;
}

interface WsModule {
  WebSocketTransport: {
    create(
      options: Record<string, unknown>,
    ): Promise<Transport & { close(graceMs?: number): Promise<void>; addPeer(spec: string): void }>;
  };
  parsePeer(spec: string): { id: string; url: string };
}

const WS_MODULE = '../../transports/websocket/index.js';

export async function connect(
  peers: readonly string[],
  options: ConnectOptions = {},
): Promise<RemoteKvClient> {
  if (peers.length === 0)
    throw new KvError(
      'SYNOD_ERR_KV_INVALID_ARGUMENT',
      'connect needs at least one node (id=ws://host:port)',
    );
  let ws: WsModule;
  try {
    ws = (await import(WS_MODULE as string)) as WsModule;
  } catch (err) {
    throw new KvError(
      'SYNOD_ERR_KV_UNAVAILABLE',
      `the WebSocket transport is not available: ${(err as Error).message}`,
    );
  }
  const specs = peers.map((p) => {
    if (!p.includes('='))
      throw new KvError(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `name the node of "${p}": use id=${p} (the id the node runs as)`,
      );
    try {
      return ws.parsePeer(p);
    } catch (err) {
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', (err as Error).message);
    }
  });
  const random = randomFromEntropy();
  const clock = options.clock ?? systemClock;
  const nodeId = options.nodeId ?? `kvc-${random.nextUint32().toString(36)}`;
  const transport = await ws.WebSocketTransport.create({
    nodeId,
    peers: specs.map((s) => `${s.id}=${s.url}`),
    clock,
    random: random.fork(),
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.cluster !== undefined ? { cluster: options.cluster } : {}),
    logger: options.logger ?? warnLogger,
  });
  const system = new ActorSystem({ nodeId, clock, random, transport, logger: silentLogger });
  const nodes = specs.map((s) => s.id);
  if (options.discover !== false) {
    for (const m of await discoverMembers(system, nodes)) {
      if (nodes.includes(m.id)) continue;
      try {
        transport.addPeer(`${m.id}=${m.url}`);
        nodes.push(m.id);
      } catch {
        // A member URL this client cannot use (e.g. a bad spec): keep the nodes it was given.
      }
    }
  }
  const {
    secret: _s,
    cluster: _c,
    nodeId: _n,
    clock: _k,
    logger: _l,
    discover: _d,
    ...clientOpts
  } = options;
  const client = new KvClient({ ...clientOpts, system, nodes }) as RemoteKvClient;
  client.disconnect = async () => {
    await client.close();
    await system.shutdown();
    await transport.close(200);
  };
  return client;
}

/**
 * The cluster's members (`id` → URL) as the first of `nodes` that answers reports them
 * (`<id>/admin`, the node status of `synod node`); empty if none answers within a second and a
 * half. Never throws: discovery only widens the set of nodes the client can use.
 */
async function discoverMembers(
  system: ActorSystem,
  nodes: readonly string[],
): Promise<{ id: string; url: string }[]> {
  const answers = nodes.map((id) =>
    system.ask(`${id}/admin`, { type: 'node.status' } as never, 1500).then((s) => {
      const members = (s as { members?: unknown }).members;
      if (typeof members !== 'object' || members === null) throw new Error('no members');
      return Object.entries(members as Record<string, unknown>)
        .filter((e): e is [string, string] => typeof e[1] === 'string' && /^wss?:\/\//.test(e[1]))
        .map(([id, url]) => ({ id, url }));
    }),
  );
  try {
    return await Promise.any(answers);
  } catch {
    return [];
  }
}
