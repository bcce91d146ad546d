/**
 * One Multi-Paxos member on an actor system: an acceptor, a proposer and a learner actor
 * (spawned at `<path>/acceptor`, `<path>/proposer`, `<path>/learner`) and the
 * `MultiPaxosLog` that services use. Members are named by node id; every member runs the
 * three roles (a deployment that separates roles can spawn the actors itself).
 *
 * The quorum configuration is validated before anything is spawned: quorums that do not
 * intersect are refused with `SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION`.
 */
import type { ActorRef, SpawnOptions } from '../../lib/actor.js';
import type { ActorSystem } from '../../lib/actor-system.js';
import type { Clock } from '../../lib/clock.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import {
  FileHardStateStore,
  FileLogStore,
  FileSnapshotStore,
  type MemoryDisk,
  MemoryHardStateStore,
  MemoryLogStore,
  MemorySnapshotStore,
} from '../../lib/storage/index.js';
import type { HardStateStore, LogStore, SnapshotStore } from '../../lib/storage/types.js';
import { AcceptorJournal } from './acceptor-journal.js';
import { PaxosError } from './errors.js';
import type { MultiAcceptorHardState, MultiAcceptorView } from './multi-acceptor.js';
import { type AcceptorWriteStats, MultiPaxosAcceptor } from './multi-acceptor-actor.js';
import type { MultiLeaderView } from './multi-leader.js';
import type { MultiLearnerView } from './multi-learner.js';
import { type MultiLearnerMsg, MultiPaxosLearner } from './multi-learner-actor.js';
import type { MultiPaxosMessage } from './multi-messages.js';
import { MultiPaxosLog } from './multi-paxos-log.js';
import { MultiPaxosProposer, type MultiProposerMsg } from './multi-proposer-actor.js';
import { type QuorumSystem, quorumSystem } from './quorum.js';

export interface MultiPaxosStorage {
  readonly acceptorState: HardStateStore<MultiAcceptorHardState>;
  readonly acceptorJournal: LogStore;
  readonly proposerState: HardStateStore<{ round: number }>;
  readonly snapshots: SnapshotStore;
}

/** Paxos stores on a simulated disk (the simulation's MemoryDisk). */
export async function openMemoryPaxosStorage(
  disk: MemoryDisk,
  clock?: Clock,
): Promise<MultiPaxosStorage> {
  return {
    acceptorState: await MemoryHardStateStore.open<MultiAcceptorHardState>(disk, {
      name: 'paxos-acceptor',
    }),
    acceptorJournal: await MemoryLogStore.open(disk, { name: 'paxos-acceptor' }),
    proposerState: await MemoryHardStateStore.open<{ round: number }>(disk, {
      name: 'paxos-proposer',
    }),
    snapshots: await MemorySnapshotStore.open(disk, {
      name: 'paxos',
      ...(clock ? { clock } : {}),
    }),
  };
}

/** Paxos stores in a data directory: `<dir>/acceptor-log`, `<dir>/snapshots`, hard state files. */
export async function openFilePaxosStorage(dir: string): Promise<MultiPaxosStorage> {
  return {
    acceptorState: await FileHardStateStore.open<MultiAcceptorHardState>(dir, {
      name: 'paxos-acceptor',
    }),
    acceptorJournal: await FileLogStore.open(`${dir}/acceptor-log`),
    proposerState: await FileHardStateStore.open<{ round: number }>(dir, {
      name: 'paxos-proposer',
    }),
    snapshots: await FileSnapshotStore.open(`${dir}/snapshots`),
  };
}

export interface MultiPaxosQuorums {
  /** Phase-1 quorum size (default: a majority of members). */
  readonly phase1?: number;
  /** Phase-2 quorum size (default: a majority of members). */
  readonly phase2?: number;
  /** Explicit quorums as lists of member node ids (instead of sizes). */
  readonly phase1Quorums?: readonly (readonly string[])[];
  readonly phase2Quorums?: readonly (readonly string[])[];
}

export interface MultiPaxosNodeOptions {
  readonly system: ActorSystem;
  /** Node ids of every member, this one included. */
  readonly members: readonly string[];
  readonly stateMachine: StateMachine;
  readonly storage: MultiPaxosStorage;
  readonly quorums?: MultiPaxosQuorums;
  /** Actor path prefix. Default 'paxos'. */
  readonly path?: string;
  readonly leaseMs?: number;
  readonly maxClockDrift?: number;
  readonly heartbeatMs?: number;
  readonly electionTimeoutMs?: number;
  readonly window?: number;
  readonly maxBatch?: number;
  readonly retransmitMs?: number;
  /** See MultiLeaderOptions.promisePageBytes (default 1 MiB). */
  readonly promisePageBytes?: number;
  readonly maxPending?: number;
  readonly snapshotEvery?: number;
  /** Applied slots a learner keeps for catch-up behind its snapshot (default 1000). */
  readonly keepAfterSnapshot?: number;
  /** See MultiLearnerOptions.snapshotLogRatio (default 1 with the default `snapshotEvery`). */
  readonly snapshotLogRatio?: number;
  /** See MultiLearnerOptions.snapshotEveryMax (default 100 × `snapshotEvery`). */
  readonly snapshotEveryMax?: number;
  /**
   * Encode the learner's snapshots in slices, giving the event loop back between them
   * (default true; see MultiPaxosLearnerOptions.slicedSnapshots). False encodes each in one go.
   */
  readonly slicedSnapshots?: boolean;
  readonly tickMs?: number;
  readonly proposeTimeoutMs?: number;
  /** Non-lease reads: a quorum-confirmed read index (default) or a no-op through the log. */
  readonly reads?: 'confirm' | 'log';
  /** Supervision of the three actors (default: the actor system's default). */
  readonly supervision?: SpawnOptions['supervision'];
  /**
   * Publish the learner's `applied-batch` events on its events$ (default false: `log.applied$`
   * gives every applied command, and a record per slot built for nobody was most of a
   * follower's allocations per write).
   */
  readonly appliedEvents?: boolean;
}

export interface MultiPaxosNode {
  readonly log: MultiPaxosLog;
  readonly quorums: QuorumSystem;
  readonly acceptor: ActorRef<MultiPaxosMessage, MultiAcceptorView | undefined>;
  readonly proposer: ActorRef<MultiProposerMsg, MultiLeaderView | undefined>;
  readonly learner: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined>;
  /** The acceptor's journal writes and the steps they covered (group commit), for benchmarks. */
  acceptorWriteStats(): AcceptorWriteStats;
  /** Stops the log and the three actors, and closes the stores. */
  stop(): Promise<void>;
}

/** Builds and validates the quorum system over the members' acceptor addresses. */
export function paxosQuorums(
  members: readonly string[],
  q: MultiPaxosQuorums = {},
  path = 'paxos',
): QuorumSystem {
  const addr = (m: string) => `${m}/${path}/acceptor`;
  const acceptors = members.map(addr);
  if (q.phase1Quorums !== undefined || q.phase2Quorums !== undefined) {
    return quorumSystem({
      acceptors,
      phase1Quorums: (q.phase1Quorums ?? []).map((l) => l.map(addr)),
      phase2Quorums: (q.phase2Quorums ?? []).map((l) => l.map(addr)),
    });
  }
  return quorumSystem({
    acceptors,
    ...(q.phase1 !== undefined ? { phase1: q.phase1 } : {}),
    ...(q.phase2 !== undefined ? { phase2: q.phase2 } : {}),
  });
}

export function startMultiPaxosNode(opts: MultiPaxosNodeOptions): MultiPaxosNode {
  const { system, members } = opts;
  const path = opts.path ?? 'paxos';
  if (!members.includes(system.nodeId)) {
    throw new PaxosError(
      'SYNOD_ERR_PAXOS_BAD_CONFIG',
      `node "${system.nodeId}" is not among the members ${members.join(', ')}`,
    );
  }
  const quorums = paxosQuorums(members, opts.quorums, path);
  const self = (role: string) => `${system.nodeId}/${path}/${role}`;
  const journal = new AcceptorJournal(opts.storage.acceptorState, opts.storage.acceptorJournal);
  const pick = <K extends keyof MultiPaxosNodeOptions>(...keys: K[]) => {
    const o: Partial<Pick<MultiPaxosNodeOptions, K>> = {};
    for (const k of keys) if (opts[k] !== undefined) (o as Record<K, unknown>)[k] = opts[k];
    return o;
  };
  const spawnOpts: SpawnOptions = opts.supervision ? { supervision: opts.supervision } : {};
  const acceptorActor = new MultiPaxosAcceptor({
    journal,
    leaseMs: opts.leaseMs ?? 0,
    localProposer: self('proposer'),
  });
  const acceptor = system.spawn(`${path}/acceptor`, acceptorActor, spawnOpts);
  const proposerActor = new MultiPaxosProposer({
    quorums,
    proposers: members.map((m) => `${m}/${path}/proposer`),
    learners: members.map((m) => `${m}/${path}/learner`),
    localLearner: self('learner'),
    // Every member's learner runs next to its acceptor (this function wires them so): the
    // leader sends them slot numbers, and they take the values from their acceptor.
    learnersWithAcceptor: new Set(members.map((m) => `${m}/${path}/learner`)),
    store: opts.storage.proposerState,
    ...pick(
      'leaseMs',
      'maxClockDrift',
      'heartbeatMs',
      'electionTimeoutMs',
      'window',
      'maxBatch',
      'retransmitMs',
      'promisePageBytes',
      'maxPending',
      'tickMs',
      'reads',
    ),
  });
  const proposer = system.spawn(`${path}/proposer`, proposerActor, spawnOpts);
  const learnerActor = new MultiPaxosLearner({
    stateMachine: opts.stateMachine,
    snapshots: opts.storage.snapshots,
    peers: members.map((m) => `${m}/${path}/learner`),
    localAcceptor: self('acceptor'),
    localProposer: self('proposer'),
    localSlots: acceptorActor,
    ...(opts.snapshotEvery !== undefined ? { snapshotEvery: opts.snapshotEvery } : {}),
    ...(opts.keepAfterSnapshot !== undefined ? { keepAfterSnapshot: opts.keepAfterSnapshot } : {}),
    ...(opts.snapshotLogRatio !== undefined ? { snapshotLogRatio: opts.snapshotLogRatio } : {}),
    ...(opts.snapshotEveryMax !== undefined ? { snapshotEveryMax: opts.snapshotEveryMax } : {}),
    ...(opts.slicedSnapshots !== undefined ? { slicedSnapshots: opts.slicedSnapshots } : {}),
    appliedEvents: opts.appliedEvents === true,
  });
  const learner = system.spawn(`${path}/learner`, learnerActor, spawnOpts);
  const log = new MultiPaxosLog({
    nodeId: system.nodeId,
    clock: system.clock,
    proposer,
    learner,
    incarnation: system.random.nextUint32().toString(36),
    localProposer: proposerActor,
    localLearner: learnerActor,
    ...(opts.proposeTimeoutMs !== undefined ? { defaultTimeoutMs: opts.proposeTimeoutMs } : {}),
  });
  return {
    log,
    quorums,
    acceptor,
    proposer,
    learner,
    acceptorWriteStats: () => acceptorActor.writeStats(),
    async stop() {
      log.stop();
      await system.stop(learner.address);
      await system.stop(proposer.address);
      await system.stop(acceptor.address);
      await journal.close().catch(() => undefined);
      await opts.storage.proposerState.close().catch(() => undefined);
      await opts.storage.snapshots.close().catch(() => undefined);
    },
  };
}
