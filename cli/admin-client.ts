/**
 * What `synod status` and `synod member` share: the options that say how to reach a cluster's
 * nodes (`--cluster`, `--cluster-name`, `--secret-file`, `--tls-ca`), the discovery of the ids
 * behind bare URLs, and a throw-away client node (transport + actor system) that asks the
 * nodes' admin actors.
 */
import { ActorSystem } from '../lib/actor-system.js';
import { silentLogger } from '../lib/logger.js';
import { discoverNodeId, readTlsCaFile } from '../lib/node/discover.js';
import { randomFromEntropy } from '../lib/random.js';
import { WebSocketTransport } from '../transports/websocket/transport.js';
import { CliError, type OptionValue, type Parsed } from './args.js';
import { readSecretFile } from './secret.js';

/** The option specs every admin client takes (spread into the command's own specs). */
export const clusterClientSpecs = {
  cluster: {
    kind: 'list',
    description: 'nodes to ask: ws://host:port or id=ws://host:port',
    required: true,
  },
  'cluster-name': {
    kind: 'string',
    description: 'cluster name',
    default: 'synod',
    env: 'SYNOD_CLUSTER_NAME',
  },
  'secret-file': { kind: 'string', description: 'file holding the cluster secret' },
  'tls-ca': {
    kind: 'string',
    description: "PEM CA that signed the nodes' certificates (wss:// with a private CA)",
    env: 'SYNOD_TLS_CA',
  },
} as const;

/** How to reach the nodes, read from the parsed options. */
export interface ClusterTarget {
  clusterName: string;
  secret: string | undefined;
  caFile: string | undefined;
  /** The `--cluster` entries as given. */
  entries: string[];
}

/** Reads the secret and checks the CA file and the node URLs (usage errors, exit 2). */
export function readClusterTarget(
  o: Record<string, OptionValue>,
  sources: Parsed['sources'],
): ClusterTarget {
  const secret = readSecretFile(o['secret-file'] as string | undefined);
  const caFile = (o['tls-ca'] as string | undefined) || undefined;
  if (caFile !== undefined) {
    try {
      readTlsCaFile(caFile, sources['tls-ca'] === 'env' ? 'SYNOD_TLS_CA' : '--tls-ca');
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
  }
  const entries = o.cluster as string[];
  for (const e of entries) {
    const url = e.indexOf('=') > 0 ? e.slice(e.indexOf('=') + 1) : e;
    if (!/^wss?:\/\/[^/\s]+/.test(url))
      throw new CliError(
        `--cluster: "${e}" is not a node URL: use ws://host:port, wss://host:port or id=ws://host:port`,
      );
  }
  return { clusterName: o['cluster-name'] as string, secret, caFile, entries };
}

export interface Peer {
  id: string;
  url: string;
}

/**
 * The id of each `--cluster` entry: given (`id=url`) or asked of the node behind a bare URL.
 * A bare URL that does not answer is returned in `undiscovered` with the reason.
 */
export async function discoverPeers(
  target: ClusterTarget,
  timeoutMs: number,
): Promise<{ peers: Peer[]; undiscovered: { url: string; error: string }[] }> {
  const peers: Peer[] = [];
  const undiscovered: { url: string; error: string }[] = [];
  for (const e of target.entries) {
    const eq = e.indexOf('=');
    if (eq > 0) {
      peers.push({ id: e.slice(0, eq), url: e.slice(eq + 1) });
      continue;
    }
    try {
      const id = await discoverNodeId(e, {
        cluster: target.clusterName,
        timeoutMs,
        auth: target.secret !== undefined,
        ...(target.caFile !== undefined ? { caFile: target.caFile } : {}),
      });
      peers.push({ id, url: e });
    } catch (err) {
      undiscovered.push({ url: e, error: (err as Error).message });
    }
  }
  return { peers, undiscovered };
}

/** A client node named `<prefix>-<random>` linked to `peers`; close it with `close()`. */
export async function openAdminClient(
  prefix: string,
  target: ClusterTarget,
  peers: Peer[],
): Promise<{ system: ActorSystem; transport: WebSocketTransport; close(): Promise<void> }> {
  const random = randomFromEntropy();
  const nodeId = `${prefix}-${random.nextUint32().toString(36)}`;
  const transport = await WebSocketTransport.create({
    nodeId,
    cluster: target.clusterName,
    peers: peers.map((p) => `${p.id}=${p.url}`),
    random: random.fork(),
    ...(target.secret ? { secret: target.secret } : {}),
    ...(target.caFile !== undefined ? { tls: { caFile: target.caFile } } : {}),
    logger: silentLogger,
  } as ConstructorParameters<typeof WebSocketTransport>[0]);
  const system = new ActorSystem({ nodeId, transport, random, logger: silentLogger });
  return {
    system,
    transport,
    close: async () => {
      await system.shutdown();
      await transport.close(100);
    },
  };
}
