/**
 * When a probe's reports prove that this node was removed (lib/node/removal-watch.ts): only
 * committed configurations newer than the node's last membership, and only when a majority
 * of that configuration's voters say so.
 */
import t from 'tap';
import { type MembershipReport, removalProven } from '../../lib/node/removal-watch.js';

const report = (
  id: string,
  voters: string[],
  configIndex: number | undefined,
  commitIndex: number,
  extra: Partial<MembershipReport> = {},
): MembershipReport => ({
  id,
  voters,
  learners: [],
  commitIndex,
  ...(configIndex === undefined ? {} : { configIndex }),
  ...extra,
});

t.test('a majority of the new configuration committed a configuration without us', async (t) => {
  const r = removalProven(
    [report('n1', ['n1', 'n2'], 50, 60), report('n2', ['n1', 'n2'], 50, 55)],
    'n3',
    10,
  );
  t.equal(r?.configIndex, 50, 'removed by the configuration at index 50');
});

t.test('what proves nothing', async (t) => {
  const v = ['n1', 'n2'];
  t.equal(removalProven([], 'n3', 10), undefined, 'no answers');
  t.equal(
    removalProven([report('n1', v, 50, 60), report('n2', v, 50, 60)], 'n3', -1),
    undefined,
    'a node that was never a member (a joiner) is never removed',
  );
  t.equal(
    removalProven([report('n1', v, 50, 49), report('n2', v, 50, 49)], 'n3', 10),
    undefined,
    'the configuration is not committed at the reporters yet',
  );
  t.equal(
    removalProven([report('n1', v, 8, 60), report('n2', v, 8, 60)], 'n3', 10),
    undefined,
    'older than the configuration that made us a member (they lag behind our joining)',
  );
  t.equal(
    removalProven(
      [report('n1', ['n1', 'n2', 'n3'], 60, 60), report('n2', ['n1', 'n2', 'n3'], 60, 60)],
      'n3',
      10,
    ),
    undefined,
    'their configuration has us',
  );
  t.equal(
    removalProven([report('n1', v, undefined, 60), report('n2', v, undefined, 60)], 'n3', 10),
    undefined,
    'reports without a configuration index (older nodes, Paxos) prove nothing',
  );
  t.equal(
    removalProven([report('n1', v, 50, 60, { learners: ['n3'] })], 'n3', 10),
    undefined,
    'still a learner',
  );
});

t.test(
  'one lagging peer is not enough (a re-joining node replays "remove me … add me")',
  async (t) => {
    // Committed: remove n3 at 50, add n3 back at 60 (appended by n2, n4 and n3: a majority
    // of {n1,n2,n4,n3}). n1 lags and has only appended up to 55.
    const reports = [
      report('n1', ['n1', 'n2', 'n4'], 50, 55),
      report('n2', ['n1', 'n2', 'n4', 'n3'], 60, 60),
      report('n4', ['n1', 'n2', 'n4', 'n3'], 60, 59),
    ];
    t.equal(removalProven(reports, 'n3', 10), undefined, 'one lagging voter of three');
    t.equal(
      removalProven([report('n1', ['n1', 'n2', 'n4'], 50, 55)], 'n3', 10),
      undefined,
      'one voter of three alone',
    );
    t.equal(
      removalProven(
        [report('n1', ['n1', 'n2', 'n4'], 50, 55), report('n4', ['n1', 'n2', 'n4'], 50, 52)],
        'n3',
        10,
      )?.id,
      'n1',
      'two of three do prove it',
    );
  },
);

t.test('a joint configuration needs both majorities', async (t) => {
  const joint = { votersOutgoing: ['n1', 'n2', 'n3'] };
  const reports = [
    report('n4', ['n4', 'n5', 'n6'], 70, 70, joint),
    report('n5', ['n4', 'n5', 'n6'], 70, 70, joint),
  ];
  t.equal(removalProven(reports, 'n3', 10), undefined, 'n3 is an outgoing voter: still a member');
  const without = { votersOutgoing: ['n1', 'n2', 'n7'] };
  const r2 = [
    report('n4', ['n4', 'n5', 'n6'], 70, 70, without),
    report('n5', ['n4', 'n5', 'n6'], 70, 70, without),
  ];
  t.equal(removalProven(r2, 'n3', 10), undefined, 'no majority of the outgoing voters answered');
  t.equal(
    removalProven(
      [
        ...r2,
        report('n1', ['n4', 'n5', 'n6'], 70, 70, without),
        report('n2', ['n4', 'n5', 'n6'], 70, 70, without),
      ],
      'n3',
      10,
    )?.configIndex,
    70,
    'majorities of both halves',
  );
});
