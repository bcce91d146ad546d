/**
 * Log replication in the pure core (§5.3, §5.4.2): agreement, batching, pipelining and
 * flow control, fast backtracking, the Figure 8 commit rule, and error codes.
 */
import t from 'tap';
import { RaftCore } from '../../actors/raft/core/raft-core.js';
import type {
  LogEntry,
  RaftCoreOptions,
  RaftError,
  RaftMessage,
} from '../../actors/raft/core/types.js';
import { Random } from '../../lib/random.js';
import { CoreNet, cmd } from '../helpers/raft-net.js';

t.test('commands commit at consecutive indexes on every node, in order', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  const idx = [
    net.propose('a', 'x').index,
    net.propose('a', 'y').index,
    net.propose('a', 'z').index,
  ];
  t.same(idx, [3, 4, 5], 'after the bootstrap entry and the leader no-op');
  net.run(2);
  for (const id of ['a', 'b', 'c']) t.same(net.commands(id), ['x', 'y', 'z'], id);
});

t.test('nothing commits before it is proposed, and a follower cannot propose', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  t.same(net.commands('b'), []);
  const err = t.throws(() => net.core('b').propose(cmd('x'))) as RaftError;
  t.equal(err.code, 'SYNOD_ERR_RAFT_NOT_LEADER');
  t.equal(err.leaderHint, 'a');
});

t.test(
  'proposals arriving together travel in one AppendEntries per follower (batching)',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.queue.length = 0;
    const a = net.core('a');
    for (let i = 0; i < 100; i++) a.propose(cmd(`v${i}`));
    const rd = a.ready();
    const appends = rd.messages.filter((m) => m.type === 'append');
    t.equal(appends.length, 2);
    t.ok(appends.every((m) => m.type === 'append' && m.entries.length === 100));
    t.equal(rd.entries.length, 100, 'the leader persists the batch in the same Ready');
  },
);

t.test('pipelining is bounded by the in-flight window (count)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { maxSizePerMsg: 1, maxInflightMsgs: 3 });
  net.elect('a');
  net.queue.length = 0;
  net.isolate('c'); // c never answers
  const a = net.core('a');
  for (let i = 0; i < 20; i++) a.propose(cmd(`v${i}`));
  net.drain('a');
  const toC = net.queue.filter((m) => m.to === 'c' && m.type === 'append');
  t.equal(toC.length, 3, 'three single-entry appends in flight, then the window is full');
  net.stabilize();
  t.equal(net.commands('b').length, 20, 'b (answering) received everything');
  t.equal(a.status().progress.c?.inflight, 3);
});

t.test('pipelining is bounded by the in-flight window (bytes)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { maxSizePerMsg: 1, maxInflightBytes: 100 });
  net.elect('a');
  net.queue.length = 0;
  net.isolate('c');
  const a = net.core('a');
  for (let i = 0; i < 20; i++) a.propose(new Uint8Array(40)); // 56 bytes each with overhead
  net.drain('a');
  const toC = net.queue.filter((m) => m.to === 'c' && m.type === 'append');
  t.equal(toC.length, 2, '2 × 56 bytes reach the 100-byte window');
});

t.test('a follower in probe state gets one append per round trip', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { maxSizePerMsg: 1 });
  net.elect('a');
  net.isolate('c');
  const a = net.core('a');
  // c's progress goes back to probe when an append is rejected; before it answers
  // anything, the leader sends at most one probe per heartbeat answer.
  t.equal(a.status().progress.c?.state, 'replicate');
  net.heal();
  net.run(3);
  t.equal(a.status().progress.c?.match, a.log.lastIndex());
});

t.test(
  'a burst of heartbeat answers from a follower in probe state sends one probe, not one each',
  async (t) => {
    // Chaos seed 549760: a leader was killed; a new one led without it, so its progress for
    // the old leader stayed in probe while the log grew. The transport queued every heartbeat
    // sent to the dead node meanwhile (one per heartbeat and one per read round, for up to
    // 30 s) and delivered them when it came back; it answered each. Every answer re-armed the
    // probe, and each probe carried up to maxSizePerMsg of entries from its next index: a
    // thousand ~1 MiB appends at once, the leader's RSS 220 -> 661 MB in 2 s, and the cluster
    // stalled for a second.
    const net = new CoreNet(['a', 'b', 'c', 'd', 'e']);
    net.elect('a');
    for (let i = 0; i < 10; i++) net.propose('a', `early${i}`);
    net.isolate('c');
    for (let i = 0; i < 100; i++) net.core('a').propose(cmd(`v${i}`.padEnd(100, '.')));
    net.stabilize();
    net.crash('a');
    net.heal();
    // c is away: what is sent to it is queued (the transport), nothing comes from it.
    const held: RaftMessage[] = [];
    net.filter = (m) => {
      if (m.to === 'c') held.push(m);
      return m.to !== 'c' && m.from !== 'c';
    };
    for (let i = 0; i < 50 && !net.leader(); i++) net.run(1);
    const b = net.leader() as RaftCore;
    t.ok(b && b.id !== 'c', `a new leader without c (${b?.id})`);
    t.equal(b.status().progress.c?.state, 'probe', 'it has never heard from c: probe');
    for (let i = 0; i < 100; i++) b.propose(cmd(`w${i}`.padEnd(100, '.')));
    net.stabilize();
    const beats = 50;
    for (let i = 0; i < beats; i++) {
      net.tick(b.id);
      net.stabilize();
    }
    t.equal(b.role, 'leader', 'it still leads');
    t.ok(held.filter((m) => m.type === 'heartbeat').length >= beats, 'heartbeats queued for c');
    // c comes back: the queued messages arrive at once, and its answers reach b together.
    net.filter = undefined;
    const c = net.core('c');
    for (const m of held.splice(0)) c.step(m);
    const rdC = c.ready();
    const answers = rdC.messages;
    c.advance(rdC);
    t.ok(
      answers.some((m) => m.type === 'appendResp' && m.reject),
      'c rejects the probe (it lacks the entries)',
    );
    t.ok(answers.filter((m) => m.type === 'heartbeatResp').length >= beats, 'c answers each');
    net.queue.length = 0;
    for (const m of answers) b.step(m);
    const rd = b.ready();
    const toC = rd.messages.filter((m) => m.to === 'c' && m.type === 'append');
    const carrying = toC.filter((m) => m.type === 'append' && m.entries.length > 0);
    const entries = toC.reduce((n, m) => n + (m.type === 'append' ? m.entries.length : 0), 0);
    t.equal(carrying.length, 1, `one probe carries entries (${carrying.length} of ${toC.length})`);
    t.ok(entries <= b.log.lastIndex(), `the missing entries are sent once (${entries} sent)`);
    // And it converges: c catches up.
    net.queue.push(...rd.messages);
    b.advance(rd);
    net.stabilize();
    net.run(3);
    t.equal(b.status().progress.c?.match, b.log.lastIndex(), 'c caught up');
  },
);

function logOf(terms: number[]): LogEntry[] {
  return terms.map((term, i) => ({
    index: i + 1,
    term,
    type: i === 0 ? ('config' as const) : ('normal' as const),
    data: i === 0 ? new Uint8Array() : new Uint8Array([term, i]),
  }));
}

t.test('fast backtracking skips a whole conflicting term per round trip', async (t) => {
  // The follower has 50 uncommitted entries of term 2; the leader 50 of term 3.
  const ids = ['a', 'b', 'c'];
  const net = new CoreNet(ids, { maxSizePerMsg: 1 << 20 });
  net.drainAll();
  const bootstrap = net.durable.get('a')!.entries;
  const mk = (id: string, terms: number[], term: number) =>
    new RaftCore(
      { id, random: new Random(1), electionTick: 10, heartbeatTick: 1 },
      {
        hardState: { term, vote: null, commit: 1 },
        entries: [bootstrap[0]!, ...logOf(terms).slice(1)],
      },
    );
  const leaderTerms = [1, ...Array(50).fill(3)];
  const followerTerms = [1, ...Array(50).fill(2), ...Array(30).fill(2)];
  net.cores.set('a', mk('a', leaderTerms, 3));
  net.cores.set('b', mk('b', leaderTerms, 3));
  net.cores.set('c', mk('c', followerTerms, 3));
  net.drainAll();
  net.elect('a');
  const rejects = net.sent.filter((m) => m.type === 'appendResp' && m.from === 'c' && m.reject);
  t.ok(rejects.length <= 2, `${rejects.length} rejections to skip 80 conflicting entries`);
  net.run(2);
  t.same(
    net
      .core('c')
      .log.all()
      .map((e) => e.term),
    net
      .core('a')
      .log.all()
      .map((e) => e.term),
  );
});

t.test('without hints backtracking would take one round trip per entry (control)', async (t) => {
  const ids = ['a', 'b', 'c'];
  const net = new CoreNet(ids);
  net.drainAll();
  const bootstrap = net.durable.get('a')!.entries;
  const mk = (id: string, terms: number[]) =>
    new RaftCore(
      { id, random: new Random(1), electionTick: 10, heartbeatTick: 1 },
      {
        hardState: { term: 3, vote: null, commit: 1 },
        entries: [bootstrap[0]!, ...logOf(terms).slice(1)],
      },
    );
  net.cores.set('a', mk('a', [1, ...Array(20).fill(3)]));
  net.cores.set('b', mk('b', [1, ...Array(20).fill(3)]));
  net.cores.set('c', mk('c', [1, ...Array(20).fill(2)]));
  net.drainAll();
  // strip the hints: the leader falls back to decrementing by one
  net.filter = (m: RaftMessage) => {
    if (m.type === 'appendResp' && m.reject) {
      delete m.hintIndex;
      delete m.hintTerm;
    }
    return true;
  };
  net.elect('a');
  const rejects = net.sent.filter((m) => m.type === 'appendResp' && m.from === 'c' && m.reject);
  t.ok(rejects.length >= 19, `${rejects.length} rejections without hints`);
});

t.test(
  'Figure 8: an entry from an earlier term is never committed by counting replicas',
  async (t) => {
    // S1 leads term 4 with an entry of term 2 at index 2 that S2 and S3 also hold.
    const ids = ['s1', 's2', 's3', 's4', 's5'];
    const net = new CoreNet(ids, { maxSizePerMsg: 1 });
    net.drainAll();
    const boot = net.durable.get('s1')!.entries[0]!;
    const e2: LogEntry = { index: 2, term: 2, type: 'normal', data: cmd('from-term-2') };
    const e2b: LogEntry = { index: 2, term: 3, type: 'normal', data: cmd('from-term-3') };
    const mk = (id: string, ents: LogEntry[]) =>
      new RaftCore(
        { id, random: new Random(1), electionTick: 10, heartbeatTick: 1, preVote: false },
        { hardState: { term: 3, vote: null, commit: 1 }, entries: ents },
      );
    net.cores.set('s1', mk('s1', [boot, e2]));
    net.cores.set('s2', mk('s2', [boot, e2]));
    net.cores.set('s3', mk('s3', [boot]));
    net.cores.set('s4', mk('s4', [boot]));
    net.cores.set('s5', mk('s5', [boot, e2b]));
    net.drainAll();
    // Block every append carrying the new term's no-op (index 3): only index 2 replicates.
    net.filter = (m) => {
      if (m.type === 'append') m.entries = m.entries.filter((e) => e.index < 3);
      return true;
    };
    net.elect('s1');
    const s1 = net.core('s1');
    t.equal(s1.role, 'leader');
    t.equal(s1.term, 4);
    t.equal(s1.status().progress.s3?.match, 2, 's3 now holds the term-2 entry too');
    t.equal(s1.log.committed, 1, 'index 2 is on a majority but from term 2: not committed');
    net.filter = undefined;
    net.run(2);
    t.equal(s1.log.committed, 3, 'committing the term-4 no-op commits index 2 with it');
  },
);

t.test("a leader's commit index never exceeds what it has made durable", async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  const a = net.core('a');
  a.propose(cmd('x'));
  const rd = a.ready(); // not yet persisted
  const app = rd.messages.filter((m) => m.type === 'append');
  for (const m of app) net.core(m.to).step(m);
  for (const id of ['b', 'c']) {
    const frd = net.core(id).ready();
    for (const m of frd.messages) if (m.type === 'appendResp') a.step(m);
    net.core(id).advance(frd);
  }
  t.ok(a.log.committed >= rd.entries[0]!.index, 'followers acked: the entry is committed');
  t.ok(a.log.committed <= a.log.lastIndex());
  a.advance(rd);
  t.equal(a.log.stableIndex, a.log.lastIndex());
});

t.test('the leader counts itself only once its entries are durable', async (t) => {
  const c = new RaftCore(
    { id: 'a', random: new Random(1), electionTick: 10 },
    { bootstrap: { voters: ['a'], learners: [] } },
  );
  c.advance(c.ready());
  c.campaign();
  c.propose(cmd('x'));
  t.equal(c.log.committed, 1, 'nothing new committed before persistence');
  const rd = c.ready();
  t.same(rd.committedEntries, []);
  c.advance(rd);
  t.equal(c.log.committed, 3, 'the no-op and x commit once durable');
  const rd2 = c.ready();
  t.same(
    rd2.committedEntries.map((e) => e.index),
    [2, 3],
  );
  c.advance(rd2);
});

t.test('an append that would overwrite committed entries is answered, not applied', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.propose('a', 'x');
  net.run(2);
  const b = net.core('b');
  const committed = b.log.committed;
  const before = b.log.entryAt(committed);
  b.step({
    type: 'append',
    from: 'a',
    to: 'b',
    term: b.term,
    prevIndex: committed - 1,
    prevTerm: b.log.term(committed - 1)!,
    entries: [{ index: committed, term: b.term + 1, type: 'normal', data: cmd('evil') }],
    commit: committed,
  });
  t.same(b.log.entryAt(committed), before, 'the committed entry is untouched (term and bytes)');
  const resp = b.ready().messages.find((m) => m.type === 'appendResp');
  t.same(
    resp && {
      index: (resp as { index: number }).index,
      reject: (resp as { reject: boolean }).reject,
    },
    {
      index: committed,
      reject: false,
    },
  );
  t.throws(() => b.log.append([{ index: committed, term: 9, type: 'normal', data: cmd('y') }]), {
    code: 'SYNOD_ERR_RAFT_SAFETY',
  });
});

t.test('heartbeats carry the commit index only up to what the follower matches', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('c');
  net.propose('a', 'x');
  const a = net.core('a');
  net.queue.length = 0;
  a.tick();
  const rd = a.ready();
  a.advance(rd);
  const hb = rd.messages.filter((m) => m.type === 'heartbeat');
  const toB = hb.find((m) => m.to === 'b');
  const toC = hb.find((m) => m.to === 'c');
  t.equal(toB?.type === 'heartbeat' && toB.commit, a.log.committed);
  t.equal(toC?.type === 'heartbeat' && toC.commit, a.status().progress.c?.match);
  t.ok((a.status().progress.c?.match ?? 0) < a.log.committed);
});

t.test('uncommitted-bytes limit drops proposals with a stable code', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { maxUncommittedBytes: 200 });
  net.elect('a');
  net.isolate('a');
  const a = net.core('a');
  a.propose(new Uint8Array(150));
  t.throws(() => a.propose(new Uint8Array(150)), { code: 'SYNOD_ERR_RAFT_PROPOSAL_DROPPED' });
});

t.test('a follower that missed entries catches up and agrees (FailAgree)', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 5; i++) net.propose('a', `x${i}`);
  net.heal();
  net.run(5);
  t.same(net.commands('c'), net.commands('a'));
  t.equal(net.commands('c').length, 5);
});

t.test(
  "a learner's replication window is smaller than a voter's: bounded bytes per message and messages in flight",
  async (t) => {
    // 1 KiB entries; voters may take 64 KiB per message and 256 in flight, the learner 4 KiB × 2.
    const net = new CoreNet(
      ['a', 'b', 'c', 'l'],
      { learnerMaxSizePerMsg: 4096, learnerMaxInflightMsgs: 2, maxSizePerMsg: 64 * 1024 },
      1,
      ['a', 'b', 'c'],
      ['l'],
    );
    net.elect('a');
    net.run(2);
    net.queue.length = 0;
    net.isolate('l'); // the learner answers nothing: what the leader sends is all in flight
    net.isolate('c');
    const a = net.core('a');
    for (let i = 0; i < 100; i++) a.propose(new Uint8Array(1024));
    net.drain('a');
    const toL = net.queue.filter((m) => m.to === 'l' && m.type === 'append');
    const toC = net.queue.filter((m) => m.to === 'c' && m.type === 'append');
    t.equal(toL.length, 2, 'two appends in flight to the learner, then its window is full');
    for (const m of toL) {
      if (m.type !== 'append') continue;
      const bytes = m.entries.reduce((s, e) => s + e.data.byteLength, 0);
      t.ok(m.entries.length >= 1 && bytes <= 4096, `${m.entries.length} entries, ${bytes} B`);
    }
    t.ok(
      toC.reduce((s, m) => s + (m.type === 'append' ? m.entries.length : 0), 0) === 100,
      'the voter c got all 100 entries at once (its window is not the learner one)',
    );
    t.equal(a.status().progress.l?.inflight, 2);
    net.heal();
    net.stabilize();
    t.equal(net.commands('l').length, 100, 'the learner catches up through its small window');
    t.equal(a.status().progress.l?.match, a.log.lastIndex());
  },
);

t.test('a learner whose window filled with lost answers is not stalled for ever', async (t) => {
  const net = new CoreNet(
    ['a', 'b', 'c', 'l'],
    { learnerMaxSizePerMsg: 1, learnerMaxInflightMsgs: 2 },
    1,
    ['a', 'b', 'c'],
    ['l'],
  );
  net.elect('a');
  net.run(2);
  net.isolate('l');
  const a = net.core('a');
  for (let i = 0; i < 10; i++) a.propose(new Uint8Array(8));
  net.drain('a');
  net.queue.length = 0; // every append to l is lost
  net.heal();
  net.run(30);
  t.equal(net.commands('l').length, 10, 'heartbeat answers reopened the window');
});

t.test('a promoted learner gets the voter window again', async (t) => {
  const net = new CoreNet(
    ['a', 'b', 'c', 'l'],
    { learnerMaxSizePerMsg: 1, learnerMaxInflightMsgs: 1, maxSizePerMsg: 1 << 20 },
    1,
    ['a', 'b', 'c'],
    ['l'],
  );
  net.elect('a');
  net.run(2);
  const a = net.core('a');
  a.proposeConfChange([{ type: 'addVoter', node: 'l' }]);
  net.run(5);
  t.same(a.membership().voters, ['a', 'b', 'c', 'l']);
  net.queue.length = 0;
  net.isolate('l');
  for (let i = 0; i < 10; i++) a.propose(new Uint8Array(8));
  net.drain('a');
  const toL = net.queue.filter((m) => m.to === 'l' && m.type === 'append');
  t.equal(toL.length, 1, 'one message');
  t.equal(toL[0]?.type === 'append' ? toL[0].entries.length : 0, 10, 'with all ten entries');
});

t.test('learner window options are checked', async (t) => {
  const bads: Partial<RaftCoreOptions>[] = [
    { learnerMaxSizePerMsg: 0 },
    { learnerMaxInflightMsgs: 1.5 },
  ];
  for (const bad of bads) {
    const err = t.throws(() => new CoreNet(['a', 'b', 'c'], bad)) as RaftError;
    t.equal(err.code, 'SYNOD_ERR_RAFT_BAD_STATE', JSON.stringify(bad));
  }
});
