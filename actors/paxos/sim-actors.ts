/**
 * A Multi-Paxos cluster of real actors (acceptor, proposer and learner on every node) inside
 * the deterministic simulation (lib/sim): virtual time, a seeded faulty network, and a
 * MemoryDisk per node that loses unsynced writes on a crash. Used by the actor-level
 * scenario tests, the randomised actor runs and the benchmark.
 *
 * `checkSafety()` (installed after every simulation step by `start`) verifies that no two
 * learners applied different values at one slot, that every applied command was proposed
 * through `propose`, and that no acceptor's durable promise went backwards across restarts.
 */
import type { Subscription } from 'rxjs';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import type { LinkFaults } from '../../transports/memory/faults.js';
import { type Ballot, compareBallots, formatBallot, ZERO_BALLOT } from './ballot.js';
import { KvStateMachine } from './kv-machine.js';
import {
  type MultiPaxosNode,
  type MultiPaxosNodeOptions,
  type MultiPaxosQuorums,
  openMemoryPaxosStorage,
  startMultiPaxosNode,
} from './multi-paxos-node.js';

export interface ActorClusterOptions {
  readonly seed: number;
  readonly nodes: readonly string[];
  readonly faults?: LinkFaults;
  readonly quorums?: MultiPaxosQuorums;
  readonly node?: Partial<
    Omit<MultiPaxosNodeOptions, 'system' | 'members' | 'stateMachine' | 'storage' | 'quorums'>
  >;
}

export interface ActorClusterMember {
  readonly paxos: MultiPaxosNode;
  readonly sm: KvStateMachine;
  readonly incarnation: number;
}

export class PaxosActorCluster {
  readonly sim: Simulation<MemoryDisk>;
  readonly members = new Map<string, ActorClusterMember>();
  /** slot → value key applied by some learner. */
  readonly appliedAt = new Map<number, string>();
  readonly proposed = new Set<string>();
  private readonly durablePromise = new Map<string, Ballot>();
  private readonly subs: Subscription[] = [];
  violation: string | undefined;

  constructor(readonly opts: ActorClusterOptions) {
    this.sim = new Simulation<MemoryDisk>({
      seed: opts.seed,
      nodes: opts.nodes,
      ...(opts.faults ? { faults: opts.faults } : {}),
      createDisk: () => new MemoryDisk(),
    });
    this.sim.onStart(async (node) => {
      const storage = await openMemoryPaxosStorage(node.disk, node.clock);
      const sm = new KvStateMachine();
      const paxos = startMultiPaxosNode({
        heartbeatMs: 30,
        electionTimeoutMs: 150,
        retransmitMs: 60,
        snapshotEvery: 50,
        proposeTimeoutMs: 1000,
        ...opts.node,
        system: node.system,
        members: opts.nodes,
        stateMachine: sm,
        storage,
        ...(opts.quorums ? { quorums: opts.quorums } : {}),
      });
      this.members.set(node.id, { paxos, sm, incarnation: node.incarnation });
      this.watch(node.id, paxos);
    });
    this.sim.afterEachStep(() => {
      if (this.violation) this.sim.fail(this.violation);
    });
  }

  async start(): Promise<void> {
    await this.sim.start();
  }

  member(id: string): ActorClusterMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  /** The node whose proposer leads (and is up), if any. */
  leader(): string | undefined {
    for (const id of this.sim.upNodes()) {
      const v = this.members.get(id)?.paxos.proposer.getSnapshot();
      if (v?.role === 'leader') return id;
    }
    return undefined;
  }

  async waitForLeader(timeout = 5000): Promise<string> {
    const ok = await this.sim.runUntil(() => this.leader() !== undefined, { timeout });
    if (!ok) this.sim.fail('no leader elected');
    return this.leader() as string;
  }

  /** Records a command as proposed (for the "applied ⇒ proposed" check) and proposes it. */
  propose(node: string, clientId: string, seq: number, op: unknown, timeoutMs?: number) {
    this.proposed.add(`${clientId}:${seq}:${JSON.stringify(op)}`);
    return this.member(node).paxos.log.propose(
      { clientId, seq, op },
      timeoutMs !== undefined ? { timeoutMs } : undefined,
    );
  }

  appliedIndex(node: string): number {
    return this.member(node).paxos.learner.getSnapshot()?.appliedUpTo ?? 0;
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
  }

  private watch(id: string, paxos: MultiPaxosNode): void {
    this.subs.push(
      paxos.learner.events$.subscribe((e) => {
        if (e.type !== 'applied' || e.kind === 'snapshot') return;
        const index = e.index as number;
        let key: string;
        if (e.kind === 'cmd') {
          const c = e.command as { clientId: string; seq: number; op: unknown };
          key = `${c.clientId}:${c.seq}:${JSON.stringify(c.op)}`;
          if (!this.proposed.has(key)) this.violation ??= `${id} applied unproposed ${key}`;
        } else key = `noop:${String(e.barrier ?? '')}`;
        const prev = this.appliedAt.get(index);
        if (prev === undefined) this.appliedAt.set(index, key);
        else if (prev !== key) {
          this.violation ??= `slot ${index}: ${id} applied ${key}, another learner ${prev}`;
        }
      }),
      paxos.acceptor.state$.subscribe((v) => {
        // state$ is published after the write is durable (and on start from the disk)
        if (!v) return;
        const before = this.durablePromise.get(id) ?? ZERO_BALLOT;
        if (compareBallots(v.promised, before) < 0) {
          this.violation ??=
            `${id}/acceptor promised ${formatBallot(v.promised)} after a durable ` +
            `${formatBallot(before)}`;
        } else this.durablePromise.set(id, v.promised);
      }),
    );
  }
}
