/**
 * An in-process KV cluster: N nodes, each an actor system with a replicated log (Raft or
 * Multi-Paxos) on an in-memory disk, a `KvStateMachine` and a `KvService`, wired by the
 * in-memory transport (every message still goes through the msgpack codec), plus a client
 * system. Used by `synod kv workload --embedded raft|paxos` and the KV benchmark; it runs on
 * whatever clock it is given (the system clock from the CLI).
 */
import type { ActorSystem } from '../../lib/actor-system.js';
import { ActorSystem as System } from '../../lib/actor-system.js';
import type { Clock } from '../../lib/clock.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { ReplicatedLog } from '../../lib/replicated-log.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import { openMemoryPaxosStorage, startMultiPaxosNode } from '../paxos/multi-paxos-node.js';
import { RaftNode } from '../raft/raft-node.js';
import { KvError } from './errors.js';
import { KvService, type KvServiceOptions } from './service.js';
import { KvStateMachine } from './state-machine.js';
import type { KvOp, KvResult } from './types.js';

export type EmbeddedBackend = 'raft' | 'paxos';

export interface EmbeddedClusterOptions {
  backend: EmbeddedBackend;
  clock: Clock;
  /** Node ids (default n1, n2, n3). */
  nodes?: readonly string[];
  seed?: number;
  logger?: Logger;
  service?: Partial<Omit<KvServiceOptions, 'log' | 'sm'>>;
}

export interface EmbeddedCluster {
  readonly nodes: readonly string[];
  readonly systems: ReadonlyMap<string, ActorSystem>;
  readonly logs: ReadonlyMap<string, ReplicatedLog<KvOp, KvResult>>;
  readonly sms: ReadonlyMap<string, KvStateMachine>;
  /** The system clients send from (node id `client`). */
  readonly clientSystem: ActorSystem;
  /** Resolves once a leader is known to every node (or rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startEmbeddedCluster(o: EmbeddedClusterOptions): Promise<EmbeddedCluster> {
  if (o.backend !== 'raft' && o.backend !== 'paxos')
    throw new KvError(
      'SYNOD_ERR_KV_INVALID_ARGUMENT',
      `unknown backend "${String(o.backend)}" (raft or paxos)`,
    );
  const nodes = [...(o.nodes ?? ['n1', 'n2', 'n3'])];
  const random = new Random(o.seed ?? 1);
  const logger = o.logger ?? silentLogger;
  const network = new MemoryNetwork({ clock: o.clock, random: random.fork() });
  const systems = new Map<string, ActorSystem>();
  const logs = new Map<string, ReplicatedLog<KvOp, KvResult>>();
  const sms = new Map<string, KvStateMachine>();
  const stops: (() => Promise<void>)[] = [];
  for (const id of nodes) {
    const system = new System({
      nodeId: id,
      clock: o.clock,
      random: random.fork(),
      transport: network.connect(id, o.clock),
      logger,
    });
    systems.set(id, system);
    const sm = new KvStateMachine();
    sms.set(id, sm);
    const disk = new MemoryDisk({ clock: o.clock });
    let log: ReplicatedLog<KvOp, KvResult>;
    if (o.backend === 'raft') {
      const raft = new RaftNode<KvOp, KvResult>({
        storage: () => openMemoryDataDir(disk, { clock: o.clock }),
        stateMachine: () => sm,
        bootstrap: nodes,
      });
      system.spawn('raft', raft);
      log = raft;
    } else {
      const storage = await openMemoryPaxosStorage(disk, o.clock);
      const paxos = startMultiPaxosNode({ system, members: nodes, stateMachine: sm, storage });
      log = paxos.log as unknown as ReplicatedLog<KvOp, KvResult>;
      stops.push(() => paxos.stop());
    }
    logs.set(id, log);
    system.spawn('kv', new KvService({ log, sm, ...o.service }));
  }
  const clientSystem = new System({
    nodeId: 'client',
    clock: o.clock,
    random: random.fork(),
    transport: network.connect('client', o.clock),
    logger,
  });
  const leaders = new Map<string, string | undefined>();
  for (const [id, log] of logs) log.leader$.subscribe((l) => leaders.set(id, l));
  return {
    nodes,
    systems,
    logs,
    sms,
    clientSystem,
    ready(timeoutMs = 10_000) {
      return new Promise<string>((resolve, reject) => {
        const deadline = o.clock.now() + timeoutMs;
        const check = (): void => {
          const ls = new Set(nodes.map((n) => leaders.get(n)));
          const [l] = [...ls];
          if (ls.size === 1 && l !== undefined) resolve(l);
          else if (o.clock.now() > deadline)
            reject(new KvError('SYNOD_ERR_KV_UNAVAILABLE', `no leader within ${timeoutMs} ms`));
          else o.clock.setTimer(10, check);
        };
        check();
      });
    },
    async stop() {
      await clientSystem.shutdown();
      for (const s of stops) await s().catch(() => undefined);
      for (const s of systems.values()) await s.shutdown();
    },
  };
}
