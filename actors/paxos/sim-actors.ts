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
import { checkHistory, type HistoryEvent } from '../../lib/history/index.js';
import { Random } from '../../lib/random.js';
import { ProposeError } from '../../lib/replicated-log.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import type { LinkFaults } from '../../transports/memory/faults.js';
import { type Ballot, compareBallots, formatBallot, ZERO_BALLOT } from './ballot.js';
import { KvStateMachine } from './kv-machine.js';
import type { AppliedRecord } from './multi-learner.js';
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
  /**
   * Virtual milliseconds a disk sync takes (default 0: a microtask). The randomized runs use
   * 10, so the acceptors' group commit forms real groups: messages stepped while a write is in
   * flight, replies held behind it, crashes in the middle (a reviewer counted 491 groups of
   * two or three steps in 100 seeds, where instant syncs never grouped two).
   */
  readonly syncDelayMs?: number;
  readonly node?: Partial<
    Omit<MultiPaxosNodeOptions, 'system' | 'members' | 'stateMachine' | 'storage' | 'quorums'>
  >;
}

export interface ActorClusterMember {
  readonly paxos: MultiPaxosNode;
  readonly sm: FaultyKvStateMachine;
  readonly incarnation: number;
}

/**
 * The KV state machine with an injectable fault: after `failApply()`, its next `apply` throws
 * once, so the learner actor fails in the middle of a batch and its supervision restarts it
 * (it reloads its snapshot and catches up), possibly while a snapshot is being encoded or
 * saved: the learner-actor restart the node crashes of the randomised runs do not give.
 */
export class FaultyKvStateMachine extends KvStateMachine {
  private failNext = false;
  constructor(private readonly onFault: () => void = () => {}) {
    super();
  }
  failApply(): void {
    this.failNext = true;
  }
  override apply(op: Parameters<KvStateMachine['apply']>[0]): ReturnType<KvStateMachine['apply']> {
    if (this.failNext) {
      this.failNext = false;
      this.onFault();
      throw new Error('injected state machine fault (the learner actor restarts)');
    }
    return super.apply(op);
  }
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
  /** Snapshots saved by the learners so far. */
  snapshotsSaved = 0;
  /** State machine faults injected so far (each restarts a learner actor). */
  learnerFaults = 0;

  constructor(readonly opts: ActorClusterOptions) {
    this.sim = new Simulation<MemoryDisk>({
      seed: opts.seed,
      nodes: opts.nodes,
      ...(opts.faults ? { faults: opts.faults } : {}),
      createDisk: () =>
        opts.syncDelayMs
          ? new MemoryDisk({ clock: this.sim.clock, syncDelayMs: opts.syncDelayMs })
          : new MemoryDisk(),
    });
    this.sim.onStart(async (node) => {
      const storage = await openMemoryPaxosStorage(node.disk, node.clock);
      const sm = new FaultyKvStateMachine(() => this.learnerFaults++);
      const paxos = startMultiPaxosNode({
        heartbeatMs: 30,
        electionTimeoutMs: 150,
        retransmitMs: 60,
        // phase 1 in pages of a few slots, so every election that recovers slots pages
        promisePageBytes: 512,
        snapshotEvery: 50,
        // a little behind each snapshot: catch-up takes both paths, entries and snapshots
        keepAfterSnapshot: 10,
        proposeTimeoutMs: 1000,
        // the invariant checker reads every applied slot from the learner's events$
        appliedEvents: true,
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
      paxos.learner.events$.subscribe((ev) => {
        if (ev.type === 'snapshot-saved') this.snapshotsSaved++;
        if (ev.type !== 'applied-batch') return;
        for (const e of ev.records as readonly AppliedRecord[]) this.checkApplied(id, e);
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

  private checkApplied(id: string, e: AppliedRecord): void {
    if (e.kind === 'snapshot') return;
    const index = e.index;
    let key: string;
    if (e.kind === 'cmd') {
      const c = e.command;
      key = `${c.clientId}:${c.seq}:${JSON.stringify(c.op)}`;
      if (!this.proposed.has(key)) this.violation ??= `${id} applied unproposed ${key}`;
    } else key = `noop:${String(e.barrier ?? '')}`;
    const prev = this.appliedAt.get(index);
    if (prev === undefined) this.appliedAt.set(index, key);
    else if (prev !== key) {
      this.violation ??= `slot ${index}: ${id} applied ${key}, another learner ${prev}`;
    }
  }
}

export interface ActorSimOptions {
  readonly seed: number;
  readonly nodes?: number;
  readonly clients?: number;
  readonly faultPhaseMs?: number;
  readonly healPhaseMs?: number;
  readonly leaseMs?: number;
  readonly quorums?: MultiPaxosQuorums;
  /** Negative control: read the local replica without a barrier. */
  readonly unsafeReads?: boolean;
  /** How non-lease reads are confirmed (default: quorum-confirmed read index). */
  readonly reads?: 'confirm' | 'log';
  /**
   * The learners' snapshot rule: `every` snapshots exactly every 20 slots; `ratio` runs the
   * library's default rule (Raft's), scaled to this workload's tiny state: at least 20 slots,
   * then until the commands since the last snapshot add up to 20 times its image, at most 60
   * slots — about half as many snapshots, taken at points that depend on the state's size.
   * Default: `ratio` for odd seeds.
   */
  readonly snapshotRule?: 'every' | 'ratio';
  /**
   * Also restart learner actors alone (default true): at some fault ticks a node's state
   * machine throws on its next apply, so the learner restarts under its supervision while
   * the rest of the node (acceptor, proposer) runs on. Drawn from its own random stream, so
   * the network and crash schedule of a seed is the one it has without.
   */
  readonly learnerFaults?: boolean;
}

export interface ActorSimResult {
  readonly seed: number;
  readonly violation?: string;
  readonly history: HistoryEvent[];
  readonly okOps: number;
  readonly okAfterHeal: number;
  readonly steps: number;
  /** Snapshots the learners saved (every node, every incarnation). */
  readonly snapshots: number;
  /** State machine faults injected, each restarting a learner actor. */
  readonly learnerRestarts: number;
}

/**
 * A randomised run of the actor cluster: network faults (drops, duplicates, delays,
 * reordering), partitions, crash-restarts losing unsynced writes; register clients going
 * through `MultiPaxosLog` (writes and cas through `propose`, reads after `readBarrier`);
 * safety after every step, the history checked for linearizability, liveness after healing.
 */
export async function runActorSim(opts: ActorSimOptions): Promise<ActorSimResult> {
  const ids = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `n${i + 1}`);
  const cluster = new PaxosActorCluster({
    seed: opts.seed,
    nodes: ids,
    faults: { drop: 0.03, duplicate: 0.02, delay: { min: 1, max: 12 }, reorder: 0.1 },
    syncDelayMs: 10,
    ...(opts.quorums ? { quorums: opts.quorums } : {}),
    node: {
      snapshotEvery: 20,
      ...((opts.snapshotRule ?? (opts.seed % 2 === 1 ? 'ratio' : 'every')) === 'ratio'
        ? { snapshotLogRatio: 20, snapshotEveryMax: 60 }
        : {}),
      proposeTimeoutMs: 800,
      ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
      ...(opts.reads ? { reads: opts.reads } : {}),
    },
  });
  const { sim } = cluster;
  const rnd = sim.random.fork();
  const learnerRnd = opts.learnerFaults === false ? undefined : new Random(opts.seed ^ 0x1ea4);
  const history: HistoryEvent[] = [];
  const faultPhaseMs = opts.faultPhaseMs ?? 2000;
  const healPhaseMs = opts.healPhaseMs ?? 3000;
  let okOps = 0;
  let okAfterHeal = 0;
  let violation: string | undefined;
  interface Client {
    id: number;
    seq: number;
    target: string;
    busy:
      | { node: string; incarnation: number; f: string; key: string; value: unknown; token: number }
      | undefined;
  }
  let token = 0;
  const clients: Client[] = Array.from({ length: opts.clients ?? 3 }, (_, id) => ({
    id,
    seq: 0,
    target: rnd.pick(ids),
    busy: undefined,
  }));
  const finish = (c: Client, tok: number, type: 'ok' | 'fail' | 'info', value: unknown) => {
    const b = c.busy;
    if (!b || b.token !== tok) return;
    c.busy = undefined;
    history.push({ process: c.id, type, f: b.f, key: b.key, value, time: sim.clock.now() });
    if (type === 'ok') {
      okOps++;
      if (sim.clock.now() > faultPhaseMs) okAfterHeal++;
    }
  };
  const onError = (c: Client, tok: number, read: boolean) => (e: unknown) => {
    if (e instanceof ProposeError) {
      if (e.code === 'NotLeader') c.target = e.leaderHint ?? rnd.pick(ids);
      else c.target = rnd.pick(ids);
      finish(c, tok, read || !e.indeterminate ? 'fail' : 'info', null);
    } else finish(c, tok, read ? 'fail' : 'info', null);
  };
  const startOp = (c: Client) => {
    if (!sim.isUp(c.target)) c.target = rnd.pick(ids);
    if (!sim.isUp(c.target)) return;
    const m = cluster.member(c.target);
    const key = rnd.pick(['x', 'y']);
    const r = rnd.next();
    const f = r < 0.4 ? 'read' : r < 0.8 ? 'write' : 'cas';
    const value = f === 'write' ? rnd.int(5) : f === 'cas' ? [rnd.int(5), rnd.int(5)] : null;
    const tok = token++;
    c.busy = { node: c.target, incarnation: m.incarnation, f, key, value, token: tok };
    history.push({ process: c.id, type: 'invoke', f, key, value, time: sim.clock.now() });
    if (f === 'read' && opts.unsafeReads) {
      const any = cluster.member(rnd.pick(ids.filter((i) => sim.isUp(i))));
      finish(c, tok, 'ok', any.sm.read(key));
      return;
    }
    if (f === 'read') {
      m.paxos.log
        .readBarrier()
        .then(() => finish(c, tok, 'ok', m.sm.read(key)), onError(c, tok, true));
      return;
    }
    c.seq++;
    const op =
      f === 'write'
        ? { f: 'write' as const, key, value }
        : { f: 'cas' as const, key, from: (value as number[])[0], to: (value as number[])[1] };
    cluster.propose(c.target, `c${c.id}`, c.seq, op).then(
      (res) => {
        if (f === 'cas' && res.result !== true) finish(c, tok, 'fail', value);
        else finish(c, tok, 'ok', value);
      },
      onError(c, tok, false),
    );
  };
  try {
    await cluster.start();
    const end = faultPhaseMs + healPhaseMs;
    let nextFault = 200 + rnd.int(300);
    while (sim.clock.now() < end) {
      await sim.runFor(10);
      const now = sim.clock.now();
      if (now < faultPhaseMs && now >= nextFault) {
        nextFault = now + 100 + rnd.int(400);
        const x = rnd.next();
        const down = ids.filter((i) => !sim.isUp(i));
        if (x < 0.35 && down.length < ids.length - 1)
          sim.crash(rnd.pick(ids.filter((i) => sim.isUp(i))));
        else if (x < 0.6 && down.length > 0) await sim.restart(rnd.pick(down));
        else if (x < 0.8) {
          const shuffled = rnd.shuffle([...ids]);
          const cut = 1 + rnd.int(ids.length - 1);
          sim.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
        } else sim.network.heal();
        const up = ids.filter((i) => sim.isUp(i));
        if (learnerRnd?.chance(0.2) && up.length > 0)
          cluster.member(learnerRnd.pick(up)).sm.failApply();
      }
      if (now >= faultPhaseMs && now < faultPhaseMs + 10) {
        sim.network.heal();
        for (const i of ids) if (!sim.isUp(i)) await sim.restart(i);
      }
      for (const c of clients) {
        const b = c.busy;
        if (b && (!sim.isUp(b.node) || cluster.member(b.node).incarnation !== b.incarnation)) {
          finish(c, b.token, b.f === 'read' ? 'fail' : 'info', null);
        }
        if (!c.busy && now < end - 500 && rnd.chance(0.5)) startOp(c);
      }
    }
    for (const c of clients)
      if (c.busy) finish(c, c.busy.token, c.busy.f === 'read' ? 'fail' : 'info', null);
  } catch (err) {
    violation = (err as Error).message;
  }
  violation ??= cluster.violation;
  if (!violation) {
    const verdict = checkHistory(history, { model: 'register', maxSteps: 5_000_000 });
    if (verdict.result !== 'linearizable')
      violation = `history ${verdict.result}: ${verdict.summary}`;
  }
  if (!violation && okAfterHeal === 0) violation = 'no operation completed after healing';
  cluster.stop();
  return {
    seed: opts.seed,
    ...(violation !== undefined ? { violation } : {}),
    history,
    okOps,
    okAfterHeal,
    steps: sim.stepCount(),
    snapshots: cluster.snapshotsSaved,
    learnerRestarts: cluster.learnerFaults,
  };
}
