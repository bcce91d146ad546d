/**
 * A Multi-Paxos learner restarted by its supervision (its state machine threw) resumes from its
 * latest snapshot, and with none, from the state machine's initial state: the state machine
 * object is the same, so it must not keep what the failed incarnation applied, or every slot
 * since would be applied twice (a counter would count them twice). And the restarted learner
 * tells its local proposer where it resumed (see multi-leader-recovery.test.ts for why).
 */
import t from 'tap';
import type { StateMachine } from '../../lib/replicated-log.js';
import { MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import { type KvOp, kvWrite, startLearnerSim } from '../helpers/paxos-learner-sim.js';

/** Adds every written value; throws once on the key `boom`. */
class Counter implements StateMachine<KvOp, unknown> {
  total = 0;
  thrown = false;
  apply(op: KvOp): unknown {
    if (op.f === 'write' && op.key === 'boom' && !this.thrown) {
      this.thrown = true;
      throw new Error('boom');
    }
    if (op.f === 'write') this.total += op.value as number;
    return this.total;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  restore(image: Uint8Array): void {
    this.total = Number(new TextDecoder().decode(image));
  }
}

t.test('restarted with no snapshot, the learner starts from the initial state', async (t) => {
  const sm = new Counter();
  const { sim, decide, view } = await startLearnerSim({
    seed: 9,
    stateMachine: sm,
    snapshots: (disk) => MemorySnapshotStore.open(disk),
    snapshotEvery: 0,
  });
  decide([{ slot: 1, value: kvWrite(1, 'a', 5) }]);
  await sim.runFor(20);
  t.equal(sm.total, 5);
  decide([{ slot: 2, value: kvWrite(2, 'boom', 7) }]); // throws: the learner restarts
  await sim.runFor(200);
  t.equal(view().appliedUpTo, 0, 'resumed with nothing applied (no snapshot)');
  t.equal(sm.total, 0, "the failed incarnation's state is gone");
  // The slots are decided again (a leader's recovery, or a peer's catch-up).
  decide([
    { slot: 1, value: kvWrite(1, 'a', 5) },
    { slot: 2, value: kvWrite(2, 'boom', 7) },
  ]);
  await sim.runFor(20);
  t.equal(view().appliedUpTo, 2);
  t.equal(sm.total, 12, 'each slot applied once');
});
