/**
 * MIT 6.5840 Raft lab scenarios, part C (persistence, Figure 8, unreliable networks,
 * churn), on RaftNode actors in the deterministic simulation with memory disks that lose
 * unsynced writes on crash; invariants checked after every step.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that
 * replays it.
 * SYNOD_RAFT_LONG=1 runs the lab's full iteration counts; SYNOD_RAFT_SEEDS=N runs
 * Figure8Unreliable on N consecutive seeds.
 */
import t, { type Test } from 'tap';
import type { RaftMessage } from '../../../actors/raft/core/types.js';
import { checkHistory } from '../../../lib/history/checker.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { KvClient, type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(21);
const LONG = process.env.SYNOD_RAFT_LONG === '1';
/**
 * Entries that must commit during Figure8's rounds. Measured (seeds 1–3): Figure8 15–22 in 200
 * rounds; Figure8Unreliable 1–16 in 300 rounds and the same in 1,000 — with long reordering on
 * (from round 200, as the lab does) two thirds of replies wait 0.2–2.2 s while the leader is
 * cut off every other round, so elections rarely finish and nothing more commits until the heal.
 */
const MIN_COMMITTED_IN_ROUNDS = 1;

const w = (k: string, v: unknown): KvOp => ({ f: 'write', k, v });
const UNRELIABLE = { drop: 0.1, delay: { min: 0, max: 26 } };

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

function holders(c: RaftCluster, k: string, v: unknown, ids = c.opts.ids): string[] {
  return ids.filter((id) => c.sim.isUp(id) && c.machines.get(id)?.data.get(k) === v);
}

async function converged(c: RaftCluster, k: string, v: unknown, timeout = 3000): Promise<boolean> {
  return c.sim.runUntil(() => holders(c, k, v).length === c.sim.upNodes().length, { timeout });
}

/**
 * The lab's network for Figure8Unreliable: every message delayed on its own (labrpc runs
 * each RPC independently, so nothing waits behind a slow reply). `reorder: 1` with a zero
 * window turns off the simulated network's per-link FIFO order without adding delay. With
 * FIFO links (the default), a reply held 2.2 s by `longReordering` holds back every later
 * message on its link — heartbeats and vote requests included — and 27% of requests then
 * arrive after more than 500 ms, longer than the election timeout: no Raft (etcd's
 * included) keeps a leader on such a network. That, not check-quorum, was why this test
 * failed on 39 of 40 seeds.
 */
const UNRELIABLE_REORDERING = { ...UNRELIABLE, reorder: 1, reorderWindowMs: 0 };

/**
 * The long reordering of the lab: 2/3 of replies delayed 200 ms – 2.2 s, drawn as labrpc
 * draws it (`200 + rand.Intn(1 + rand.Intn(2000))`: mean ≈ 700 ms, most under 1 s). A
 * uniform 200–2200 ms draw (mean 1.2 s, the earlier model) is harsher than the lab: with
 * 500–1000 ms election timeouts most vote grants then arrive after the candidate has given
 * up, and one seed in 200 elected no leader for 10 s.
 */
function longReordering(c: RaftCluster): void {
  const replies = new Set([
    'appendResp',
    'heartbeatResp',
    'voteResp',
    'preVoteResp',
    'snapshotResp',
  ]);
  c.sim.network.setFilter(({ message }) => {
    const m = message as { type?: string; ms?: RaftMessage[] };
    if (m?.type !== 'raft' || !m.ms?.every((x) => replies.has(x.type))) return 'deliver';
    if (c.sim.random.int(900) < 600) {
      return { delayMs: 200 + c.sim.random.int(1 + c.sim.random.int(2000)) };
    }
    return 'deliver';
  });
}

t.test('Persist1', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED, ids });
  await c.start();
  await one(c, w('x', 11));
  const before = new Map(ids.map((id) => [id, { term: c.core(id)!.term, vote: c.core(id)!.vote }]));
  for (const id of ids) c.crash(id);
  for (const id of ids) await c.restart(id);
  for (const id of ids) {
    t.equal(c.core(id)!.term, before.get(id)!.term, `${id} term survived`);
    t.equal(c.core(id)!.vote, before.get(id)!.vote, `${id} vote survived`);
  }
  await one(c, w('x', 12));
  const l1 = (await c.waitLeader())!;
  c.crash(l1);
  await c.restart(l1);
  await one(c, w('x', 13));
  const l2 = (await c.waitLeader())!;
  c.crash(l2);
  await one(
    c,
    w('x', 14),
    ids.filter((i) => i !== l2),
  );
  await c.restart(l2);
  t.ok(await converged(c, 'x', 14), 'the restarted leader caught up');
  const f = ids.find((i) => i !== l2)!;
  c.crash(f);
  await c.restart(f);
  await one(c, w('x', 16));
  t.ok(await converged(c, 'x', 16));
});

t.test('Persist2', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const c = new RaftCluster({ seed: SEED + 1, ids });
  await c.start();
  let v = 10;
  for (let round = 0; round < 5; round++) {
    await one(c, w('x', ++v));
    const l = (await c.waitLeader())!;
    const i = ids.indexOf(l);
    const at = (k: number) => ids[(i + k) % ids.length]!;
    c.crash(at(1));
    c.crash(at(2));
    await one(c, w('x', ++v), [at(0), at(3), at(4)]);
    c.crash(at(0));
    c.crash(at(3));
    c.crash(at(4));
    await c.restart(at(1));
    await c.restart(at(2));
    await c.sim.runFor(500);
    await c.restart(at(3));
    await one(c, w('x', ++v), [at(1), at(2), at(3)]);
    await c.restart(at(4));
    await c.restart(at(0));
  }
  await one(c, w('x', 1000));
  t.ok(await converged(c, 'x', 1000), 'all five converged');
});

t.test('Persist3', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 2, ids });
  await c.start();
  await one(c, w('x', 101));
  const l = (await c.waitLeader())!;
  const i = ids.indexOf(l);
  const at = (k: number) => ids[(i + k) % 3]!;
  c.partition([[at(0), at(1)], [at(2)]]);
  await one(c, w('x', 102), [at(0), at(1)]);
  c.crash(at(0));
  c.crash(at(1));
  c.heal();
  await c.restart(at(0));
  await one(c, w('x', 103), [at(0), at(2)]);
  await c.restart(at(1));
  await one(c, w('x', 104));
  t.ok(await converged(c, 'x', 104));
});

async function figure8(
  t: Test,
  seed: number,
  unreliable: boolean,
  checkCommits = true,
): Promise<number> {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  // With replies delayed up to 2.2 s, the lab's own timeouts (elections of a few hundred
  // ms, ≤ 10 heartbeats/s) are used here rather than Synod's 150 ms default.
  const c = new RaftCluster({
    seed,
    ids,
    ...(unreliable
      ? { faults: UNRELIABLE_REORDERING, node: { heartbeatMs: 100, electionMs: 500 } }
      : {}),
  });
  await c.start();
  await one(c, w('x', 0));
  const rounds = LONG ? 1000 : unreliable ? 300 : 200;
  // The lab turns long reordering on at round 200 and cuts the leader off with probability
  // 1/2 (RaftElectionTimeout / 2 per mille): cutting it every round left almost nothing
  // committed during the rounds, so Figure 8's rule met few commits.
  const reorderFrom = Math.min(200, rounds >> 1);
  const committedBefore = c.inv.committedCount();
  const cut = new Set<string>();
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    if (unreliable && r === reorderFrom) longReordering(c);
    for (const id of ids) {
      if (!c.sim.isUp(id) || cut.has(id)) continue;
      c.node(id)
        .propose({ clientId: `f8-${id}`, seq: ++n, op: w('x', n) })
        .catch(() => {});
    }
    const ms = c.sim.random.int(1000) < 100 ? c.sim.random.int(500) : c.sim.random.int(13);
    await c.sim.runFor(ms);
    const leader = c.leaders().find((id) => !cut.has(id));
    if (leader !== undefined) {
      if (!unreliable) c.crash(leader);
      else if (c.sim.random.int(1000) < 500) cut.add(leader);
    }
    const live = ids.filter((id) => c.sim.isUp(id) && !cut.has(id));
    if (live.length < 3) {
      const down = ids.filter((id) => !c.sim.isUp(id) || cut.has(id));
      const back = c.sim.random.pick(down);
      if (unreliable) cut.delete(back);
      else await c.restart(back);
    }
    if (unreliable) {
      const up = ids.filter((id) => !cut.has(id));
      c.partition([up, ...[...cut].map((x) => [x])]);
    }
  }
  const committedInRounds = c.inv.committedCount() - committedBefore;
  c.heal();
  c.sim.network.setFilter(undefined);
  c.sim.network.clearFaults();
  for (const id of ids) if (!c.sim.isUp(id)) await c.restart(id);
  await one(c, w('final', 1));
  t.ok(await converged(c, 'final', 1, 5000), `all converged after ${rounds} rounds`);
  t.ok(
    c.inv.checks > 1000,
    `${c.inv.checks} invariant checks, ${c.inv.committedCount()} entries committed`,
  );
  // Figure 8's rule is only exercised when leaders commit during the rounds. One fixed seed
  // must commit; over many seeds (SYNOD_RAFT_SEEDS) the caller checks the share that did.
  if (checkCommits) {
    t.ok(
      committedInRounds >= MIN_COMMITTED_IN_ROUNDS,
      `${committedInRounds} entries committed during the ${rounds} rounds (≥ ${MIN_COMMITTED_IN_ROUNDS})`,
    );
  } else t.comment(`${committedInRounds} entries committed during the ${rounds} rounds`);
  return committedInRounds;
}

t.test('Figure8', async (t) => {
  await figure8(t, SEED + 3, false);
});

t.test('UnreliableAgree', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const c = new RaftCluster({ seed: SEED + 4, ids, faults: UNRELIABLE });
  await c.start();
  const rounds = LONG ? 50 : 20;
  const clients = [0, 1, 2, 3].map((p) => new KvClient(c, p));
  for (let r = 0; r < rounds; r++) {
    const ps = clients.map((cl) => cl.run(w(`k${cl.process}`, r), 10_000));
    await c.drive(ps, 11_000);
    await one(c, w('round', r));
  }
  c.sim.network.clearFaults();
  await one(c, w('final', 1));
  t.ok(await converged(c, 'final', 1));
  const oks = c.history.filter((e) => e.type === 'ok').length;
  t.equal(oks, rounds * 4, 'every client operation eventually committed');
});

t.test('Figure8Unreliable', async (t) => {
  // SYNOD_RAFT_SEEDS=N: N runs in this process, figure-8 seeds SEED+5 … SEED+4+N.
  const runs = Number(process.env.SYNOD_RAFT_SEEDS ?? 1);
  if (runs === 1) {
    await figure8(t, SEED + 5, true);
    return;
  }
  // Measured: 186 of 200 seeds (1–200) commit during the rounds; a leader cut off every other
  // round on this network sometimes never lasts long enough on a seed.
  let committing = 0;
  for (let i = 0; i < runs; i++) {
    const seed = SEED + 5 + i;
    await t.test(`SYNOD_SEED=${seed - 5}`, async (t) => {
      if ((await figure8(t, seed, true, false)) >= MIN_COMMITTED_IN_ROUNDS) committing++;
    });
  }
  t.ok(
    committing >= runs * 0.75,
    `${committing} of ${runs} seeds committed entries during the rounds (≥ 3/4)`,
  );
});

async function churn(t: Test, seed: number, unreliable: boolean) {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const c = new RaftCluster({ seed, ids, ...(unreliable ? { faults: UNRELIABLE } : {}) });
  await c.start();
  let stop = false;
  const clients = [0, 1, 2].map((p) => new KvClient(c, p));
  const loops = clients.map(async (cl) => {
    let i = 0;
    while (!stop) {
      const k = `k${c.sim.random.int(3)}`;
      const r = c.sim.random.int(10);
      const op: KvOp =
        r < 5
          ? w(k, `${cl.process}-${i++}`)
          : r < 8
            ? { f: 'read', k }
            : { f: 'cas', k, from: null, to: `${cl.process}-${i++}` };
      await cl.run(op, 2000);
      await c.sleep(20 + c.sim.random.int(40)); // think time
    }
  });
  const rounds = 20;
  for (let r = 0; r < rounds; r++) {
    const id = c.sim.random.pick(ids);
    const what = c.sim.random.int(3);
    const upCount = c.sim.upNodes().length;
    if (what === 0 && upCount > 3 && c.sim.isUp(id)) c.crash(id);
    else if (what === 1 && !c.sim.isUp(id)) await c.restart(id);
    else if (what === 2) {
      const g = c.sim.random.shuffle([...ids]);
      c.partition([g.slice(0, 3), g.slice(3)]);
    } else c.heal();
    await c.sim.runFor(300 + c.sim.random.int(700));
  }
  c.heal();
  c.sim.network.clearFaults();
  for (const id of ids) if (!c.sim.isUp(id)) await c.restart(id);
  stop = true;
  await c.drive(loops, 10_000);
  await one(c, w('final', 1));
  t.ok(await converged(c, 'final', 1, 5000), 'liveness after heal');
  // every acknowledged write/cas was applied by every node
  for (const id of ids) {
    const seen = c.appliedCmds.get(id)!;
    const missing = c.acked.filter((a) => !seen.has(`${a.clientId}:${a.seq}`));
    t.same(missing, [], `${id} applied every acknowledged command`);
  }
  const hist = checkHistory(c.history, { model: 'register', maxSteps: 5_000_000 });
  t.not(hist.result, 'violation', `history of ${c.history.length} events: ${hist.summary}`);
  t.ok(c.acked.length > 10, `${c.acked.length} operations acknowledged`);
}

t.test('ReliableChurn', async (t) => {
  await churn(t, SEED + 6, false);
});

t.test('UnreliableChurn', async (t) => {
  await churn(t, SEED + 7, true);
});
