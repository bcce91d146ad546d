/**
 * Randomised runs of single-decree Paxos on the pure cores: messages are delivered in random
 * order, dropped, duplicated; acceptors crash and restart from their durable state; proposers
 * duel. After every step: no two learners learn different values, a learned value was
 * proposed, and an acceptor never accepts below a ballot it promised (across restarts).
 * Negative control: the same checker must flag runs with non-intersecting quorums.
 */
import t from 'tap';
import { AcceptorCore, type AcceptorState } from '../../actors/paxos/acceptor.js';
import { type Ballot, compareBallots, ZERO_BALLOT } from '../../actors/paxos/ballot.js';
import { LearnerCore, sameValue } from '../../actors/paxos/learner.js';
import type { Outbound, PaxosMessage } from '../../actors/paxos/messages.js';
import { ProposerCore, type ProposerOutput } from '../../actors/paxos/proposer.js';
import { majorityQuorums, type QuorumSystem } from '../../actors/paxos/quorum.js';
import { Random } from '../../lib/random.js';

interface RunResult {
  violation?: string;
  learned: unknown[];
  steps: number;
}

function run(seed: number, quorums: QuorumSystem, faults: boolean, amnesia = false): RunResult {
  const rnd = new Random(seed);
  const acceptorIds = [...quorums.acceptors];
  const proposerIds = ['P1', 'P2', 'P3'];
  const learnerIds = ['L1', 'L2'];
  const disk = new Map<string, AcceptorState>();
  const acceptors = new Map<string, AcceptorCore>();
  const up = new Map<string, boolean>();
  for (const id of acceptorIds) {
    acceptors.set(id, new AcceptorCore({ id, learners: learnerIds }));
    up.set(id, true);
  }
  const proposers = new Map<string, ProposerCore>();
  const proposerRound = new Map<string, number>();
  const timers = new Map<string, number>();
  const learners = new Map<string, LearnerCore>();
  for (const id of learnerIds) {
    learners.set(id, new LearnerCore({ id, quorums, peers: learnerIds.filter((x) => x !== id) }));
  }
  const proposed: unknown[] = [];
  const maxPromised = new Map<string, Ballot>();
  const net: Outbound[] = [];
  let now = 0;
  let violation: string | undefined;

  const handleProposer = (id: string, out: ProposerOutput) => {
    if (out.persist) proposerRound.set(id, out.persist.round);
    net.push(...out.send);
    if (out.wakeAfterMs !== undefined) timers.set(id, now + out.wakeAfterMs);
  };
  proposerIds.forEach((id, i) => {
    const p = new ProposerCore({
      id,
      quorums,
      learners: learnerIds,
      random: rnd.fork(),
      backoff: { minMs: 5, maxMs: 80 },
      roundTimeoutMs: 40,
    });
    proposers.set(id, p);
    const v = `value-${id}-${seed}`;
    proposed.push(v);
    if (i < 2 || rnd.chance(0.5)) handleProposer(id, p.propose(v));
  });

  const check = () => {
    const got = [...learners.values()].map((l) => l.learned).filter((x) => x !== undefined);
    for (const g of got) {
      if (!proposed.some((p) => sameValue(p, g.value))) violation ??= 'learned an unproposed value';
      if (!sameValue(g.value, got[0]?.value)) violation ??= 'two learners learned different values';
    }
  };

  let steps = 0;
  for (; steps < 4000 && !violation; steps++) {
    const allLearned = [...learners.values()].every((l) => l.learned);
    if (allLearned && net.length === 0) break;
    // pick an event: deliver a message, fire the earliest timer, or a fault
    const r = rnd.next();
    if (faults && r < (amnesia ? 0.15 : 0.02)) {
      const id = rnd.pick(acceptorIds);
      if (up.get(id)) {
        up.set(id, false);
      } else {
        up.set(id, true);
        acceptors.set(
          id,
          new AcceptorCore({ id, learners: learnerIds }, amnesia ? undefined : disk.get(id)),
        );
      }
      continue;
    }
    if (net.length === 0 || r > 0.97) {
      const due = [...timers.entries()].sort((a, b) => a[1] - b[1])[0];
      if (due) {
        timers.delete(due[0]);
        now = Math.max(now, due[1]);
        handleProposer(due[0], proposers.get(due[0])!.tick());
      } else if (net.length === 0) {
        for (const l of learners.values()) net.push(...l.query().send);
        if (net.length === 0) break;
      }
      continue;
    }
    const i = rnd.int(net.length);
    const env = net[i]!;
    if (faults && rnd.chance(0.1))
      net.splice(i, 1); // drop
    else if (!(faults && rnd.chance(0.1)))
      net.splice(i, 1); // otherwise keep a duplicate
    else {
      /* duplicate: leave it in the network */
    }
    now += 1;
    const msg = env.msg as PaxosMessage;
    try {
      if (acceptors.has(env.to)) {
        if (!up.get(env.to)) continue;
        const before = acceptors.get(env.to)!.state;
        const out = acceptors.get(env.to)!.step(msg);
        if (out.persist) {
          disk.set(env.to, out.persist);
          const mp = maxPromised.get(env.to) ?? ZERO_BALLOT;
          if (msg.type === 'paxos.accept' && compareBallots(msg.ballot, mp) < 0) {
            violation ??= `${env.to} accepted below a ballot it promised before`;
          }
          if (compareBallots(out.persist.promised, mp) > 0)
            maxPromised.set(env.to, out.persist.promised);
        }
        if (compareBallots(acceptors.get(env.to)!.state.promised, before.promised) < 0) {
          violation ??= `${env.to} lowered its promise`;
        }
        net.push(...out.send);
      } else if (proposers.has(env.to)) {
        handleProposer(env.to, proposers.get(env.to)!.step(msg));
      } else if (learners.has(env.to)) {
        net.push(...learners.get(env.to)!.step(msg).send);
      }
    } catch (err) {
      violation ??= `core threw: ${(err as Error).message}`;
    }
    check();
  }
  return {
    ...(violation ? { violation } : {}),
    learned: [...learners.values()].map((l) => l.learned?.value),
    steps,
  };
}

const SEEDS = Number(process.env.SYNOD_PAXOS_SEEDS ?? 300);

t.test('safety and agreement over random schedules with faults', async (t) => {
  let decided = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = run(seed, majorityQuorums(['A1', 'A2', 'A3']), true);
    if (r.violation) {
      t.fail(`seed ${seed}: ${r.violation}`);
      return;
    }
    if (r.learned.every((v) => v !== undefined)) decided++;
  }
  t.pass(`${SEEDS} seeds safe`);
  t.ok(decided > SEEDS * 0.9, `most runs decide (${decided}/${SEEDS})`);
});

t.test('without faults every run decides, on a proposed value', async (t) => {
  for (let seed = 1; seed <= 100; seed++) {
    const r = run(seed, majorityQuorums(['A1', 'A2', 'A3', 'A4', 'A5']), false);
    t.equal(r.violation, undefined, `seed ${seed}`);
    t.ok(
      r.learned.every((v) => typeof v === 'string' && v.startsWith('value-')),
      `seed ${seed} decided`,
    );
  }
});

t.test('negative control: non-intersecting quorums are caught by the checker', async (t) => {
  // 2-of-5 for both phases: bypasses quorumSystem() validation on purpose
  const acceptors = ['A1', 'A2', 'A3', 'A4', 'A5'];
  const broken: QuorumSystem = {
    acceptors,
    isPhase1Quorum: (m) => acceptors.filter((a) => m.has(a)).length >= 2,
    isPhase2Quorum: (m) => acceptors.filter((a) => m.has(a)).length >= 2,
    describe: () => 'broken 2/2 of 5',
  };
  let caught = 0;
  for (let seed = 1; seed <= 300; seed++) {
    if (run(seed, broken, true).violation) caught++;
  }
  t.ok(caught > 0, `the checker flagged ${caught} of 300 broken runs`);
});

t.test('negative control: an acceptor that forgets its promise on restart is caught', async (t) => {
  let caught = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = run(seed, majorityQuorums(['A1', 'A2', 'A3']), true, true);
    if (r.violation) caught++;
  }
  t.ok(caught > 0, `the checker flagged ${caught} of 300 amnesiac runs`);
});
