/**
 * demos/paxos.ts runs end to end in the simulation and tells a true story: the dueling
 * proposers end with one value learned everywhere, the killed leader is replaced by one with
 * a higher ballot, and every replica (the restarted one included) ends with the same state.
 */
import t from 'tap';
import { runPaxosDemo } from '../../demos/paxos.js';

for (const seed of [7, 11]) {
  t.test(`the Paxos demo, seed ${seed}`, async (t) => {
    const lines: string[] = [];
    const r = await runPaxosDemo({ seed, print: (l) => lines.push(l) });
    t.ok(r.chosen === 'blue' || r.chosen === 'green', `chosen ${String(r.chosen)}`);
    t.same(r.learners, [r.chosen, r.chosen, r.chosen], 'every learner learned the chosen value');
    t.ok(r.rounds >= 2, `${r.rounds} rounds: both proposers ran at least one`);
    t.not(r.secondLeader, r.firstLeader, 'a new leader after the kill');
    const round = (b: string) => Number(b.split('.')[0]);
    t.ok(round(r.secondBallot) > round(r.firstBallot), `${r.secondBallot} > ${r.firstBallot}`);
    t.equal(r.acknowledged, 7);
    for (const n of ['a', 'b', 'c']) t.same(r.replicas[n], { x: 7, y: 6 }, `${n} holds the writes`);
    t.match(lines.join('\n'), /== 1\. Single-decree Paxos/);
    t.match(lines.join('\n'), /starts a round with ballot/);
    t.match(lines.join('\n'), /-- killing the leader/);
    t.match(lines.at(-1), /all three replicas agree/);
    t.notMatch(lines.join('\n'), /DISAGREE|safety violation/);
  });
}

t.test('the same seed prints the same story', async (t) => {
  const a: string[] = [];
  const b: string[] = [];
  await runPaxosDemo({ seed: 3, print: (l) => a.push(l) });
  await runPaxosDemo({ seed: 3, print: (l) => b.push(l) });
  t.same(a, b);
});
