/**
 * The learner actor stores snapshots in the background (as Raft's node does): while a save is
 * held (a snapshot store whose `create` waits for the test), the learner goes on applying
 * decided slots; the local acceptor is told to compact (`mp.compact`) and `snapshotIndex`
 * moves only once the save resolved; a failed save compacts nothing and a later one is tried.
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import type { SnapshotStore, SnapshotWriter } from '../../lib/storage/types.js';
import { startLearnerSim } from '../helpers/paxos-learner-sim.js';

interface Gate {
  readonly index: number;
  open(): void;
  fail(e: Error): void;
}

t.test(
  'the learner applies while a snapshot is saved; compaction waits for the save',
  async (t) => {
    const gates: Gate[] = [];
    const {
      sim,
      decideRange: decide,
      view,
      compacts,
    } = await startLearnerSim({
      seed: 3,
      stateMachine: new KvStateMachine(),
      snapshots: async (disk) => {
        const inner = await MemorySnapshotStore.open(disk);
        // Every snapshot's creation waits for the test to open (or fail) its gate.
        const gated: SnapshotStore = {
          create: async (meta): Promise<SnapshotWriter> => {
            await new Promise<void>((open, fail) => gates.push({ index: meta.index, open, fail }));
            return inner.create(meta);
          },
          latest: () => inner.latest(),
          list: () => inner.list(),
          prune: (keep) => inner.prune(keep),
          close: () => inner.close(),
        };
        return gated;
      },
    });

    decide(1, 2);
    await sim.runFor(20);
    t.same(
      gates.map((g) => g.index),
      [2],
      'a snapshot at slot 2 is being saved',
    );
    decide(3, 5);
    await sim.runFor(20);
    t.equal(view().appliedUpTo, 5, 'slots 3-5 applied while the save is held');
    t.same(compacts(), [], 'no compaction before the snapshot is durable');
    t.equal(view().snapshotIndex, 0);
    t.equal(gates.length, 1, 'one save at a time');

    gates[0]?.open();
    await sim.runFor(20);
    t.same(compacts(), [2], 'compacted up to the durable snapshot');
    t.equal(view().snapshotIndex, 2);
    t.same(
      gates.map((g) => g.index),
      [2, 5],
      'the next snapshot (slot 5) started after it',
    );

    gates[1]?.fail(new Error('disk full'));
    await sim.runFor(20);
    t.same(compacts(), [2], 'a failed save compacts nothing');
    t.equal(view().snapshotIndex, 2);
    decide(6, 7);
    await sim.runFor(20);
    t.same(
      gates.map((g) => g.index),
      [2, 5, 7],
      'a later snapshot is tried',
    );
    gates[2]?.open();
    await sim.runFor(20);
    t.same(compacts(), [2, 7]);
    t.equal(view().snapshotIndex, 7);
    t.equal(view().appliedUpTo, 7);
  },
);
