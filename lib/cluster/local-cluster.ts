/**
 * A whole Raft cluster inside one process: one actor system per node on a shared in-memory
 * network, each with a RaftNode over its own storage (a MemoryDisk, or a data directory when
 * `dataDir` is given). It runs on the real clock for the demo and the dashboard, or on any
 * injected clock. Nodes can be stopped, restarted, isolated and healed; it exposes a
 * `DashboardSource` so the dashboard can show and drive it.
 */
import path from 'node:path';
import { merge, Subject, type Subscription } from 'rxjs';
import { RaftNode, type RaftNodeOptions } from '../../actors/raft/raft-node.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import { ActorSystem } from '../actor-system.js';
import { type Clock, systemClock } from '../clock.js';
import { decodeEnvelope } from '../codec.js';
import type {
  ClusterView,
  Control,
  ControlResult,
  DashboardSource,
  LogTailEntry,
  MessageSample,
  NodeView,
} from '../dashboard/view.js';
import { type Logger, silentLogger } from '../logger.js';
import { Random } from '../random.js';
import type { Command, ProposeResult, StateMachine } from '../replicated-log.js';
import { openDataDir, openMemoryDataDir } from '../storage/data-dir.js';
import { MemoryDisk } from '../storage/memory-disk.js';

export interface LocalClusterOptions<Op, Result> {
  nodes: readonly string[];
  /** Creates a node's state machine (on every start and restart of that node). */
  stateMachine: (nodeId: string) => StateMachine<Op, Result>;
  clock?: Clock;
  seed?: number;
  /** Keep each node's data in `<dataDir>/<id>` (file storage with fsync); memory otherwise. */
  dataDir?: string;
  raft?: Partial<RaftNodeOptions<Op, Result>>;
  logger?: Logger;
  name?: string;
  /** Labels a command for the dashboard's log tail. */
  describe?: (op: Op) => string;
}

interface LocalNode<Op, Result> {
  id: string;
  system: ActorSystem | undefined;
  raft: RaftNode<Op, Result> | undefined;
  disk: MemoryDisk;
  up: boolean;
  subs: Subscription[];
  tail: LogTailEntry[];
}

const TAIL = 24;

export class LocalCluster<Op = unknown, Result = unknown> implements DashboardSource {
  readonly clock: Clock;
  readonly network: MemoryNetwork;
  private readonly random: Random;
  private readonly nodesById = new Map<string, LocalNode<Op, Result>>();
  private readonly changes = new Subject<void>();
  private readonly messages = new Subject<MessageSample>();
  private readonly narrationLines: string[] = [];
  private partitions: string[][] | undefined;
  private readonly isolated = new Set<string>();
  private seq = 0;
  private readonly clientId: string;
  private sampleBudget = 0;
  private sampleWindow = 0;
  readonly changes$ = this.changes.asObservable();
  readonly messages$ = this.messages.asObservable();
  /** Extra controls (backup/restore) a higher layer may plug in. */
  extraControls: Partial<Record<Control['op'], (c: Control) => Promise<ControlResult>>> = {};
  /** Extra parts of the view (backups) a higher layer may plug in. */
  extraView: () => Partial<ClusterView> = () => ({});

  constructor(private readonly options: LocalClusterOptions<Op, Result>) {
    if (options.nodes.length === 0) throw new Error('a cluster needs at least one node');
    this.clock = options.clock ?? systemClock;
    this.random = new Random(options.seed ?? 1);
    this.clientId = `local-${this.random.nextUint32().toString(36)}`;
    this.network = new MemoryNetwork({
      clock: this.clock,
      random: this.random.fork(),
      onDeliver: (from, to, bytes) => this.sample(from, to, bytes),
    });
    for (const id of options.nodes) {
      this.nodesById.set(id, {
        id,
        system: undefined,
        raft: undefined,
        disk: new MemoryDisk(),
        up: false,
        subs: [],
        tail: [],
      });
    }
  }

  ids(): string[] {
    return [...this.nodesById.keys()];
  }

  async start(): Promise<void> {
    for (const id of this.nodesById.keys()) await this.boot(id);
  }

  raft(id: string): RaftNode<Op, Result> | undefined {
    const n = this.nodesById.get(id);
    return n?.up ? n.raft : undefined;
  }

  isUp(id: string): boolean {
    return this.nodesById.get(id)?.up ?? false;
  }

  /** The current leader among running nodes (highest term wins), if any. */
  leader(): string | undefined {
    let best: { id: string; term: number } | undefined;
    for (const n of this.nodesById.values()) {
      if (!n.up || !n.raft?.started) continue;
      const s = n.raft.status();
      if (s.role === 'leader' && (!best || s.term > best.term)) best = { id: n.id, term: s.term };
    }
    return best?.id;
  }

  /** Resolves with the leader once one is elected, or rejects after `timeoutMs`. */
  waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const found = probe();
      if (found !== undefined) {
        resolve(found);
        return;
      }
      const finish = () => {
        timer.cancel();
        sub.unsubscribe();
      };
      const check = () => {
        const v = probe();
        if (v === undefined) return;
        finish();
        resolve(v);
      };
      const timer = this.clock.setTimer(timeoutMs, () => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      });
      // Every change a probe can see is announced: RaftNode publishes its streams only
      // once status() reflects the change, and stop/restart/isolate/heal announce too.
      const sub = this.changes.subscribe(check);
    });
  }

  waitForLeader(timeoutMs = 5_000, minTerm = 0): Promise<string> {
    return this.waitFor(
      () => {
        const l = this.leader();
        return l !== undefined && (this.raft(l)?.status().term ?? 0) >= minTerm ? l : undefined;
      },
      timeoutMs,
      'a leader',
    );
  }

  /** Proposes through the current leader (retrying once on a leader change). */
  async propose(op: Op, timeoutMs = 5_000): Promise<ProposeResult<Result>> {
    const command: Command<Op> = { clientId: this.clientId, seq: ++this.seq, op };
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const leader = await this.waitForLeader(timeoutMs);
      const node = this.raft(leader);
      if (!node) continue;
      try {
        return await node.propose(command, { timeoutMs });
      } catch (err) {
        lastErr = err;
        if ((err as { indeterminate?: boolean }).indeterminate) throw err;
      }
    }
    throw lastErr;
  }

  /** Stops a node (its process "dies"); its storage keeps what was synced. */
  async stop(id: string): Promise<void> {
    const n = this.node(id);
    if (!n.up) return;
    n.up = false;
    for (const s of n.subs.splice(0)) s.unsubscribe();
    this.network.disconnect(id);
    await n.system?.shutdown();
    n.system = undefined;
    n.raft = undefined;
    this.changes.next();
  }

  async restart(id: string): Promise<void> {
    const n = this.node(id);
    if (n.up) return;
    await this.boot(id);
  }

  /**
   * Cuts a node off from every other one. Isolations add up until `heal` (as operator cuts
   * do on a real cluster): each isolated node is a group of its own, the rest one group.
   */
  isolate(id: string): void {
    this.node(id);
    this.isolated.add(id);
    const groups = this.ids()
      .filter((x) => this.isolated.has(x))
      .map((x) => [x]);
    const rest = this.ids().filter((x) => !this.isolated.has(x));
    if (rest.length > 0) groups.push(rest);
    this.network.partition(groups);
    this.partitions = groups;
    this.changes.next();
  }

  heal(): void {
    this.network.heal();
    this.isolated.clear();
    this.partitions = undefined;
    this.changes.next();
  }

  narrate(line: string): void {
    this.narrationLines.push(line);
    if (this.narrationLines.length > 50) this.narrationLines.shift();
    this.changes.next();
  }

  async shutdown(): Promise<void> {
    for (const id of this.ids()) await this.stop(id);
    this.changes.complete();
    this.messages.complete();
  }

  // ---------------------------------------------------------------- DashboardSource

  view(): ClusterView {
    const nodes: NodeView[] = [];
    for (const n of this.nodesById.values()) {
      if (!n.up || !n.raft?.started) {
        nodes.push({ id: n.id, up: false, protocol: 'raft' });
        continue;
      }
      const s = n.raft.status();
      nodes.push({
        id: n.id,
        up: true,
        protocol: 'raft',
        role: s.role,
        term: s.term,
        leader: s.leader ?? null,
        commitIndex: s.commit,
        appliedIndex: s.applied,
        logTail: this.logTail(n),
        voters: [...s.membership.voters],
        learners: [...s.membership.learners],
        extra: { lastIndex: s.lastIndex },
      });
    }
    return {
      cluster: this.options.name ?? 'local',
      nodes,
      ...(this.partitions ? { partitions: this.partitions } : {}),
      narration: [...this.narrationLines],
      time: this.clock.wallNow(),
      ...this.extraView(),
    };
  }

  async control(c: Control): Promise<ControlResult> {
    const extra = this.extraControls[c.op];
    if (extra) return extra(c);
    switch (c.op) {
      case 'stop':
        if (!this.nodesById.has(c.node)) return { ok: false, message: `no node ${c.node}` };
        await this.stop(c.node);
        return { ok: true, message: `stopped ${c.node}` };
      case 'restart':
        if (!this.nodesById.has(c.node)) return { ok: false, message: `no node ${c.node}` };
        await this.restart(c.node);
        return { ok: true, message: `restarted ${c.node}` };
      case 'isolate':
        if (!this.nodesById.has(c.node)) return { ok: false, message: `no node ${c.node}` };
        this.isolate(c.node);
        return { ok: true, message: `isolated ${c.node}` };
      case 'heal':
        this.heal();
        return { ok: true, message: 'network healed' };
      case 'transfer': {
        const leader = this.leader();
        if (!leader) return { ok: false, message: 'no leader right now' };
        if (!this.nodesById.has(c.to)) return { ok: false, message: `no node ${c.to}` };
        if (!this.isUp(c.to)) return { ok: false, message: `${c.to} is not running` };
        if (c.to === leader) return { ok: false, message: `${c.to} already leads` };
        this.raft(leader)?.transferLeadership(c.to);
        return { ok: true, message: `asked ${leader} to hand leadership to ${c.to}` };
      }
      case 'put':
        return { ok: false, message: 'this cluster has no key-value service attached' };
      default:
        return { ok: false, message: `${c.op} is not available in this cluster` };
    }
  }

  // ---------------------------------------------------------------- internals

  private node(id: string): LocalNode<Op, Result> {
    const n = this.nodesById.get(id);
    if (!n) throw new Error(`no node "${id}" in this cluster`);
    return n;
  }

  private logTail(n: LocalNode<Op, Result>): LogTailEntry[] {
    const core = n.raft?.inspectCore();
    if (!core) return n.tail;
    const last = core.log.lastIndex();
    const out: LogTailEntry[] = [];
    const labels = new Map(n.tail.map((e) => [e.index, e.label]));
    for (let i = Math.max(core.log.firstIndex(), last - TAIL + 1); i <= last; i++) {
      const term = core.log.term(i);
      if (term === undefined) continue;
      const label = labels.get(i);
      out.push(label === undefined ? { index: i, term } : { index: i, term, label });
    }
    return out;
  }

  private async boot(id: string): Promise<void> {
    const n = this.node(id);
    const transport = this.network.connect(id, this.clock);
    const system = new ActorSystem({
      nodeId: id,
      clock: this.clock,
      random: this.random.fork(),
      transport,
      logger: this.options.logger ?? silentLogger,
    });
    const dataDir = this.options.dataDir;
    const raft = new RaftNode<Op, Result>({
      storage: () =>
        dataDir
          ? openDataDir(path.join(dataDir, id), { clock: this.clock })
          : openMemoryDataDir(n.disk, { clock: this.clock }),
      stateMachine: () => this.options.stateMachine(id),
      bootstrap: [...this.nodesById.keys()],
      ...this.options.raft,
    });
    const ref = system.spawn('raft', raft);
    n.system = system;
    n.raft = raft;
    n.up = true;
    await new Promise<void>((resolve, reject) => {
      const sub = ref.events$.subscribe((e) => {
        if (e.type === 'started') {
          sub.unsubscribe();
          resolve();
        } else if (e.type === 'failed') {
          sub.unsubscribe();
          reject(new Error(`node ${id} failed to start: ${String(e.error)}`));
        }
      });
    });
    const describe = this.options.describe;
    n.subs.push(
      merge(
        raft.role$,
        raft.term$,
        raft.leader$,
        raft.commitIndex$,
        raft.appliedIndex$,
        raft.membership$,
      ).subscribe(() => this.changes.next()),
      raft.applied$.subscribe((e) => {
        n.tail.push(
          describe
            ? { index: e.index, term: e.term, label: describe(e.command.op) }
            : { index: e.index, term: e.term },
        );
        if (n.tail.length > TAIL) n.tail.shift();
      }),
    );
    this.changes.next();
  }

  /** Decodes at most ~50 delivered envelopes a second for the dashboard's message view. */
  private sample(from: string, to: string, bytes: Uint8Array): void {
    if (!this.messages.observed) return;
    const now = this.clock.now();
    if (now - this.sampleWindow >= 100) {
      this.sampleWindow = now;
      this.sampleBudget = 5;
    }
    if (this.sampleBudget <= 0) return;
    this.sampleBudget--;
    try {
      const env = decodeEnvelope(bytes);
      const m = env.m as { type?: unknown; ms?: { type?: unknown }[] };
      const type =
        m?.type === 'raft' && Array.isArray(m.ms)
          ? String(m.ms[0]?.type ?? 'raft')
          : String(m?.type ?? env.k);
      this.messages.next({ from, to, type });
    } catch {
      // undecodable envelopes are counted by the network itself
    }
  }
}
