/**
 * The agent joining a cluster whose log is compacted: the leader sends the learner a
 * snapshot, the agent takes that state (`reset`) instead of stalling, and its backups are
 * exact. A second agent (a restart: state recovered from the repository, older than the
 * cluster's snapshot) rejoins after more writes; its differential backup learns the keys
 * changed across the archive gap by comparing states, and restores to the cluster's state.
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

t.test('an agent joining a compacted cluster resyncs from the snapshot', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-learner-snap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const machines = new Map<string, KvStateMachine>();
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    seed: 11,
    raft: { snapshotEvery: 40, keepEntries: 5 },
    stateMachine: (id) => {
      const sm = new KvStateMachine();
      machines.set(id, sm);
      return sm;
    },
  });
  t.teardown(() => cluster.shutdown());
  await cluster.start();
  await cluster.waitForLeader(10_000);
  for (let i = 0; i < 120; i++) {
    await cluster.propose({ t: 'put', key: `k${i % 50}`, value: `a${i}` });
  }
  const leaderSm = () => machines.get(cluster.leader() as string) as KvStateMachine;
  const repo = await Repository.init(dir, { state: 'kv', clusterId: 'c' });

  const first = await startEmbeddedBackup(cluster, repo);
  const events: string[] = [];
  const sub = first.live.agent.events$.subscribe((e) => events.push(e.type));
  await first.live.catchUp(20_000);
  t.ok(events.includes('resynced'), 'the agent took the snapshot the leader sent');
  const full = await first.live.backup('full');
  const atFull = await restore(repo, { kind: 'backup', id: full.id }, { factory: KV_KIND.factory });
  t.same(
    kvs((atFull.state.inner as KvKeyedState).machine),
    kvs(leaderSm()),
    'the full backup restores to the cluster state',
  );
  await first.live.leave();
  sub.unsubscribe();
  await first.stop();
  const m = cluster.raft(cluster.leader() as string)?.status().membership;
  t.notOk(m?.learners.includes('backup'), 'the learner left');

  // More writes (and deletes) while no agent runs: the log is compacted past them.
  for (let i = 0; i < 150; i++) {
    if (i % 7 === 0) await cluster.propose({ t: 'del', key: `k${i % 50}` });
    else await cluster.propose({ t: 'put', key: `k${(i * 3) % 60}`, value: `b${i}` });
  }
  const second = await startEmbeddedBackup(cluster, repo, { seed: 9 });
  const events2: string[] = [];
  second.live.agent.events$.subscribe((e) => events2.push(e.type));
  await second.live.catchUp(20_000);
  t.ok(events2.includes('resynced'), 'the restarted agent resynced from a newer snapshot');
  const diff = await second.live.backup('diff');
  t.equal(diff.type, 'diff', 'a real differential, not promoted');
  t.equal(diff.parent, full.id);
  const res = await restore(repo, { kind: 'backup', id: diff.id }, { factory: KV_KIND.factory });
  t.same(
    kvs((res.state.inner as KvKeyedState).machine),
    kvs(leaderSm()),
    'the diff across the archive gap restores to the cluster state',
  );
  await second.live.leave();
  await second.stop();
  const v = await verify(repo);
  const gaps = v.problems.filter((p) => p.kind === 'archive-gap');
  t.ok(
    v.problems.every((p) => p.kind === 'archive-gap'),
    `only archive gaps are reported (${v.problems.map((p) => p.kind).join(',') || 'none'})`,
  );
  t.comment(`verify: ${gaps.map((g) => g.detail).join('; ') || 'no gap reported'}`);
});

/**
 * A long-running agent: its learner compacts its in-memory log behind empty snapshots of its
 * own, so memory stays bounded, and those snapshots never reach the agent as a state to take
 * (only the leader's InstallSnapshot does). Negative control: with compaction off the log
 * holds every entry.
 */
t.test("a long-running agent's learner keeps its log bounded", async (t) => {
  const run = async (learnerSnapshotEvery: number) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-learner-bounded-'));
    const machines = new Map<string, KvStateMachine>();
    const cluster = new LocalCluster<KvOp, KvResult>({
      nodes: ['a', 'b', 'c'],
      seed: 12,
      stateMachine: (id) => {
        const sm = new KvStateMachine();
        machines.set(id, sm);
        return sm;
      },
    });
    try {
      await cluster.start();
      await cluster.waitForLeader(10_000);
      const repo = await Repository.init(dir, { state: 'kv', clusterId: 'c' });
      const agent = await startEmbeddedBackup(cluster, repo, {
        learnerSnapshotEvery,
        learnerKeepEntries: 10,
      });
      const events: string[] = [];
      agent.live.agent.events$.subscribe((e) => events.push(e.type));
      await agent.live.catchUp(20_000);
      for (let i = 0; i < 400; i++)
        await cluster.propose({ t: 'put', key: `k${i % 37}`, value: `v${i}` });
      await agent.live.catchUp(20_000);
      const span = agent.live.learnerLogSpan();
      const full = await agent.live.backup('full');
      const res = await restore(
        repo,
        { kind: 'backup', id: full.id },
        { factory: KV_KIND.factory },
      );
      const leader = machines.get(cluster.leader() as string) as KvStateMachine;
      const same =
        JSON.stringify(kvs((res.state.inner as KvKeyedState).machine)) ===
        JSON.stringify(kvs(leader));
      await agent.live.leave();
      await agent.stop();
      return { span, same, resynced: events.includes('resynced') };
    } finally {
      await cluster.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  };
  const bounded = await run(50);
  t.ok(bounded.span, 'the learner reports its log');
  const held = (bounded.span?.last ?? 0) - (bounded.span?.first ?? 0) + 1;
  t.ok(
    held <= 50 + 10 + 20,
    `the learner holds ${held} entries after 400 writes (compacts every 50, keeps 10)`,
  );
  t.ok(bounded.same, 'the backup still restores to the cluster state');
  t.notOk(bounded.resynced, 'its own empty snapshots never reset the agent');
  const unbounded = await run(0);
  const all = (unbounded.span?.last ?? 0) - (unbounded.span?.first ?? 0) + 1;
  t.ok(all >= 400, `negative control: without compaction it holds all ${all} entries`);
});

/**
 * The snapshot tap tells the learner's own (compaction) snapshots from the leader's
 * InstallSnapshot images by content, whatever order RaftNode creates and commits them in:
 * here the leader's image is stored between the learner taking its own image and storing it
 * (RaftNode awaits the log's durability in between). Negative control: a tap looking for
 * another marker reports the learner's own snapshot as installed.
 */
t.test('own snapshots are told from installed ones by content, not by order', async (t) => {
  const { learnerMarker, tapSnapshots } = await import('../../actors/backup/learner.js');
  const { MemoryDisk } = await import('../../lib/storage/memory-disk.js');
  const { MemorySnapshotStore } = await import('../../lib/storage/index.js');
  const { encodeValue } = await import('../../lib/codec.js');
  const { Random } = await import('../../lib/random.js');
  const marker = learnerMarker(new Random(5));
  const ownImage = encodeValue({ v: 1, sessions: [], user: marker });
  const leaderImage = encodeValue({ v: 1, sessions: [], user: new Uint8Array([1, 2, 3, 4]) });
  const run = async (m: Buffer) => {
    const inner = await MemorySnapshotStore.open(new MemoryDisk(), { name: 'tap' });
    const seen: number[] = [];
    const store = tapSnapshots(inner, (index) => seen.push(index), m);
    const membership = { voters: ['a'], learners: [] } as never;
    const own = await store.create({ index: 10, term: 1, membership });
    const leader = await store.create({ index: 20, term: 2, membership });
    await leader.write(leaderImage);
    await leader.commit();
    await own.write(ownImage);
    await own.commit();
    return seen;
  };
  t.same(await run(marker), [20], 'only the leader image reaches the agent');
  t.same(
    await run(learnerMarker(new Random(6))),
    [20, 10],
    'control: with another marker the own snapshot is taken for an installed one',
  );
});
