/**
 * `connect(['ws://10.0.0.1:7001', ...], { secret })`: a KV client for a remote cluster, on its
 * own actor system over the WebSocket transport (transports/websocket). Each entry is a URL
 * (`ws://host:port` or `wss://host:port`), optionally naming the node (`id=ws://host:port`). A
 * bare URL's node id is read from the node's handshake (lib/node/discover.ts, as `synod status`
 * does); the node ids are those of the KV services (`<id>/kv`). The transport is loaded when
 * `connect` is called, so in-process users do not load `ws` at all.
 */

import { KvError } from '../../actors/kv/errors.js';
import { ActorSystem } from '../actor-system.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { type Logger, silentLogger } from '../logger.js';
import type { DiscoverOptions } from '../node/discover.js';
import { RefusalReport } from '../node/refusal-report.js';
import { randomFromEntropy } from '../random.js';
import type { Transport } from '../transport.js';
import { KvClient, type KvClientOptions } from './client.js';
import { LeaderlessKvClient, type LeaderlessKvClientOptions } from './leaderless.js';

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
  /** How long to wait for a bare URL's node to tell its id (default 5000 ms). */
  discoverTimeoutMs?: number;
  /**
   * PEM CA file trusted when dialling `wss://` nodes (a private or self-signed CA; the CLI's
   * `--tls-ca` / `SYNOD_TLS_CA`). Without it only the system's CAs are trusted.
   */
  caFile?: string;
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
const DISCOVER_MODULE = '../node/discover.js';

interface DiscoverModule {
  readTlsCaFile(file: string, flag?: string): Buffer;
  discoverNodeId(url: string, options?: DiscoverOptions): Promise<string>;
}

/**
 * Turns every entry into `{ id, url }`: `id=url` as given, a bare URL by asking the node for its
 * id over the handshake (all bare URLs are asked at once). Unreachable or non-synod URLs fail
 * with `SYNOD_ERR_KV_UNAVAILABLE`; malformed entries with `SYNOD_ERR_KV_INVALID_ARGUMENT`.
 */
export async function resolvePeers(
  peers: readonly string[],
  options: DiscoverOptions = {},
): Promise<{ id: string; url: string }[]> {
  const { resolved, unreachable } = await resolveReachable(peers, options);
  const [first] = unreachable;
  if (first) throw new KvError('SYNOD_ERR_KV_UNAVAILABLE', first.error);
  return resolved;
}

/**
 * Like `resolvePeers`, but a bare URL whose node does not answer is returned in `unreachable`
 * instead of failing the rest (a client can learn that node from the others' member list).
 * Malformed entries and contradictions still fail with `SYNOD_ERR_KV_INVALID_ARGUMENT`.
 */
export async function resolveReachable(
  peers: readonly string[],
  options: DiscoverOptions = {},
): Promise<{
  resolved: { id: string; url: string }[];
  unreachable: { url: string; error: string }[];
}> {
  let ws: WsModule;
  try {
    ws = (await import(WS_MODULE as string)) as WsModule;
  } catch (err) {
    throw new KvError(
      'SYNOD_ERR_KV_UNAVAILABLE',
      `the WebSocket transport is not available: ${(err as Error).message}`,
    );
  }
  const parse = (spec: string) => {
    try {
      return ws.parsePeer(spec);
    } catch (err) {
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', (err as Error).message);
    }
  };
  // Check every entry's form before asking any node.
  const bare = peers.map((p) => {
    if (p.includes('=')) return undefined;
    const url = p.replace(/\/$/, '');
    if (!/^wss?:\/\/[^/\s]+$/.test(url))
      throw new KvError(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `"${p}" is not a node URL: use ws://host:port, wss://host:port or id=ws://host:port`,
      );
    return url;
  });
  const named = peers.filter((p) => p.includes('=')).map(parse);
  const unreachable: { url: string; error: string }[] = [];
  const d = bare.some((b) => b !== undefined)
    ? ((await import(DISCOVER_MODULE as string)) as DiscoverModule)
    : undefined;
  const found = await Promise.all(
    bare.map(async (url) => {
      if (url === undefined || d === undefined) return undefined;
      try {
        return parse(`${await d.discoverNodeId(url, options)}=${url}`);
      } catch (err) {
        if (err instanceof KvError) throw err;
        unreachable.push({ url, error: (err as Error).message });
        return undefined;
      }
    }),
  );
  const specs = [...named, ...found.filter((f) => f !== undefined)];
  const seen = new Map<string, string>();
  const byUrl = new Map<string, string>();
  for (const s of specs) {
    const other = seen.get(s.id);
    if (other !== undefined && other !== s.url)
      throw new KvError(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `node id "${s.id}" is listed twice (${other} and ${s.url})`,
      );
    const otherId = byUrl.get(s.url);
    if (otherId !== undefined && otherId !== s.id)
      throw new KvError(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `${s.url} is listed as two nodes ("${otherId}" and "${s.id}")`,
      );
    seen.set(s.id, s.url);
    byUrl.set(s.url, s.id);
  }
  return { resolved: [...seen].map(([id, url]) => ({ id, url })), unreachable };
}

/** A client actor system on the WebSocket transport, connected to the resolved nodes. */
async function openRemoteSystem(
  peers: readonly string[],
  options: ConnectOptions,
): Promise<{ system: ActorSystem; nodes: string[]; close(): Promise<void> }> {
  if (peers.length === 0)
    throw new KvError(
      'SYNOD_ERR_KV_INVALID_ARGUMENT',
      'connect needs at least one node (ws://host:port or id=ws://host:port)',
    );
  const clock = options.clock ?? systemClock;
  if (options.caFile !== undefined) {
    // A CA file that cannot be used is the caller's mistake, not an unreachable node.
    const d = (await import(DISCOVER_MODULE as string)) as DiscoverModule;
    try {
      d.readTlsCaFile(options.caFile, 'caFile');
    } catch (err) {
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', (err as Error).message);
    }
  }
  const { resolved: specs, unreachable } = await resolveReachable(peers, {
    ...(options.cluster !== undefined ? { cluster: options.cluster } : {}),
    timeoutMs: options.discoverTimeoutMs ?? 5000,
    clock,
    // Probe as this client will connect: claiming a secret only when it holds one.
    auth: options.secret !== undefined,
    ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
  });
  // A listed node that is down does not stop the client while another listed node answers: the
  // members are learned from the nodes that did (below). Nothing answering is an error.
  if (specs.length === 0)
    throw new KvError(
      'SYNOD_ERR_KV_UNAVAILABLE',
      unreachable.length === 1
        ? (unreachable[0]?.error as string)
        : `no listed node answered: ${unreachable.map((u) => u.error).join('; ')}`,
    );
  const ws = (await import(WS_MODULE as string)) as WsModule;
  const random = randomFromEntropy();
  const nodeId = options.nodeId ?? `kvc-${random.nextUint32().toString(36)}`;
  const transport = await ws.WebSocketTransport.create({
    nodeId,
    peers: specs.map((s) => `${s.id}=${s.url}`),
    clock,
    random: random.fork(),
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.cluster !== undefined ? { cluster: options.cluster } : {}),
    ...(options.caFile !== undefined ? { tls: { caFile: options.caFile } } : {}),
    // A refused handshake (wrong secret, cluster name): one line per node, not one per redial.
    logger: new RefusalReport(options.logger ?? warnLogger, '').logger,
  });
  const system = new ActorSystem({ nodeId, clock, random, transport, logger: silentLogger });
  const found = specs.map((s) => s.id);
  const nodes = [...found];
  const idByUrl = new Map(specs.map((s) => [s.url, s.id]));
  if (options.discover !== false) {
    for (const m of await discoverMembers(system, found)) {
      const url = m.url.replace(/\/$/, '');
      if (!idByUrl.has(url)) idByUrl.set(url, m.id);
      if (nodes.includes(m.id)) continue;
      try {
        transport.addPeer(`${m.id}=${m.url}`);
        nodes.push(m.id);
      } catch {
        // A member URL this client cannot use (e.g. a bad spec): keep the nodes it was given.
      }
    }
  }
  const logger = options.logger ?? warnLogger;
  for (const u of unreachable)
    if (!idByUrl.has(u.url))
      logger.log('warn', `${u.error}; using the nodes that answered (${nodes.join(', ')})`, {
        url: u.url,
      });
  // The nodes in the order listed (a down one where its URL was, once a member list named
  // it), then the members learned beyond the list.
  const listed = peers.flatMap((p) => {
    const id = p.includes('=')
      ? p.slice(0, p.indexOf('=')).trim()
      : idByUrl.get(p.replace(/\/$/, ''));
    return id !== undefined && nodes.includes(id) ? [id] : [];
  });
  return {
    system,
    nodes: [...new Set([...listed, ...nodes])],
    close: async () => {
      await system.shutdown();
      await transport.close(200);
    },
  };
}

function clientOptions<T extends ConnectOptions>(options: T) {
  const {
    secret: _s,
    cluster: _c,
    nodeId: _n,
    clock: _k,
    discoverTimeoutMs: _t,
    logger: _l,
    discover: _d,
    caFile: _ca,
    ...rest
  } = options;
  return rest;
}

export async function connect(
  peers: readonly string[],
  options: ConnectOptions = {},
): Promise<RemoteKvClient> {
  const remote = await openRemoteSystem(peers, options);
  const client = new KvClient({
    ...clientOptions(options),
    system: remote.system,
    nodes: remote.nodes,
  }) as RemoteKvClient;
  client.disconnect = async () => {
    await client.close();
    await remote.close();
  };
  return client;
}

export interface ConnectLeaderlessOptions
  extends Partial<Omit<LeaderlessKvClientOptions, 'system' | 'nodes'>>,
    Pick<
      ConnectOptions,
      'secret' | 'cluster' | 'nodeId' | 'clock' | 'logger' | 'discoverTimeoutMs' | 'caFile'
    > {}

export interface RemoteLeaderlessKvClient extends LeaderlessKvClient {
  /** Closes the client, its actor system and its connections. */
  disconnect(): Promise<void>;
}

/**
 * `connectLeaderless(['ws://…', …], { secret })`: the KV client API on a remote leaderless
 * keyspace (nodes running a `GossipReplica` at `gossip`, or `servicePath`), over WebSockets.
 * Node ids are resolved like `connect`'s.
 */
export async function connectLeaderless(
  peers: readonly string[],
  options: ConnectLeaderlessOptions = {},
): Promise<RemoteLeaderlessKvClient> {
  // a leaderless node has no `admin` member list to learn from
  const remote = await openRemoteSystem(peers, { ...options, discover: false });
  const client = new LeaderlessKvClient({
    ...clientOptions(options),
    system: remote.system,
    nodes: remote.nodes,
  }) as RemoteLeaderlessKvClient;
  client.disconnect = async () => {
    await client.close();
    await remote.close();
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
