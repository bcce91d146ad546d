import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MultiLearnerCore, type MultiLearnerOptions } from '../../actors/paxos/multi-learner.js';
import { commandValue, type SlotEntry, type SlotValue } from '../../actors/paxos/multi-messages.js';

const w = (seq: number, key: string, value: unknown, clientId = 'c'): SlotValue =>
  commandValue({ clientId, seq, op: { f: 'write', key, value } }, 1);
const decide = (entries: [number, SlotValue][]) => ({
  type: 'mp.decide' as const,
  from: 'P',
  entries: entries.map(([slot, value]): SlotEntry => ({ slot, value })),
});
const mk = (over: Partial<MultiLearnerOptions> = {}, sm = new KvStateMachine()) => ({
  sm,
  l: new MultiLearnerCore({
    id: 'L1',
    peers: ['L1', 'L2', 'L3'],
    localAcceptor: 'A1',
    localProposer: 'P1',
    stateMachine: sm,
    snapshotEvery: 0,
    catchupRetryMs: 100,
    ...over,
  }),
});

t.test('applies chosen slots in slot order only', async (t) => {
  const { l, sm } = mk();
  const a = l.step(decide([[2, w(2, 'x', 2)]]), 0);
  t.same(a.applied, [], 'slot 1 is missing');
  const b = l.step(decide([[1, w(1, 'x', 1)]]), 1);
  t.same(
    b.applied.map((r) => r.index),
    [1, 2],
  );
  t.equal(sm.read('x'), 2);
  t.same(
    l
      .tick(2)
      .send.filter((s) => s.msg.type === 'mp.learned')
      .map((s) => s.to),
    ['P1'],
    'reports progress to the local proposer on its tick',
  );
});

t.test('a (clientId, seq) is applied at most once', async (t) => {
  const { l, sm } = mk();
  const out = l.step(
    decide([
      [1, w(1, 'x', 'a')],
      [2, { k: 'noop', t: 1, b: 'r1' }],
      [3, { ...w(1, 'x', 'a'), t: 2 }],
      [4, w(2, 'y', 'b')],
    ]),
    0,
  );
  t.same(
    out.applied.map((r) => (r.kind === 'cmd' ? r.duplicate : r.kind)),
    [false, 'noop', true, false],
  );
  t.same(out.applied[1], { type: 'applied', kind: 'noop', index: 2, term: 1, barrier: 'r1' });
  t.equal(sm.applied, 2, 'the state machine saw each command once');
});

t.test('missing slots are fetched from peers, preferring the leader hint', async (t) => {
  const { l } = mk();
  const hb = l.step(
    {
      type: 'mp.heartbeat',
      from: 'P2',
      ballot: { round: 1, proposer: 'P2' },
      chosenUpTo: 3,
      learner: 'L2',
    },
    1000,
  );
  t.same(hb.send.find((s) => s.to === 'P2')?.msg, {
    type: 'mp.learned',
    from: 'L1',
    decidedUpTo: 0,
  });
  const cu = hb.send.find((s) => s.msg.type === 'mp.catchup');
  t.same(cu, { to: 'L2', msg: { type: 'mp.catchup', from: 'L1', fromSlot: 1, toSlot: 3 } });
  const catchups = (now: number) => l.tick(now).send.filter((s) => s.msg.type === 'mp.catchup');
  t.same(catchups(1050), [], 'rate limited');
  t.equal(catchups(1100)[0]?.to, 'L2', 'then the peers in turn');
  const reply = l.step(
    {
      type: 'mp.catchup-reply',
      from: 'L2',
      entries: [
        { slot: 1, value: w(1, 'x', 1) },
        { slot: 2, value: w(2, 'x', 2) },
        { slot: 3, value: w(3, 'x', 3) },
      ],
      decidedUpTo: 3,
    },
    1101,
  );
  t.equal(reply.applied.length, 3);
  t.equal(l.view().appliedUpTo, 3);
});

t.test(
  'snapshots: taken every N slots, compaction after they are durable, served to peers',
  async (t) => {
    const { l } = mk({ snapshotEvery: 2, keepAfterSnapshot: 0 });
    const out = l.step(
      decide([
        [1, w(1, 'x', 1)],
        [2, w(2, 'y', 2)],
      ]),
      0,
    );
    t.equal(out.snapshot?.index, 2, 'snapshot after 2 slots');
    t.equal(l.step(decide([[3, w(3, 'z', 3)]]), 1).snapshot, undefined, 'one at a time');
    const done = l.snapshotPersisted(2);
    t.same(done.send, [{ to: 'A1', msg: { type: 'mp.compact', from: 'L1', upTo: 2 } }]);
    t.equal(l.view().snapshotIndex, 2);
    // a lagging peer asks from slot 1: it gets the snapshot and slot 3
    const served = l.step({ type: 'mp.catchup', from: 'L3', fromSlot: 1, toSlot: 3 }, 10);
    const msg = served.send[0]?.msg;
    if (msg?.type !== 'mp.catchup-reply') throw new Error('expected a reply');
    t.equal(msg.snapshot?.index, 2);
    t.same(
      msg.entries.map((e) => e.slot),
      [3],
    );
    // the peer installs it
    const peer = mk({ snapshotEvery: 0 });
    const inst = peer.l.step(msg, 11);
    t.same(
      inst.applied.map((r) => r.kind),
      ['snapshot', 'cmd'],
    );
    t.equal(peer.sm.read('y'), 2);
    t.equal(peer.sm.read('z'), 3);
    t.equal(inst.snapshot?.index, 2, 'an installed snapshot is stored too');
    t.same(
      peer.l.session('c', 2),
      { duplicate: true, known: true, result: null },
      'sessions travel',
    );
    // restart from the snapshot
    const again = mk({}, new KvStateMachine());
    const restarted = new MultiLearnerCore(
      { id: 'L1', peers: [], stateMachine: again.sm, snapshotEvery: 0 },
      out.snapshot,
    );
    t.equal(restarted.applied, 2);
    t.equal(again.sm.read('x'), 1);
  },
);

t.test('keepAfterSnapshot: slots just behind the snapshot are served as entries', async (t) => {
  const { l } = mk({ snapshotEvery: 4, keepAfterSnapshot: 2 });
  const all: [number, SlotValue][] = [];
  for (let s = 1; s <= 5; s++) all.push([s, w(s, `k${s}`, s)]);
  t.equal(l.step(decide(all), 0).snapshot?.index, 5);
  t.same(
    l.snapshotPersisted(5).send.map((s) => s.msg),
    [{ type: 'mp.compact', from: 'L1', upTo: 5 }],
    'the acceptor still compacts up to the snapshot',
  );
  const ask = (fromSlot: number) => {
    const msg = l.step({ type: 'mp.catchup', from: 'L3', fromSlot, toSlot: 5 }, 10).send[0]?.msg;
    if (msg?.type !== 'mp.catchup-reply') throw new Error('expected a reply');
    return { snap: msg.snapshot?.index, slots: msg.entries.map((e) => e.slot) };
  };
  t.same(ask(4), { snap: undefined, slots: [4, 5] }, 'slots 4-5 are kept: entries');
  t.same(ask(3), { snap: 5, slots: [] }, 'slot 3 is gone: the snapshot');
  t.throws(() => mk({ keepAfterSnapshot: -1 }), { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' });
});

t.test('a slot decided twice with different values is a safety violation', async (t) => {
  const { l } = mk();
  l.step(decide([[2, w(1, 'x', 1)]]), 0);
  t.throws(() => l.step(decide([[2, w(9, 'x', 9)]]), 0), { code: 'SYNOD_ERR_PAXOS_BAD_STATE' });
  const m = mk();
  m.l.step(decide([[1, w(1, 'x', 1)]]), 0);
  t.throws(() => m.l.step(decide([[1, w(9, 'x', 9)]]), 0), { code: 'SYNOD_ERR_PAXOS_BAD_STATE' });
});

t.test(
  'snapshotLogRatio: with a large state, a snapshot waits for as many bytes of commands as its image',
  async (t) => {
    // Ten big values that stay, then small writes to other keys: a large image, small commands.
    const big = 'x'.repeat(2000);
    const run = (over: Partial<MultiLearnerOptions>) => {
      const { l } = mk({ keepAfterSnapshot: 0, ...over });
      const taken: number[] = [];
      let seq = 0;
      for (let slot = 1; slot <= 400; slot++) {
        const key = slot <= 10 ? `big${slot}` : `k${slot % 10}`;
        const out = l.step(decide([[slot, w(++seq, key, slot <= 10 ? big : slot)]]), slot);
        if (out.snapshot) {
          taken.push(out.snapshot.index);
          l.snapshotPersisted(out.snapshot.index);
        }
      }
      return taken;
    };
    // snapshotEvery: 10 with a ratio of 1: the first after 10 slots (no image yet), the next once
    // the small commands since add up to the ~20 kB image, capped at snapshotEveryMax slots.
    const ratio = run({ snapshotEvery: 10, snapshotLogRatio: 1, snapshotEveryMax: 100 });
    t.equal(ratio[0], 10, 'the first snapshot after snapshotEvery slots');
    t.ok(ratio.length >= 2, `more snapshots (${ratio.join(', ')})`);
    for (let i = 1; i < ratio.length; i++) {
      const gap = (ratio[i] as number) - (ratio[i - 1] as number);
      t.ok(gap > 10 && gap <= 100, `later ones wait for the bytes (gap ${gap}), at most 100 slots`);
    }
    // snapshotEvery set and no ratio (the default when it is set): exactly every 10 slots.
    const every = run({ snapshotEvery: 10 });
    t.same(
      every,
      Array.from({ length: 40 }, (_, i) => 10 * (i + 1)),
      'a set snapshotEvery alone snapshots every 10 slots',
    );
    // the default snapshotEvery (1000) comes with ratio 1 and a cap of 100,000 slots (Raft's)
    const dflt = new MultiLearnerCore({ id: 'L', peers: [], stateMachine: new KvStateMachine() });
    const d = dflt as unknown as {
      snapshotEvery: number;
      snapshotLogRatio: number;
      snapshotEveryMax: number;
    };
    t.same(
      [d.snapshotEvery, d.snapshotLogRatio, d.snapshotEveryMax],
      [1000, 1, 100_000],
      'the defaults: every 1,000 slots, ratio 1, at most 100,000',
    );
    // bad settings are refused with a clear error
    for (const bad of [
      { snapshotEvery: -1 },
      { snapshotEvery: 2.5 },
      { snapshotLogRatio: -1 },
      { snapshotLogRatio: Number.NaN },
      { snapshotEvery: 100, snapshotEveryMax: 50 },
      { snapshotEveryMax: Number.POSITIVE_INFINITY },
    ]) {
      t.throws(
        () =>
          new MultiLearnerCore({ id: 'L', peers: [], stateMachine: new KvStateMachine(), ...bad }),
        { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' },
        `refused: ${JSON.stringify(bad)}`,
      );
    }
  },
);
