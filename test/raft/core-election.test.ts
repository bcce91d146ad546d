/**
 * Leader election in the pure core, one test per rule of the Raft paper (§5.2, §5.4.1)
 * and of the thesis (§9.6 pre-vote, §6.2 check-quorum).
 */
import t from 'tap';
import { RaftCore } from '../../actors/raft/core/raft-core.js';
import type { RaftHardState, RaftMessage } from '../../actors/raft/core/types.js';
import { Random } from '../../lib/random.js';
import { CoreNet } from '../helpers/raft-net.js';

function solo(id: string, voters: string[], opts: Record<string, unknown> = {}): RaftCore {
  const c = new RaftCore(
    { id, random: new Random(7), electionTick: 10, heartbeatTick: 1, ...opts },
    { bootstrap: { voters, learners: [] } },
  );
  c.advance(c.ready());
  return c;
}

t.test(
  'a follower that hears nothing for an election timeout starts a pre-vote without bumping its term',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.drainAll();
    const a = net.core('a');
    t.equal(a.term, 1);
    net.queue.length = 0;
    for (let i = 0; i < 20 && a.role === 'follower'; i++) net.tick('a');
    t.equal(a.role, 'preCandidate');
    t.equal(a.term, 1, 'pre-vote does not change the term');
    const pv = net.queue.filter((m) => m.type === 'preVote');
    t.equal(pv.length, 2);
    t.ok(
      pv.every((m) => m.term === 2),
      'pre-votes carry the term the node would campaign in',
    );
  },
);

t.test('election timeouts are randomized in [electionTick, 2*electionTick)', async (t) => {
  const seen = new Set<number>();
  for (let seed = 1; seed < 60; seed++) {
    const c = new RaftCore(
      { id: 'a', random: new Random(seed), electionTick: 10, heartbeatTick: 1, preVote: false },
      { bootstrap: { voters: ['a', 'b', 'c'], learners: [] } },
    );
    c.advance(c.ready());
    let n = 0;
    while (c.role === 'follower') {
      c.tick();
      n++;
    }
    t.ok(n >= 10 && n < 20, `timeout ${n}`);
    seen.add(n);
  }
  t.ok(seen.size > 3, 'timeouts differ between seeds');
});

t.test('a candidate that receives votes from a majority becomes leader (§5.2)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  t.equal(net.core('a').role, 'leader');
  t.equal(net.core('a').term, 2);
  t.equal(net.core('b').leader, 'a');
  t.equal(net.core('c').leader, 'a');
  t.same(net.leaders(), ['a']);
});

t.test('a single-voter cluster elects itself at once', async (t) => {
  const c = solo('a', ['a']);
  c.campaign();
  t.equal(c.role, 'leader');
});

t.test('each server votes for at most one candidate in a given term (§5.2)', async (t) => {
  const c = solo('c', ['a', 'b', 'c'], { preVote: false, checkQuorum: false });
  const vote = (from: string): RaftMessage => ({
    type: 'vote',
    from,
    to: 'c',
    term: 2,
    lastIndex: 1,
    lastTerm: 1,
  });
  c.step(vote('a'));
  c.step(vote('b'));
  c.step(vote('a')); // a retry by the same candidate is granted again
  const resps = c.ready().messages.filter((m) => m.type === 'voteResp');
  t.same(
    resps.map((m) => [m.to, m.type === 'voteResp' && m.reject]),
    [
      ['a', false],
      ['b', true],
      ['a', false],
    ],
  );
});

t.test('a voter denies its vote if its own log is more up-to-date (§5.4.1)', async (t) => {
  const c = new RaftCore(
    { id: 'c', random: new Random(1), electionTick: 10, preVote: false, checkQuorum: false },
    {
      hardState: { term: 3, vote: null, commit: 1 },
      entries: [
        { index: 1, term: 1, type: 'config', data: new Uint8Array() },
        { index: 2, term: 3, type: 'normal', data: new Uint8Array([1]) },
      ],
    },
  );
  const req = (from: string, lastIndex: number, lastTerm: number): RaftMessage => ({
    type: 'vote',
    from,
    to: 'c',
    term: 4,
    lastIndex,
    lastTerm,
  });
  c.step(req('a', 5, 2)); // longer log but older last term
  c.step(req('b', 1, 3)); // same last term, shorter log
  c.step({ ...req('d', 2, 3), term: 5 }); // as up to date: granted
  const r = c.ready().messages.map((m) => [m.to, (m as { reject: boolean }).reject]);
  t.same(r, [
    ['a', true],
    ['b', true],
    ['d', false],
  ]);
});

t.test('a vote is durable before the response that grants it is sent', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 3);
  const persisted = new Map<string, RaftHardState>();
  net.run(40);
  for (const [id, readies] of net.readies) {
    let hs: RaftHardState | undefined;
    for (const rd of readies) {
      if (rd.hardState) hs = rd.hardState;
      for (const m of rd.messages) {
        if (m.type === 'voteResp' && !m.reject) {
          t.equal(hs?.vote, m.to, `${id} persisted its vote for ${m.to} first`);
          t.equal(hs?.term, m.term);
        }
      }
    }
    if (hs) persisted.set(id, hs);
  }
  t.ok(persisted.size === 3);
  t.equal(net.leaders().length, 1);
});

t.test('an entry is durable before the response acknowledging it is sent', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 4);
  net.elect('a');
  for (let i = 0; i < 10; i++) net.core('a').propose(new Uint8Array([i]));
  net.stabilize();
  let checked = 0;
  for (const id of ['b', 'c']) {
    let last = 0;
    for (const rd of net.readies.get(id) ?? []) {
      const le = rd.entries[rd.entries.length - 1];
      if (le) last = le.index;
      for (const m of rd.messages) {
        if (m.type === 'appendResp' && !m.reject) {
          t.ok(m.index <= last, `${id} acked ${m.index} with ${last} durable`);
          checked++;
        }
      }
    }
  }
  t.ok(checked > 0);
});

t.test('a candidate steps down when it discovers the current leader (§5.2)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { preVote: false });
  net.elect('a');
  const b = net.core('b');
  // b times out without hearing the leader's heartbeat (isolated), becomes candidate
  net.isolate('b');
  for (let i = 0; i < 25 && b.role !== 'candidate'; i++) net.tick('b');
  t.equal(b.role, 'candidate');
  const bTerm = b.term;
  net.heal();
  // the leader hears b's higher term (via b's messages) and steps down; a new election happens
  net.run(60);
  t.equal(net.leaders().length, 1);
  t.ok(net.leader()!.term >= bTerm);
});

t.test('pre-vote: a partitioned node that rejoins does not disrupt a healthy leader', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 5);
  net.elect('a');
  const term = net.core('a').term;
  net.isolate('c');
  net.run(200); // c keeps timing out while isolated
  t.equal(net.core('c').term, term, 'the isolated node did not inflate its term');
  net.heal();
  net.run(50);
  t.equal(net.core('a').role, 'leader');
  t.equal(net.core('a').term, term, 'the leader was not disturbed');
  t.equal(net.core('c').leader, 'a');
});

t.test('without pre-vote the rejoining node does disrupt the leader (control)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { preVote: false, checkQuorum: false }, 5);
  net.elect('a');
  const term = net.core('a').term;
  net.isolate('c');
  net.run(200);
  t.ok(net.core('c').term > term, 'the isolated node inflated its term');
  net.heal();
  net.run(50);
  t.ok(net.leader()!.term > term, 'a new term was forced on the cluster');
});

t.test('two pre-candidates whose timers fired together do not split the vote', async (t) => {
  // c is down; a and b time out in the same tick. Each would grant the other's pre-vote,
  // both would become candidates in term 2, vote for themselves and split: term 3.
  const net = new CoreNet(['a', 'b', 'c'], {}, 9);
  net.drainAll();
  net.isolate('c');
  net.core('b').campaign();
  net.core('a').campaign();
  t.equal(net.core('a').role, 'preCandidate');
  t.equal(net.core('b').role, 'preCandidate');
  net.stabilize();
  t.same(net.leaders(), ['a'], 'the smaller id won');
  t.equal(net.core('a').term, 2, 'in the next term: one term for one election');
  t.equal(net.core('b').leader, 'a');
  const refused = net.sent.filter((m) => m.type === 'preVoteResp' && m.reject);
  t.same(
    refused.map((m) => `${m.from}->${m.to}`),
    ['a->b'],
    'only the larger id was refused, by the smaller',
  );
});

t.test('outside the collision window a pre-candidate grants a pre-vote as before', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { heartbeatTick: 2, electionTick: 20 }, 9);
  net.drainAll();
  net.isolate('c');
  net.isolate('b');
  net.core('a').campaign(); // a cannot win alone (b and c unreachable)
  net.tick('a', 2); // a's campaign is a heartbeat old
  net.heal();
  net.isolate('c');
  net.queue.length = 0;
  net.core('b').campaign();
  net.stabilize();
  t.same(net.leaders(), ['b'], 'a granted the larger id: no node blocks another for long');
  t.equal(net.core('b').term, 2);
});

t.test('check-quorum: an isolated leader steps down', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 6);
  net.elect('a');
  net.isolate('a');
  for (let i = 0; i < 10; i++) net.tick('a');
  t.equal(net.core('a').role, 'leader', 'still leader within one election timeout');
  for (let i = 0; i < 11; i++) net.tick('a');
  t.equal(net.core('a').role, 'follower', 'stepped down after losing its quorum');
});

t.test('without check-quorum an isolated leader stays leader (control)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { checkQuorum: false }, 6);
  net.elect('a');
  net.isolate('a');
  for (let i = 0; i < 50; i++) net.tick('a');
  t.equal(net.core('a').role, 'leader');
});

t.test('leader lease: followers ignore campaigns while they hear from a live leader', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { preVote: false }, 8);
  net.elect('a');
  const term = net.core('a').term;
  net
    .core('b')
    .step({ type: 'vote', from: 'c', to: 'b', term: term + 5, lastIndex: 99, lastTerm: 99 });
  t.equal(net.core('b').term, term, 'vote request inside the lease is ignored');
  t.equal(net.core('b').vote, 'a');
});

t.test('a stale leader steps down when it learns of a higher term', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 9);
  net.elect('a');
  net.isolate('a');
  net.run(60);
  const nl = net.leaders().filter((id) => id !== 'a');
  t.equal(nl.length, 1, 'the majority elected a new leader');
  t.not(net.core('a').role, 'leader', 'check-quorum demoted the old leader');
  net.heal();
  net.run(10);
  t.same(net.leaders(), nl);
  t.equal(net.core('a').leader, nl[0]);
});

t.test('elections converge for many seeds with randomized timeouts', async (t) => {
  for (let seed = 1; seed <= 30; seed++) {
    const net = new CoreNet(['a', 'b', 'c', 'd', 'e'], {}, seed);
    net.run(40);
    t.equal(net.leaders().length, 1, `seed ${seed}`);
  }
});
