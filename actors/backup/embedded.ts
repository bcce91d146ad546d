/**
 * The backup agent beside an embedded cluster (lib/cluster/local-cluster.ts): the agent's
 * learner connects to the cluster's in-memory network as one more node and is added to
 * the configuration by the leader's RaftNode directly (no admin actor in process). The
 * demos use it; a real cluster uses `synod backup --cluster` (live-cli.ts).
 */

import { ActorSystem } from '../../lib/actor-system.js';
import type { LocalCluster } from '../../lib/cluster/local-cluster.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { KvOp, KvResult } from '../kv/types.js';
import { BackupError } from './errors.js';
import { type ClusterMembership, LiveBackup } from './learner.js';
import type { Repository } from './repository.js';
import { KV_KIND } from './state-kind.js';

function leaderOf(cluster: LocalCluster<KvOp, KvResult>) {
  const id = cluster.leader();
  const raft = id ? cluster.raft(id) : undefined;
  if (!raft) throw new BackupError('SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE', 'no leader right now');
  return raft;
}

export function localMembership(cluster: LocalCluster<KvOp, KvResult>): ClusterMembership {
  return {
    async join(id) {
      const raft = leaderOf(cluster);
      const m = raft.status().membership;
      if (!m.learners.includes(id) && !m.voters.includes(id)) await raft.addLearner(id);
      return {};
    },
    async leave(id) {
      await leaderOf(cluster).removeMember(id);
      return `${id} removed by the leader`;
    },
    async committedIndex() {
      return leaderOf(cluster).status().commit;
    },
    async members() {
      const m = leaderOf(cluster).status().membership;
      return { voters: [...m.voters], learners: [...m.learners] };
    },
  };
}

/** Starts the agent as learner `id` of an embedded KV cluster, backing up into `repo`. */
export async function startEmbeddedBackup(
  cluster: LocalCluster<KvOp, KvResult>,
  repo: Repository,
  options: {
    id?: string;
    clusterId?: string;
    seed?: number;
    /** See LiveBackupOptions.learnerSnapshotEvery / learnerKeepEntries. */
    learnerSnapshotEvery?: number;
    learnerKeepEntries?: number;
    /** See LiveBackupOptions.seedFromAgent (default true), seedCheckMs, seedTermForTest. */
    seedFromAgent?: boolean;
    seedCheckMs?: number;
    seedTermForTest?: (term: number) => number;
    /** See LiveBackupOptions.followToleranceMs. */
    followToleranceMs?: number;
    log?: (line: string) => void;
  } = {},
): Promise<{ live: LiveBackup<KvOp>; stop(): Promise<void> }> {
  const id = options.id ?? 'backup';
  const transport = cluster.network.connect(id, cluster.clock);
  const system = new ActorSystem({
    nodeId: id,
    clock: cluster.clock,
    random: new Random(options.seed ?? 7),
    transport,
    logger: silentLogger,
  });
  const live = await LiveBackup.start<KvOp>({
    system,
    url: `memory://${id}`,
    addPeer: () => {},
    contacts: [],
    membership: localMembership(cluster),
    repo,
    clusterId: options.clusterId ?? repo.config.clusterId ?? 'local',
    kind: KV_KIND,
    ...(options.learnerSnapshotEvery !== undefined
      ? { learnerSnapshotEvery: options.learnerSnapshotEvery }
      : {}),
    ...(options.learnerKeepEntries !== undefined
      ? { learnerKeepEntries: options.learnerKeepEntries }
      : {}),
    ...(options.seedFromAgent !== undefined ? { seedFromAgent: options.seedFromAgent } : {}),
    ...(options.seedCheckMs !== undefined ? { seedCheckMs: options.seedCheckMs } : {}),
    ...(options.seedTermForTest ? { seedTermForTest: options.seedTermForTest } : {}),
    ...(options.followToleranceMs !== undefined
      ? { followToleranceMs: options.followToleranceMs }
      : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  return {
    live,
    stop: async () => {
      await system.shutdown();
      cluster.network.disconnect(id);
    },
  };
}
