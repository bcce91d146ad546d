/**
 * `node.join` through real admin actors (lib/node/node-admin.ts) and Raft nodes in the
 * deterministic simulation (virtual time, simulated network), with the joiner's retry loop
 * (lib/node/join-cluster.ts) running on the joining node: the fix for chaos seed 200132, where
 * a join reached a node that was not the leader during leader changes and the joiner exited
 * with "adding n1 failed: not the leader".
 *
 * - A join sent to a follower is forwarded to the leader and succeeds in one attempt.
 * - The leader loses its leadership in the middle of a join (it was waiting for the learner
 *   to catch up): it hands the request to the new leader, which finishes it — one attempt.
 * - No leader for a while (two of three founders down): the join is answered "no leader",
 *   retried with backoff, and succeeds once a leader is elected, within the bound.
 * - Idempotence: joining again as a member already is a success.
 * - Learner joins (the backup agent's form) get the same forwarding; a voter asking to be a
 *   learner is refused at once, not retried.
 *
 * SYNOD_SEED=N sets the base seed; SYNOD_SIM_SEED=N replays the simulation whose failing
 * assertion printed seed N.
 */
import t, { type Test } from 'tap';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { RaftNode } from '../../actors/raft/raft-node.js';
import { type JoinResult, joinCluster } from '../../lib/node/join-cluster.js';
import { type AdminMsg, NodeAdmin, type NodeStatus } from '../../lib/node/node-admin.js';
import { Simulation, seedFromEnv } from '../../lib/sim/simulation.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';

const FOUNDERS = ['n1', 'n2', 'n3'];

function cluster(seed: number) {
  const rafts = new Map<string, RaftNode<KvOp, KvResult>>();
  const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
    seed,
    nodes: [...FOUNDERS, 'n4'],
    createDisk: () =>
      new MemoryDisk({
        clock: sim.clock,
        syncDelayMs: { min: 0, max: 1 },
        random: sim.random.fork(),
      }),
    setup: (node) => {
      let sm: KvStateMachine | undefined;
      const raft = new RaftNode<KvOp, KvResult>({
        storage: () => openMemoryDataDir(node.disk),
        stateMachine: () => {
          sm = new KvStateMachine();
          return sm;
        },
        ...(FOUNDERS.includes(node.id) ? { bootstrap: FOUNDERS } : {}),
        heartbeatMs: 50,
        electionMs: 150,
      });
      rafts.set(node.id, raft);
      node.system.spawn('raft', raft);
      node.system.spawn(
        'admin',
        new NodeAdmin({
          cluster: 'sim',
          url: `ws://${node.id}:7001`,
          raft: () => raft,
          sm: () => sm,
          links: () => [],
          addPeer: () => {},
          members: new Map(FOUNDERS.map((id) => [id, `ws://${id}:7001`])),
          startedAt: 0,
        }),
      );
    },
  });
  const raft = (id: string) => rafts.get(id) as RaftNode<KvOp, KvResult>;
  const leader = () =>
    FOUNDERS.find((id) => sim.isUp(id) && raft(id).started && raft(id).status().role === 'leader');
  const logs: string[] = [];
  const join = (
    targets: string[],
    o: { learner?: boolean; timeoutMs?: number; attemptMs?: number } = {},
  ) =>
    joinCluster({
      self: { id: 'n4', url: 'ws://n4:7001' },
      targets: targets.map((id) => ({ id, url: `ws://${id}:7001` })),
      clock: sim.node('n4').clock,
      random: sim.random.fork(),
      logger: { log: (_level, message) => logs.push(message) },
      ...o,
      discover: async () => {
        throw new Error('ids are given');
      },
      ask: (target, msg, timeoutMs) =>
        sim
          .system('n4')
          .ask(`${target.id}/admin`, msg as AdminMsg & { type: 'node.join' }, timeoutMs),
    });
  const voters = (id: string) => raft(id).status().membership.voters;
  const status = (id: string) =>
    sim
      .system('n4')
      .ask(
        `${id}/admin`,
        { type: 'node.status' } as AdminMsg & { type: 'node.status' },
        1000,
      ) as Promise<NodeStatus>;
  return { sim, raft, leader, join, logs, voters, status };
}

async function started(t: Test, seed: number) {
  const c = cluster(seed);
  await c.sim.start();
  t.ok(await c.sim.runUntil(() => c.leader() !== undefined, { timeout: 10_000 }), 'a leader');
  return c;
}

const seed = seedFromEnv(20_132);

t.test(`a join sent to a follower is forwarded to the leader (seed ${seed})`, async (t) => {
  const c = await started(t, seed);
  const leader = c.leader() as string;
  const follower = FOUNDERS.find((id) => id !== leader) as string;
  t.ok(
    await c.sim.runUntil(() => c.raft(follower).status().leader === leader, { timeout: 5_000 }),
    `${follower} knows the leader`,
  );
  const r = await c.sim.await(c.join([follower]), { timeout: 30_000 });
  t.equal(r.attempts, 1, 'one attempt');
  t.equal(r.via.id, follower, 'answered through the follower');
  t.match(r.reply.message, /n4 joined as a voter/);
  t.ok(c.voters(leader).includes('n4'), 'n4 is a voter on the leader');
  // Again: already a member, so the same request is a success (a lost reply retried).
  const again = await c.sim.await(c.join([follower]), { timeout: 30_000 });
  t.equal(again.attempts, 1);
  t.match(again.reply.message, /n4 is a voter already/, 'idempotent');
  // Asking to be a learner while a voter cannot change by waiting: refused at once.
  const learner = await c.sim
    .await(c.join([follower], { learner: true }), { timeout: 30_000 })
    .catch((e: { code?: string; message: string }) => e);
  t.equal((learner as { code?: string }).code, 'SYNOD_ERR_JOIN_REFUSED');
  t.match((learner as Error).message, /n4 is a voter, not a learner/);
  t.same(
    c.logs.filter((l) => /join attempt/.test(l)),
    [],
    'no retry was needed',
  );
});

t.test(`the leader loses its leadership half-way through a join (seed ${seed})`, async (t) => {
  const c = await started(t, seed + 1);
  const leader = c.leader() as string;
  const next = FOUNDERS.find((id) => id !== leader) as string;
  // A log long enough that a learner that hears nothing is too far behind to be promoted.
  for (let i = 0; i < 150; i++)
    void c
      .raft(leader)
      .propose({ clientId: 'w', seq: i + 1, op: { t: 'put', key: `k${i}`, value: 'v' } as KvOp });
  await c.sim.runFor(2_000);
  let result: JoinResult | undefined;
  let failure: Error | undefined;
  void c.join([leader]).then(
    (r) => {
      result = r;
    },
    (e: Error) => {
      failure = e;
    },
  );
  t.ok(
    await c.sim.runUntil(() => c.raft(leader).status().membership.learners.includes('n4'), {
      timeout: 5_000,
    }),
    'n4 was added as a learner',
  );
  // n4 freezes (as a paused process): the leader waits to promote it, then loses its
  // leadership to a transfer.
  c.sim.pause('n4');
  await c.sim.runFor(500);
  t.equal(c.raft(leader).status().role, 'leader', 'still the leader, waiting for n4 to catch up');
  c.raft(leader).transferLeadership(next);
  t.ok(await c.sim.runUntil(() => c.leader() === next, { timeout: 5_000 }), `${next} took over`);
  await c.sim.runFor(500);
  c.sim.resume('n4');
  t.ok(
    await c.sim.runUntil(() => result !== undefined || failure !== undefined, { timeout: 60_000 }),
    'the join ended',
  );
  t.equal(
    failure,
    undefined,
    `no failure (was "adding n4 failed: not the leader"): ${failure?.message}`,
  );
  t.equal(result?.attempts, 1, 'one attempt: the old leader handed the request to the new one');
  t.equal(result?.via.id, leader, 'answered through the node first asked');
  t.ok(c.voters(next).includes('n4'), 'n4 is a voter on the new leader');
});

t.test(`no leader for a while: retried until one is elected (seed ${seed})`, async (t) => {
  const c = await started(t, seed + 2);
  const leader = c.leader() as string;
  const [a, b] = FOUNDERS.filter((id) => id !== leader) as [string, string];
  // The leader and one follower go down: b alone has no quorum, so no leader.
  c.sim.crash(leader);
  c.sim.crash(a);
  const begun = c.sim.clock.now();
  let result: JoinResult | undefined;
  let failure: Error | undefined;
  // A real node ends an attempt at a dead node within 5 s (no link: askWatchingLink); the
  // simulation has no links, so attempts are bounded at 3 s here.
  void c.join([b, leader], { timeoutMs: 30_000, attemptMs: 3_000 }).then(
    (r) => {
      result = r;
    },
    (e: Error) => {
      failure = e;
    },
  );
  await c.sim.runFor(4_000);
  t.equal(result, undefined, 'not joined while there is no leader');
  t.equal(failure, undefined, 'and not given up');
  const s = await c.sim.await(c.status(b), { timeout: 2_000 });
  t.equal(s.leader, null, `${b} knows no leader`);
  t.ok(
    c.logs.some((l) =>
      /join attempt \d+ failed: .*SYNOD_ERR_NO_LEADER: no leader right now.*retrying in \d+ ms/.test(
        l,
      ),
    ),
    `it was told "no leader" and retries: ${c.logs[0]}`,
  );
  await c.sim.restart(a);
  t.ok(
    await c.sim.runUntil(() => result !== undefined || failure !== undefined, { timeout: 30_000 }),
    'the join ended',
  );
  t.equal(failure, undefined, `no failure: ${failure?.message}`);
  t.ok((result?.attempts ?? 0) > 1, `it took ${result?.attempts} attempts`);
  const took = c.sim.clock.now() - begun;
  t.ok(
    took > 4_000 && took < 30_000,
    `joined after the leader came back, within the bound (${took} ms)`,
  );
  const now = c.leader() as string;
  t.ok(c.voters(now).includes('n4'), 'n4 is a voter');
});

t.test(`no leader at all: gives up after the bound (seed ${seed})`, async (t) => {
  const c = await started(t, seed + 3);
  const leader = c.leader() as string;
  const [a, b] = FOUNDERS.filter((id) => id !== leader) as [string, string];
  c.sim.crash(leader);
  c.sim.crash(a);
  const begun = c.sim.clock.now();
  const err = (await c.sim
    .await(c.join([b], { timeoutMs: 5_000 }), { timeout: 10_000 })
    .catch((e: Error) => e)) as Error & { code?: string };
  t.equal(err.code, 'SYNOD_ERR_JOIN');
  t.match(
    err.message,
    /^gave up after \d+ attempts in \d s \(bound 5000 ms\); last answer: .*no leader/,
  );
  t.ok(c.sim.clock.now() - begun <= 5_000, 'at the bound, not after');
  // The learner form (the backup agent) is forwarded the same way once there is a leader.
  await c.sim.restart(a);
  t.ok(await c.sim.runUntil(() => c.leader() !== undefined, { timeout: 10_000 }), 'a leader again');
  const follower = [a, b].find((id) => id !== c.leader()) as string;
  const r = await c.sim.await(c.join([follower], { learner: true }), { timeout: 30_000 });
  t.match(r.reply.message, /n4 joined as a learner/);
  t.ok(
    c
      .raft(c.leader() as string)
      .status()
      .membership.learners.includes('n4'),
    'a learner',
  );
});
