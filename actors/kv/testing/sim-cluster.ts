/**
 * A KV cluster in the deterministic simulation, on any replicated log (`KvBackend`: Raft,
 * Multi-Paxos, ...): one KV service per node, clients on a separate client node, a global commit
 * log (the virtual time at which each log index was first known committed anywhere), and
 * closed-loop workloads that record Jepsen histories and per-read samples for the staleness,
 * session and monotonicity checks of test/kv/sim-*.test.ts.
 */
import type { HistoryEvent } from '../../../lib/history/event.js';
import { HistoryRecorder } from '../../../lib/history/recorder.js';
import type { KvClient, KvClientOptions } from '../../../lib/kv-client/client.js';
import { KvClient as Client } from '../../../lib/kv-client/client.js';
import type { ReplicatedLog } from '../../../lib/replicated-log.js';
import { type SimNode, Simulation } from '../../../lib/sim/simulation.js';
import { MemoryDisk } from '../../../lib/storage/memory-disk.js';
import type { LinkFaults } from '../../../transports/memory/faults.js';
import type { ReadOptions } from '../messages.js';
import { KvService, type KvServiceOptions } from '../service.js';
import { KvStateMachine, type KvStateMachineOptions } from '../state-machine.js';
import type { KvOp, KvResult } from '../types.js';

export interface KvBackend {
  readonly name: string;
  /** Starts this node's replicated log (on every boot), applying committed commands to `sm`. */
  start(
    node: SimNode<MemoryDisk>,
    sm: KvStateMachine,
    members: readonly string[],
  ): Promise<ReplicatedLog<KvOp, KvResult>> | ReplicatedLog<KvOp, KvResult>;
}

export interface KvSimOptions {
  backend: KvBackend;
  seed: number;
  nodes?: readonly string[];
  faults?: LinkFaults;
  service?: Partial<Omit<KvServiceOptions, 'log' | 'sm'>>;
  sm?: KvStateMachineOptions;
}

/** One completed read, with what is needed to measure its staleness afterwards. */
export interface ReadSample {
  readonly process: number;
  readonly key: string;
  readonly level: string;
  readonly invokedAt: number;
  readonly completedAt: number;
  readonly servedBy: string;
  /** Log index of the state that was read. */
  readonly index: number;
  readonly value: string | null;
  readonly modRev: number;
}

export interface WorkloadOptions {
  clients: number;
  keys: number;
  durationMs: number;
  /** Relative weights. */
  mix?: { read?: number; write?: number; cas?: number };
  read: ReadOptions;
  /**
   * Node each client reads from: a fixed node, `spread` (client i → node i mod n) or `rotate`
   * (each read of a client goes to the next node).
   */
  readVia?: string | 'spread' | 'rotate';
  client?: Partial<KvClientOptions>;
  /** Per-client options on top of `client` (client p, 0-based). */
  clientFor?: (p: number) => Partial<KvClientOptions>;
  /** Called once with the clock time the workload starts, to schedule faults. */
  faults?: (t0: number) => void;
}

export interface WorkloadResult {
  events: HistoryEvent[];
  reads: ReadSample[];
  ops: { ok: number; failed: number; indeterminate: number };
  /** Read attempts the clients sent witnesses for (`witnessReads`). */
  witnessed: number;
}

export const CLIENT_NODE = 'cl';

export class KvSim {
  readonly sim: Simulation<MemoryDisk>;
  readonly nodes: readonly string[];
  readonly sms = new Map<string, KvStateMachine>();
  readonly logs = new Map<string, ReplicatedLog<KvOp, KvResult>>();
  /** commitTimes[i]: virtual time at which index i was first known committed on any node. */
  readonly commitTimes: number[] = [0];
  private globalCommit = 0;
  private readonly leaders = new Map<string, string | undefined>();
  /** Per node: the values its state machine ever held, for "was it committed" checks. */
  readonly committedValues = new Set<string>();

  constructor(readonly opts: KvSimOptions) {
    this.nodes = opts.nodes ?? ['n1', 'n2', 'n3'];
    this.sim = new Simulation<MemoryDisk>({
      seed: opts.seed,
      nodes: [...this.nodes, CLIENT_NODE],
      ...(opts.faults ? { faults: opts.faults } : {}),
      createDisk: () =>
        new MemoryDisk({
          clock: this.sim.clock,
          syncDelayMs: { min: 0, max: 2 },
          random: this.sim.random.fork(),
        }),
      setup: async (node) => {
        if (node.id === CLIENT_NODE) return;
        const sm = new KvStateMachine(opts.sm);
        this.sms.set(node.id, sm);
        sm.onEvent((e) => {
          if (e.value !== null) this.committedValues.add(e.value);
        });
        const log = await opts.backend.start(node, sm, this.nodes);
        this.logs.set(node.id, log);
        log.commitIndex$.subscribe((c) => this.noteCommit(c));
        log.leader$.subscribe((l) => this.leaders.set(node.id, l));
        node.system.spawn('kv', new KvService({ log, sm, ...opts.service }));
      },
    });
  }

  private noteCommit(c: number): void {
    while (this.globalCommit < c) {
      this.globalCommit++;
      this.commitTimes[this.globalCommit] = this.sim.clock.now();
    }
  }

  /** The highest index known committed at virtual time `t`. */
  commitIndexAt(t: number): number {
    let lo = 0;
    let hi = this.globalCommit;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.commitTimes[mid] as number) <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Staleness of a read of state `index` invoked at `t`: entries and ms it was behind. */
  staleness(index: number, t: number): { versions: number; ms: number } {
    const c = this.commitIndexAt(t);
    if (c <= index) return { versions: 0, ms: 0 };
    return { versions: c - index, ms: t - (this.commitTimes[index + 1] as number) };
  }

  async start(): Promise<void> {
    await this.sim.start();
  }

  /** A node that a majority of the up nodes name as leader. */
  leader(): string | undefined {
    const votes = new Map<string, number>();
    for (const n of this.nodes) {
      if (!this.sim.isUp(n)) continue;
      const l = this.leaders.get(n);
      if (l !== undefined) votes.set(l, (votes.get(l) ?? 0) + 1);
    }
    for (const [l, v] of votes) if (v * 2 > this.nodes.length && this.sim.isUp(l)) return l;
    return undefined;
  }

  async waitLeader(timeout = 10_000): Promise<string> {
    await this.sim.runUntil(() => this.leader() !== undefined, { timeout });
    const l = this.leader();
    if (l === undefined) this.sim.fail(`no leader within ${timeout} ms`);
    return l;
  }

  client(opts: Partial<KvClientOptions> = {}): KvClient {
    return new Client({ system: this.sim.system(CLIENT_NODE), nodes: this.nodes, ...opts });
  }

  run<T>(p: Promise<T>, timeout = 30_000): Promise<T> {
    return this.sim.await(p, { timeout });
  }

  /** Closed-loop clients; each key's values are unique, so the checker can tell writes apart. */
  async workload(o: WorkloadOptions): Promise<WorkloadResult> {
    const rec = new HistoryRecorder({ clock: this.sim.clock });
    const reads: ReadSample[] = [];
    const ops = { ok: 0, failed: 0, indeterminate: 0 };
    const mix = { read: o.mix?.read ?? 2, write: o.mix?.write ?? 2, cas: o.mix?.cas ?? 1 };
    const total = mix.read + mix.write + mix.cas;
    const rnd = this.sim.random.fork();
    const t0 = this.sim.clock.now();
    const stopAt = t0 + o.durationMs;
    let uniq = 0;
    const clients: KvClient[] = [];
    const loop = async (p: number): Promise<void> => {
      const via =
        o.readVia === 'spread'
          ? this.nodes[p % this.nodes.length]
          : o.readVia === 'rotate'
            ? undefined
            : o.readVia;
      let turn = p;
      const kv = this.client({
        ...(via ? { readNode: via } : {}),
        ...o.client,
        ...o.clientFor?.(p),
      });
      clients.push(kv);
      while (this.sim.clock.now() < stopAt) {
        const key = `k${rnd.int(o.keys)}`;
        const x = rnd.int(total);
        if (x < mix.read) {
          const h = rec.invoke(p, 'read', key);
          const invokedAt = this.sim.clock.now();
          const r = await kv.get(
            key,
            o.readVia === 'rotate'
              ? { ...o.read, node: this.nodes[turn++ % this.nodes.length] as string }
              : o.read,
          );
          if (r.outcome === 'ok') {
            h.ok(r.value.value);
            ops.ok++;
            reads.push({
              process: p,
              key,
              level: r.value.level ?? o.read.level ?? 'unknown',
              invokedAt,
              completedAt: this.sim.clock.now(),
              servedBy: r.servedBy,
              index: r.value.index,
              value: r.value.value,
              modRev: r.value.kv?.modRev ?? 0,
            });
          } else {
            h.fail(r.error.code);
            ops.failed++;
          }
        } else if (x < mix.read + mix.write) {
          const v = `${p}.${uniq++}`;
          const h = rec.invoke(p, 'write', key, v);
          const r = await kv.put(key, v);
          this.complete(h, r.outcome, r.outcome === 'ok' ? undefined : r.error.code, ops);
        } else {
          const from = rnd.chance(0.5)
            ? null
            : `${rnd.int(o.clients)}.${rnd.int(Math.max(1, uniq))}`;
          const to = `${p}.${uniq++}`;
          const h = rec.invoke(p, 'cas', key, [from, to]);
          const r = await kv.cas(key, { value: from }, to);
          if (r.outcome === 'ok' && r.value.t === 'cas') {
            ops.ok++;
            if (r.value.succeeded) h.ok();
            else h.ok(false);
          } else this.complete(h, r.outcome, r.outcome === 'ok' ? undefined : r.error.code, ops);
        }
      }
    };
    o.faults?.(t0);
    const loops = Promise.all(Array.from({ length: o.clients }, (_, p) => loop(p)));
    await this.run(loops, o.durationMs + 60_000);
    const witnessed = clients.reduce((n, c) => n + c.stats.witnessed, 0);
    return { events: [...rec.events], reads, ops, witnessed };
  }

  private complete(
    h: { ok(v?: unknown): void; fail(e?: unknown): void; info(e?: unknown): void },
    outcome: 'ok' | 'failed' | 'indeterminate',
    code: string | undefined,
    ops: WorkloadResult['ops'],
  ): void {
    if (outcome === 'ok') {
      h.ok();
      ops.ok++;
    } else if (outcome === 'failed') {
      h.fail(code);
      ops.failed++;
    } else {
      h.info(code);
      ops.indeterminate++;
    }
  }

  /** Schedules `fn` at virtual time `at` (absolute). */
  at(at: number, fn: () => void | Promise<void>): void {
    this.sim.clock.setTimer(Math.max(0, at - this.sim.clock.now()), () => {
      void fn();
    });
  }
}
