/**
 * The invariant checker flags every kind of violation (negative controls on crafted
 * views), and catches a broken persistence layer in a randomized run.
 */
import t from 'tap';
import type { LogEntry } from '../../actors/raft/core/types.js';
import { InvariantViolation, type NodeView, RaftInvariants } from '../../actors/raft/invariants.js';
import { runCoreFuzz } from '../helpers/raft-fuzz.js';

const e = (index: number, term: number, v = `${index}/${term}`): LogEntry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(v),
});

function view(id: string, over: Partial<NodeView>): NodeView {
  return {
    id,
    up: true,
    term: 1,
    role: 'follower',
    snapIndex: 0,
    snapTerm: 0,
    entries: [],
    committed: 0,
    stableIndex: 0,
    voters: ['a', 'b', 'c'],
    ...over,
  };
}

function violation(fn: () => void): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvariantViolation) return err.invariant;
    throw err;
  }
  return undefined;
}

t.test('healthy views pass', async (t) => {
  const inv = new RaftInvariants();
  const log = [e(1, 1), e(2, 1)];
  const vs = [
    view('a', { role: 'leader', entries: log, committed: 2, stableIndex: 2 }),
    view('b', { entries: log, committed: 2 }),
    view('c', { entries: [e(1, 1)], committed: 1 }),
  ];
  t.equal(
    violation(() => inv.check(vs)),
    undefined,
  );
  t.equal(
    violation(() => inv.checkDurable(vs, ['a', 'b', 'c'])),
    undefined,
  );
});

t.test('two leaders in one term', async (t) => {
  const inv = new RaftInvariants();
  inv.check([view('a', { role: 'leader', term: 3 })]);
  t.equal(
    violation(() => inv.check([view('b', { role: 'leader', term: 3 })])),
    'ElectionSafety',
  );
});

t.test('log matching: same index and term, different entry', async (t) => {
  const inv = new RaftInvariants();
  const vs = [view('a', { entries: [e(1, 1, 'x')] }), view('b', { entries: [e(1, 1, 'y')] })];
  t.equal(
    violation(() => inv.check(vs)),
    'LogMatching',
  );
});

t.test('log matching: agreeing on a later entry but not on an earlier one', async (t) => {
  const inv = new RaftInvariants();
  const vs = [
    view('a', { entries: [e(1, 1), e(2, 2)] }),
    view('b', { entries: [e(1, 3), e(2, 2)] }),
  ];
  t.equal(
    violation(() => inv.check(vs)),
    'LogMatching',
  );
});

t.test('a committed entry that changes', async (t) => {
  const inv = new RaftInvariants();
  inv.check([view('a', { entries: [e(1, 1, 'x')], committed: 1 })]);
  t.equal(
    violation(() => inv.check([view('b', { entries: [e(1, 2, 'y')], committed: 1 })])),
    'StateMachineSafety',
  );
});

t.test('a leader of a later term that lacks a committed entry', async (t) => {
  const inv = new RaftInvariants();
  inv.check([view('a', { term: 1, entries: [e(1, 1)], committed: 1 })]);
  t.equal(
    violation(() => inv.check([view('b', { term: 2, role: 'leader', entries: [] })])),
    'LeaderCompleteness',
  );
});

t.test('a leader that rewrites its own log', async (t) => {
  const inv = new RaftInvariants();
  inv.check([view('a', { term: 2, role: 'leader', entries: [e(1, 1), e(2, 2)] })]);
  t.equal(
    violation(() => inv.check([view('a', { term: 2, role: 'leader', entries: [e(1, 1)] })])),
    'LeaderAppendOnly',
  );
});

t.test('a leader committing beyond its durable log without a durable majority', async (t) => {
  const inv = new RaftInvariants();
  const lead = (committed: number) =>
    view('a', { term: 2, role: 'leader', entries: [e(1, 2)], committed, stableIndex: 0 });
  const follower = (id: string, stableIndex: number) =>
    view(id, { term: 2, entries: [e(1, 2)], stableIndex });
  inv.check([lead(0), follower('b', 0), follower('c', 0)]);
  t.equal(
    violation(() => inv.check([lead(1), follower('b', 1), follower('c', 0)])),
    'DurableCommit',
    'only one of three holds it durably',
  );
});

t.test(
  'a leader committing beyond its own durable log on a durable majority (thesis §10.2.1)',
  async (t) => {
    const inv = new RaftInvariants();
    const lead = (committed: number) =>
      view('a', { term: 2, role: 'leader', entries: [e(1, 2)], committed, stableIndex: 0 });
    const follower = (id: string, stableIndex: number) =>
      view(id, { term: 2, entries: [e(1, 2)], stableIndex });
    inv.check([lead(0), follower('b', 0), follower('c', 0)]);
    t.equal(
      violation(() => inv.check([lead(1), follower('b', 1), follower('c', 1)])),
      undefined,
    );
  },
);

t.test('two nodes applying different commands at one index', async (t) => {
  const inv = new RaftInvariants();
  inv.checkApplied({ node: 'a', index: 1, term: 1, command: 'x' });
  t.equal(
    violation(() => inv.checkApplied({ node: 'b', index: 1, term: 1, command: 'y' })),
    'StateMachineSafety',
  );
});

t.test('a committed entry no longer durable on a majority', async (t) => {
  const inv = new RaftInvariants();
  inv.check([view('a', { entries: [e(1, 1)], committed: 1 })]);
  const durable = [view('a', { entries: [e(1, 1)] }), view('b', {}), view('c', {})];
  t.equal(
    violation(() => inv.checkDurable(durable, ['a', 'b', 'c'])),
    'CommittedDurable',
  );
});

t.test(
  'negative control: a persistence layer that loses acknowledged writes is caught',
  async (t) => {
    let caught: string | undefined;
    for (let seed = 1; seed <= 40 && !caught; seed++) {
      try {
        runCoreFuzz(seed, 1500, 3, { forgetVote: true, loseTail: 3 });
      } catch (err) {
        caught = `seed ${seed}: ${(err as Error).message}`;
      }
    }
    t.ok(caught, `violation found (${caught})`);
  },
);
