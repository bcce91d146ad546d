/**
 * The roles on different nodes: acceptors on a, b, c; proposers on p1 and p2 (each with the
 * learner that `MultiPaxosLog` resolves proposals on); learners alone on l1 and l2. The
 * actors are spawned by hand, as docs/paxos.md "Placing the roles" describes, inside the
 * deterministic simulation (virtual clock, seeded faulty network, MemoryDisks that lose
 * unsynced writes on a crash). Safety is checked after every step: no two learners apply
 * different values at one slot, every applied command was proposed, and no acceptor's durable
 * promise goes backwards across a crash-restart. Scenario: values chosen through p1, an
 * acceptor and a learner crashed and restarted, the leading proposer crashed and p2 taking over, more
 * values; at the end every learner has applied the same slots and holds the same state.
 * SYNOD_SEED replays one seed (default: seeds 1–5).
 */
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import {
  type Ballot,
  compareBallots,
  formatBallot,
  ZERO_BALLOT,
} from '../../actors/paxos/ballot.js';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MultiPaxosAcceptor } from '../../actors/paxos/multi-acceptor-actor.js';
import type { MultiLeaderView } from '../../actors/paxos/multi-leader.js';
import type { AppliedRecord, MultiLearnerView } from '../../actors/paxos/multi-learner.js';
import { type MultiLearnerMsg, MultiPaxosLearner } from '../../actors/paxos/multi-learner-actor.js';
import { MultiPaxosLog } from '../../actors/paxos/multi-paxos-log.js';
import { openMemoryPaxosStorage, paxosQuorums } from '../../actors/paxos/multi-paxos-node.js';
import {
  MultiPaxosProposer,
  type MultiProposerMsg,
} from '../../actors/paxos/multi-proposer-actor.js';
import type { ActorRef } from '../../lib/actor.js';
import { ProposeError } from '../../lib/replicated-log.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';

const ACCEPTORS = ['a', 'b', 'c'];
const PROPOSERS = ['p1', 'p2'];
const LEARNER_ONLY = ['l1', 'l2'];
/** Nodes with a learner: the proposers' nodes and the learner-only nodes. */
const LEARNING = [...PROPOSERS, ...LEARNER_ONLY];
const role = (node: string, r: 'acceptor' | 'proposer' | 'learner') => `${node}/paxos/${r}`;

interface Placed {
  readonly sm?: KvStateMachine;
  readonly learner?: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined>;
  readonly log?: MultiPaxosLog;
  readonly proposer?: ActorRef<MultiProposerMsg, MultiLeaderView | undefined>;
  readonly spawned: string[];
}

async function run(seed: number) {
  const sim = new Simulation<MemoryDisk>({
    seed,
    nodes: [...ACCEPTORS, ...PROPOSERS, ...LEARNER_ONLY],
    faults: { drop: 0.02, duplicate: 0.02, delay: { min: 1, max: 8 }, reorder: 0.1 },
    createDisk: () => new MemoryDisk(),
  });
  const quorums = paxosQuorums(ACCEPTORS);
  const placed = new Map<string, Placed>();
  const proposed = new Set<string>();
  const appliedAt = new Map<number, string>();
  const durablePromise = new Map<string, Ballot>();
  let violation: string | undefined;

  const checkApplied = (id: string, e: AppliedRecord) => {
    if (e.kind === 'snapshot') return;
    let key: string;
    if (e.kind === 'cmd') {
      const c = e.command;
      key = `${c.clientId}:${c.seq}:${JSON.stringify(c.op)}`;
      if (!proposed.has(key)) violation ??= `${id} applied unproposed ${key}`;
    } else key = `noop:${String(e.barrier ?? '')}`;
    const prev = appliedAt.get(e.index);
    if (prev === undefined) appliedAt.set(e.index, key);
    else if (prev !== key) violation ??= `slot ${e.index}: ${id} applied ${key}, another ${prev}`;
  };

  sim.onStart(async (node) => {
    const storage = await openMemoryPaxosStorage(node.disk, node.clock);
    const { system } = node;
    const spawned: string[] = [];
    if (ACCEPTORS.includes(node.id)) {
      const journal = new AcceptorJournal(storage.acceptorState, storage.acceptorJournal);
      const acceptor = system.spawn('paxos/acceptor', new MultiPaxosAcceptor({ journal }));
      spawned.push(acceptor.address);
      acceptor.state$.subscribe((v) => {
        // published once the promise is durable (and on start, from the disk)
        if (!v) return;
        const before = durablePromise.get(node.id) ?? ZERO_BALLOT;
        if (compareBallots(v.promised, before) < 0) {
          violation ??= `${node.id} promised ${formatBallot(v.promised)} after a durable ${formatBallot(before)}`;
        } else durablePromise.set(node.id, v.promised);
      });
      placed.set(node.id, { spawned });
      return;
    }
    const sm = new KvStateMachine();
    const hasProposer = PROPOSERS.includes(node.id);
    const learnerActor = new MultiPaxosLearner({
      stateMachine: sm,
      snapshots: storage.snapshots,
      peers: LEARNING.map((n) => role(n, 'learner')),
      // no acceptor on this node: chosen values come in mp.decide, missing ones by catch-up
      ...(hasProposer ? { localProposer: role(node.id, 'proposer') } : {}),
      snapshotEvery: 25,
      keepAfterSnapshot: 5,
      appliedEvents: true,
    });
    const learner = system.spawn('paxos/learner', learnerActor);
    spawned.push(learner.address);
    learner.events$.subscribe((ev) => {
      if (ev.type !== 'applied-batch') return;
      for (const e of ev.records as readonly AppliedRecord[]) checkApplied(node.id, e);
    });
    if (!hasProposer) {
      placed.set(node.id, { sm, learner, spawned });
      return;
    }
    const proposerActor = new MultiPaxosProposer({
      quorums,
      proposers: PROPOSERS.map((n) => role(n, 'proposer')),
      learners: LEARNING.map((n) => role(n, 'learner')),
      localLearner: role(node.id, 'learner'),
      // no learner runs next to an acceptor: every learner gets the values (mp.decide)
      learnersWithAcceptor: new Set(),
      store: storage.proposerState,
      heartbeatMs: 30,
      electionTimeoutMs: 150,
      retransmitMs: 60,
    });
    const proposer = system.spawn('paxos/proposer', proposerActor);
    spawned.push(proposer.address);
    const log = new MultiPaxosLog({
      nodeId: node.id,
      clock: system.clock,
      proposer,
      learner,
      incarnation: system.random.nextUint32().toString(36),
      localProposer: proposerActor,
      localLearner: learnerActor,
      defaultTimeoutMs: 1000,
    });
    placed.set(node.id, { sm, learner, log, proposer, spawned });
  });
  sim.afterEachStep(() => {
    if (violation) sim.fail(violation);
  });

  const get = (id: string) => placed.get(id) as Placed;
  const leader = () =>
    PROPOSERS.find((p) => sim.isUp(p) && get(p).proposer?.getSnapshot()?.role === 'leader');
  const waitForLeader = async () => {
    await sim.runUntil(() => leader() !== undefined, { timeout: 5000 });
    const l = leader();
    if (l === undefined) sim.fail('no leader elected');
    return l as string;
  };
  let seq = 0;
  const acked: { key: string; value: number }[] = [];
  /** Writes through the leading proposer's log; retries on another proposer if refused. */
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const key = `k${i % 4}`;
      const value = seq + 1;
      const op = { f: 'write', key, value };
      for (let attempt = 0; ; attempt++) {
        const at = await waitForLeader();
        seq++;
        proposed.add(`cl:${seq}:${JSON.stringify(op)}`);
        const log = get(at).log as MultiPaxosLog;
        const ok = await sim
          .await(log.propose({ clientId: 'cl', seq, op }), { timeout: 3000 })
          .then(
            () => true,
            (e: unknown) => {
              // a refused or timed-out proposal is retried; a safety violation ends the run
              if (e instanceof ProposeError) return false;
              throw e;
            },
          );
        if (ok) break;
        if (attempt > 20) sim.fail(`write ${key}=${value} not acknowledged after 20 attempts`);
      }
      acked.push({ key, value });
    }
  };

  await sim.start();
  const first = await waitForLeader();
  await write(20);
  // an acceptor crashes (losing unsynced writes) and comes back; the other two decide meanwhile
  // and a learner-only node too: it restarts empty and catches up from its peer learners
  sim.crash('b');
  sim.crash('l2');
  await write(10);
  await sim.restart('b');
  await write(10);
  // the leading proposer crashes: the other one takes over (phase 1 through a, b, c)
  sim.crash(first);
  const second = await waitForLeader();
  // another acceptor crash while the new leader works
  sim.crash('a');
  await write(10);
  await sim.restart('a');
  await sim.restart(first);
  await sim.restart('l2');
  await write(10);
  // quiet period: every learner catches up
  const top = () =>
    Math.max(...LEARNING.map((n) => get(n).learner?.getSnapshot()?.appliedUpTo ?? 0));
  await sim.runUntil(
    () => LEARNING.every((n) => (get(n).learner?.getSnapshot()?.appliedUpTo ?? 0) === top()),
    { timeout: 5000 },
  );
  return { sim, get, first, second, acked, appliedAt, violation, top: top() };
}

const seeds = process.env.SYNOD_SEED ? [Number(process.env.SYNOD_SEED)] : [1, 2, 3, 4, 5];
for (const seed of seeds) {
  t.test(
    `roles on separate nodes decide, survive crashes and agree (seed ${seed}; replay with SYNOD_SEED=${seed})`,
    async (t) => {
      const r = await run(seed);
      t.equal(r.violation, undefined, 'no safety violation');
      t.not(r.first, r.second, 'the other proposer took over');
      // each node runs only the roles placed on it
      for (const a of ACCEPTORS)
        t.same(r.get(a).spawned, [`${a}/paxos/acceptor`], `${a}: acceptor only`);
      for (const l of LEARNER_ONLY)
        t.same(r.get(l).spawned, [`${l}/paxos/learner`], `${l}: learner only`);
      for (const p of PROPOSERS)
        t.same(
          r.get(p).spawned,
          [`${p}/paxos/learner`, `${p}/paxos/proposer`],
          `${p}: proposer (+ its learner)`,
        );
      t.ok(r.top >= 60, `at least the 60 writes were applied (applied up to ${r.top})`);
      const model = new Map<string, number>();
      for (const w of r.acked) model.set(w.key, w.value);
      for (const n of LEARNING) {
        const p = r.get(n);
        t.equal(p.learner?.getSnapshot()?.appliedUpTo, r.top, `${n} applied up to ${r.top}`);
        for (const [key, value] of model)
          t.equal(p.sm?.read(key), value, `${n}: ${key} = ${value}`);
      }
      t.equal(r.appliedAt.size > 0, true);
    },
  );
}
