/**
 * A restarted agent's learner starts from the agent's own state: the agent recovers index i
 * (term t) from the repository, the learner's log starts with a snapshot at (i, t), and the
 * leader, whose log still holds i + 1, replicates only the entries after i — no
 * InstallSnapshot of the whole state, no log from index 1, no archive gap. Its differential
 * restores to the cluster's state and `verify` finds nothing. Negative control: with seeding
 * off the learner receives the log from index 1.
 * Embedded cluster (in-memory network, real clock); waits are bounded by timeouts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startEmbeddedBackup } from '../../actors/backup/embedded.js';
import type { KvKeyedState } from '../../actors/backup/kv-state.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { KV_KIND } from '../../actors/backup/state-kind.js';
import { verify } from '../../actors/backup/verify.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { LocalCluster } from '../../lib/cluster/local-cluster.js';

function kvs(sm: KvStateMachine) {
  return { rev: sm.revision, kvs: sm.range({ start: '' }).kvs };
}

t.test('a restarted agent learner starts at its own index', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-learner-seed-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const machines = new Map<string, KvStateMachine>();
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    seed: 21,
    stateMachine: (id) => {
      const sm = new KvStateMachine();
      machines.set(id, sm);
      return sm;
    },
  });
  t.teardown(() => cluster.shutdown());
  await cluster.start();
  await cluster.waitForLeader(10_000);
  for (let i = 0; i < 80; i++)
    await cluster.propose({ t: 'put', key: `k${i % 30}`, value: `a${i}` });
  const leaderSm = () => machines.get(cluster.leader() as string) as KvStateMachine;
  const repo = await Repository.init(dir, { state: 'kv', clusterId: 'c' });

  const first = await startEmbeddedBackup(cluster, repo);
  await first.live.catchUp(20_000);
  t.equal(
    first.live.learnerLogSpan()?.first,
    1,
    'a first agent (empty repository) gets the log from 1',
  );
  const full = await first.live.backup('full');
  await first.live.leave();
  await first.stop();

  for (let i = 0; i < 60; i++) {
    if (i % 5 === 0) await cluster.propose({ t: 'del', key: `k${i % 30}` });
    else await cluster.propose({ t: 'put', key: `k${(i * 7) % 40}`, value: `b${i}` });
  }

  /** A restarted agent: catches up, takes a diff, reports its learner's log and events. */
  const restart = async (
    seedFromAgent: boolean,
    more: Parameters<typeof startEmbeddedBackup>[2] = {},
  ) => {
    const lines: string[] = [];
    const agent = await startEmbeddedBackup(cluster, repo, {
      seed: 9,
      seedFromAgent,
      log: (l) => lines.push(l),
      ...more,
    });
    const events: string[] = [];
    agent.live.agent.events$.subscribe((e) => events.push(e.type));
    const startedAt = (await agent.live.status()).index;
    await agent.live.catchUp(20_000);
    const span = agent.live.learnerLogSpan();
    const diff = await agent.live.backup('diff');
    await agent.live.leave();
    await agent.stop();
    return { startedAt, span, diff, events, lines };
  };
  const seeded = await restart(true);
  t.ok(seeded.startedAt >= full.index, `the agent recovered index ${seeded.startedAt}`);
  t.equal(
    seeded.span?.first,
    seeded.startedAt + 1,
    `its learner's log starts after it (${seeded.span?.first}..${seeded.span?.last})`,
  );
  t.notOk(seeded.events.includes('resynced'), 'no snapshot was installed');
  t.equal(seeded.diff.parent, full.id, 'a differential on the full');
  const res = await restore(
    repo,
    { kind: 'backup', id: seeded.diff.id },
    { factory: KV_KIND.factory },
  );
  t.same(
    kvs((res.state.inner as KvKeyedState).machine),
    kvs(leaderSm()),
    'it restores to the cluster state',
  );
  const v = await verify(repo);
  t.same(
    v.problems.map((p) => p.kind),
    [],
    'verify: no problem, no archive gap',
  );

  const control = await restart(false);
  t.equal(control.span?.first, 1, 'negative control: unseeded, the learner gets the log from 1');

  // A seed whose term does not match the leader's log (as an old repository could record for
  // a no-op) takes no entry: the learner is restarted unseeded and the backup is still exact.
  await cluster.propose({ t: 'put', key: 'late', value: 'x' });
  const wrong = await restart(true, { seedTermForTest: (term) => term + 5, seedCheckMs: 1500 });
  t.ok(
    wrong.lines.some((l) => /made no progress from the agent's index/.test(l)),
    'the stuck seeded learner is noticed',
  );
  t.equal(wrong.span?.first, 1, 'and replaced by one that gets the log from 1');
  const res2 = await restore(
    repo,
    { kind: 'backup', id: wrong.diff.id },
    { factory: KV_KIND.factory },
  );
  t.same(
    kvs((res2.state.inner as KvKeyedState).machine),
    kvs(leaderSm()),
    'its differential restores to the cluster state',
  );
});

t.test('join and leave are repeated while the cluster has no leader, not otherwise', async (t) => {
  const { whileNoLeader } = await import('../../actors/backup/learner.js');
  const { SystemClock } = await import('../../lib/clock.js');
  const clock = new SystemClock();
  let n = 0;
  const r = await whileNoLeader(clock, 10_000, async () =>
    ++n < 3
      ? { ok: false, message: 'no leader right now; try again in a moment' }
      : { ok: true, message: 'removed' },
  );
  t.same([r.ok, n], [true, 3], 'retried through an election until the leader answered');
  let m = 0;
  const refused = await whileNoLeader(clock, 10_000, async () => {
    m++;
    return { ok: false, message: 'SYNOD_ERR_ADMIN_DENIED: not allowed' };
  });
  t.same([refused.ok, m], [false, 1], 'control: another refusal is returned at once');
  let k = 0;
  const gaveUp = await whileNoLeader(clock, 300, async () => {
    k++;
    return { ok: false, message: 'no leader right now; try again in a moment' };
  });
  t.ok(!gaveUp.ok && k >= 2 && k <= 4, `bounded: gave up after ${k} tries in 300 ms`);
});

t.test('the commit index is asked again while the cluster has no leader', async (t) => {
  const { commitIndexThroughElections } = await import('../../actors/backup/learner.js');
  const { SystemClock } = await import('../../lib/clock.js');
  const clock = new SystemClock();
  // An election: two answers without a leader, then a follower naming the new leader.
  let n = 0;
  const asked: string[] = [];
  const index = await commitIndexThroughElections(
    clock,
    10_000,
    async () =>
      ++n < 3
        ? { role: 'follower', leader: null, commitIndex: 7 }
        : { role: 'follower', leader: 'b', commitIndex: 7 },
    async (leader) => {
      asked.push(leader);
      return { commitIndex: 42 };
    },
  );
  t.same([index, n, asked], [42, 3, ['b']], "through the election to the new leader's index");
  const own = await commitIndexThroughElections(
    clock,
    10_000,
    async () => ({ role: 'leader', leader: 'a', commitIndex: 9 }),
    async () => {
      throw new Error('control: a leader is not asked for its leader');
    },
  );
  t.equal(own, 9, 'a leader answers with its own index at once');
  // A leader that does not answer counts as no leader; bounded.
  let k = 0;
  await t.rejects(
    commitIndexThroughElections(
      clock,
      300,
      async () => {
        k++;
        return { role: 'follower', leader: 'c', commitIndex: 1 };
      },
      async () => {
        throw new Error('timed out');
      },
    ),
    { code: 'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE', message: /leader c does not answer/ },
  );
  t.ok(k >= 2 && k <= 4, `bounded: gave up after ${k} tries in 300 ms`);
  // No member answering at all is not retried.
  let m = 0;
  await t.rejects(
    commitIndexThroughElections(
      clock,
      10_000,
      async () => {
        m++;
        throw new Error('no member answered');
      },
      async () => ({ commitIndex: 0 }),
    ),
    /no member answered/,
  );
  t.equal(m, 1, 'control: an unreachable cluster fails at once');
});
