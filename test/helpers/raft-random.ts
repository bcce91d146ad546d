/**
 * One randomized Raft run in the simulation (shared by test/raft/sim/random.test.ts and
 * `npm run sim -- raft`): RaftNode actors with memory disks that lose unsynced writes,
 * a network that drops, duplicates, delays and reorders, a nemesis that partitions and
 * crash-restarts nodes, clients doing reads (ReadIndex), writes and cas on a few keys.
 * Invariants are checked after every step; at the end the network heals, every node
 * restarts, and the run must make progress (liveness), every acknowledged command must
 * be applied everywhere, and the client history must be linearizable.
 */
import { checkHistory } from '../../lib/history/checker.js';
import { KvClient, type KvOp, RaftCluster } from './raft-sim.js';

export interface RandomRunOptions {
  nodes?: number;
  /** Virtual ms of faults before healing (default 800). */
  faultMs?: number;
  /**
   * Negative control: clients read the local state machine without a ReadIndex barrier
   * (stale reads); the linearizability checker must catch it on some seeds.
   */
  staleReads?: boolean;
}

export interface RandomRunResult {
  seed: number;
  ok: boolean;
  error?: string;
  ops: number;
  okOps: number;
  committed: number;
  steps: number;
  verdict?: string;
  /** Read attempts the clients witnessed, and reads the cores (as restarted) served on witnesses. */
  witnessed: number;
  servedByWitness: number;
  /** How often each fault kind struck (every run must include all of them). */
  faults: {
    crashes: number;
    restarts: number;
    partitions: number;
    dropped: number;
    duplicated: number;
    reordered: boolean;
  };
}

export async function runRandomSeed(
  seed: number,
  opts: RandomRunOptions = {},
): Promise<RandomRunResult> {
  const n = opts.nodes ?? 3;
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const snapEvery = 15 + (seed % 4) * 10;
  const c = new RaftCluster({
    seed,
    ids,
    faults: {
      drop: 0.05,
      duplicate: 0.04,
      reorder: 0.1,
      reorderWindowMs: 20,
      delay: { min: 0, max: 8 },
    },
    node: {
      snapshotEvery: snapEvery,
      keepEntries: 4,
      snapshotChunkSize: 64,
      // Every third seed takes its snapshots by the image-size rule (as the default does).
      ...(seed % 3 === 2 ? { snapshotLogRatio: 1, snapshotEveryMax: snapEvery * 4 } : {}),
    },
  });
  const res: RandomRunResult = {
    seed,
    ok: false,
    ops: 0,
    okOps: 0,
    committed: 0,
    steps: 0,
    witnessed: 0,
    servedByWitness: 0,
    faults: { crashes: 0, restarts: 0, partitions: 0, dropped: 0, duplicated: 0, reordered: true },
  };
  const f = res.faults;
  try {
    await c.start();
    let stop = false;
    const rnd = c.sim.random.fork();
    const clients = [0, 1, 2].map((p) => new KvClient(c, p));
    const countWitnesses = (): void => {
      res.witnessed = clients.reduce((n, cl) => n + cl.witnessed, 0);
      res.servedByWitness = ids.reduce((n, id) => n + (c.core(id)?.witnessedReads ?? 0), 0);
    };
    const loops = clients.map(async (cl) => {
      let i = 0;
      while (!stop) {
        const k = `k${rnd.int(2)}`;
        const r = rnd.int(10);
        const v = `${cl.process}-${i++}`;
        const op: KvOp =
          r < 4
            ? { f: 'write', k, v }
            : r < 7
              ? { f: 'read', k }
              : { f: 'cas', k, from: rnd.pick([null, `${rnd.int(3)}-${rnd.int(i + 1)}`]), to: v };
        if (opts.staleReads && op.f === 'read') {
          // broken: no barrier, read whatever the node applied so far
          const node = c.pickTarget();
          c.history.push({
            process: cl.process,
            type: 'invoke',
            f: 'read',
            key: k,
            value: null,
            time: c.now(),
          });
          await c.sleep(1);
          const val = c.machines.get(rnd.pick(ids))?.data.get(k) ?? null;
          void node;
          c.history.push({
            process: cl.process,
            type: 'ok',
            f: 'read',
            key: k,
            value: val,
            time: c.now(),
          });
        } else {
          await cl.run(op, 700);
        }
        await c.sleep(5 + rnd.int(20));
      }
    });
    const faultEnd = c.now() + (opts.faultMs ?? 800);
    // Every run includes a partition, a crash and a restart of a crashed node (in a random
    // order among the first actions), then random ones; drops, duplicates and reordering
    // strike all along.
    const plan = rnd.shuffle(['partition', 'crash']);
    plan.push('restart');
    const crash = (id: string) => {
      c.crash(id);
      f.crashes++;
    };
    const restart = async (id: string) => {
      await c.restart(id);
      f.restarts++;
    };
    const partition = () => {
      const g = rnd.shuffle([...ids]);
      const k = 1 + rnd.int(n - 1);
      c.partition([g.slice(0, k), g.slice(k)]);
      f.partitions++;
    };
    while (c.now() < faultEnd || plan.length > 0) {
      const id = rnd.pick(ids);
      const down = ids.filter((x) => !c.sim.isUp(x));
      const mayCrash = down.length + 1 < Math.ceil((n + 1) / 2) + (n > 3 ? 1 : 0);
      const next = plan.shift();
      if (next === 'partition') partition();
      else if (next === 'crash') crash(rnd.pick(ids.filter((x) => c.sim.isUp(x))));
      else if (next === 'restart') {
        if (down.length > 0) await restart(rnd.pick(down));
      } else {
        const a = rnd.int(6);
        if (a === 0 && c.sim.isUp(id) && mayCrash) crash(id);
        else if (a === 1 && !c.sim.isUp(id)) await restart(id);
        else if (a === 2) partition();
        else if (a === 3) c.heal();
      }
      await c.sim.runFor(40 + rnd.int(160));
    }
    f.dropped = c.sim.network.counters.dropped;
    f.duplicated = c.sim.network.counters.duplicated;
    // Heal everything, then require progress.
    c.heal();
    c.sim.network.clearFaults();
    for (const id of ids) if (!c.sim.isUp(id)) await restart(id);
    stop = true;
    await c.drive(loops, 4000);
    const final = new KvClient(c, 99);
    const fin = final.run({ f: 'write', k: 'final', v: seed }, 4000);
    await c.drive([fin], 4500);
    if ((await fin) !== 'ok') throw new Error('liveness: no progress after healing');
    const conv = await c.sim.runUntil(
      () => ids.every((id) => c.machines.get(id)?.data.get('final') === seed),
      { timeout: 3000 },
    );
    if (!conv) throw new Error('liveness: nodes did not converge after healing');
    for (const id of ids) {
      const seen = c.appliedCmds.get(id) as Set<string>;
      const missing = c.acked.filter((x) => !seen.has(`${x.clientId}:${x.seq}`));
      // a node restarted from a snapshot has not re-applied what the snapshot covers
      const snapIdx = c.core(id)?.log.snapIndex ?? 0;
      if (missing.length > 0 && snapIdx === 0) {
        throw new Error(`${id} misses ${missing.length} acknowledged commands`);
      }
    }
    countWitnesses();
    const verdict = checkHistory(c.history, { model: 'register', maxSteps: 2_000_000 });
    res.verdict = verdict.result;
    if (verdict.result === 'violation')
      throw new Error(`history not linearizable: ${verdict.summary}`);
    res.ok = true;
  } catch (e) {
    res.error = (e as Error).message;
  }
  res.ops = c.history.filter((e) => e.type === 'invoke').length;
  res.okOps = c.history.filter((e) => e.type === 'ok').length;
  res.committed = c.inv.committedCount();
  res.steps = c.sim.stepCount();
  return res;
}
