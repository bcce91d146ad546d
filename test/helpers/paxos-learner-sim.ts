/**
 * One Multi-Paxos learner actor in a two-node simulation, for the learner tests that hold its
 * snapshots or their encoding open: node `n` runs the learner (`n/paxos/learner`, its own only
 * peer), node `p` a probe in the local acceptor's place that records what the learner sends it
 * (`mp.compact`). The test decides slots by sending `mp.decide` from the probe.
 */
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import type { MultiLearnerView } from '../../actors/paxos/multi-learner.js';
import { type MultiLearnerMsg, MultiPaxosLearner } from '../../actors/paxos/multi-learner-actor.js';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  type SlotValue,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { Actor, type ActorRef } from '../../lib/actor.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import type { SnapshotStore } from '../../lib/storage/types.js';

export type KvOp = Parameters<KvStateMachine['apply']>[0];

/** A client command writing `key = value`, as a decided slot's value. */
export const kvWrite = (seq: number, key: string, value: unknown, clientId = 'c'): SlotValue =>
  commandValue({ clientId, seq, op: { f: 'write', key, value } }, 1);

/**
 * The KV state machine with its sliced encoding held until the test opens (or fails) a gate;
 * the image is captured when the snapshot is taken. A write of `throwOn` makes `apply` throw
 * (the learner actor then restarts).
 */
export class GatedKv implements StateMachine<KvOp, unknown> {
  readonly inner = new KvStateMachine();
  readonly gates: { applied: number; open(): void; fail(e: Error): void }[] = [];
  constructor(private readonly throwOn?: string) {}
  apply(op: KvOp): unknown {
    if (this.throwOn !== undefined && op.f === 'write' && op.key === this.throwOn)
      throw new Error(this.throwOn);
    return this.inner.apply(op);
  }
  snapshot(): Uint8Array {
    return this.inner.snapshot();
  }
  snapshotAsync(pause: () => Promise<void>): Promise<Uint8Array> {
    const applied = this.inner.applied;
    const image = this.inner.snapshotAsync(pause); // captured now
    return new Promise<void>((open, fail) => this.gates.push({ applied, open, fail })).then(
      () => image,
    );
  }
  restore(image: Uint8Array): void {
    this.inner.restore(image);
  }
}

class Probe extends Actor<MultiPaxosMessage> {
  constructor(private readonly got: MultiPaxosMessage[]) {
    super();
  }
  receive(msg: MultiPaxosMessage): void {
    const m = fromWire(msg);
    if (!('problem' in m)) this.got.push(m);
  }
}

export interface LearnerSim {
  readonly sim: Simulation<MemoryDisk>;
  /** The learner actor (after a restart by its supervision, still the same ref). */
  readonly learner: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined>;
  /** Everything the learner sent the probe (the local acceptor's place). */
  readonly got: MultiPaxosMessage[];
  /** Decides the given slots (from the probe, as a proposer would). */
  decide(entries: { slot: number; value: SlotValue }[]): void;
  /** Decides slots from..to, slot s writing `k<s> = s`. */
  decideRange(from: number, to: number): void;
  view(): MultiLearnerView;
  /** The `upTo` of each `mp.compact` the local acceptor was sent, in order. */
  compacts(): number[];
}

/**
 * Starts the simulation; `snapshots` opens the learner's snapshot store on its node's disk.
 * The learner snapshots every 2 slots (unless told otherwise) and keeps no slots after one.
 */
export async function startLearnerSim(opts: {
  seed: number;
  stateMachine: StateMachine<KvOp, unknown>;
  snapshots: (disk: MemoryDisk) => Promise<SnapshotStore>;
  /** Default 2; 0 takes none. */
  snapshotEvery?: number;
  onSpawn?: (learner: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined>) => void;
}): Promise<LearnerSim> {
  const got: MultiPaxosMessage[] = [];
  let learner: ActorRef<MultiLearnerMsg, MultiLearnerView | undefined> | undefined;
  const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
    seed: opts.seed,
    nodes: ['n', 'p'],
    createDisk: () => new MemoryDisk({ clock: sim.clock, syncDelayMs: 1 }),
    setup: async (node) => {
      if (node.id === 'p') {
        node.system.spawn('probe', new Probe(got));
        return;
      }
      const snapshots = await opts.snapshots(node.disk);
      learner = node.system.spawn(
        'paxos/learner',
        new MultiPaxosLearner({
          stateMachine: opts.stateMachine,
          snapshots,
          peers: ['n/paxos/learner'],
          localAcceptor: 'p/probe',
          snapshotEvery: opts.snapshotEvery ?? 2,
          keepAfterSnapshot: 0,
        }),
      );
      opts.onSpawn?.(learner);
    },
  });
  await sim.start();
  if (!learner) throw new Error('the learner was not spawned');
  const ref = learner;
  const decide = (entries: { slot: number; value: SlotValue }[]) =>
    sim
      .system('p')
      .send(
        'n/paxos/learner',
        toWire({ type: 'mp.decide', from: 'p/probe', entries }) as MultiPaxosMessage,
      );
  return {
    sim,
    learner: ref,
    got,
    decide,
    decideRange: (from, to) => {
      const entries = [];
      for (let slot = from; slot <= to; slot++)
        entries.push({ slot, value: kvWrite(slot, `k${slot}`, slot) });
      decide(entries);
    },
    view: () => ref.getSnapshot() as MultiLearnerView,
    compacts: () =>
      got.filter((m) => m.type === 'mp.compact').map((m) => (m as { upTo: number }).upTo),
  };
}
