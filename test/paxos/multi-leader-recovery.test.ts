/**
 * A local learner that restarts alone (its state machine threw) resumes from its snapshot and
 * loses the slots it held in memory after it; when every learner lost them, no catch-up can
 * serve them and the leader's `retained` no longer holds them. The randomised actor runs hit
 * this (seed 8 of `npm run sim -- paxos --actors` once learner restarts were injected): every
 * learner stuck at slot 0 while the leader went on choosing slots. When its local learner
 * reports a lower decided index than before, a leader runs phase 1 again from there, so the
 * acceptors' values are chosen and decided again; a follower remembers the lower index for its
 * next election.
 */
import t from 'tap';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import type { MOutbound } from '../../actors/paxos/multi-messages.js';
import { leaderOptions } from '../helpers/paxos-leader.js';

const opts = leaderOptions();
const prepares = (out: { send: MOutbound[] }) =>
  out.send
    .filter((s) => s.msg.type === 'mp.prepare')
    .map((s) => (s.msg as unknown as { fromSlot: number }).fromSlot);
const learned = (decidedUpTo: number) => ({
  type: 'mp.learned' as const,
  from: 'L',
  decidedUpTo,
});

/** A leader of ballot 1 whose local learner has decided slots 1..10. */
function leader(): MultiLeaderCore {
  const p = new MultiLeaderCore(opts, 0, 0);
  const start = p.tick(700);
  const prep = start.send.find((s) => s.msg.type === 'mp.prepare');
  if (!prep) throw new Error('no prepare');
  const b = (prep.msg as unknown as { ballot: unknown }).ballot;
  for (const a of ['A', 'B'])
    p.step({ type: 'mp.promise', from: a, ballot: b, floor: 0, accepted: [] } as never, 701);
  p.step(learned(10), 702);
  return p;
}

t.test('a leader whose local learner went back runs phase 1 again from there', async (t) => {
  const p = leader();
  t.equal(p.view().role, 'leader');
  t.same(prepares(p.step(learned(10), 710)), [], 'the same index again changes nothing');
  const out = p.step(learned(4), 720);
  t.equal(p.view().role, 'candidate', 'a new ballot');
  t.same(prepares(out), [5, 5, 5], 'prepared from the slot after the learner, at every acceptor');
});

t.test('a follower remembers the lower index for its next election', async (t) => {
  const p = new MultiLeaderCore(opts, 0, 0);
  p.step(learned(10), 1);
  const out = p.step(learned(3), 2);
  t.equal(p.view().role, 'follower', 'no election for it');
  t.same(prepares(out), []);
  t.same(prepares(p.tick(700)), [4, 4, 4], 'its election prepares from slot 4');
});
