/**
 * The shared transport scenario suite runs on a `Cluster`: N actor systems wired by one
 * transport kind. `memoryCluster` uses transports/memory; `websocketCluster` uses real
 * WebSocket transports on loopback, each link through a TCP proxy so it can be cut.
 * Both run on the system clock; every wait is on an event or a condition, with a timeout.
 */
import { ActorSystem } from '../../lib/actor-system.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { LinkState, Transport } from '../../lib/transport.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import type { MemoryTransport } from '../../transports/memory/memory-transport.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort } from './ws-proc.js';
import { TcpProxy } from './ws-proxy.js';
import { until } from './ws-util.js';

export interface Cluster {
  readonly kind: string;
  system(node: string): ActorSystem;
  /** The transport the node's system currently uses. */
  transport(node: string): Transport;
  /** Stops the node abruptly and starts a new incarnation of it (same address). */
  restart(node: string): Promise<void>;
  /** Cuts both directions between a and b. */
  cut(a: string, b: string): void;
  heal(): void;
  /** Resolves when `a` sees its link to `b` in `state` ('down' matches any not-up state). */
  waitLink(a: string, b: string, state: LinkState, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export type OnStart = (node: string, system: ActorSystem) => void;
export type ClusterFactory = (nodes: string[], onStart: OnStart) => Promise<Cluster>;

export const memoryCluster: ClusterFactory = async (nodes, onStart) => {
  const network = new MemoryNetwork({ clock: systemClock, random: new Random(42) });
  const systems = new Map<string, ActorSystem>();
  const transports = new Map<string, MemoryTransport>();
  const boot = (node: string) => {
    const transport = network.connect(node);
    const system = new ActorSystem({
      nodeId: node,
      transport,
      logger: silentLogger,
      random: new Random(node.charCodeAt(0)),
    });
    systems.set(node, system);
    transports.set(node, transport);
    onStart(node, system);
  };
  for (const n of nodes) boot(n);
  const linkState = (a: string, b: string) =>
    transports
      .get(a)
      ?.linkStatuses()
      .find((s) => s.peer === b)?.state ?? 'down';
  return {
    kind: 'memory',
    system: (n) => systems.get(n)!,
    transport: (n) => transports.get(n)!,
    async restart(node) {
      network.disconnect(node);
      await systems.get(node)!.shutdown();
      boot(node);
    },
    cut(a, b) {
      network.cut(a, b);
      network.cut(b, a);
    },
    heal: () => network.heal(),
    waitLink: (a, b, state, ms = 10_000) =>
      until(
        () => (state === 'up' ? linkState(a, b) === 'up' : linkState(a, b) !== 'up'),
        ms,
        `${a} sees ${b} ${state}`,
      ),
    async close() {
      for (const [n, s] of systems) {
        await s.shutdown();
        network.disconnect(n);
      }
    },
  };
};

export const websocketCluster: ClusterFactory = async (nodes, onStart) => {
  const ports = new Map<string, number>();
  for (const n of nodes) ports.set(n, await freePort());
  // proxies.get(`${a}>${b}`): the way a dials b
  const proxies = new Map<string, TcpProxy>();
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const p = new TcpProxy(ports.get(b)!);
      await p.listen();
      proxies.set(`${a}>${b}`, p);
    }
  }
  const systems = new Map<string, ActorSystem>();
  const transports = new Map<string, WebSocketTransport>();
  let seed = 1;
  const boot = async (node: string) => {
    const transport = new WebSocketTransport({
      nodeId: node,
      listen: { host: '127.0.0.1', port: ports.get(node)! },
      peers: nodes
        .filter((p) => p !== node)
        .map((p) => `${p}=ws://127.0.0.1:${proxies.get(`${node}>${p}`)!.port}`),
      secret: 'scenario-secret',
      // Fast enough for the link-cut scenario, slow enough that a loaded machine (event
      // loops stalled for hundreds of ms) does not flap links and lose in-flight messages.
      heartbeatIntervalMs: 250,
      heartbeatTimeoutMs: 3000,
      backoff: { initialMs: 20, maxMs: 250 },
      random: new Random(seed++),
      logger: silentLogger,
    });
    const system = new ActorSystem({
      nodeId: node,
      transport,
      logger: silentLogger,
      random: new Random(node.charCodeAt(0)),
    });
    systems.set(node, system);
    transports.set(node, transport);
    onStart(node, system);
    await transport.start();
  };
  for (const n of nodes) await boot(n);
  const linkState = (a: string, b: string) => transports.get(a)?.linkStatus(b)?.state ?? 'down';
  const waitLink = (a: string, b: string, state: LinkState, ms = 15_000) =>
    until(
      () => (state === 'up' ? linkState(a, b) === 'up' : linkState(a, b) !== 'up'),
      ms,
      `${a} sees ${b} ${state}`,
    );
  for (const a of nodes) for (const b of nodes) if (a !== b) await waitLink(a, b, 'up');
  return {
    kind: 'websocket',
    system: (n) => systems.get(n)!,
    transport: (n) => transports.get(n)!,
    async restart(node) {
      await systems.get(node)!.shutdown();
      await transports.get(node)!.close(0);
      await boot(node);
    },
    cut(a, b) {
      proxies.get(`${a}>${b}`)!.blackhole();
      proxies.get(`${b}>${a}`)!.blackhole();
    },
    heal() {
      for (const p of proxies.values()) p.heal();
    },
    waitLink,
    async close() {
      for (const s of systems.values()) await s.shutdown();
      for (const t of transports.values()) await t.close(0);
      for (const p of proxies.values()) await p.close();
    },
  };
};

export const CLUSTERS: { name: string; make: ClusterFactory }[] = [
  { name: 'memory', make: memoryCluster },
  { name: 'websocket', make: websocketCluster },
];
