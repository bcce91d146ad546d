/**
 * A Raft cluster of RaftNode actors in the deterministic simulation (lib/sim): memory
 * stores on a MemoryDisk per node (unsynced writes lost on crash), a small KV state
 * machine, invariant checks after every simulation step, and clients that record
 * Jepsen-style histories for the linearizability checker.
 */

import type { RaftCore } from '../../actors/raft/core/raft-core.js';
import { type NodeView, RaftInvariants } from '../../actors/raft/invariants.js';
import { encodeCommand, RaftNode, type RaftNodeOptions } from '../../actors/raft/raft-node.js';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { HistoryEvent } from '../../lib/history/event.js';
import { ProposeError, type StateMachine } from '../../lib/replicated-log.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import type { LinkFaults } from '../../transports/memory/faults.js';
import { pushCoreState, sameState } from './raft-net.js';

export type KvOp =
  | { f: 'write'; k: string; v: unknown }
  | { f: 'read'; k: string }
  | { f: 'cas'; k: string; from: unknown; to: unknown }
  | { f: 'noop'; n?: string | number };

/** A register per key; results: write → true, read → value (null if absent), cas → boolean. */
export class KvMachine implements StateMachine<KvOp, unknown> {
  data = new Map<string, unknown>();
  applied = 0;
  apply(op: KvOp): unknown {
    this.applied++;
    switch (op.f) {
      case 'write':
        this.data.set(op.k, op.v);
        return true;
      case 'read':
        return this.data.get(op.k) ?? null;
      case 'cas': {
        const cur = this.data.get(op.k) ?? null;
        if (cur !== op.from) return false;
        this.data.set(op.k, op.to);
        return true;
      }
      case 'noop':
        return null;
    }
  }
  snapshot(): Uint8Array {
    return encodeValue([...this.data]);
  }
  restore(image: Uint8Array): void {
    this.data = new Map(decodeValue(image) as [string, unknown][]);
  }
}

export interface ClusterOptions {
  seed: number;
  ids: string[];
  faults?: LinkFaults;
  node?: Partial<RaftNodeOptions<KvOp, unknown>>;
  /** Founding voters (default: all ids). Other ids start empty and must be added. */
  voters?: string[];
  /** Check invariants after every step (default true). */
  checkEveryStep?: boolean;
  /** Disk sync latency in ms (default 0–2 ms, random). */
  syncDelayMs?: number | { min: number; max: number };
}

export function coreNodeView(id: string, core: RaftCore | undefined, up: boolean): NodeView {
  if (!core) {
    return {
      id,
      up: false,
      term: 0,
      role: 'follower',
      snapIndex: 0,
      snapTerm: 0,
      entries: [],
      committed: 0,
      stableIndex: 0,
      voters: [],
    };
  }
  const m = core.membership();
  return {
    id,
    up,
    term: core.term,
    role: core.role,
    snapIndex: core.log.snapIndex,
    snapTerm: core.log.snapTerm,
    entries: core.log.all(),
    committed: core.log.committed,
    stableIndex: core.log.stableIndex,
    logVersion: core.log.version,
    voters: [...new Set([...m.voters, ...(m.votersOutgoing ?? [])])],
  };
}

export class RaftCluster {
  readonly sim: Simulation<MemoryDisk>;
  readonly nodes = new Map<string, RaftNode<KvOp, unknown>>();
  readonly machines = new Map<string, KvMachine>();
  readonly inv = new RaftInvariants();
  readonly history: HistoryEvent[] = [];
  /** Node ids that must not be started with bootstrap (joining nodes). */
  private readonly founders: Set<string>;
  private clientSeq = 0;
  readonly fatal: string[] = [];
  /** Per node (current incarnation): every (clientId:seq) its state machine applied. */
  readonly appliedCmds = new Map<string, Set<string>>();

  constructor(readonly opts: ClusterOptions) {
    this.founders = new Set(opts.voters ?? opts.ids);
    this.sim = new Simulation<MemoryDisk>({
      seed: opts.seed,
      nodes: opts.ids,
      ...(opts.faults ? { faults: opts.faults } : {}),
      createDisk: () =>
        new MemoryDisk({
          clock: this.sim.clock,
          syncDelayMs: opts.syncDelayMs ?? { min: 0, max: 2 },
          random: this.sim.random.fork(),
        }),
      setup: (node) => {
        const machine = new KvMachine();
        this.machines.set(node.id, machine);
        const raft = new RaftNode<KvOp, unknown>({
          storage: () => openMemoryDataDir(node.disk),
          stateMachine: () => machine,
          ...(this.founders.has(node.id) ? { bootstrap: [...this.founders] } : {}),
          ...opts.node,
        });
        this.nodes.set(node.id, raft);
        const seen = new Set<string>();
        this.appliedCmds.set(node.id, seen);
        raft.applied$.subscribe((a) => seen.add(`${a.command.clientId}:${a.command.seq}`));
        raft.applied$.subscribe((a) =>
          this.inv.checkApplied({
            node: node.id,
            index: a.index,
            term: a.term,
            command: Buffer.from(encodeCommand(a.command)).toString('hex'),
          }),
        );
        const ref = node.system.spawn('raft', raft);
        ref.events$.subscribe((e) => {
          if (e.type === 'fatal') this.fatal.push(`${node.id}: ${String(e.error)}`);
        });
      },
    });
    if (opts.checkEveryStep ?? true) this.sim.afterEachStep(() => this.check());
  }

  async start(): Promise<void> {
    await this.sim.start();
  }

  node(id: string): RaftNode<KvOp, unknown> {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: string): RaftCore | undefined {
    return this.nodes.get(id)?.inspectCore();
  }

  views(): NodeView[] {
    return this.opts.ids.map((id) => coreNodeView(id, this.core(id), this.sim.isUp(id)));
  }

  check(): void {
    if (this.fatal.length > 0) throw new Error(`fatal node error: ${this.fatal.join('; ')}`);
    // Most steps (a heartbeat answered, a timer re-armed, a client retry) change nothing the
    // invariants look at. When every node's observable Raft state is the one that passed the
    // last full check, checking it again cannot fail (the checker is idempotent on identical
    // views), so only the count moves.
    const sig = this.stateSignature();
    if (sameState(sig, this.lastCheckedSig)) {
      this.inv.noteUnchanged();
      return;
    }
    this.inv.check(this.views());
    this.lastCheckedSig = sig;
  }

  private lastCheckedSig: unknown[] | undefined;

  /** Everything coreNodeView reads of every node (see pushCoreState). */
  private stateSignature(): unknown[] {
    const sig: unknown[] = [];
    for (const id of this.opts.ids) pushCoreState(sig, this.core(id), this.sim.isUp(id));
    return sig;
  }

  /** Up nodes that believe they lead, highest term first. */
  leaders(): string[] {
    return this.opts.ids
      .filter((id) => this.sim.isUp(id) && this.core(id)?.role === 'leader')
      .sort((a, b) => (this.core(b)?.term ?? 0) - (this.core(a)?.term ?? 0));
  }

  /** The leader of the highest term among `among`, once one exists. */
  async waitLeader(timeout = 5000, among: string[] = this.opts.ids): Promise<string | undefined> {
    let found: string | undefined;
    await this.sim.runUntil(
      () => {
        const ls = this.leaders().filter((id) => among.includes(id));
        const top = ls[0];
        // a leader that a majority of `among` follows (not a stale isolated one)
        if (top === undefined) return false;
        const term = this.core(top)?.term ?? 0;
        const followers = among.filter(
          (id) =>
            this.sim.isUp(id) && this.core(id)?.term === term && this.core(id)?.leader === top,
        );
        if (followers.length * 2 > among.length) {
          found = top;
          return true;
        }
        return false;
      },
      { timeout },
    );
    return found;
  }

  crash(id: string): void {
    this.sim.crash(id);
  }

  async restart(id: string): Promise<void> {
    await this.sim.restart(id);
  }

  partition(groups: string[][]): void {
    this.sim.network.partition(groups);
  }

  heal(): void {
    this.sim.network.heal();
  }

  /** Proposes on `id` and runs the simulation until it settles (or times out). */
  async proposeOn(
    id: string,
    op: KvOp,
    timeout = 3000,
  ): Promise<{ ok: boolean; index?: number; result?: unknown; error?: ProposeError }> {
    const clientId = `t${id}`;
    const p = this.within(
      this.node(id).propose({ clientId, seq: ++this.clientSeq, op }, { timeoutMs: timeout }),
      timeout + 50,
    );
    try {
      const r = await this.sim.await(p, { timeout: timeout + 100 });
      return { ok: true, index: r.index, result: r.result };
    } catch (e) {
      return { ok: false, error: e as ProposeError };
    }
  }

  /** Commands applied by a node's state machine, as decoded ops, in order. */
  appliedIndex(id: string): number {
    return this.core(id)?.log.applied ?? 0;
  }

  /** The entry term/op at `index` on node `id`, if held. */
  entryAt(id: string, index: number): string | undefined {
    const e = this.core(id)?.log.entryAt(index);
    return e ? Buffer.from(e.data).toString('hex') : undefined;
  }

  /** How many up nodes hold a committed entry equal to that of `id` at `index`. */
  committedOn(index: number): string[] {
    return this.opts.ids.filter(
      (id) => (this.core(id)?.log.committed ?? 0) >= index && this.sim.isUp(id),
    );
  }

  /** Operations acknowledged to clients (for the final "nothing acked is lost" check). */
  readonly acked: { clientId: string; seq: number; op: KvOp }[] = [];

  now(): number {
    return this.sim.clock.now();
  }

  /** A promise resolved after `ms` of virtual time (on the global clock: survives crashes). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.sim.clock.setTimer(ms, resolve));
  }

  /** Rejects with a Timeout ProposeError if `p` has not settled within `ms` virtual ms. */
  within<T>(p: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = this.sim.clock.setTimer(ms, () =>
        reject(new ProposeError('Timeout', `no answer within ${ms} ms`)),
      );
      p.then(
        (v) => {
          t.cancel();
          resolve(v);
        },
        (e: unknown) => {
          t.cancel();
          reject(e);
        },
      );
    });
  }

  pickTarget(): string {
    const l = this.leaders()[0];
    if (l) return l;
    const up = this.opts.ids.filter((id) => this.sim.isUp(id));
    return this.sim.random.pick(up.length > 0 ? up : this.opts.ids);
  }

  /** Runs the simulation until every promise settled (or `timeout` virtual ms). */
  async drive<T>(ps: Promise<T>[], timeout: number): Promise<boolean> {
    let pending = ps.length;
    for (const p of ps)
      p.then(
        () => pending--,
        () => pending--,
      );
    return this.sim.runUntil(() => pending === 0, { timeout });
  }
}

/**
 * A client process: issues operations one at a time against whichever node it believes
 * leads, retrying on errors with the same (clientId, seq) — sessions make retries safe.
 * Records invoke/ok/fail/info events. Clients never drive the simulation: they wait on
 * promises and virtual-time sleeps, while one driver runs the simulation.
 */
export class KvClient {
  private seq = 0;
  private witnessSeq = 0;
  /** Read attempts witnessed. */
  witnessed = 0;
  private target: string;
  constructor(
    readonly cluster: RaftCluster,
    readonly process: number,
  ) {
    this.target = cluster.opts.ids[process % cluster.opts.ids.length] as string;
  }

  /** Runs one operation to completion (recording it); never throws. */
  async run(op: KvOp, deadlineMs = 3000): Promise<'ok' | 'fail' | 'info'> {
    const c = this.cluster;
    const clientId = `c${this.process}`;
    const seq = ++this.seq;
    const f = op.f;
    const key = 'k' in op ? op.k : undefined;
    const value = op.f === 'write' ? op.v : op.f === 'cas' ? [op.from, op.to] : null;
    c.history.push({ process: this.process, type: 'invoke', f, key, value, time: c.now() });
    const end = c.now() + deadlineMs;
    let maybeApplied = false;
    while (c.now() < end) {
      const node = c.nodes.get(this.target);
      if (!node || !c.sim.isUp(this.target) || !node.started) {
        this.target = c.pickTarget();
        await c.sleep(20);
        continue;
      }
      try {
        let result: unknown;
        if (op.f === 'read') {
          // linearizable read: ReadIndex, then the local state machine. Half the attempts are
          // witnessed (docs/raft.md): witnesses to the other nodes, each delayed 0–8 ms (so
          // they reach their node before or after the read reaches the leader) or lost.
          let witness: string | undefined;
          if (c.sim.random.chance(0.5)) {
            const key = `c${this.process}.${seq}.${this.witnessSeq++}`;
            witness = key;
            this.witnessed++;
            for (const id of c.opts.ids) {
              if (id === this.target || c.sim.random.chance(0.05)) continue;
              c.sim.clock.setTimer(c.sim.random.int(9), () => {
                const n = c.nodes.get(id);
                if (n?.started && c.sim.isUp(id)) n.witnessRead(key);
              });
            }
          }
          await c.within(
            node.readBarrier(witness ? { timeoutMs: 300, witness } : { timeoutMs: 300 }),
            400,
          );
          result = c.machines.get(this.target)?.data.get(op.k) ?? null;
        } else {
          const r = await c.within(node.propose({ clientId, seq, op }, { timeoutMs: 500 }), 600);
          result = r.result;
        }
        c.history.push({
          process: this.process,
          type: 'ok',
          f,
          key,
          value: op.f === 'write' ? op.v : result,
          time: c.now(),
        });
        if (op.f !== 'read') c.acked.push({ clientId, seq, op });
        return 'ok';
      } catch (e) {
        if (!(e instanceof ProposeError) || e.indeterminate) maybeApplied = true;
        const hint = e instanceof ProposeError ? e.leaderHint : undefined;
        this.target = hint && c.opts.ids.includes(hint) ? hint : c.pickTarget();
        await c.sleep(10 + c.sim.random.int(30));
      }
    }
    const type = maybeApplied && op.f !== 'read' ? 'info' : 'fail';
    c.history.push({ process: this.process, type, f, key, time: c.now(), error: 'timeout' });
    return type;
  }
}
