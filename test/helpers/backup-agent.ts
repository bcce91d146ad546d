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
import type { ActorRef } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import type { Clock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';

/** Spawns the agent (cluster id `c1`) and waits until it has started (its first status). */
export async function startMapAgent(
  t: { teardown(fn: () => unknown): void },
  repo: Repository,
  opts: {
    seed: number;
    archive: Partial<ArchiveOptions>;
    source?: CommittedFeed<MapOp>;
    /** The system's clock (default the real one). */
    clock?: Clock;
    /** The state the agent keeps (default a fresh `MapState`). */
    factory?: () => MapState;
  },
) {
  const system = new ActorSystem({
    nodeId: 'n1',
    logger: silentLogger,
    random: new Random(opts.seed),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  t.teardown(() => system.shutdown());
  const agent = system.spawn<BackupAgentMsg<MapOp>, unknown>(
    'backup',
    () =>
      new BackupAgent<MapOp>({
        repo,
        clusterId: 'c1',
        factory: opts.factory ?? (() => new MapState()),
        ...(opts.source ? { source: opts.source } : {}),
        archive: opts.archive,
      }),
  );
  await agent.ask({ type: 'status' });
  return { system, agent };
}

/** Tells the agent that entries `from`..`to` (term 1) applied a put of `value(i)` to `key(i)`. */
export function applyPuts(
  agent: ActorRef<BackupAgentMsg<MapOp>, unknown>,
  from: number,
  to: number,
  key: (i: number) => string,
  value: (i: number) => Uint8Array,
): void {
  for (let i = from; i <= to; i++)
    agent.tell({
      type: 'applied',
      entry: {
        index: i,
        term: 1,
        command: { clientId: 'c', seq: i, op: { type: 'put', key: key(i), value: value(i) } },
        result: undefined,
      } as never,
    });
}
