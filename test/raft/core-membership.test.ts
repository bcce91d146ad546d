/**
 * Membership changes in the pure core: learners, promotion, simple changes, joint
 * consensus (several changes at once, auto-leave), removal of the leader itself.
 */
import t from 'tap';
import { type ConfEntry, encodeConfEntry } from '../../actors/raft/core/membership.js';
import { RaftCore } from '../../actors/raft/core/raft-core.js';
import type { CoreSnapshot, LogEntry } from '../../actors/raft/core/types.js';
import { Random } from '../../lib/random.js';
import { CoreNet } from '../helpers/raft-net.js';

t.test('a learner receives the log but does not count toward quorum nor campaign', async (t) => {
  const net = new CoreNet(['a', 'b', 'c', 'l'], {}, 1, ['a', 'b', 'c'], ['l']);
  net.elect('a');
  net.propose('a', 'x');
  net.run(2);
  t.same(net.commands('l'), ['x'], 'the learner applied x');
  net.isolate('l');
  net.propose('a', 'y');
  t.same(net.commands('a'), ['x', 'y'], 'committed without the learner');
  net.heal();
  net.isolate('a');
  net.run(80);
  t.not(net.core('l').role, 'leader');
  t.not(net.core('l').role, 'candidate');
  t.equal(net.core('l').term, net.leader()!.term, 'the learner follows the new leader');
});

t.test('a new node joins as a learner, catches up from the log, then is promoted', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.addNode('d');
  net.core('a').proposeConfChange([{ type: 'addLearner', node: 'd' }]);
  net.run(5);
  t.same(net.core('d').membership(), { voters: ['a', 'b', 'c'], learners: ['d'] });
  t.same(net.commands('d'), net.commands('a'));
  const pr = net.core('a').status().progress.d;
  t.equal(pr?.match, net.core('a').log.lastIndex(), 'caught up');
  net.core('a').proposeConfChange([{ type: 'addVoter', node: 'd' }]);
  net.run(3);
  for (const id of ['a', 'b', 'c', 'd']) {
    t.same(net.core(id).membership(), { voters: ['a', 'b', 'c', 'd'], learners: [] }, id);
  }
  // 4 voters: quorum 3 — with two down nothing commits
  net.isolate('c');
  net.isolate('d');
  const before = net.core('a').log.committed;
  net.core('a').propose(new Uint8Array([1]));
  net.stabilize();
  t.equal(net.core('a').log.committed, before, 'a and b alone are not a quorum of 4');
});

t.test(
  'several voters change at once through joint consensus, leaving it automatically',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.addNode('d');
    net.addNode('e');
    const a = net.core('a');
    // replace b and c by d and e in one change
    a.proposeConfChange([
      { type: 'addVoter', node: 'd' },
      { type: 'addVoter', node: 'e' },
      { type: 'remove', node: 'b' },
      { type: 'remove', node: 'c' },
    ]);
    const seen: string[] = [];
    net.onReady = (id) => {
      if (id !== 'a') return;
      const m = a.membership();
      const s = JSON.stringify(m);
      if (seen[seen.length - 1] !== s) seen.push(s);
    };
    net.run(10);
    t.same(JSON.parse(seen[1]!), {
      voters: ['a', 'd', 'e'],
      learners: [],
      votersOutgoing: ['a', 'b', 'c'],
      autoLeave: true,
    });
    t.same(a.membership(), { voters: ['a', 'd', 'e'], learners: [] }, 'left the joint config');
    net.propose('a', 'after');
    net.run(2);
    t.same(net.commands('d'), ['after']);
  },
);

t.test('in a joint configuration both majorities are needed to commit', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.addNode('d');
  net.addNode('e');
  const a = net.core('a');
  a.proposeConfChange(
    [
      { type: 'addVoter', node: 'd' },
      { type: 'addVoter', node: 'e' },
      { type: 'remove', node: 'b' },
      { type: 'remove', node: 'c' },
    ],
    { autoLeave: false },
  );
  net.run(5);
  t.ok(a.config.joint, 'stays joint without auto-leave');
  // Only the new majority (a, d, e) is reachable: the old one (a, b, c) is not.
  net.isolate('b');
  net.isolate('c');
  const before = a.log.committed;
  a.propose(new Uint8Array([7]));
  net.stabilize();
  t.equal(a.log.committed, before, 'no commit without the outgoing majority');
  net.heal();
  net.run(3);
  t.ok(a.log.committed > before);
  a.proposeLeaveJoint();
  net.run(3);
  t.notOk(a.config.joint);
});

t.test(
  'removing the leader: it steps down once the change applies, the rest elect a leader',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.core('a').proposeConfChange([{ type: 'remove', node: 'a' }]);
    net.stabilize();
    t.not(net.core('a').role, 'leader');
    net.run(60);
    const l = net.leader()!;
    t.ok(l && l.id !== 'a', `new leader ${l?.id}`);
    t.same(l.membership(), { voters: ['b', 'c'], learners: [] });
    net.propose(l.id, 'z');
    net.run(2);
    t.same(net.commands('b'), ['z']);
    t.same(net.commands('c'), ['z']);
  },
);

t.test('only one configuration change may be pending at a time', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  net.isolate('b');
  net.isolate('c');
  const a = net.core('a');
  a.proposeConfChange([{ type: 'addLearner', node: 'x' }]);
  t.throws(() => a.proposeConfChange([{ type: 'addLearner', node: 'y' }]), {
    code: 'SYNOD_ERR_RAFT_CONF_PENDING',
  });
});

t.test('invalid changes are refused with a stable code', async (t) => {
  const net = new CoreNet(['a']);
  net.elect('a');
  const a = net.core('a');
  t.throws(() => a.proposeConfChange([{ type: 'remove', node: 'a' }]), {
    code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
  });
  t.throws(() => a.proposeConfChange([{ type: 'addVoter', node: '' }]), {
    code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
  });
  t.throws(() => a.proposeLeaveJoint(), { code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE' });
  t.throws(() => a.proposeConfChange([{ type: 'bogus', node: 'x' } as never]), {
    code: 'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
  });
});

t.test('demoting a voter to learner goes through learnersNext in the joint config', async (t) => {
  const net = new CoreNet(['a', 'b', 'c', 'd']);
  net.elect('a');
  const a = net.core('a');
  a.proposeConfChange(
    [
      { type: 'addLearner', node: 'd' },
      { type: 'addLearner', node: 'c' },
    ],
    { autoLeave: false },
  );
  net.run(3);
  t.same(a.membership(), {
    voters: ['a', 'b'],
    learners: [],
    votersOutgoing: ['a', 'b', 'c', 'd'],
    learnersNext: ['c', 'd'],
  });
  a.proposeLeaveJoint();
  net.run(3);
  t.same(a.membership(), { voters: ['a', 'b'], learners: ['c', 'd'] });
  net.propose('a', 'q');
  net.run(2);
  t.same(net.commands('d'), ['q'], 'demoted voters still receive the log');
});

t.test('every member replaced one by one under load', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], {}, 11);
  net.elect('a');
  const olds = ['a', 'b', 'c'];
  const news = ['x', 'y', 'z'];
  let n = 0;
  for (let i = 0; i < 3; i++) {
    net.addNode(news[i]!);
    for (const step of [
      [{ type: 'addLearner' as const, node: news[i]! }],
      [{ type: 'addVoter' as const, node: news[i]! }],
      [{ type: 'remove' as const, node: olds[i]! }],
    ]) {
      for (let tries = 0; tries < 200; tries++) {
        const l = net.leader();
        if (l) {
          try {
            l.propose(new TextEncoder().encode(`w${n++}`));
            l.proposeConfChange(step);
            break;
          } catch {
            // pending change or leadership moving: let the cluster run
          }
        }
        net.run(1);
      }
      net.run(5);
    }
  }
  net.run(60);
  const l = net.leader()!;
  t.ok(news.includes(l.id), `leader ${l.id} is a new member`);
  t.same(l.membership(), { voters: ['x', 'y', 'z'], learners: [] });
  net.propose(l.id, 'final');
  net.run(3);
  const cmds = net.commands('x');
  t.equal(cmds[cmds.length - 1], 'final');
  t.same(net.commands('y'), cmds);
  t.same(net.commands('z'), cmds);
});

t.test(
  'a node restarted with a commit index older than the entry that added it: lastConfigWith reads its log',
  async (t) => {
    // What a joined member restarts from when RaftNode saved its commit index only when it
    // first adopted a term (before the entries adding it arrived): a log with the whole
    // history, commit 0, no snapshot. Its applied configuration is empty until a leader
    // tells it the commit index.
    const conf = (c: ConfEntry) => encodeConfEntry(c);
    const entries: LogEntry[] = [
      {
        index: 1,
        term: 1,
        type: 'config',
        data: conf({ kind: 'bootstrap', membership: { voters: ['a', 'b', 'c'], learners: [] } }),
      },
      { index: 2, term: 1, type: 'normal', data: new Uint8Array([1]) },
      {
        index: 3,
        term: 1,
        type: 'config',
        data: conf({ kind: 'change', ops: [{ type: 'addLearner', node: 'd' }] }),
      },
      { index: 4, term: 1, type: 'config', data: new Uint8Array([0xc1]) }, // not a conf entry
      {
        index: 5,
        term: 1,
        type: 'config',
        data: conf({ kind: 'change', ops: [{ type: 'addVoter', node: 'd' }] }),
      },
      {
        index: 6,
        term: 1,
        type: 'config',
        data: conf({ kind: 'change', ops: [{ type: 'remove', node: 'c' }] }),
      },
    ];
    const restarted = (commit: number, snapshot?: CoreSnapshot) =>
      new RaftCore(
        { id: 'd', random: new Random(1), electionTick: 10, heartbeatTick: 1 },
        {
          hardState: { term: 1, vote: null, commit },
          entries: entries.filter((e) => e.index > (snapshot?.meta.index ?? 0)),
          ...(snapshot ? { snapshot } : {}),
        },
      );
    const d = restarted(0);
    t.same(d.membership(), { voters: [], learners: [] }, 'nothing applied: no configuration');
    t.equal(d.lastConfigWith('d'), 6, 'd is in the configurations at 3, 5 and 6 of its log');
    t.equal(d.lastConfigWith('a'), 6, 'a is in every one');
    t.equal(d.lastConfigWith('c'), 5, 'c was removed at 6');
    t.equal(d.lastConfigWith('x'), -1, 'x never was a member');

    // From a snapshot taken before d was added (what a leader sends a joiner).
    const snap: CoreSnapshot = {
      meta: { index: 2, term: 1, membership: { voters: ['a', 'b', 'c'], learners: [] } },
      data: new Uint8Array(0),
    };
    const s = restarted(2, snap);
    t.same(s.membership().voters, ['a', 'b', 'c'], 'the snapshot configuration, without d');
    t.equal(s.lastConfigWith('d'), 6, 'its log after the snapshot has d');
    t.equal(s.lastConfigWith('b'), 6, 'b: the newest configuration');

    // Once the leader's commit index arrives, the applied configuration says the same.
    const caught = restarted(6);
    const rd = caught.ready();
    caught.advance(rd);
    t.same(caught.membership().voters, ['a', 'b', 'd'], 'applied up to 6');
    t.equal(caught.lastConfigWith('d'), 6, 'the applied configuration has d');
    t.equal(caught.lastConfigWith('c'), -1, 'and not c, as far as this log goes');
  },
);

t.test('ticksSinceLeaderContact: a learner counts the ticks since it heard a leader', async (t) => {
  const conf = encodeConfEntry({
    kind: 'bootstrap',
    membership: { voters: ['a', 'b'], learners: ['l'] },
  });
  const l = new RaftCore(
    { id: 'l', random: new Random(1), electionTick: 10, heartbeatTick: 1 },
    {
      hardState: { term: 1, vote: null, commit: 1 },
      entries: [{ index: 1, term: 1, type: 'config', data: conf }],
    },
  );
  l.advance(l.ready());
  for (let i = 0; i < 25; i++) l.tick();
  t.equal(l.ticksSinceLeaderContact, 25, 'a learner never campaigns: the count keeps growing');
  t.equal(l.role, 'follower');
  l.step({ type: 'heartbeat', from: 'a', to: 'l', term: 1, commit: 1 });
  t.equal(l.ticksSinceLeaderContact, 0, 'a heartbeat from the leader resets it');
  l.tick();
  t.equal(l.ticksSinceLeaderContact, 1);
});
