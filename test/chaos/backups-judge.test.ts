/**
 * The chaos run's judgement of backups taken during faults (test/chaos/harness/backups.ts):
 * every key's value in a completed backup must be one some client wrote. Negative control:
 * a history that never wrote a value the backup holds is flagged.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startEmbeddedBackup } from '../../actors/backup/embedded.js';
import { Repository } from '../../actors/backup/repository.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { LocalCluster } from '../../lib/cluster/local-cluster.js';
import type { HistoryEvent } from '../../lib/history/event.js';
import { judgeBackups } from './harness/backups.js';

t.test('a backup holds only values clients wrote; an invented one is flagged', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-chaos-backups-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    seed: 5,
    stateMachine: () => new KvStateMachine(),
  });
  t.teardown(() => cluster.shutdown());
  await cluster.start();
  await cluster.waitForLeader(10_000);
  await cluster.propose({ t: 'put', key: 'k0', value: 'v1' });
  await cluster.propose({ t: 'put', key: 'k1', value: 'v2' });
  const repo = await Repository.init(dir, { state: 'kv', clusterId: 'c' });
  const agent = await startEmbeddedBackup(cluster, repo);
  await agent.live.catchUp(20_000);
  const m = await agent.live.backup('full');
  await agent.live.leave();
  await agent.stop();
  const attempt = { at: 0, ok: true, id: m.id, index: m.index, ms: 1 };
  const invoke = (key: string, f: string, value: unknown): HistoryEvent => ({
    process: 0,
    type: 'invoke',
    f,
    key,
    value,
  });
  const honest = [invoke('k0', 'write', 'v1'), invoke('k1', 'cas', ['v0', 'v2'])];
  t.same(await judgeBackups(dir, [attempt], honest), [], 'every value was written by a client');
  const missing = [invoke('k0', 'write', 'v1')];
  const problems = await judgeBackups(dir, [attempt], missing);
  t.equal(problems.length, 1, 'negative control: k1=v2 was never written in this history');
  t.match(problems[0], /holds k1="v2", a value no client wrote/);
  t.same(
    await judgeBackups(dir, [{ ...attempt, ok: false, id: undefined }], missing),
    [],
    'a failed attempt is not judged',
  );
});
