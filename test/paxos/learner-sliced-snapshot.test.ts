/**
 * Sliced snapshots in the Multi-Paxos learner (Raft's `slicedSnapshots`): the image is captured
 * when the snapshot is taken but encoded in slices while the learner goes on applying; the
 * bytes decode to those of the one-go encoding (older readers read them); an encoding that fails or is overtaken by an installed
 * snapshot stores nothing and compacts nothing.
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MultiLearnerCore } from '../../actors/paxos/multi-learner.js';
import {
  decodeReplicaImage,
  encodeReplicaImage,
  encodeReplicaImageSliced,
} from '../../actors/paxos/replica-image.js';
import { ClientSessions } from '../../actors/paxos/sessions.js';
import { MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import { GatedKv, startLearnerSim, kvWrite as w } from '../helpers/paxos-learner-sim.js';

const yieldNow = () => Promise.resolve();

t.test('the sliced replica image decodes to the one-go image', async (t) => {
  const sm = new KvStateMachine();
  // Large enough that the state machine image is taken by reference (≥ 4 KiB) and the
  // session table is split into slices (> 512 clients).
  const sessions = new ClientSessions(8);
  for (let i = 0; i < 1500; i++) {
    sm.apply({ f: 'write', key: `key-${i}`, value: 'v'.repeat(20) });
    sessions.record(`client-${i}`, 1, null);
    if (i % 3 === 0) sessions.record(`client-${i}`, 3, { ok: i });
  }
  let pauses = 0;
  const pause = () => {
    pauses++;
    return yieldNow();
  };
  const sliced = await encodeReplicaImageSliced(sm.snapshotAsync(pause), sessions.toImage(), pause);
  const whole = encodeReplicaImage({ sm: sm.snapshot(), sessions: sessions.toImage() });
  t.ok(pauses > 2, `the encoding paused between slices (${pauses} times)`);
  // Not byte for byte: msgpackr writes a plain object's map header in its long form (map16)
  // where the sliced encoder writes the short one; any msgpack reader reads both alike.
  t.equal(sliced[0], 0x83);
  t.equal(whole[0], 0xde);
  t.ok(
    Buffer.from(decodeReplicaImage(sliced).sm).equals(Buffer.from(sm.snapshot())),
    "the state machine's image is embedded unchanged",
  );
  t.same(decodeReplicaImage(sliced), decodeReplicaImage(whole));
  await t.rejects(
    encodeReplicaImageSliced(Promise.resolve(sm.snapshot()), { window: 0, clients: [] }, yieldNow),
    { code: 'SYNOD_ERR_PAXOS_BAD_STATE' },
    'a bad session table is refused as before',
  );
});

t.test('core: a pending snapshot overtaken by an installed one is not stored', async (t) => {
  const sm = new KvStateMachine();
  const l = new MultiLearnerCore({
    id: 'L1',
    peers: ['L1', 'L2'],
    localAcceptor: 'A1',
    stateMachine: sm,
    snapshotEvery: 2,
    keepAfterSnapshot: 0,
    snapshotPause: yieldNow,
  });
  const out = l.step(
    {
      type: 'mp.decide',
      from: 'P',
      entries: [
        { slot: 1, value: w(1, 'x', 1) },
        { slot: 2, value: w(2, 'x', 2) },
      ],
    },
    0,
  );
  t.equal(out.snapshot, undefined, 'no one-go snapshot');
  const pending = out.snapshotPending;
  if (!pending) throw new Error('expected a pending snapshot');
  t.equal(pending.index, 2);
  // A peer's snapshot at slot 10 arrives while slot 2's image is being encoded.
  const other = new KvStateMachine();
  other.apply({ f: 'write', key: 'x', value: 10 });
  const peerImage = encodeReplicaImage({
    sm: other.snapshot(),
    sessions: new ClientSessions(256).toImage(),
  });
  const inst = l.step(
    {
      type: 'mp.catchup-reply',
      from: 'L2',
      entries: [],
      decidedUpTo: 10,
      snapshot: { index: 10, term: 1, data: peerImage },
    },
    1,
  );
  t.equal(inst.snapshot?.index, 10, 'the installed snapshot is stored');
  const data = await pending.data;
  t.equal(l.snapshotEncoded(2, data), false, 'the overtaken image is not wanted');
  const done = l.snapshotPersisted(10);
  t.same(
    done.send.filter((s) => s.msg.type === 'mp.compact').map((s) => s.msg),
    [{ type: 'mp.compact', from: 'L1', upTo: 10 }],
  );
  t.equal(l.view().snapshotIndex, 10);
  t.equal(sm.read('x'), 10);
  // And a pending one that is wanted: encoded, then persisted, then it compacts.
  const more = l.step(
    {
      type: 'mp.decide',
      from: 'P',
      entries: [
        { slot: 11, value: w(11, 'x', 11) },
        { slot: 12, value: w(12, 'x', 12) },
      ],
    },
    2,
  );
  const p2 = more.snapshotPending;
  if (!p2) throw new Error('expected a pending snapshot');
  t.same(l.snapshotPersisted(12).send, [], 'nothing to persist before it is encoded');
  t.equal(l.snapshotEncoded(12, await p2.data), true);
  t.same(
    l.snapshotPersisted(12).send.map((s) => s.msg),
    [{ type: 'mp.compact', from: 'L1', upTo: 12 }],
  );
  const restored = new KvStateMachine();
  restored.restore(decodeReplicaImage(await p2.data).sm);
  t.equal(restored.read('x'), 12);
});

t.test(
  'actor: the learner applies while the image is encoded; the image is the captured state',
  async (t) => {
    const sm = new GatedKv();
    let store: MemorySnapshotStore | undefined;
    const events: { type: string; index?: number }[] = [];
    const {
      sim,
      decideRange: decide,
      view,
      compacts,
    } = await startLearnerSim({
      seed: 5,
      stateMachine: sm,
      snapshots: async (disk) => {
        store = await MemorySnapshotStore.open(disk);
        return store;
      },
      onSpawn: (learner) =>
        learner.events$.subscribe((e) => events.push(e as { type: string; index?: number })),
    });

    decide(1, 2);
    await sim.runFor(20);
    t.same(
      sm.gates.map((g) => g.applied),
      [2],
      'the image at slot 2 was captured and is being encoded',
    );
    decide(3, 5);
    await sim.runFor(20);
    t.equal(view().appliedUpTo, 5, 'slots 3-5 applied while the encoding is held');
    t.equal(sm.gates.length, 1, 'one snapshot at a time');
    t.same(compacts(), []);
    t.equal((await store?.latest())?.meta.index, undefined, 'nothing stored yet');

    sm.gates[0]?.open();
    await sim.runFor(20);
    const latest = await store?.latest();
    t.equal(latest?.meta.index, 2, 'stored at the slot it was captured at');
    const img = decodeReplicaImage((await latest?.readAll()) as Uint8Array);
    const back = new KvStateMachine();
    back.restore(img.sm);
    t.same([back.read('k2'), back.read('k3')], [2, null], 'holding the state as of slot 2');
    t.same(compacts(), [2], 'compacted once durable');
    t.equal(view().snapshotIndex, 2);
    t.same(
      sm.gates.map((g) => g.applied),
      [2, 5],
      'the next snapshot (slot 5) was taken after it',
    );

    sm.gates[1]?.fail(new Error('encoder broke'));
    await sim.runFor(20);
    t.match(
      events.filter((e) => e.type === 'snapshot-failed'),
      [{ index: 5 }],
      'a failed encoding is reported',
    );
    t.same(compacts(), [2], 'and compacts nothing');
    t.equal((await store?.latest())?.meta.index, 2);
    decide(6, 7);
    await sim.runFor(20);
    t.same(
      sm.gates.map((g) => g.applied),
      [2, 5, 7],
      'a later snapshot is taken',
    );
    sm.gates[2]?.open();
    await sim.runFor(20);
    t.same(compacts(), [2, 7]);
    t.equal(view().snapshotIndex, 7);
  },
);
