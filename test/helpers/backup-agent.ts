/**
 * A backup agent over a `MapState` in its own actor system, fed by the test (`applied`
 * messages, or a `CommittedFeed` as its source) rather than a cluster: what the agent-level
 * backup tests start from.
 */
import {
  type ArchiveOptions,
  BackupAgent,
  type BackupAgentMsg,
} from '../../actors/backup/agent.js';
import type { CommittedFeed } from '../../actors/backup/fake-log.js';
import type { Repository } from '../../actors/backup/repository.js';
import { type MapOp, MapState } from '../../actors/backup/state.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';

/** Spawns the agent (cluster id `c1`) and waits until it has started (its first status). */
export async function startMapAgent(
  t: { teardown(fn: () => unknown): void },
  repo: Repository,
  opts: { seed: number; archive: Partial<ArchiveOptions>; source?: CommittedFeed<MapOp> },
) {
  const system = new ActorSystem({
    nodeId: 'n1',
    logger: silentLogger,
    random: new Random(opts.seed),
  });
  t.teardown(() => system.shutdown());
  const agent = system.spawn<BackupAgentMsg<MapOp>, unknown>(
    'backup',
    () =>
      new BackupAgent<MapOp>({
        repo,
        clusterId: 'c1',
        factory: () => new MapState(),
        ...(opts.source ? { source: opts.source } : {}),
        archive: opts.archive,
      }),
  );
  await agent.ask({ type: 'status' });
  return { system, agent };
}
