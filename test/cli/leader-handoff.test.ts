/**
 * Leadership transfer on shutdown (lib/node/leader-handoff.ts), on Raft nodes in the
 * deterministic simulation: the leader hands over to the most up-to-date voter, which leads
 * the next term before the old leader goes away, in less virtual time than an election
 * timeout. The control: a leader that just goes away leaves the others leaderless for at
 * least an election timeout. Plus the target choice, and the cases where nothing is handed.
 *
 * SYNOD_SEED=N sets the base seed; SYNOD_SIM_SEED=N replays the simulation that printed N.
 */
import { Subject } from 'rxjs';
import t from 'tap';
import type { RaftStatus } from '../../actors/raft/core/raft-core.js';
import { RaftNode } from '../../actors/raft/raft-node.js';
import type { LogLevel } from '../../lib/logger.js';
import { handOffLeadership, handoffTarget } from '../../lib/node/leader-handoff.js';
import { DrainingLog, type DrainReport, QUIET_MS } from '../../lib/node/proposal-drain.js';
import type { AppliedEntry, ProposeResult, ReplicatedLog } from '../../lib/replicated-log.js';
import { Simulation, seedFromEnv } from '../../lib/sim/simulation.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { KvMachine, type KvOp } from '../helpers/raft-sim.js';
import { advance } from '../helpers/virtual-time.js';

const IDS = ['n1', 'n2', 'n3'];
const ELECTION_MS = 150;
const seed = seedFromEnv(4_242);

async function cluster(s: number) {
  const rafts = new Map<string, RaftNode<KvOp, unknown>>();
  const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
    seed: s,
    nodes: IDS,
    createDisk: () =>
      new MemoryDisk({
        clock: sim.clock,
        syncDelayMs: { min: 0, max: 1 },
        random: sim.random.fork(),
      }),
    setup: (node) => {
      const raft = new RaftNode<KvOp, unknown>({
        storage: () => openMemoryDataDir(node.disk),
        stateMachine: () => new KvMachine(),
        bootstrap: IDS,
        heartbeatMs: 50,
        electionMs: ELECTION_MS,
      });
      rafts.set(node.id, raft);
      node.system.spawn('raft', raft);
    },
  });
  await sim.start();
  const raft = (id: string) => rafts.get(id) as RaftNode<KvOp, unknown>;
  const leaderOf = (among: string[]) =>
    among.find((id) => sim.isUp(id) && raft(id).started && raft(id).status().role === 'leader');
  await sim.runUntil(() => leaderOf(IDS) !== undefined, { timeout: 10_000 });
  const leader = leaderOf(IDS) as string;
  // Some writes, all replicated: every voter is a candidate target.
  for (let i = 0; i < 20; i++)
    void raft(leader).propose({ clientId: 'w', seq: i + 1, op: { f: 'write', k: 'k', v: i } });
  await sim.runFor(1_000);
  return { sim, raft, leaderOf, leader };
}

t.test(`the leader hands over before it goes: no election timeout (seed ${seed})`, async (t) => {
  const c = await cluster(seed);
  const before = c.raft(c.leader).status();
  const logs: { level: LogLevel; message: string }[] = [];
  const start = c.sim.clock.now();
  const report = await c.sim.await(
    handOffLeadership(c.raft(c.leader), {
      clock: c.sim.node(c.leader).clock,
      logger: { log: (level, message) => logs.push({ level, message }) },
    }),
    { timeout: 5_000 },
  );
  const took = c.sim.clock.now() - start;
  t.equal(report.outcome, 'moved', 'leadership moved');
  t.equal(report.to, handoffTarget(before), 'to the voter the choice named');
  t.equal(report.fromTerm, before.term);
  t.equal(report.toTerm, before.term + 1, 'the next term: a transfer, not a series of elections');
  t.ok(
    took < ELECTION_MS,
    `the new leader led after ${took} ms of virtual time (< ${ELECTION_MS})`,
  );
  t.match(logs, [
    {
      level: 'info',
      message: new RegExp(
        `^shutdown: handed leadership to ${report.to} \\(term ${before.term} → ${before.term + 1}\\) in \\d+ ms$`,
      ),
    },
  ]);
  // The old leader goes away now; the new one keeps leading, no election follows.
  c.sim.crash(c.leader);
  await c.sim.runFor(2_000);
  const others = IDS.filter((id) => id !== c.leader);
  t.equal(c.leaderOf(others), report.to, `${report.to} still leads`);
  t.equal(c.raft(report.to as string).status().term, before.term + 1, 'in the same term');
});

t.test(
  `control: a leader that just goes away costs an election timeout (seed ${seed})`,
  async (t) => {
    const c = await cluster(seed);
    const term = c.raft(c.leader).status().term;
    const start = c.sim.clock.now();
    c.sim.crash(c.leader);
    const others = IDS.filter((id) => id !== c.leader);
    t.ok(await c.sim.runUntil(() => c.leaderOf(others) !== undefined, { timeout: 10_000 }));
    const took = c.sim.clock.now() - start;
    t.ok(took >= ELECTION_MS, `no leader for ${took} ms of virtual time (≥ ${ELECTION_MS})`);
    t.ok(c.raft(c.leaderOf(others) as string).status().term > term, 'a new term');
  },
);

t.test('nothing to hand over: a follower, a single voter, an unreachable voter', async (t) => {
  const c = await cluster(seed + 1);
  const follower = IDS.find((id) => id !== c.leader) as string;
  const logs: string[] = [];
  const logger = { log: (_l: LogLevel, m: string) => logs.push(m) };
  const clock = c.sim.node(c.leader).clock;
  t.equal((await handOffLeadership(c.raft(follower), { clock, logger })).outcome, 'not-leader');
  t.equal((await handOffLeadership(undefined, { clock, logger })).outcome, 'not-leader');
  const none = await handOffLeadership(c.raft(c.leader), { clock, logger, linkUp: () => false });
  t.equal(none.outcome, 'no-voter', 'no reachable voter');
  t.match(logs, [/^shutdown: no other voter this node can reach/]);
  t.equal(c.raft(c.leader).status().role, 'leader', 'and nothing changed');
});

t.test('handoffTarget: the furthest log among the recently active, ties by id', async (t) => {
  const status = (
    progress: Record<string, { match: number; recentActive: boolean }>,
    voters = Object.keys(progress),
  ) =>
    ({
      id: 'a',
      membership: { voters, learners: [] },
      progress,
    }) as unknown as RaftStatus;
  const p = (match: number, recentActive = true) => ({ match, recentActive });
  t.equal(handoffTarget(status({ a: p(10), b: p(8), c: p(9) })), 'c', 'furthest log');
  t.equal(handoffTarget(status({ a: p(10), b: p(9), c: p(9) })), 'b', 'tie: lower id');
  t.equal(
    handoffTarget(status({ a: p(10), b: p(8), c: p(10, false) })),
    'b',
    'recently active first',
  );
  t.equal(
    handoffTarget(status({ a: p(10), b: p(8, false), c: p(9, false) })),
    'c',
    'none active: furthest log',
  );
  t.equal(
    handoffTarget(status({ a: p(10), b: p(8), c: p(9), l: p(10) }, ['a', 'b', 'c'])),
    'c',
    'learners are no targets',
  );
  t.equal(handoffTarget(status({ a: p(10) })), undefined, 'a single voter: none');
  t.equal(
    handoffTarget(status({ a: p(10), b: p(8), c: p(9) }), (peer) => peer !== 'c'),
    'b',
    'a voter without a link is skipped',
  );
});

/** A log whose proposals wait until the test settles them. */
class HeldLog implements ReplicatedLog<string, string> {
  readonly nodeId = 'n1';
  readonly leader$ = new Subject<string | undefined>();
  readonly commitIndex$ = new Subject<number>();
  readonly appliedIndex$ = new Subject<number>();
  readonly applied$ = new Subject<AppliedEntry<string, string>>();
  readonly held: ((r: ProposeResult<string>) => void)[] = [];
  propose(): Promise<ProposeResult<string>> {
    return new Promise((resolve) => this.held.push(resolve));
  }
  readBarrier(): Promise<number> {
    return Promise.resolve(0);
  }
}

t.test('the drain hands over as soon as nothing is in flight, not after the quiet', async (t) => {
  const clock = new VirtualClock();
  const inner = new HeldLog();
  const log = new DrainingLog(inner, clock);
  void log.propose({ clientId: 'c', seq: 1, op: 'w' });
  const events: string[] = [];
  let report: DrainReport | undefined;
  void log
    .drain(2000, {
      settled: async () => {
        events.push(`settled at ${clock.now()}`);
      },
    })
    .then((r) => {
      report = r;
    });
  await advance(clock, 100);
  t.same(events, [], 'not while a write is in flight');
  inner.held[0]?.({ index: 1, term: 1, result: 'ok' });
  // Refused writes keep arriving (clients retrying through followers): the quiet period
  // waits for them, the hand-over does not.
  for (let i = 0; i < 20; i++) {
    await advance(clock, 10);
    void log.propose({ clientId: 'c', seq: 2 + i, op: 'w' }).catch(() => undefined);
  }
  t.equal(events.length, 1, 'called once');
  t.ok(
    Number(events[0]?.split(' ').at(-1)) <= 110,
    `right after the write settled (${events[0]}), before the refusals stopped`,
  );
  t.equal(report, undefined, 'the drain itself still waits for quiet');
  await advance(clock, QUIET_MS + 50);
  t.match(report, { inFlight: 1, left: 0, refused: 20 });

  // A write that never settles (no quorum): no hand-over, the bound ends the drain.
  const stuck = new DrainingLog(new HeldLog(), clock);
  void stuck.propose({ clientId: 'c', seq: 1, op: 'w' });
  let called = false;
  let stuckReport: DrainReport | undefined;
  void stuck
    .drain(500, {
      settled: async () => {
        called = true;
      },
    })
    .then((r) => {
      stuckReport = r;
    });
  await advance(clock, 600);
  t.match(stuckReport, { inFlight: 1, left: 1 });
  t.equal(called, false, 'nothing handed over with a write left');
});
