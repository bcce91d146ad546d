/**
 * A Multi-Paxos learner restarted (its state machine threw) while a sliced snapshot is still
 * being encoded: when the encoding ends while the restarted learner reads the store back, the
 * failed incarnation's core must neither store it nor have the local acceptor compact up to it —
 * the restarted learner resumes from the older snapshot it read and needs those slots. Found by
 * review of the sliced snapshots (the encoding was not among what preStart waited for, and the
 * old core stayed current until preStart replaced it).
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import { type MultiLearnerMsg, MultiPaxosLearner } from '../../actors/paxos/multi-learner-actor.js';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { Actor, type ActorRef } from '../../lib/actor.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import type { SnapshotStore } from '../../lib/storage/types.js';

type KvOp = Parameters<KvStateMachine['apply']>[0];

class GatedKv implements StateMachine<KvOp, unknown> {
  inner = new KvStateMachine();
  readonly gates: { applied: number; open(): void }[] = [];
  apply(op: KvOp): unknown {
    if (op.f === 'write' && op.key === 'boom') throw new Error('boom');
    return this.inner.apply(op);
  }
  snapshot(): Uint8Array {
    return this.inner.snapshot();
  }
  snapshotAsync(pause: () => Promise<void>): Promise<Uint8Array> {
    const applied = this.inner.applied;
    const image = this.inner.snapshotAsync(pause);
    return new Promise<void>((open) => this.gates.push({ applied, open })).then(() => image);
  }
  restore(image: Uint8Array): void {
    this.inner.restore(image);
  }
}

const got: MultiPaxosMessage[] = [];
class Probe extends Actor<MultiPaxosMessage> {
  receive(msg: MultiPaxosMessage): void {
    const m = fromWire(msg);
    if (!('problem' in m)) got.push(m);
  }
}

t.test('restart while a sliced snapshot is encoded', async (t) => {
  const sm = new GatedKv();
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
  let learner: ActorRef<MultiLearnerMsg, unknown> | undefined;
  const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
    seed: 5,
    nodes: ['n', 'p'],
    createDisk: () => new MemoryDisk({ clock: sim.clock, syncDelayMs: 1 }),
    setup: async (node) => {
      if (node.id === 'p') {
        node.system.spawn('probe', new Probe());
        return;
      }
      inner = await MemorySnapshotStore.open(node.disk);
      learner = node.system.spawn(
        'paxos/learner',
        new MultiPaxosLearner({
          stateMachine: sm,
          snapshots: store,
          peers: ['n/paxos/learner'],
          localAcceptor: 'p/probe',
          snapshotEvery: 2,
          keepAfterSnapshot: 0,
        }),
      );
    },
  });
  await sim.start();
  const w = (seq: number, key: string, value: unknown) =>
    commandValue({ clientId: 'c', seq, op: { f: 'write', key, value } }, 1);
  const decide = (entries: { slot: number; value: ReturnType<typeof w> }[]) =>
    sim
      .system('p')
      .send(
        'n/paxos/learner',
        toWire({ type: 'mp.decide', from: 'p/probe', entries }) as MultiPaxosMessage,
      );
  const view = () => learner?.getSnapshot() as { appliedUpTo: number; snapshotIndex: number };
  const compacts = () =>
    got.filter((m) => m.type === 'mp.compact').map((m) => (m as { upTo: number }).upTo);

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
