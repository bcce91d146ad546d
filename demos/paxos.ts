/**
 * Paxos, step by step, in a deterministic simulation (virtual time, seeded network):
 *
 * 1. Single-decree Paxos with two dueling proposers: each round takes a ballot
 *    (round, proposer); acceptors promise, accept or refuse (a nack carries the ballot they
 *    promised, so the loser skips ahead); randomised backoff ends the duel and every learner
 *    learns the one chosen value.
 * 2. Multi-Paxos as a replicated log: a distinguished proposer (leader) wins phase 1 once
 *    for every slot, then writes take phase 2 only, one slot each. The leader is killed; a
 *    follower times out, wins phase 1 with a higher ballot, re-proposes what the old leader
 *    may have had chosen, and writes go on. The old leader restarts from its disk and
 *    catches up: all three replicas hold the same state.
 *
 * Run it: `npx tsx demos/paxos.ts [--seed N]`. The same seed prints the same story.
 */

import type { AcceptorState } from '../actors/paxos/acceptor.js';
import { PaxosAcceptor } from '../actors/paxos/acceptor-actor.js';
import { type LearnerMsg, PaxosLearner } from '../actors/paxos/learner-actor.js';
import { PaxosProposer, type ProposerMsg } from '../actors/paxos/proposer-actor.js';
import { majorityQuorums } from '../actors/paxos/quorum.js';
import { PaxosActorCluster } from '../actors/paxos/sim-actors.js';
import type { ActorRef } from '../lib/actor.js';
import { nodeOf } from '../lib/address.js';
import { Simulation } from '../lib/sim/simulation.js';
import { MemoryDisk, MemoryHardStateStore } from '../lib/storage/index.js';

export interface PaxosDemoOptions {
  readonly seed?: number;
  readonly print?: (line: string) => void;
}

export interface PaxosDemoResult {
  /** Part 1: the value every learner learned, and what the duel cost. */
  readonly chosen: unknown;
  readonly learners: unknown[];
  readonly rounds: number;
  readonly nacks: number;
  /** Part 2: the two distinguished proposers and their ballots. */
  readonly firstLeader: string;
  readonly firstBallot: string;
  readonly secondLeader: string;
  readonly secondBallot: string;
  /** Writes acknowledged, and the value of every key on every replica at the end. */
  readonly acknowledged: number;
  readonly replicas: Record<string, Record<string, unknown>>;
}

const short = (ballot: unknown): string => {
  const [round, ...rest] = String(ballot).split('.');
  return `${round}.${nodeOf(rest.join('.'))}`;
};

export async function runPaxosDemo(options: PaxosDemoOptions = {}): Promise<PaxosDemoResult> {
  const print = options.print ?? ((l: string) => console.log(l));
  const seed = options.seed ?? 7;
  const duel = await singleDecreeDuel(seed, print);
  const log = await multiPaxos(seed, print);
  return { ...duel, ...log };
}

async function singleDecreeDuel(seed: number, print: (l: string) => void) {
  print('== 1. Single-decree Paxos: proposers a and b propose at the same moment ==');
  const nodes = ['a', 'b', 'c'];
  const acceptors = nodes.map((n) => `${n}/acceptor`);
  const learnerAddrs = nodes.map((n) => `${n}/learner`);
  const sim = new Simulation<MemoryDisk>({
    seed,
    nodes,
    faults: { delay: { min: 1, max: 8 } },
    createDisk: () => new MemoryDisk(),
  });
  const t = () => `[${String(Math.round(sim.clock.now())).padStart(4)} ms]`;
  const proposers = new Map<string, ActorRef<ProposerMsg, unknown>>();
  const learners = new Map<string, ActorRef<LearnerMsg, { learned: boolean; value?: unknown }>>();
  let rounds = 0;
  let nacks = 0;
  sim.onStart(async (node) => {
    const quorums = majorityQuorums(acceptors);
    const acc = node.system.spawn(
      'acceptor',
      new PaxosAcceptor({
        store: await MemoryHardStateStore.open<AcceptorState>(node.disk, { name: 'acc' }),
        learners: learnerAddrs,
      }),
    );
    acc.events$.subscribe((e) => {
      if (e.type === 'promised') print(`${t()} acceptor ${node.id} promises ${short(e.ballot)}`);
      if (e.type === 'accepted') print(`${t()} acceptor ${node.id} accepts in ${short(e.ballot)}`);
      if (e.type === 'nacked') {
        nacks++;
        print(
          `${t()} acceptor ${node.id} refuses ${short(e.ballot)} (nack: it promised a higher ballot)`,
        );
      }
    });
    const prop = node.system.spawn(
      'proposer',
      new PaxosProposer({
        quorums,
        learners: learnerAddrs,
        store: await MemoryHardStateStore.open<{ round: number }>(node.disk, { name: 'prop' }),
        backoff: { minMs: 5, maxMs: 100 },
        roundTimeoutMs: 40,
      }),
    );
    prop.events$.subscribe((e) => {
      if (e.type === 'round-started') {
        rounds++;
        print(`${t()} proposer ${node.id} starts a round with ballot ${short(e.ballot)}`);
      }
      if (e.type === 'chosen')
        print(`${t()} proposer ${node.id} sees ${JSON.stringify(e.value)} chosen`);
    });
    proposers.set(node.id, prop);
    const learner = node.system.spawn(
      'learner',
      new PaxosLearner({ quorums, peers: learnerAddrs, queryEveryMs: 50 }),
    );
    learner.events$.subscribe((e) => {
      if (e.type === 'learned')
        print(`${t()} learner ${node.id} learns ${JSON.stringify(e.value)}`);
    });
    learners.set(node.id, learner);
  });
  await sim.start();
  const pa = (proposers.get('a') as ActorRef<ProposerMsg, unknown>).ask(
    { type: 'paxos.propose', value: 'blue' },
    30_000,
  );
  const pb = (proposers.get('b') as ActorRef<ProposerMsg, unknown>).ask(
    { type: 'paxos.propose', value: 'green' },
    30_000,
  );
  const [ra] = await sim.await(Promise.all([pa, pb]), { timeout: 30_000 });
  const all = await sim.await(
    Promise.all(
      nodes.map((n) =>
        (learners.get(n) as ActorRef<LearnerMsg, unknown>).ask(
          { type: 'paxos.await-learned' },
          30_000,
        ),
      ),
    ),
    { timeout: 30_000 },
  );
  print(
    `-> ${rounds} rounds and ${nacks} nacks later, every learner learned ${JSON.stringify(ra.value)}: ` +
      `one value, though two were proposed.`,
  );
  print('');
  return { chosen: ra.value, learners: all, rounds, nacks };
}

async function multiPaxos(seed: number, print: (l: string) => void) {
  print('== 2. Multi-Paxos: a replicated log of slots on nodes a, b, c ==');
  const nodes = ['a', 'b', 'c'];
  const c = new PaxosActorCluster({
    seed,
    nodes,
    faults: { delay: { min: 1, max: 5 } },
    node: { snapshotEvery: 1000 },
  });
  const t = () => `[${String(Math.round(c.sim.clock.now())).padStart(4)} ms]`;
  // Events of each incarnation of each node (a restarted node gets new actors).
  const watched = new Set<unknown>();
  const watch = () => {
    for (const id of c.sim.upNodes()) {
      const m = c.members.get(id);
      if (!m || watched.has(m)) continue;
      watched.add(m);
      m.paxos.proposer.events$.subscribe((e) => {
        if (e.type === 'election-started')
          print(`${t()} ${id}: no heartbeat from a leader; phase 1 with ballot ${short(e.ballot)}`);
        if (e.type === 'elected')
          print(
            `${t()} ${id}: promises from a majority: distinguished proposer with ballot ${short(e.ballot)}, ` +
              `phase 1 done once for every slot from ${String(e.firstSlot)} on`,
          );
        if (e.type === 'stepped-down' && e.leader !== undefined)
          print(`${t()} ${id}: follows ${nodeOf(String(e.leader))} (higher ballot seen)`);
      });
    }
  };
  await c.start();
  watch();
  const first = await c.waitForLeader();
  const firstBallot = short(
    (
      c.member(first).paxos.proposer.getSnapshot() as {
        ballot: { round: number; proposer: string };
      }
    ).ballot.round +
      '.' +
      first,
  );
  let acknowledged = 0;
  let seq = 0;
  const write = async (leader: string, key: string, value: number) => {
    const r = await c.sim.await(
      c.propose(leader, 'demo', ++seq, { f: 'write', key, value }, 2000),
      { timeout: 5000 },
    );
    acknowledged++;
    print(`${t()} put ${key}=${value} via ${leader}: chosen in slot ${r.index} (phase 2 only)`);
  };
  for (let i = 1; i <= 4; i++) await write(first, i % 2 ? 'x' : 'y', i);

  print(`${t()} -- killing the leader ${first} (its process dies; its disk survives) --`);
  c.sim.crash(first);
  const second = await c.waitForLeader(10_000);
  watch();
  const secondBallot = short(
    `${(c.member(second).paxos.proposer.getSnapshot() as { ballot: { round: number } }).ballot.round}.${second}`,
  );
  print(
    `${t()} ${second} took over with ballot ${secondBallot} > ${firstBallot}: it re-proposed the ` +
      'values its phase-1 quorum reported and filled any gap with a no-op',
  );
  for (let i = 5; i <= 7; i++) await write(second, i % 2 ? 'x' : 'y', i);

  print(`${t()} -- restarting ${first} from its disk --`);
  await c.sim.restart(first);
  watch();
  const target = c.appliedIndex(second);
  await c.sim.runUntil(() => nodes.every((n) => c.appliedIndex(n) >= target), {
    timeout: 10_000,
  });
  const replicas: Record<string, Record<string, unknown>> = {};
  for (const n of nodes) {
    const sm = c.member(n).sm;
    replicas[n] = { x: sm.read('x'), y: sm.read('y') };
    print(
      `${t()} ${n}: applied up to slot ${c.appliedIndex(n)}, x=${String(sm.read('x'))} y=${String(sm.read('y'))}`,
    );
  }
  const same = nodes.every((n) => JSON.stringify(replicas[n]) === JSON.stringify(replicas[first]));
  print(
    same
      ? `-> ${acknowledged} writes acknowledged; all three replicas agree, the restarted one included.`
      : '-> replicas DISAGREE (this would be a bug)',
  );
  if (c.violation) print(`-> safety violation: ${c.violation}`);
  c.stop();
  return {
    firstLeader: first,
    firstBallot,
    secondLeader: second,
    secondBallot,
    acknowledged,
    replicas,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--seed');
  await runPaxosDemo(i > 0 ? { seed: Number(process.argv[i + 1]) } : {});
}
