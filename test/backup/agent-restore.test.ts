/**
 * The first test: a randomized workload flows through the backup agent while it
 * takes full, differential and incremental backups; restoring to 100 random committed
 * indices gives exactly the reference model's state at each of them.
 * SYNOD_SEED=n reproduces a run; SYNOD_BACKUP_LONG=1 runs a longer workload.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { filter, firstValueFrom, timeout } from 'rxjs';
import t from 'tap';
import {
  type AgentStatus,
  BackupAgent,
  type BackupAgentMsg,
  type BackupSummary,
} from '../../actors/backup/agent.js';
import { StateDigest } from '../../actors/backup/digest.js';
import { CommittedFeed } from '../../actors/backup/fake-log.js';
import type { BackupType } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { type MapOp, MapState } from '../../actors/backup/state.js';
import { randomOp } from '../../actors/backup/workload.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
import { startMapAgent } from '../helpers/backup-agent.js';

const seed = Number(process.env.SYNOD_SEED ?? Math.floor(Math.random() * 2 ** 31));
const long = process.env.SYNOD_BACKUP_LONG === '1';
const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };

function snapshotDigest(m: MapState): { digest: string; count: number } {
  const d = new StateDigest();
  for (const [k, v] of m.entries()) d.add(k, v);
  return { digest: d.hex(), count: d.count };
}

t.test(
  `restore to 100 random committed indices equals the reference model (seed ${seed})`,
  async (t) => {
    t.comment(`seed ${seed} (reproduce with SYNOD_SEED=${seed})`);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-agent-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
    const r = new Random(seed);
    const total = long ? 20_000 : 3_000;
    const targets = new Set<number>();
    while (targets.size < 100) targets.add(r.between(1, total));
    const feed = new CommittedFeed<MapOp>();
    const { agent } = await startMapAgent(t, repo, {
      seed,
      source: feed,
      archive: { maxEntries: 97, flushMs: 0 },
    });
    const model = new MapState();
    const expected = new Map<number, { digest: string; count: number }>();
    const backups: Promise<BackupSummary>[] = [];
    const types: BackupType[] = ['full', 'diff', 'incr', 'incr', 'diff', 'incr'];
    const lastCmd = new Map<string, Command<MapOp>>();
    let retries = 0;
    let noops = 0;
    for (let i = 1; i <= total; i++) {
      const client = `c${r.int(5)}`;
      const prev = lastCmd.get(client);
      if (r.chance(0.03)) {
        feed.noop(); // a leader's no-op: no command, the index moves
        noops++;
      } else if (prev && r.chance(0.05)) {
        feed.push(prev); // a client retry: Raft's session table makes it a no-op
        retries++;
      } else {
        const op = randomOp(r, {
          keySpace: 400,
          valueMin: 0,
          valueMax: 300,
          pDelete: 0.2,
          pBatch: 0.1,
        });
        const cmd = { clientId: client, seq: (prev?.seq ?? 0) + 1, op };
        lastCmd.set(client, cmd);
        model.apply(op);
        feed.push(cmd);
      }
      if (targets.has(i)) expected.set(i, snapshotDigest(model));
      if (i % 211 === 0) {
        // Not awaited: the backup is written while entries keep flowing.
        backups.push(
          agent.ask(
            { type: 'backup', kind: types[(i / 211) % types.length] as BackupType },
            60_000,
          ),
        );
      }
    }
    await agent.ask({ type: 'flush' }, 60_000);
    const written = await Promise.all(backups);
    t.ok(written.length >= 10, `${written.length} backups taken during the workload`);
    t.ok(new Set(written.map((b) => b.type)).size === 3, 'all three types taken');
    const status = (await agent.ask({ type: 'status' })) as { index: number; archivedTo: number };
    t.equal(status.index, total);
    t.equal(status.archivedTo, total);

    let mismatches = 0;
    for (const idx of [...targets].sort((a, b) => a - b)) {
      const res = await restore(
        repo,
        { kind: 'index', index: idx },
        { factory: () => new MapState() },
      );
      const want = expected.get(idx) as { digest: string; count: number };
      const got = snapshotDigest(res.state.inner as MapState);
      if (res.index !== idx || got.digest !== want.digest || got.count !== want.count) {
        mismatches++;
        t.fail(
          `index ${idx}: restored ${res.index} ${got.digest.slice(0, 12)} (${got.count} keys), model ${want.digest.slice(0, 12)} (${want.count} keys) (seed ${seed})`,
        );
      }
    }
    t.equal(mismatches, 0, '100 restores match the model');
    // A restore to a backup restores exactly the state at its index (no replay).
    for (const b of written.slice(-4)) {
      const res = await restore(
        repo,
        { kind: 'backup', id: b.id },
        { factory: () => new MapState() },
      );
      t.equal(res.index, b.index);
      t.equal(res.replayed, 0);
    }
    const latest = await restore(repo, { kind: 'latest' }, { factory: () => new MapState() });
    t.equal(latest.index, total, 'latest = archive tip');
    t.equal(snapshotDigest(latest.state.inner as MapState).digest, snapshotDigest(model).digest);
    t.ok(
      retries > 0 && noops > 0,
      `${retries} client retries and ${noops} no-op entries in the log`,
    );
  },
);

/**
 * An entry without a command (a new leader's no-op, a configuration change) is archived with
 * its own term when the source says it (the Raft learner does), so a restore to that index
 * reports the cluster's term there. Control: a step without a term keeps the last command's.
 */
t.test('entries without a command are archived with their own term', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-agent-term-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  const { agent } = await startMapAgent(t, repo, {
    seed: 3,
    archive: { maxEntries: 1000, flushMs: 0 },
  });
  const put = (index: number, term: number, key: string): BackupAgentMsg<MapOp> => ({
    type: 'applied',
    entry: {
      index,
      term,
      command: { clientId: 'c', seq: index, op: { type: 'put', key, value: Buffer.from(key) } },
      result: undefined,
    } as never,
  });
  agent.tell(put(1, 1, 'a'));
  agent.tell(put(2, 1, 'b'));
  agent.tell({ type: 'applied-index', index: 3, term: 2 }); // the new leader's no-op
  agent.tell({ type: 'applied-index', index: 4 }); // control: a source that knows no term
  agent.tell(put(5, 2, 'c'));
  await agent.ask({ type: 'backup', kind: 'full' }, 30_000);
  await agent.ask({ type: 'flush' }, 30_000);
  const terms = new Map<number, number>();
  for await (const e of repo.archive.entries(0, 5)) terms.set(e.index, e.term);
  t.same(
    [...terms],
    [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
      [5, 2],
    ],
    'archived terms',
  );
  const at3 = await restore(repo, { kind: 'index', index: 3 }, { factory: () => new MapState() });
  t.equal(at3.term, 2, 'a restore to the no-op reports its term');
});

t.test('a burst of applied entries publishes one status, at its last index', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-agent-publish-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  const system = new ActorSystem({ nodeId: 'n1', logger: silentLogger, random: new Random(5) });
  t.teardown(() => system.shutdown());
  const agent = system.spawn<BackupAgentMsg<MapOp>, AgentStatus>(
    'backup',
    () =>
      new BackupAgent<MapOp>({
        repo,
        clusterId: 'c1',
        factory: () => new MapState(),
        archive: { maxEntries: 10_000, flushMs: 0 },
      }),
  );
  await agent.ask({ type: 'status' });
  const seen: number[] = [];
  const sub = agent.state$.subscribe((s) => seen.push(s.index));
  t.teardown(() => sub.unsubscribe());
  const put = (index: number): BackupAgentMsg<MapOp> => ({
    type: 'applied',
    entry: {
      index,
      term: 1,
      command: {
        clientId: 'c',
        seq: index,
        op: { type: 'put', key: `k${index % 7}`, value: Buffer.from('v') },
      },
      result: undefined,
    } as never,
  });
  const reached = (index: number) =>
    firstValueFrom(
      agent.state$.pipe(
        filter((s) => s.index >= index),
        timeout(10_000),
      ),
    );
  const before = seen.length;
  for (let i = 1; i <= 200; i++) agent.tell(put(i));
  agent.tell({ type: 'applied-index', index: 201 }); // a no-op entry ends the burst
  const asked = (await agent.ask({ type: 'status' })) as AgentStatus;
  t.equal(asked.index, 201, 'a status ask answers with the position after the burst');
  await reached(201);
  const burst = seen.slice(before);
  t.ok(
    burst.length <= 2,
    `one status for 201 entries, not one each (published ${burst.length}, the last at ${burst[burst.length - 1]})`,
  );
  t.equal(burst[burst.length - 1], 201, 'the published status is at the last index');
  // A later burst publishes again (the queued publish was cleared).
  for (let i = 202; i <= 260; i++) agent.tell(put(i));
  const last = await reached(260);
  t.equal(last.index, 260, 'the next burst is published too');
  t.ok(seen.length - before <= 4, `still one status per burst (published ${seen.length - before})`);
});
