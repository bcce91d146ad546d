/**
 * An in-process cluster of replica nodes on a deterministic virtual network: seeded
 * delays, loss, duplication, partitions, crashes with restart from the node's store, and
 * per-node clock skew. Every message is msgpack-encoded and decoded on the way, as on a
 * real wire. Used by the tests and the benchmark to drive many nodes quickly; the actor
 * shell (replica.ts) runs the same ReplicaNode inside the actor runtime.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { Random } from '../../lib/random.js';
import type {
  ErrorReply,
  GetRequest,
  GetResult,
  PeerMessage,
  WriteRequest,
  WriteResult,
} from './messages.js';
import { type ReplicaEvent, ReplicaNode, type ReplicaOptions } from './replica-node.js';
import { MemoryKeyStore } from './store.js';

export interface LocalClusterOptions {
  readonly seed: number;
  readonly nodes: readonly string[];
  readonly replica?: ReplicaOptions | ((node: string) => ReplicaOptions);
  /** One-way delay range in ms. Default [1, 5]. */
  readonly delay?: readonly [number, number];
  readonly loss?: number;
  readonly duplicate?: number;
  /** Physical clock offset per node (ms), for HLC skew experiments. */
  readonly skew?: Readonly<Record<string, number>>;
  /**
   * Fault injection for negative controls: rewrites every peer message on the wire (e.g. a
   * broken encoder that drops an OR-set's causal context). Applied once per send, before loss.
   */
  readonly mutate?: (msg: PeerMessage, from: string, to: string) => PeerMessage;
}

export interface PendingOp<T> {
  done: boolean;
  ok?: T;
  err?: ErrorReply;
  /** Virtual time the operation was invoked / completed. */
  readonly invokedAt: number;
  completedAt?: number;
}

interface QueuedEvent {
  at: number;
  seq: number;
  node: string;
  /** Encoded peer message, or undefined for a wake-up. */
  bytes?: Uint8Array;
  gen: number;
}

const EPOCH = 1_700_000_000_000;

export class LocalCluster {
  time = 0;
  readonly random: Random;
  readonly stores = new Map<string, MemoryKeyStore>();
  readonly replicas = new Map<string, ReplicaNode>();
  readonly down = new Set<string>();
  readonly events: Array<ReplicaEvent & { node: string; at: number }> = [];
  loss: number;
  duplicate: number;
  delay: readonly [number, number];
  messages = 0;
  /** Called for every peer message sent (delivered or not), e.g. to count traffic by type. */
  onSend: ((from: string, to: string, msg: PeerMessage, delivered: boolean) => void) | undefined;
  private groups: ReadonlyArray<ReadonlySet<string>> | undefined;
  private queue: QueuedEvent[] = [];
  private seq = 0;
  private readonly wakeAt = new Map<string, number>();
  private readonly gen = new Map<string, number>();
  recordEvents = false;
  private readonly chains = new Map<string, Promise<void>>();

  /** Runs `fn` on `node` after everything already queued there: one handler at a time, like a mailbox. */
  private exec(node: string, fn: () => Promise<void>): Promise<void> {
    const p = (this.chains.get(node) ?? Promise.resolve()).then(fn);
    this.chains.set(
      node,
      p.catch(() => {}),
    );
    return p;
  }

  constructor(readonly options: LocalClusterOptions) {
    this.random = new Random(options.seed);
    this.loss = options.loss ?? 0;
    this.duplicate = options.duplicate ?? 0;
    this.delay = options.delay ?? [1, 5];
    for (const id of options.nodes) this.stores.set(id, new MemoryKeyStore());
  }

  private replicaOptions(node: string, seeds: readonly string[]): ReplicaOptions {
    const r = this.options.replica;
    const base = typeof r === 'function' ? r(node) : (r ?? {});
    const skew = this.options.skew?.[node] ?? 0;
    return { physicalClock: () => EPOCH + this.time + skew, ...base, seeds };
  }

  /** Starts `node` with its store (a restart keeps what the store holds). */
  async startNode(node: string, seeds: readonly string[]): Promise<ReplicaNode> {
    const store = this.stores.get(node) ?? new MemoryKeyStore();
    this.stores.set(node, store);
    const gen = (this.gen.get(node) ?? 0) + 1;
    this.gen.set(node, gen);
    const rnd = this.random.fork();
    const replica = new ReplicaNode(
      {
        self: node,
        now: () => this.time,
        wallNow: () => EPOCH + this.time,
        random: rnd,
        send: (to, msg) => this.send(node, to, msg),
        emit: (e) => {
          if (this.recordEvents) this.events.push({ ...e, node, at: this.time });
        },
      },
      store,
      this.replicaOptions(node, seeds),
    );
    this.replicas.set(node, replica);
    this.down.delete(node);
    this.wakeAt.delete(node);
    await replica.start();
    this.scheduleWake(node);
    return replica;
  }

  /** Boots every node: the first alone, the others through it as their only seed. */
  async boot(timeoutMs = 60_000): Promise<void> {
    const [first, ...rest] = this.options.nodes;
    if (first === undefined) return;
    await this.startNode(first, []);
    for (const id of rest) await this.startNode(id, [first]);
    const ok = await this.runUntil(() => this.membershipStable(), timeoutMs);
    if (!ok)
      throw new Error(`cluster (seed ${this.options.seed}) did not stabilise in ${timeoutMs} ms`);
  }

  /** Every live node sees every live node alive and has the same ring. */
  membershipStable(): boolean {
    const live = [...this.replicas.keys()].filter((n) => !this.down.has(n));
    const fp = new Set<string>();
    for (const a of live) {
      const r = this.replicas.get(a) as ReplicaNode;
      if (!r.ready) return false;
      fp.add(r.ringFingerprint);
      for (const b of live) if (b !== a && r.swim.stateOf(b) !== 'alive') return false;
    }
    return fp.size === 1;
  }

  crash(node: string): void {
    this.replicas.get(node)?.stop();
    this.down.add(node);
    this.gen.set(node, (this.gen.get(node) ?? 0) + 1); // drops its pending wake-ups
  }

  async restart(node: string): Promise<ReplicaNode> {
    const seeds = this.options.nodes.filter((n) => n !== node);
    return this.startNode(node, seeds);
  }

  partition(groups: ReadonlyArray<readonly string[]>): void {
    this.groups = groups.map((g) => new Set(g));
  }

  heal(): void {
    this.groups = undefined;
  }

  connected(a: string, b: string): boolean {
    if (!this.groups) return true;
    return this.groups.some((g) => g.has(a) && g.has(b));
  }

  private send(from: string, to: string, original: PeerMessage): void {
    this.messages++;
    const msg = this.options.mutate ? this.options.mutate(original, from, to) : original;
    if (!this.connected(from, to) || this.random.chance(this.loss)) {
      this.onSend?.(from, to, msg, false);
      return;
    }
    this.onSend?.(from, to, msg, true);
    const bytes = encodeValue(msg);
    const copies = this.random.chance(this.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.time + this.random.between(this.delay[0], this.delay[1]);
      this.push({ at, seq: ++this.seq, node: to, bytes, gen: this.gen.get(to) ?? 0 });
    }
  }

  private push(e: QueuedEvent): void {
    // binary insertion keeps (at, seq) order
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.queue[mid] as QueuedEvent;
      if (m.at < e.at || (m.at === e.at && m.seq < e.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, e);
  }

  private scheduleWake(node: string): void {
    const r = this.replicas.get(node);
    if (!r || this.down.has(node)) return;
    const at = Math.max(this.time, r.nextWake());
    const cur = this.wakeAt.get(node);
    if (cur !== undefined && cur <= at && cur >= this.time) return;
    this.wakeAt.set(node, at);
    this.push({ at, seq: ++this.seq, node, gen: this.gen.get(node) ?? 0 });
  }

  /** Processes the next event; false when none is due before `until`. */
  private async step(until: number): Promise<boolean> {
    const e = this.queue[0];
    if (!e || e.at > until) return false;
    this.queue.shift();
    this.time = Math.max(this.time, e.at);
    const r = this.replicas.get(e.node);
    if (!r || this.down.has(e.node)) return true;
    if (e.bytes === undefined) {
      if ((this.gen.get(e.node) ?? 0) !== e.gen || this.wakeAt.get(e.node) !== e.at) return true;
      this.wakeAt.delete(e.node);
      await this.exec(e.node, () => r.wake());
    } else {
      const bytes = e.bytes;
      await this.exec(e.node, () => r.onPeer(decodeValue(bytes) as PeerMessage));
    }
    this.scheduleWake(e.node);
    return true;
  }

  async runFor(ms: number): Promise<void> {
    const end = this.time + ms;
    while (await this.step(end)) {}
    this.time = end;
  }

  /** Runs until `pred` holds (checked after every event); false on timeout. */
  async runUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = this.time + timeoutMs;
    if (pred()) return true;
    while (await this.step(end)) if (pred()) return true;
    this.time = end;
    return pred();
  }

  private track<T>(
    node: string,
    run: (r: ReplicaNode, respond: (o: { ok: T } | { err: ErrorReply }) => void) => Promise<void>,
  ): PendingOp<T> {
    const op: PendingOp<T> = { done: false, invokedAt: this.time };
    const r = this.replicas.get(node);
    if (!r || this.down.has(node)) {
      op.done = true;
      op.err = { code: 'SYNOD_ERR_NOT_READY', message: `${node} is down` };
      op.completedAt = this.time;
      return op;
    }
    const respond = (o: { ok: T } | { err: ErrorReply }) => {
      if (op.done) return;
      op.done = true;
      op.completedAt = this.time;
      if ('ok' in o) op.ok = o.ok;
      else op.err = o.err;
    };
    void this.exec(node, () => run(r, respond)).then(() => this.scheduleWake(node));
    return op;
  }

  write(node: string, req: WriteRequest): PendingOp<WriteResult> {
    const msg = decodeValue(encodeValue(req)) as WriteRequest;
    return this.track(node, (r, respond) => r.write(msg, respond));
  }

  get(node: string, req: GetRequest): PendingOp<GetResult> {
    const msg = decodeValue(encodeValue(req)) as GetRequest;
    return this.track(node, (r, respond) => r.get(msg, respond));
  }

  /** Invokes and runs the cluster until the operation completes. */
  async call<T>(op: PendingOp<T>, timeoutMs = 30_000): Promise<PendingOp<T>> {
    await this.runUntil(() => op.done, timeoutMs);
    return op;
  }

  /**
   * Convergence check: every key range has identical Merkle roots on all its live
   * replicas, and no hints are pending. Returns the number of differing (range, node)
   * pairs (0 when converged).
   */
  divergence(): number {
    const live = [...this.replicas].filter(([n]) => !this.down.has(n));
    const byFingerprint = new Set(live.map(([, r]) => r.ringFingerprint));
    if (byFingerprint.size > 1) return Number.POSITIVE_INFINITY;
    const roots = new Map<number, Set<string>>();
    for (const [, r] of live) {
      for (const [seg, root] of r.segmentRoots()) {
        let s = roots.get(seg);
        if (!s) {
          s = new Set();
          roots.set(seg, s);
        }
        s.add(root);
      }
    }
    let diff = 0;
    for (const s of roots.values()) if (s.size > 1) diff += s.size - 1;
    for (const [, r] of live) diff += r.hintCount();
    return diff;
  }
}
