/**
 * MIT 6.5840 Raft lab scenarios, part D (snapshots), on RaftNode actors in the
 * deterministic simulation: the service snapshots every few entries, the log is
 * compacted, lagging nodes need InstallSnapshot (in chunks), restarts reload snapshots.
 */
import t, { type Test } from 'tap';
import type { RaftMessage } from '../../../actors/raft/core/types.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(31);
const w = (k: string, v: unknown): KvOp => ({ f: 'write', k, v });
const UNRELIABLE = { drop: 0.1, delay: { min: 0, max: 26 } };
const SNAP = { snapshotEvery: 10, keepEntries: 3, snapshotChunkSize: 64 };

async function one(c: RaftCluster, op: KvOp, among?: string[], timeout = 10_000) {
  const end = c.now() + timeout;
  while (c.now() < end) {
    const l = await c.waitLeader(1000, among);
    if (!l) continue;
    const r = await c.proposeOn(l, op, 1000);
    if (r.ok) return r.index as number;
    await c.sim.runFor(50);
  }
  throw new Error(`one(${JSON.stringify(op)}) failed to commit within ${timeout} ms`);
}

async function converged(c: RaftCluster, k: string, v: unknown, timeout = 5000): Promise<boolean> {
  return c.sim.runUntil(
    () => c.sim.upNodes().every((id) => c.machines.get(id)?.data.get(k) === v),
    { timeout },
  );
}

function cluster(seed: number, unreliable = false) {
  let snapshots = 0;
  const c = new RaftCluster({
    seed,
    ids: ['a', 'b', 'c'],
    ...(unreliable ? { faults: UNRELIABLE } : {}),
    node: {
      ...SNAP,
      onSend: (_to, body) => {
        for (const m of body.ms as RaftMessage[]) if (m.type === 'snapshot') snapshots++;
      },
    },
  });
  return { c, snapshots: () => snapshots };
}

t.test('SnapshotBasic', async (t) => {
  const { c } = cluster(SEED);
  await c.start();
  let maxLog = 0;
  c.sim.afterEachStep(() => {
    for (const id of c.sim.upNodes()) maxLog = Math.max(maxLog, c.core(id)?.log.all().length ?? 0);
  });
  for (let i = 0; i < 100; i++) await one(c, w('x', i));
  t.ok(await converged(c, 'x', 99));
  t.ok(maxLog < 40, `the in-memory log never exceeded ${maxLog} entries`);
  for (const id of ['a', 'b', 'c']) t.ok(c.core(id)!.log.snapIndex > 80, `${id} compacted`);
});

async function install(t: Test, seed: number, opts: { unreliable: boolean; crash: boolean }) {
  const { c, snapshots } = cluster(seed, opts.unreliable);
  await c.start();
  await one(c, w('x', 0));
  const l = (await c.waitLeader())!;
  const f = ['a', 'b', 'c'].find((i) => i !== l)!;
  if (opts.crash) c.crash(f);
  else c.partition([[f], ['a', 'b', 'c'].filter((i) => i !== f)]);
  const rest = ['a', 'b', 'c'].filter((i) => i !== f);
  for (let i = 1; i <= 40; i++) await one(c, w('x', i), rest);
  const leader = c.leaders()[0]!;
  t.ok(c.core(leader)!.log.firstIndex() > 5, 'the leader compacted past the lagging node');
  const before = snapshots();
  if (opts.crash) await c.restart(f);
  else c.heal();
  await one(c, w('x', 'after'));
  t.ok(await converged(c, 'x', 'after'), 'the lagging node caught up');
  t.ok(snapshots() > before, `it needed InstallSnapshot (${snapshots() - before} chunks)`);
}

t.test('SnapshotInstall', async (t) => {
  await install(t, SEED + 1, { unreliable: false, crash: false });
});

t.test('SnapshotInstallUnreliable', async (t) => {
  await install(t, SEED + 2, { unreliable: true, crash: false });
});

t.test('SnapshotInstallCrash', async (t) => {
  await install(t, SEED + 3, { unreliable: false, crash: true });
});

t.test('SnapshotInstallUnCrash', async (t) => {
  await install(t, SEED + 4, { unreliable: true, crash: true });
});

t.test('SnapshotAllCrash', async (t) => {
  const { c } = cluster(SEED + 5);
  await c.start();
  let v = 0;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 15; i++) await one(c, w('x', ++v));
    await converged(c, 'x', v);
    const snapIdx = new Map(['a', 'b', 'c'].map((id) => [id, c.core(id)!.log.snapIndex]));
    for (const id of ['a', 'b', 'c']) c.crash(id);
    for (const id of ['a', 'b', 'c']) await c.restart(id);
    for (const id of ['a', 'b', 'c']) {
      t.ok(c.core(id)!.log.snapIndex >= snapIdx.get(id)!, `round ${round}: ${id} did not go back`);
      t.ok(c.core(id)!.log.lastIndex() >= snapIdx.get(id)!);
    }
    await one(c, w('x', ++v));
    t.ok(await converged(c, 'x', v));
  }
});

t.test('SnapshotInit', async (t) => {
  const { c } = cluster(SEED + 6);
  await c.start();
  for (let i = 0; i < 25; i++) await one(c, w(`k${i}`, i));
  await converged(c, 'k24', 24);
  for (const id of ['a', 'b', 'c']) c.crash(id);
  for (const id of ['a', 'b', 'c']) await c.restart(id);
  for (const id of ['a', 'b', 'c']) {
    t.ok(c.core(id)!.log.snapIndex > 0, `${id} restarted from a snapshot`);
    t.equal(c.machines.get(id)!.data.get('k3'), 3, `${id} state reloaded`);
  }
  await one(c, w('one', 1));
  for (const id of ['a', 'b', 'c']) c.crash(id);
  for (const id of ['a', 'b', 'c']) await c.restart(id);
  await one(c, w('two', 2));
  t.ok(await converged(c, 'two', 2));
  for (const id of ['a', 'b', 'c']) {
    t.equal(c.machines.get(id)!.data.get('one'), 1, `${id} kept the op between crashes`);
    t.equal(c.machines.get(id)!.data.get('k24'), 24);
  }
});

/** Distinct compaction points of node `id`'s core while `run` goes (a snapshot each, keepEntries behind it). */
async function compactions(
  c: RaftCluster,
  id: string,
  run: () => Promise<void>,
): Promise<number[]> {
  const seen: number[] = [];
  c.sim.afterEachStep(() => {
    const s = c.core(id)?.log.snapIndex ?? 0;
    if (s > 0 && s !== seen[seen.length - 1]) seen.push(s);
  });
  await run();
  return seen;
}

function gaps(points: number[]): number[] {
  return points.slice(1).map((p, i) => p - (points[i] as number));
}

t.test(
  'snapshot cadence follows the image size (snapshotLogRatio, snapshotEveryMax)',
  async (t) => {
    const big = 'v'.repeat(400);
    for (const c of [
      { ratio: 1, max: 1000, name: 'ratio 1' },
      { ratio: 1, max: 40, name: 'ratio 1, at most 40 entries' },
      { ratio: 0, max: 1000, name: 'entries only' },
    ]) {
      const cl = new RaftCluster({
        seed: SEED + 7,
        ids: ['a', 'b', 'c'],
        node: {
          snapshotEvery: 10,
          snapshotLogRatio: c.ratio,
          snapshotEveryMax: c.max,
          keepEntries: 3,
        },
      });
      await cl.start();
      // A state of ~8 KB, then small writes (~40 bytes an entry): with ratio 1 a snapshot
      // waits for ~200 entries' bytes.
      for (let i = 0; i < 20; i++) await one(cl, w(`big${i}`, big));
      const l = (await cl.waitLeader()) as string;
      const points = await compactions(cl, l, async () => {
        for (let i = 0; i < 300; i++) await one(cl, w('x', i));
      });
      const g = gaps(points);
      t.ok(g.length >= 1, `${c.name}: snapshots were taken (${points.join(', ')})`);
      if (c.ratio === 0)
        t.ok(Math.max(...g) <= 12, `${c.name}: every ~10 entries (${g.join(', ')})`);
      else if (c.max === 40) t.ok(Math.max(...g) <= 42, `${c.name}: gaps ${g.join(', ')}`);
      else t.ok(Math.min(...g) >= 150, `${c.name}: gaps ${g.join(', ')} (image ~8 KB)`);
    }
  },
);
