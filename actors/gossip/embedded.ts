/**
 * An in-process leaderless keyspace: N actor systems (default 5, `a`..`e`), each running a
 * `GossipReplica` at `gossip`, plus a client system (`client`), wired by the in-memory transport
 * (every message msgpack-encoded). The client system stays connected to every node when the
 * nodes are split (`split`), so a demo or a benchmark can write on both sides of a partition.
 * Used by demos/eventual-store.ts, bench/eventual.ts and the tests of the leaderless KV client;
 * it runs on whatever clock it is given.
 */
import type { ActorSystem } from '../../lib/actor-system.js';
import { ActorSystem as System } from '../../lib/actor-system.js';
import type { Clock } from '../../lib/clock.js';
import {
  LeaderlessKvClient,
  type LeaderlessKvClientOptions,
} from '../../lib/kv-client/leaderless.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import { GossipReplica, type InspectResult } from './replica.js';
import type { ReplicaOptions, ReplicaSnapshot } from './replica-node.js';
import { type KeyStore, MemoryKeyStore } from './store.js';

/**
 * How far replicas are from converged, from their `replica-inspect` answers: pending hints,
 * plus for every key range the number of Merkle roots beyond one. 0 = converged; infinite
 * when a replica did not answer or the replicas' rings differ.
 */
export function divergenceOf(results: readonly (InspectResult | undefined)[]): number {
  if (results.some((r) => r === undefined)) return Number.POSITIVE_INFINITY;
  if (new Set(results.map((r) => r?.ring)).size !== 1) return Number.POSITIVE_INFINITY;
  const roots = new Map<number, Set<string>>();
  let d = 0;
  for (const r of results as InspectResult[]) {
    d += r.hints;
    for (const [seg, root] of r.roots) {
      const s = roots.get(seg) ?? new Set<string>();
      s.add(root);
      roots.set(seg, s);
    }
  }
  for (const s of roots.values()) d += s.size - 1;
  return d;
}

export interface EventualClusterOptions {
  readonly clock: Clock;
  /** Node ids (default a, b, c, d, e). */
  readonly nodes?: readonly string[];
  readonly seed?: number;
  /** Replica options for every node (seeds are set here: every node joins through the first). */
  readonly replica?: Omit<ReplicaOptions, 'seeds'>;
  /** Each node's store (default: a `MemoryKeyStore` per node). */
  readonly store?: (node: string) => KeyStore;
  readonly logger?: Logger;
}

export interface EventualCluster {
  readonly nodes: readonly string[];
  readonly systems: ReadonlyMap<string, ActorSystem>;
  readonly network: MemoryNetwork;
  /** The system clients send from (node id `client`). */
  readonly clientSystem: ActorSystem;
  /** A KV client on the client system. */
  client(options?: Partial<Omit<LeaderlessKvClientOptions, 'system'>>): LeaderlessKvClient;
  /** Resolves once every replica is ready and sees every node alive (rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<void>;
  /** Cuts every link between the groups, both ways; the client system stays connected to all. */
  split(...groups: readonly (readonly string[])[]): void;
  /** Removes the split. */
  heal(): void;
  /** Each replica's Merkle roots, hint count and key count (undefined: did not answer). */
  inspect(): Promise<Map<string, InspectResult | undefined>>;
  /**
   * How far from converged: 0 when every node answered, all agree on the ring, every key
   * range has one Merkle root across its replicas and no hint is left.
   */
  divergence(): Promise<number>;
  snapshot(node: string): Promise<ReplicaSnapshot | undefined>;
  stop(): Promise<void>;
}

export async function startEventualCluster(o: EventualClusterOptions): Promise<EventualCluster> {
  const nodes = [...(o.nodes ?? ['a', 'b', 'c', 'd', 'e'])];
  if (nodes.length === 0 || nodes.includes('client'))
    throw new RangeError('an eventual cluster needs node ids (and "client" is the client system)');
  const random = new Random(o.seed ?? 1);
  const logger = o.logger ?? silentLogger;
  const network = new MemoryNetwork({ clock: o.clock, random: random.fork() });
  const systems = new Map<string, ActorSystem>();
  for (const id of nodes) {
    const system = new System({
      nodeId: id,
      clock: o.clock,
      random: random.fork(),
      transport: network.connect(id, o.clock),
      logger,
    });
    systems.set(id, system);
    system.spawn(
      'gossip',
      new GossipReplica({
        ...(o.replica ?? {}),
        store: o.store ? o.store(id) : new MemoryKeyStore(),
        seeds: id === nodes[0] ? [] : [nodes[0] as string],
      }),
    );
  }
  const clientSystem = new System({
    nodeId: 'client',
    clock: o.clock,
    random: random.fork(),
    transport: network.connect('client', o.clock),
    logger,
  });
  const ask = <T>(node: string, msg: object, ms = 1000): Promise<T | undefined> =>
    clientSystem.ask(`${node}/gossip`, msg as never, ms).then(
      (v) => v as T,
      () => undefined,
    );
  const sleep = (ms: number) => new Promise<void>((r) => o.clock.setTimer(ms, r));
  const snapshot = (node: string) => ask<ReplicaSnapshot>(node, { type: 'replica-snapshot' });
  const inspect = async () => {
    const res = await Promise.all(
      nodes.map((n) => ask<InspectResult>(n, { type: 'replica-inspect' })),
    );
    return new Map(nodes.map((n, i) => [n, res[i]]));
  };
  return {
    nodes,
    systems,
    network,
    clientSystem,
    client: (options = {}) => new LeaderlessKvClient({ nodes, ...options, system: clientSystem }),
    async ready(timeoutMs = 30_000) {
      const deadline = o.clock.now() + timeoutMs;
      for (;;) {
        const snaps = await Promise.all(nodes.map(snapshot));
        if (
          snaps.every(
            (s) =>
              s?.ready &&
              s.members.length === nodes.length &&
              s.members.every((m) => m.state === 'alive'),
          )
        )
          return;
        if (o.clock.now() > deadline)
          throw new Error(`the eventual cluster did not form within ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    split(...groups) {
      for (let i = 0; i < groups.length; i++)
        for (let j = 0; j < groups.length; j++)
          if (i !== j)
            for (const a of groups[i] as readonly string[])
              for (const b of groups[j] as readonly string[]) network.cut(a, b);
    },
    heal: () => network.heal(),
    inspect,
    async divergence() {
      return divergenceOf([...(await inspect()).values()]);
    },
    snapshot,
    async stop() {
      for (const s of systems.values()) await s.shutdown();
      await clientSystem.shutdown();
    },
  };
}
