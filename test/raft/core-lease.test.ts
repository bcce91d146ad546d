/**
 * Lease reads (readOnly: 'lease') in the pure core: an isolated leader never serves a lease
 * read that misses a write of a newer leader, with perfect clocks (every node ticks in
 * lockstep) and with clocks that drift within the configured margin. The first test is the
 * reviewer's probe of session 9 (etcd-io/raft#166): check-quorum alone let an isolated leader
 * lead for almost two election timeouts while its followers waited one.
 */
import t from 'tap';
import { LEASE_CONTEXT_PREFIX } from '../../actors/raft/core/raft-core.js';
import type { RaftCoreOptions, ReadState } from '../../actors/raft/core/types.js';
import { RaftError } from '../../actors/raft/core/types.js';
import { CoreNet, cmd } from '../helpers/raft-net.js';

const E = 10; // CoreNet's electionTick

function readStates(net: CoreNet, id: string): ReadState[] {
  return (net.readies.get(id) ?? []).flatMap((rd) => rd.readStates);
}

function electionElapsed(net: CoreNet, id: string): number {
  return (net.core(id) as unknown as { electionElapsed: number }).electionElapsed;
}

function leaseNet(opts: Partial<RaftCoreOptions> = {}, seed = 1): CoreNet {
  const net = new CoreNet(['a', 'b', 'c'], { readOnly: 'lease', ...opts }, seed);
  net.elect('a');
  net.run(3);
  return net;
}

/** Steps until a's check-quorum counter reads `elapsed` (its last check was that long ago). */
function stepToCheckPhase(net: CoreNet, elapsed: number): void {
  for (let i = 0; i < 3 * E && electionElapsed(net, 'a') !== elapsed; i++) net.run(1);
  if (electionElapsed(net, 'a') !== elapsed) throw new Error('check phase not reached');
}

interface Watch {
  /** Reads the old leader served after it was cut off: [tick, index]. */
  served: [number, number][];
  /** Reads served below a write a newer leader had already committed. */
  stale: [number, number][];
  write?: { index: number; term: number; by: string; tick: number };
  /** Ticks at which the write was committed while the old leader still led. */
  overlap: number;
  /** Tick at which the old leader stepped down (0: never). */
  stepDown: number;
}

/**
 * Drives the cluster after `a` was cut off, asking `a` for a read at every tick while it
 * leads; as soon as another node leads, it commits a write there. `step(tick)` advances one
 * tick (default: every node ticks once, lockstep).
 */
function watch(net: CoreNet, step?: (tick: number) => void, ticks = 4 * E): Watch {
  const a = net.core('a');
  const w: Watch = { served: [], stale: [], overlap: 0, stepDown: 0 };
  for (let tick = 1; tick <= ticks; tick++) {
    if (step) step(tick);
    else net.run(1);
    if (!w.write) {
      const nl = ['b', 'c'].find((id) => net.core(id).role === 'leader');
      if (nl) {
        const p = net.core(nl).propose(cmd('new-write'));
        net.stabilize();
        w.write = { ...p, by: nl, tick };
      }
    }
    const committed = w.write !== undefined && net.core(w.write.by).log.committed >= w.write.index;
    if (a.role !== 'leader') {
      if (w.stepDown === 0) w.stepDown = tick;
      continue;
    }
    if (committed) w.overlap++;
    const before = readStates(net, 'a').length;
    a.readIndex(`r${tick}`);
    net.drain('a');
    for (const r of readStates(net, 'a').slice(before)) {
      w.served.push([tick, r.index]);
      if (committed && r.index < (w.write as { index: number }).index)
        w.stale.push([tick, r.index]);
    }
  }
  return w;
}

t.test(
  'probe: a leader isolated just after a check-quorum pass serves no stale lease read',
  async (t) => {
    const net = leaseNet({ preVote: true, checkQuorum: true });
    stepToCheckPhase(net, 1);
    net.run(1); // one more heartbeat round answered after the check
    t.equal(net.core('a').role, 'leader');
    const leaseBefore = net.core('a').leaseReads;
    net.isolate('a');
    const w = watch(net);
    t.comment(JSON.stringify(w));
    t.ok(w.write, 'the majority elected a new leader and proposed a write');
    t.ok(w.overlap > 0, 'the old leader still led after the new leader committed (the hazard)');
    t.same(w.stale, [], 'no lease read below the newer leader’s committed write');
    t.ok(net.core('a').leaseReads > leaseBefore, 'it did serve lease reads while its lease held');
    t.ok(
      w.served.every(([tick]) => tick < E - 1),
      'only within electionTick − 1 − drift ticks of its last acknowledged round',
    );
    t.ok(w.stepDown > 0, 'check-quorum demoted it in the end');
  },
);

t.test(
  'a leader isolated just before a check-quorum pass serves no stale lease read',
  async (t) => {
    const net = leaseNet();
    stepToCheckPhase(net, E - 1);
    t.equal(net.core('a').role, 'leader');
    net.isolate('a');
    const w = watch(net);
    t.comment(JSON.stringify(w));
    t.ok(w.write, 'the majority elected a new leader');
    t.same(w.stale, []);
    t.ok(w.served.length > 0, 'lease reads were served right after the cut (lease still valid)');
  },
);

t.test(
  'lockstep, many seeds and phases: an isolated leader never serves a stale lease read',
  async (t) => {
    let overlaps = 0;
    for (let seed = 1; seed <= 20; seed++) {
      for (let phase = 0; phase < E; phase++) {
        const net = leaseNet({}, seed);
        stepToCheckPhase(net, phase);
        net.isolate('a');
        const w = watch(net);
        if (w.overlap > 0) overlaps++;
        if (w.stale.length > 0) {
          t.fail(`seed ${seed} phase ${phase}: stale ${JSON.stringify(w)}`);
          return;
        }
      }
    }
    t.ok(
      overlaps > 0,
      `the old leader outlived the new leader's commit in ${overlaps} of 200 runs`,
    );
  },
);

t.test(
  'a follower that restarts keeps the lease it acknowledged (no vote for an election timeout)',
  async (t) => {
    // a–c cut: a's lease rests on b alone; c keeps campaigning and is refused by b.
    const cutAC = (m: { from: string; to: string }) =>
      !((m.from === 'a' && m.to === 'c') || (m.from === 'c' && m.to === 'a'));
    const net = leaseNet();
    net.filter = cutAC;
    net.run(3 * E);
    t.equal(net.core('a').role, 'leader', 'a still leads on b’s acknowledgements');
    t.not(net.core('c').role, 'leader');
    // a is cut off, b restarts right after acknowledging a's latest round, and c's election
    // timer fires at once.
    net.isolate('a');
    net.crash('b');
    net.restart('b');
    net.core('c').campaign();
    net.stabilize();
    t.not(net.core('c').role, 'leader', 'the restarted node does not elect c inside the lease');
    const w = watch(net);
    t.comment(JSON.stringify(w));
    t.ok(w.write, 'a new leader is elected once the lease is over');
    t.same(w.stale, [], 'no stale lease read');
  },
);

t.test('a restarted node in lease mode ignores a campaign for an election timeout', async (t) => {
  const net = leaseNet();
  net.crash('b');
  net.restart('b');
  const b = net.core('b');
  const term = b.term;
  const vote = b.vote;
  const ask = () =>
    b.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastIndex: 99, lastTerm: 99 });
  ask();
  t.equal(b.term, term, 'ignored inside the lease');
  t.equal(b.vote, vote);
  net.tick('b', E - 1);
  ask();
  t.equal(b.term, term, 'still ignored one tick before the timeout');
  net.tick('b', 1);
  ask();
  t.equal(b.vote, 'c', 'granted once an election timeout has passed');
});

t.test('a follower inside a lease does not start a forced election (campaign())', async (t) => {
  const net = leaseNet();
  const term = net.core('b').term;
  net.core('b').campaign();
  net.stabilize();
  t.equal(net.core('b').role, 'follower');
  t.equal(net.core('b').term, term);
  t.equal(net.core('a').role, 'leader');
  net.isolate('a');
  net.tick('c', E);
  net.tick('b', E);
  net.core('b').campaign();
  net.stabilize();
  t.ok(net.core('b').term > term, 'it may once an election timeout has passed');
  t.equal(net.leaders().filter((id) => id !== 'a').length, 1, 'and b or c is elected');
});

t.test(
  'control: a restarted node in safe mode votes at once (the guard is lease-only)',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.run(3);
    net.crash('b');
    net.restart('b');
    const b = net.core('b');
    const term = b.term;
    b.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastIndex: 99, lastTerm: 99 });
    t.equal(b.vote, 'c');
  },
);

/**
 * Followers whose clocks run fast: b and c tick once more every `every` ticks of a (a gain of
 * E / every ticks per election timeout).
 */
function fastFollowers(net: CoreNet, every: number): (tick: number) => void {
  return (tick) => {
    net.tickAll();
    if (tick % every === 0) {
      net.tick('b');
      net.tick('c');
    }
    net.stabilize();
  };
}

t.test(
  'drift: fast follower clocks within the configured margin serve no stale read',
  async (t) => {
    let overlaps = 0;
    let staleWithoutMargin = 0;
    for (let phase = 0; phase < E; phase++) {
      for (const margin of [3, 0]) {
        const net = leaseNet({ leaseDriftTicks: margin }, 5 + phase);
        stepToCheckPhase(net, phase);
        net.isolate('a');
        const w = watch(net, fastFollowers(net, 4)); // 2.5 ticks gained per election timeout
        if (margin === 3) {
          t.same(w.stale, [], `phase ${phase}: margin 3 covers a gain of 2.5 ticks`);
          if (w.overlap > 0) overlaps++;
        } else if (w.stale.length > 0) staleWithoutMargin++;
      }
    }
    t.ok(overlaps > 0, `the hazard was reached in ${overlaps} of ${E} runs`);
    t.ok(
      staleWithoutMargin > 0,
      `control: with margin 0 a stale read was served in ${staleWithoutMargin} runs`,
    );
  },
);

t.test('the margin shortens the lease by as many ticks', async (t) => {
  const count = (margin: number) => {
    const net = leaseNet({ leaseDriftTicks: margin });
    stepToCheckPhase(net, 3);
    net.isolate('a');
    return watch(net).served.length;
  };
  // The last round a quorum acknowledged was sent at the tick before the cut; a read at the
  // k-th tick after it is served while k < electionTick − 1 − margin.
  t.equal(count(1), E - 3, 'default margin 1: served for electionTick − 3 ticks after the cut');
  t.equal(count(3), E - 5, 'margin 3: two ticks fewer');
  t.equal(count(0), E - 2, 'margin 0: one tick more');
  for (const bad of [-1, 1.5, E - 1, Number.NaN]) {
    t.throws(() => new CoreNet(['a'], { readOnly: 'lease', leaseDriftTicks: bad }), RaftError);
  }
  t.doesNotThrow(() => new CoreNet(['a'], { leaseDriftTicks: 0 }));
});

t.test(
  'a lease read is served at once while the lease holds, with no heartbeat round',
  async (t) => {
    const net = leaseNet();
    net.queue.length = 0;
    const before = net.core('a').leaseReads;
    net.core('a').readIndex('l1');
    net.drain('a');
    t.same(
      readStates(net, 'a').map((r) => r.context),
      ['l1'],
    );
    t.equal(net.core('a').leaseReads, before + 1);
    t.equal(net.queue.filter((m) => m.type === 'heartbeat').length, 0, 'no heartbeat round');
  },
);

t.test('an expired lease falls back to ReadIndex (a read, not an error)', async (t) => {
  const net = leaseNet();
  // Heartbeat acknowledgements are lost: the lease expires, appends still flow.
  net.filter = (m) => m.type !== 'heartbeatResp';
  net.run(E - 1);
  const a = net.core('a');
  t.equal(a.role, 'leader');
  const before = a.leaseReads;
  net.queue.length = 0;
  a.readIndex('late');
  net.drain('a');
  t.same(readStates(net, 'a'), [], 'not served from the lease');
  t.ok(
    net.queue.some((m) => m.type === 'heartbeat' && m.context === 'late'),
    'a ReadIndex round asks the followers',
  );
  net.filter = undefined;
  net.stabilize();
  t.same(
    readStates(net, 'a').map((r) => r.context),
    ['late'],
    'served once a quorum confirmed it',
  );
  t.equal(a.leaseReads, before);
  net.run(1);
  a.readIndex('renewed');
  net.drain('a');
  t.equal(a.leaseReads, before + 1, 'the next acknowledged round renews the lease');
});

t.test(
  'a leader that starts a transfer serves no lease read for the rest of its term',
  async (t) => {
    const net = leaseNet();
    const a = net.core('a');
    const term = a.term;
    // TimeoutNow is lost: the transfer is abandoned after an election timeout.
    net.filter = (m) => m.type !== 'timeoutNow';
    a.transferLeadership('b');
    net.stabilize();
    const before = a.leaseReads;
    a.readIndex('during');
    net.stabilize();
    t.same(
      readStates(net, 'a').map((r) => r.context),
      ['during'],
      'served by ReadIndex',
    );
    t.equal(a.leaseReads, before, 'not from the lease');
    net.run(2 * E);
    t.equal(a.role, 'leader');
    t.equal(a.term, term);
    t.equal(a.leadTransferee, undefined, 'transfer abandoned');
    a.readIndex('after');
    net.stabilize();
    t.equal(a.leaseReads, before, 'still no lease read in that term');
    t.ok(readStates(net, 'a').some((r) => r.context === 'after'));
    // A late TimeoutNow would make b campaign through every follower's lease: the term ends.
    net.filter = undefined;
    a.transferLeadership('b');
    net.stabilize();
    t.equal(net.core('b').role, 'leader');
    const b = net.core('b');
    net.run(2);
    const bBefore = b.leaseReads;
    b.readIndex('new-term');
    net.drain('b');
    t.equal(b.leaseReads, bBefore + 1, 'the new leader has a lease of its own');
  },
);

t.test('acknowledgements of an earlier term do not carry a lease into a new one', async (t) => {
  const net = leaseNet();
  const a = net.core('a');
  t.ok(a.leaseReads >= 0);
  // a loses leadership to b, then wins again while heartbeat answers are lost.
  a.transferLeadership('b');
  net.stabilize();
  t.equal(net.core('b').role, 'leader');
  net.run(2);
  net.filter = (m) => m.type !== 'heartbeatResp';
  net.core('b').transferLeadership('a');
  net.stabilize();
  t.equal(a.role, 'leader');
  net.run(1);
  const before = a.leaseReads;
  a.readIndex('x');
  net.drain('a');
  t.equal(a.leaseReads, before, 'no lease before a round of this term is acknowledged');
  t.same(readStates(net, 'a'), []);
});

t.test('read contexts may not use the lease prefix', async (t) => {
  const net = leaseNet();
  t.throws(() => net.core('a').readIndex(`${LEASE_CONTEXT_PREFIX}1`), RaftError);
  // A peer that sends one anyway is refused.
  net.core('a').step({
    type: 'readIndex',
    from: 'b',
    to: 'a',
    term: net.core('a').term,
    context: `${LEASE_CONTEXT_PREFIX}7`,
  });
  net.drain('a');
  const resp = net.queue.find((m) => m.type === 'readIndexResp');
  t.ok(resp && resp.type === 'readIndexResp' && resp.reject, 'rejected');
});
