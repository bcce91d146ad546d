/**
 * A Multi-Paxos learner restarted (its state machine threw) while a sliced snapshot is still
 * being encoded: when the encoding ends while the restarted learner reads the store back, the
 * failed incarnation's core must neither store it nor have the local acceptor compact up to it —
 * the restarted learner resumes from the older snapshot it read and needs those slots. Found by
 * review of the sliced snapshots (the encoding was not among what preStart waited for, and the
 * old core stayed current until preStart replaced it).
 */
import t from 'tap';
import { MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import type { SnapshotStore } from '../../lib/storage/types.js';
import { GatedKv, startLearnerSim, kvWrite as w } from '../helpers/paxos-learner-sim.js';

t.test('restart while a sliced snapshot is encoded', async (t) => {
  const sm = new GatedKv('boom');
  let inner: MemorySnapshotStore | undefined;
  let onRead: (() => Promise<void>) | undefined;
  const store: SnapshotStore = {
    create: (m) => (inner as MemorySnapshotStore).create(m),
    list: () => (inner as MemorySnapshotStore).list(),
    prune: (k) => (inner as MemorySnapshotStore).prune(k),
    close: () => (inner as MemorySnapshotStore).close(),
    latest: async () => {
      const r = await (inner as MemorySnapshotStore).latest();
      if (!r) return r;
      return {
        meta: r.meta,
        read: () => r.read(),
        readAll: async () => {
          if (onRead) await onRead();
          return r.readAll();
        },
      };
    },
  };
  const { sim, decide, view, compacts } = await startLearnerSim({
    seed: 5,
    stateMachine: sm,
    snapshots: async (disk) => {
      inner = await MemorySnapshotStore.open(disk);
      return store;
    },
  });

  decide([1, 2].map((s) => ({ slot: s, value: w(s, `k${s}`, s) })));
  await sim.runFor(20);
  sm.gates[0]?.open();
  await sim.runFor(20);
  t.equal((await inner?.latest())?.meta.index, 2, 'snapshot at 2 durable');
  decide([3, 4, 5].map((s) => ({ slot: s, value: w(s, `k${s}`, s) })));
  await sim.runFor(20);
  t.same(
    sm.gates.map((g) => g.applied),
    [2, 5],
    'slot 5 image captured, being encoded',
  );
  // While preStart reads the store back (after its `await this.saving`), the encoding ends.
  onRead = async () => {
    onRead = undefined;
    sm.gates[1]?.open();
    await new Promise<void>((r) => sim.clock.setTimer(30, r));
  };
  decide([{ slot: 6, value: w(6, 'boom', 6) }]); // apply throws: the actor restarts
  await sim.runFor(200);
  t.comment(`compacts sent to the local acceptor: ${JSON.stringify(compacts())}`);
  t.comment(
    `store latest: ${(await inner?.latest())?.meta.index}; restarted learner view: ${JSON.stringify(view())}`,
  );
  t.ok(
    !compacts().includes(5) || view().snapshotIndex >= 5 || view().appliedUpTo >= 5,
    'the acceptor is not told to compact past what the restarted learner resumed from',
  );
});
