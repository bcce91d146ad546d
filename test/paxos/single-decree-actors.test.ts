/**
 * Single-decree Paxos actors in the deterministic simulation: dueling proposers on a lossy,
 * reordering network converge on one value; acceptors keep their promises across crashes
 * that lose unsynced writes. Safety is checked after every simulation step.
 */
import t from 'tap';
import type { AcceptorState } from '../../actors/paxos/acceptor.js';
import { PaxosAcceptor } from '../../actors/paxos/acceptor-actor.js';
import { compareBallots, formatBallot } from '../../actors/paxos/ballot.js';
import { type LearnerMsg, PaxosLearner } from '../../actors/paxos/learner-actor.js';
import { PaxosProposer, type ProposerMsg } from '../../actors/paxos/proposer-actor.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';
import type { ActorRef } from '../../lib/actor.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk, MemoryHardStateStore } from '../../lib/storage/index.js';

const nodes = ['a', 'b', 'c'];
const acceptors = nodes.map((n) => `${n}/acceptor`);
const learners = nodes.map((n) => `${n}/learner`);

async function duel(seed: number) {
  const sim = new Simulation<MemoryDisk>({
    seed,
    nodes,
    faults: { drop: 0.1, duplicate: 0.05, delay: { min: 1, max: 15 }, reorder: 0.2 },
    createDisk: () => new MemoryDisk(),
  });
  const proposers = new Map<string, ActorRef<ProposerMsg, unknown>>();
  const learnerRefs = new Map<
    string,
    ActorRef<LearnerMsg, { learned: boolean; value?: unknown }>
  >();
  const durable = new Map<string, AcceptorState>();
  let violation: string | undefined;
  sim.onStart(async (node) => {
    const quorums = majorityQuorums(acceptors);
    const acc = node.system.spawn(
      'acceptor',
      new PaxosAcceptor({
        store: await MemoryHardStateStore.open<AcceptorState>(node.disk, { name: 'acc' }),
        learners,
      }),
    );
    acc.state$.subscribe((s) => {
      if (!s) return;
      const before = durable.get(node.id);
      if (before && compareBallots(s.promised, before.promised) < 0) {
        violation ??= `${node.id} forgot promise ${formatBallot(before.promised)}`;
      }
      durable.set(node.id, s);
    });
    proposers.set(
      node.id,
      node.system.spawn(
        'proposer',
        new PaxosProposer({
          quorums,
          learners,
          store: await MemoryHardStateStore.open<{ round: number }>(node.disk, { name: 'prop' }),
          backoff: { minMs: 5, maxMs: 200 },
          roundTimeoutMs: 60,
        }),
      ),
    );
    learnerRefs.set(
      node.id,
      node.system.spawn(
        'learner',
        new PaxosLearner({ quorums, peers: learners, queryEveryMs: 50 }),
      ),
    );
  });
  sim.afterEachStep(() => {
    const learned = [...learnerRefs.values()]
      .map((l) => l.getSnapshot())
      .filter((s) => s.learned)
      .map((s) => s.value);
    if (learned.some((v) => v !== learned[0])) violation ??= 'learners disagree';
    if (learned.some((v) => v !== 'from-a' && v !== 'from-b')) violation ??= 'unproposed value';
    if (violation) sim.fail(violation);
  });
  await sim.start();
  const pa = proposers.get('a')!.ask({ type: 'paxos.propose', value: 'from-a' }, 60_000);
  const pb = proposers.get('b')!.ask({ type: 'paxos.propose', value: 'from-b' }, 60_000);
  await sim.runFor(40);
  sim.crash('c');
  await sim.runFor(100);
  await sim.restart('c');
  const [ra, rb] = await sim.await(Promise.all([pa, pb]), { timeout: 30_000 });
  const all = await sim.await(
    Promise.all(nodes.map((n) => learnerRefs.get(n)!.ask({ type: 'paxos.await-learned' }, 30_000))),
    { timeout: 30_000 },
  );
  return { ra, rb, all };
}

t.test('dueling proposers converge on one proposed value (20 seeds)', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const { ra, rb, all } = await duel(seed);
    t.equal(ra.value, rb.value, `seed ${seed}: both proposers report ${String(ra.value)}`);
    t.ok(
      all.every((v) => v === ra.value),
      `seed ${seed}: every learner learned it`,
    );
  }
});
