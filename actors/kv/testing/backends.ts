/**
 * The two real replicated logs as `KvBackend`s for the simulation: Raft (actors/raft) and
 * Multi-Paxos (actors/paxos), each on the node's simulated disk (unsynced writes are lost on a
 * crash), with snapshots taken often so that restore paths are exercised too.
 */

import type { ReplicatedLog } from '../../../lib/replicated-log.js';
import { openMemoryDataDir } from '../../../lib/storage/data-dir.js';
import { openMemoryPaxosStorage, startMultiPaxosNode } from '../../paxos/multi-paxos-node.js';
import { RaftNode } from '../../raft/raft-node.js';
import type { KvOp, KvResult } from '../types.js';
import type { KvBackend } from './sim-cluster.js';

export const raftBackend: KvBackend = {
  name: 'raft',
  start(node, sm, members) {
    const raft = new RaftNode<KvOp, KvResult>({
      storage: () => openMemoryDataDir(node.disk, { clock: node.clock }),
      stateMachine: () => sm,
      bootstrap: [...members],
      snapshotEvery: 200,
      keepEntries: 50,
      requestTimeoutMs: 1000,
    });
    node.system.spawn('raft', raft);
    return raft as ReplicatedLog<KvOp, KvResult>;
  },
};

export const paxosBackend: KvBackend = {
  name: 'paxos',
  async start(node, sm, members) {
    const storage = await openMemoryPaxosStorage(node.disk, node.clock);
    const paxos = startMultiPaxosNode({
      heartbeatMs: 30,
      electionTimeoutMs: 150,
      retransmitMs: 60,
      snapshotEvery: 200,
      proposeTimeoutMs: 1000,
      system: node.system,
      members,
      stateMachine: sm,
      storage,
    });
    return paxos.log as unknown as ReplicatedLog<KvOp, KvResult>;
  },
};
