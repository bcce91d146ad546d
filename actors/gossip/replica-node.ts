/**
 * The logic of one replica of the leaderless store, independent of the actor runtime:
 * the actor shell (replica.ts) feeds it peer messages, client requests and wake-ups, and
 * gives it a way to send. Everything here is deterministic given the injected clock,
 * random source and message order.
 *
 * - Placement: a consistent-hash ring over the SWIM members that have not left (a dead
 *   member stays on the ring; its keys are served by fallbacks with hints meanwhile).
 * - Writes: coordinated by a live replica from the key's preference list (any node
 *   forwards to one), which mints the version (dot / HLC / CRDT delta), persists it, and
 *   replicates to the first N live nodes of the ring walk: a fallback standing in for a
 *   down preferred replica keeps the data as a *hint* and hands it over when the replica
 *   returns (sloppy quorum, hinted handoff). Success after W acknowledgements.
 * - Reads: from the same N nodes, answered after R replies (for `session`, after enough
 *   replies to cover the client's causal context); every replica that answered with an
 *   older version is repaired with the merge (read repair).
 * - Anti-entropy: periodically, with one random peer, the Merkle roots of every key range
 *   (ring segment) both replicate are compared, then leaves, then keys, and the differing
 *   records are exchanged both ways and merged.
 */
import type { Random } from '../../lib/random.js';
import { GossipError, type GossipErrorCode } from './errors.js';
import { canonical, type Digest, digest, digestHex } from './hash.js';
import { HybridLogicalClock, isHlcTimestamp } from './hlc.js';
import { MerkleIndex } from './merkle.js';
import type {
  ErrorReply,
  GetRequest,
  GetResult,
  PeerMessage,
  Quorum,
  WriteRequest,
  WriteResult,
} from './messages.js';
import {
  applyOp,
  type CausalToken,
  covers,
  decodeContext,
  dvvContextOf,
  emptyRecord,
  encodeContext,
  isKeyRecord,
  KEY_TYPES,
  type KeyRecord,
  type KeyType,
  mergeMaybe,
  mergeRecords,
  readValue,
  recordDigest,
  recordsEqual,
  tokenOf,
} from './record.js';
import { HashRing } from './ring.js';
import type { KeyStore, StoreWrite } from './store.js';
import { SwimCore, type SwimEvent, type SwimOptions, type SwimOutput } from './swim.js';

export interface ReplicaIo {
  /** This node's id. */
  readonly self: string;
  /** Monotonic ms (deadlines, SWIM periods). */
  now(): number;
  /** Wall-clock ms (the physical part of HLC timestamps). */
  wallNow(): number;
  readonly random: Random;
  /** Sends to the replica on node `to`. */
  send(to: string, msg: PeerMessage): void;
  /** Publishes a domain event (membership, repair, handoff). */
  emit(event: ReplicaEvent): void;
}

export interface ReplicaEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface KeyTypeRule {
  readonly prefix: string;
  readonly type: KeyType;
}

export interface ReplicaOptions {
  /** Replicas per key. Default 3. */
  readonly n?: number;
  /** Virtual nodes per member. Default 32. */
  readonly vnodes?: number;
  /** Node ids to join through (one suffices). Empty/absent for the first node. */
  readonly seeds?: readonly string[];
  /**
   * Key types by prefix (longest match wins); keys matching none are `dvv` registers.
   * Every node of a keyspace must use the same rules.
   */
  readonly keyTypes?: readonly KeyTypeRule[];
  readonly swim?: Omit<SwimOptions, 'self' | 'seeds' | 'incarnation'>;
  /** Anti-entropy round interval. Default 1000 ms. 0 disables anti-entropy. */
  readonly antiEntropyIntervalMs?: number;
  /** Client request timeout. Default 2000 ms. */
  readonly requestTimeoutMs?: number;
  /** Hinted handoff retry interval. Default 500 ms. */
  readonly hintIntervalMs?: number;
  /** Merkle tree depth per key range (2^depth leaves). Default 4. */
  readonly merkleDepth?: number;
  /** Physical clock for HLC timestamps (tests inject skew). Default: io.wallNow. */
  readonly physicalClock?: () => number;
  /** HLC: refuse remote timestamps further ahead than this. Default 60 000 ms. */
  readonly maxDriftMs?: number;
  /** Read repair on reads that see divergence. Default true. */
  readonly readRepair?: boolean;
  /** Default W and R when a request names none. Default 'quorum'. */
  readonly defaultW?: Quorum;
  readonly defaultR?: Quorum;
}

export type Respond<T> = (outcome: { ok: T } | { err: ErrorReply }) => void;

interface Target {
  readonly node: string;
  readonly hintFor?: string;
}

interface PendingWrite {
  readonly key: string;
  readonly w: number;
  readonly targets: readonly Target[];
  readonly acks: Set<string>;
  readonly delta: KeyRecord;
  readonly result: Omit<WriteResult, 'acks'>;
  respond: Respond<WriteResult> | undefined;
  readonly deadline: number;
  nextRetry: number;
}

interface PendingRead {
  readonly key: string;
  readonly type: KeyType;
  readonly r: number;
  readonly targets: readonly Target[];
  readonly replies: Map<string, KeyRecord | undefined>;
  readonly token: CausalToken | undefined;
  respond: Respond<GetResult> | undefined;
  readonly deadline: number;
  nextRetry: number;
}

interface PendingForward {
  respond: Respond<WriteResult>;
  readonly deadline: number;
}

export interface ReplicaStats {
  writesCoordinated: number;
  writesForwarded: number;
  reads: number;
  readRepairs: number;
  hintsStored: number;
  hintsDelivered: number;
  antiEntropyRounds: number;
  antiEntropyKeysRepaired: number;
  handoffKeys: number;
  peerMessagesSent: number;
  badMessages: number;
}

export interface ReplicaSnapshot {
  readonly node: string;
  readonly ready: boolean;
  readonly members: ReturnType<SwimCore['memberList']>;
  readonly ringMembers: string[];
  readonly keys: number;
  readonly hints: number;
  readonly stats: Readonly<ReplicaStats>;
}

const MAX_KEY_LENGTH = 1024;
const HINT_BATCH = 64;

export function parseQuorum(q: Quorum | undefined, n: number, fallback: Quorum): number {
  const v = q ?? fallback;
  if (v === 'one') return 1;
  if (v === 'quorum') return Math.floor(n / 2) + 1;
  if (v === 'all') return n;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= n) return v;
  throw new GossipError(
    'SYNOD_ERR_BAD_REQUEST',
    `W/R must be "one", "quorum", "all" or an integer in [1, ${n}], got ${JSON.stringify(v)}`,
  );
}

/** What an OR-set operation minted (`dot`) or had observed when it removed (`observed`). */
function orSetDots(
  record: KeyRecord,
  delta: KeyRecord,
  op: WriteRequest['op'],
): Pick<WriteResult, 'dot' | 'observed'> {
  if (delta.t !== 'orset' || record.t !== 'orset') return {};
  if (op.op === 'add') {
    const dot = delta.s.e[0]?.[1][0];
    return dot === undefined ? {} : { dot: [dot[0], dot[1]] };
  }
  // the record after the remove: its context is everything seen; the remove added nothing to it
  if (op.op === 'remove') return { observed: record.s.cc };
  return {};
}

function errOf(e: unknown): ErrorReply {
  if (e instanceof GossipError) return { code: e.code, message: e.message };
  return { code: 'SYNOD_ERR_BAD_REQUEST', message: e instanceof Error ? e.message : String(e) };
}

function fail(code: GossipErrorCode, message: string): { err: ErrorReply } {
  return { err: { code, message } };
}

export class ReplicaNode {
  readonly self: string;
  readonly n: number;
  /** Membership; replaced in `start` once the stored incarnation is known. */
  swim: SwimCore;
  readonly stats: ReplicaStats = {
    writesCoordinated: 0,
    writesForwarded: 0,
    reads: 0,
    readRepairs: 0,
    hintsStored: 0,
    hintsDelivered: 0,
    antiEntropyRounds: 0,
    antiEntropyKeysRepaired: 0,
    handoffKeys: 0,
    peerMessagesSent: 0,
    badMessages: 0,
  };

  private readonly data = new Map<string, KeyRecord>();
  private readonly hints = new Map<string, Map<string, KeyRecord>>();
  private ring: HashRing;
  private ringVersion = '';
  /** Segment → its replicas, for the segments this node replicates. */
  private mySegments = new Map<number, string[]>();
  private readonly index: MerkleIndex;
  private readonly hlc: HybridLogicalClock;
  private readonly writes = new Map<string, PendingWrite>();
  private readonly reads = new Map<string, PendingRead>();
  private readonly forwards = new Map<string, PendingForward>();
  /** Forwarded writes already taken (sender + request id → forget after). */
  private readonly seenForwards = new Map<string, number>();
  private ridCounter = 0;
  private nextAeAt = 0;
  private nextHintAt = 0;
  private savedIncarnation = 0;
  private started = false;
  private readonly keyTypes: readonly KeyTypeRule[];
  private readonly aeInterval: number;
  private readonly timeout: number;
  private readonly hintInterval: number;

  constructor(
    private readonly io: ReplicaIo,
    private readonly store: KeyStore,
    private readonly options: ReplicaOptions = {},
  ) {
    this.self = io.self;
    this.n = options.n ?? 3;
    if (!Number.isInteger(this.n) || this.n < 1)
      throw new RangeError(`n must be ≥ 1, got ${this.n}`);
    this.keyTypes = [...(options.keyTypes ?? [])].sort((a, b) => b.prefix.length - a.prefix.length);
    for (const r of this.keyTypes) {
      if (!KEY_TYPES.includes(r.type)) throw new RangeError(`unknown key type "${String(r.type)}"`);
    }
    this.aeInterval = options.antiEntropyIntervalMs ?? 1000;
    this.timeout = options.requestTimeoutMs ?? 2000;
    this.hintInterval = options.hintIntervalMs ?? 500;
    this.index = new MerkleIndex(options.merkleDepth ?? 4);
    this.hlc = new HybridLogicalClock(this.self, {
      physical: options.physicalClock ?? (() => io.wallNow()),
      maxDriftMs: options.maxDriftMs ?? 60_000,
    });
    this.swim = this.makeSwim(0);
    this.ring = new HashRing([this.self], options.vnodes ?? 32);
  }

  /** Loads durable state and starts membership. */
  async start(): Promise<void> {
    const image = await this.store.load();
    for (const [key, rec] of image.data) this.data.set(key, rec);
    for (const [target, key, rec] of image.hints) this.hintMap(target).set(key, rec);
    // a restarted node starts above the incarnation it had, so its "alive" beats old news
    const inc = typeof image.meta.incarnation === 'number' ? image.meta.incarnation + 1 : 0;
    this.swim = this.makeSwim(inc);
    this.savedIncarnation = this.swim.currentIncarnation;
    await this.store.saveMeta('incarnation', this.savedIncarnation);
    this.rebuildRing();
    const now = this.io.now();
    this.nextAeAt = now + this.io.random.int(Math.max(1, this.aeInterval));
    this.nextHintAt = now + this.hintInterval;
    this.sendSwim(this.swim.start(now));
    this.started = true;
    this.afterSwim();
  }

  private makeSwim(incarnation: number): SwimCore {
    return new SwimCore(
      { ...this.options.swim, self: this.self, seeds: this.options.seeds ?? [], incarnation },
      this.io.random.fork(),
    );
  }

  get ready(): boolean {
    return this.started && this.swim.hasJoined;
  }

  keyTypeOf(key: string): KeyType {
    for (const r of this.keyTypes) if (key.startsWith(r.prefix)) return r.type;
    return 'dvv';
  }

  /** Effective replication factor (at most the ring size). */
  get nEff(): number {
    return Math.max(1, Math.min(this.n, this.ring.size));
  }

  // ---------------------------------------------------------------- time

  nextWake(): number {
    let t = Math.min(this.swim.nextDeadline(), this.nextHintAt);
    if (this.aeInterval > 0) t = Math.min(t, this.nextAeAt);
    for (const p of this.writes.values()) t = Math.min(t, p.deadline, p.nextRetry);
    for (const p of this.reads.values()) t = Math.min(t, p.deadline, p.nextRetry);
    for (const p of this.forwards.values()) t = Math.min(t, p.deadline);
    return t;
  }

  async wake(): Promise<void> {
    if (!this.started) return;
    const now = this.io.now();
    this.sendSwim(this.swim.tick(now));
    this.afterSwim();
    if (this.swim.currentIncarnation > this.savedIncarnation) {
      this.savedIncarnation = this.swim.currentIncarnation;
      await this.store.saveMeta('incarnation', this.savedIncarnation);
    }
    await this.expireRequests(now);
    if (now >= this.nextHintAt) {
      this.nextHintAt = now + this.hintInterval;
      this.deliverHints();
    }
    if (this.aeInterval > 0 && now >= this.nextAeAt) {
      this.nextAeAt = now + this.aeInterval;
      this.antiEntropyRound();
    }
  }

  // ---------------------------------------------------------------- membership

  private sendSwim(outs: SwimOutput[]): void {
    for (const o of outs) this.send(o.to, { type: 'swim', from: this.self, m: o.msg });
  }

  private afterSwim(): void {
    const events: SwimEvent[] = this.swim.takeEvents();
    if (events.length === 0) return;
    for (const e of events) this.io.emit({ ...e });
    this.rebuildRing();
  }

  private up(node: string): boolean {
    return node === this.self || this.swim.isUp(node);
  }

  private rebuildRing(): void {
    const members = this.swim
      .memberList()
      .filter((m) => m.state !== 'left')
      .map((m) => m.id);
    const version = `${this.ring.vnodes}:${digestHex(digest(members.join(',')))}`;
    if (version === this.ringVersion) return;
    const before = this.ring;
    this.ring = new HashRing(members, this.ring.vnodes);
    this.ringVersion = version;
    this.mySegments = new Map();
    for (let s = 0; s < this.ring.segmentCount; s++) {
      const reps = this.ring.walkSegment(s, this.nEff);
      if (reps.includes(this.self)) this.mySegments.set(s, reps);
    }
    for (const key of this.data.keys()) {
      this.index.set(
        key,
        this.ring.segmentOf(key),
        this.index.digestOf(key) ?? recordDigest(key, this.data.get(key) as KeyRecord),
      );
    }
    this.io.emit({ type: 'ring-changed', members: this.ring.members() });
    if (before.size > 0) this.handoff();
  }

  /**
   * After a ring change, pushes every key this node holds but no longer replicates to the
   * key's replicas. The node keeps its copy: a replica only mints a dot for a key when it
   * holds all its earlier dots for that key, so dropping the copy could let it reuse one
   * if it ever owns the key again.
   */
  private handoff(): void {
    for (const [key, rec] of this.data) {
      const pref = this.ring.preferenceList(key, this.nEff);
      if (pref.includes(this.self)) continue;
      for (const p of pref) {
        if (!this.up(p)) continue;
        this.send(p, { type: 'rep-write', from: this.self, rid: '', key, rec });
        this.stats.handoffKeys++;
      }
    }
  }

  /** Graceful leave: announces it, hands every key over, stops answering. */
  leave(): void {
    this.sendSwim(this.swim.leave(this.io.now()));
    this.afterSwim();
  }

  // ---------------------------------------------------------------- placement

  /** The first N live nodes of the ring walk, with hints for down preferred replicas. */
  placement(key: string): { preferred: string[]; targets: Target[] } {
    const walk = this.ring.walk(key);
    const preferred = walk.slice(0, this.nEff);
    const fallbacks = walk.slice(this.nEff).filter((x) => this.up(x));
    const targets: Target[] = [];
    for (const p of preferred) {
      if (this.up(p)) targets.push({ node: p });
      else {
        const f = fallbacks.shift();
        if (f !== undefined) targets.push({ node: f, hintFor: p });
      }
    }
    return { preferred, targets };
  }

  // ---------------------------------------------------------------- client requests

  private checkRequest(key: unknown, level: unknown): { err: ErrorReply } | undefined {
    if (!this.ready)
      return fail('SYNOD_ERR_NOT_READY', `replica ${this.self} has not joined the cluster yet`);
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      return fail(
        'SYNOD_ERR_BAD_REQUEST',
        `key must be a string of 1..${MAX_KEY_LENGTH} characters`,
      );
    }
    if (level === 'strong') {
      return fail(
        'SYNOD_ERR_STRONG_UNSUPPORTED',
        'level "strong" needs a consensus keyspace (Raft or Paxos); this keyspace is leaderless and offers "eventual" and "session"',
      );
    }
    if (level !== undefined && level !== 'eventual' && level !== 'session') {
      return fail('SYNOD_ERR_BAD_REQUEST', `unknown level ${JSON.stringify(level)}`);
    }
    return undefined;
  }

  private validOp(op: unknown): boolean {
    if (op === null || typeof op !== 'object') return false;
    const o = op as Record<string, unknown>;
    switch (o.op) {
      case 'put':
        return 'value' in o;
      case 'delete':
        return true;
      case 'increment':
        return typeof o.by === 'number' && Number.isSafeInteger(o.by);
      case 'add':
      case 'remove':
        return typeof o.element === 'string';
      default:
        return false;
    }
  }

  /**
   * A client write. `forwarded`: it came from another node that thought this one should
   * coordinate; it is never forwarded again (two nodes whose ring views differ for a
   * moment must not bounce it between them).
   */
  async write(req: WriteRequest, respond: Respond<WriteResult>, forwarded = false): Promise<void> {
    const bad = this.checkRequest(req.key, req.level);
    if (bad) return respond(bad);
    if (!this.validOp(req.op)) return respond(fail('SYNOD_ERR_BAD_REQUEST', 'malformed operation'));
    const type = this.keyTypeOf(req.key);
    let w: number;
    let token: CausalToken | undefined;
    try {
      w = parseQuorum(req.w, this.nEff, this.options.defaultW ?? 'quorum');
      token = req.context === undefined ? undefined : decodeContext(req.context);
    } catch (e) {
      return respond({ err: errOf(e) });
    }
    if (token !== undefined && token.t !== type) {
      return respond(
        fail('SYNOD_ERR_BAD_CONTEXT', `context is for a "${token.t}" key, this key is "${type}"`),
      );
    }
    const { preferred, targets } = this.placement(req.key);
    if (targets.length < w) {
      return respond(
        fail(
          'SYNOD_ERR_UNAVAILABLE',
          `W=${w} but only ${targets.length} live nodes can take the key`,
        ),
      );
    }
    if (!preferred.includes(this.self)) {
      if (forwarded) {
        return respond(
          fail(
            'SYNOD_ERR_UNAVAILABLE',
            `ring views differ: ${this.self} does not replicate "${req.key}"; retry`,
          ),
        );
      }
      const coord = preferred.find((p) => this.up(p));
      if (coord === undefined) {
        return respond(
          fail(
            'SYNOD_ERR_UNAVAILABLE',
            `no preferred replica of "${req.key}" is up to coordinate the write`,
          ),
        );
      }
      const rid = this.rid();
      this.forwards.set(rid, { respond, deadline: this.io.now() + this.timeout * 1.5 });
      this.stats.writesForwarded++;
      this.send(coord, { type: 'fwd-write', from: this.self, rid, req });
      return;
    }
    let applied: { record: KeyRecord; delta: KeyRecord };
    try {
      applied = applyOp(this.data.get(req.key), type, req.op, {
        id: this.self,
        hlc: this.hlc,
        context: dvvContextOf(token),
      });
    } catch (e) {
      return respond({ err: errOf(e) });
    }
    await this.putData([[req.key, applied.record]]);
    this.stats.writesCoordinated++;
    const now = this.io.now();
    const remote = targets.filter((t) => t.node !== this.self);
    const p: PendingWrite = {
      key: req.key,
      w,
      targets: remote,
      acks: new Set([this.self]),
      delta: applied.delta,
      result: {
        key: req.key,
        type,
        context: encodeContext(tokenOf(applied.delta)),
        hinted: remote.filter((t) => t.hintFor !== undefined).length,
        ...orSetDots(applied.record, applied.delta, req.op),
      },
      respond,
      deadline: now + this.timeout,
      nextRetry: now + this.timeout / 4,
    };
    const rid = this.rid();
    this.writes.set(rid, p);
    this.sendWrites(rid, p);
    this.checkWrite(rid, p);
  }

  private sendWrites(rid: string, p: PendingWrite): void {
    for (const t of p.targets) {
      if (p.acks.has(t.node)) continue;
      const msg: PeerMessage = t.hintFor
        ? { type: 'rep-write', from: this.self, rid, key: p.key, rec: p.delta, hintFor: t.hintFor }
        : { type: 'rep-write', from: this.self, rid, key: p.key, rec: p.delta };
      this.send(t.node, msg);
    }
  }

  private checkWrite(rid: string, p: PendingWrite): void {
    if (p.respond && p.acks.size >= p.w) {
      p.respond({ ok: { ...p.result, acks: p.acks.size } });
      p.respond = undefined;
    }
    // keep re-sending to stragglers until everyone acked or the deadline passed
    if (p.acks.size >= p.targets.length + 1) this.writes.delete(rid);
  }

  async get(req: GetRequest, respond: Respond<GetResult>): Promise<void> {
    const bad = this.checkRequest(req.key, req.level);
    if (bad) return respond(bad);
    const type = this.keyTypeOf(req.key);
    let r: number;
    let token: CausalToken | undefined;
    try {
      r = parseQuorum(req.r, this.nEff, this.options.defaultR ?? 'quorum');
      if (req.level === 'session' && req.context !== undefined) token = decodeContext(req.context);
    } catch (e) {
      return respond({ err: errOf(e) });
    }
    const { targets } = this.placement(req.key);
    if (targets.length < r) {
      return respond(
        fail('SYNOD_ERR_UNAVAILABLE', `R=${r} but only ${targets.length} live nodes hold the key`),
      );
    }
    this.stats.reads++;
    const now = this.io.now();
    const rid = this.rid();
    const p: PendingRead = {
      key: req.key,
      type,
      r,
      targets,
      replies: new Map(),
      token,
      respond,
      deadline: now + this.timeout,
      nextRetry: now + this.timeout / 4,
    };
    this.reads.set(rid, p);
    for (const t of targets) {
      if (t.node === this.self) p.replies.set(this.self, this.localRead(req.key));
      else this.send(t.node, { type: 'rep-read', from: this.self, rid, key: req.key });
    }
    await this.checkRead(rid, p);
  }

  private localRead(key: string): KeyRecord | undefined {
    let rec = this.data.get(key);
    for (const m of this.hints.values()) rec = mergeMaybe(rec, m.get(key));
    return rec;
  }

  private merged(p: PendingRead): KeyRecord | undefined {
    let rec: KeyRecord | undefined;
    for (const x of p.replies.values()) rec = mergeMaybe(rec, x);
    return rec;
  }

  private answerRead(p: PendingRead, rec: KeyRecord | undefined): void {
    if (!p.respond) return;
    const v = readValue(rec, p.type);
    const result: GetResult = {
      key: p.key,
      type: p.type,
      values: v.values,
      absent: v.absent,
      context: encodeContext(tokenOf(rec ?? emptyRecord(p.type))),
      replies: p.replies.size,
      ...(v.value === undefined ? {} : { value: v.value }),
    };
    p.respond({ ok: result });
    p.respond = undefined;
  }

  private async checkRead(rid: string, p: PendingRead): Promise<void> {
    const rec = this.merged(p);
    if (p.respond && p.replies.size >= p.r && (p.token === undefined || covers(rec, p.token))) {
      this.answerRead(p, rec);
    }
    if (p.replies.size >= p.targets.length) await this.finishRead(rid, p, rec);
  }

  private async finishRead(rid: string, p: PendingRead, rec: KeyRecord | undefined): Promise<void> {
    this.reads.delete(rid);
    if (p.respond) {
      p.respond(
        p.replies.size >= p.r
          ? fail(
              'SYNOD_ERR_SESSION_STALE',
              `no replica reached has caught up with the session's context for "${p.key}"`,
            )
          : fail('SYNOD_ERR_TIMEOUT', `R=${p.r} but ${p.replies.size} replicas answered in time`),
      );
      p.respond = undefined;
    }
    if (rec === undefined || this.options.readRepair === false) return;
    const stale: string[] = [];
    const mergedText = canonical(rec);
    for (const t of p.targets) {
      if (!p.replies.has(t.node)) continue;
      if (canonical(p.replies.get(t.node) ?? null) === mergedText) continue;
      stale.push(t.node);
      if (t.node === this.self) {
        if (t.hintFor) await this.putHint(t.hintFor, p.key, rec);
        else await this.mergeData([[p.key, rec]]);
      } else {
        const msg: PeerMessage = t.hintFor
          ? { type: 'rep-write', from: this.self, rid: '', key: p.key, rec, hintFor: t.hintFor }
          : { type: 'rep-write', from: this.self, rid: '', key: p.key, rec };
        this.send(t.node, msg);
      }
    }
    if (stale.length > 0) {
      this.stats.readRepairs += stale.length;
      this.io.emit({ type: 'read-repair', key: p.key, nodes: stale });
    }
  }

  /** Awaited by `wake`: a read's repair must not run concurrently with later messages. */
  private async expireRequests(now: number): Promise<void> {
    for (const [rid, p] of this.writes) {
      if (now >= p.deadline) {
        this.writes.delete(rid);
        p.respond?.(
          fail(
            'SYNOD_ERR_TIMEOUT',
            `W=${p.w} but ${p.acks.size} acknowledgements arrived in time; the write is stored on those and will spread`,
          ),
        );
      } else if (now >= p.nextRetry) {
        p.nextRetry = now + this.timeout / 4;
        this.sendWrites(rid, p);
      }
    }
    for (const [rid, p] of this.reads) {
      if (now >= p.deadline) await this.finishRead(rid, p, this.merged(p));
      else if (now >= p.nextRetry) {
        p.nextRetry = now + this.timeout / 4;
        for (const t of p.targets) {
          if (!p.replies.has(t.node))
            this.send(t.node, { type: 'rep-read', from: this.self, rid, key: p.key });
        }
      }
    }
    for (const [k, until] of this.seenForwards) if (now >= until) this.seenForwards.delete(k);
    for (const [rid, p] of this.forwards) {
      if (now >= p.deadline) {
        this.forwards.delete(rid);
        p.respond(
          fail(
            'SYNOD_ERR_TIMEOUT',
            'the coordinating replica did not answer in time; the write may have been applied',
          ),
        );
      }
    }
  }

  // ---------------------------------------------------------------- peer messages

  async onPeer(msg: PeerMessage): Promise<void> {
    if (!this.started) return;
    try {
      await this.dispatch(msg);
    } catch (e) {
      this.stats.badMessages++;
      this.io.emit({
        type: 'bad-message',
        from: msg.from,
        messageType: msg.type,
        error: String(e),
      });
    }
  }

  private async dispatch(msg: PeerMessage): Promise<void> {
    if (typeof msg.from !== 'string') throw new Error('peer message without sender');
    switch (msg.type) {
      case 'swim':
        this.sendSwim(this.swim.receive(msg.from, msg.m, this.io.now()));
        this.afterSwim();
        return;
      case 'rep-write': {
        if (typeof msg.key !== 'string' || !isKeyRecord(msg.rec))
          throw new Error('malformed rep-write');
        this.observeClock(msg.rec);
        if (msg.hintFor !== undefined && msg.hintFor !== this.self)
          await this.putHint(msg.hintFor, msg.key, msg.rec);
        else await this.mergeData([[msg.key, msg.rec]]);
        if (msg.rid !== '') this.send(msg.from, { type: 'rep-ack', from: this.self, rid: msg.rid });
        return;
      }
      case 'rep-ack': {
        const p = this.writes.get(msg.rid);
        if (p?.targets.some((t) => t.node === msg.from)) {
          p.acks.add(msg.from);
          this.checkWrite(msg.rid, p);
        }
        return;
      }
      case 'rep-read':
        this.send(msg.from, {
          type: 'rep-read-ack',
          from: this.self,
          rid: msg.rid,
          rec: this.localRead(msg.key) ?? null,
        });
        return;
      case 'rep-read-ack': {
        const p = this.reads.get(msg.rid);
        if (!p || p.replies.has(msg.from) || !p.targets.some((t) => t.node === msg.from)) return;
        if (msg.rec !== null && !isKeyRecord(msg.rec)) throw new Error('malformed read reply');
        p.replies.set(msg.from, msg.rec ?? undefined);
        await this.checkRead(msg.rid, p);
        return;
      }
      case 'fwd-write': {
        const from = msg.from;
        const rid = msg.rid;
        // a duplicated delivery must not apply the operation twice (a counter would count it twice)
        const seenKey = `${from}\u0000${rid}`;
        if (this.seenForwards.has(seenKey)) return;
        this.seenForwards.set(seenKey, this.io.now() + this.timeout * 4);
        await this.write(
          msg.req,
          (outcome) => {
            this.send(from, { type: 'fwd-result', from: this.self, rid, ...outcome });
          },
          true,
        );
        return;
      }
      case 'fwd-result': {
        const p = this.forwards.get(msg.rid);
        if (!p) return;
        this.forwards.delete(msg.rid);
        if (msg.ok) p.respond({ ok: msg.ok });
        else p.respond({ err: msg.err ?? { code: 'SYNOD_ERR_TIMEOUT', message: 'no result' } });
        return;
      }
      case 'hint-deliver': {
        const items = msg.items.filter(([k, rec]) => typeof k === 'string' && isKeyRecord(rec));
        await this.mergeData(items);
        this.send(msg.from, {
          type: 'hint-ack',
          from: this.self,
          items: items.map(([k, rec]) => [k, digestHex(recordDigest(k, rec))] as const),
        });
        return;
      }
      case 'hint-ack': {
        const m = this.hints.get(msg.from);
        if (!m) return;
        const drop: StoreWrite[] = [];
        for (const [key, d] of msg.items) {
          const cur = m.get(key);
          if (cur && digestHex(recordDigest(key, cur)) === d)
            drop.push({ ns: 'hint', target: msg.from, key, rec: null });
        }
        if (drop.length === 0) return;
        await this.store.write(drop);
        for (const w of drop) m.delete(w.key);
        if (m.size === 0) this.hints.delete(msg.from);
        this.stats.hintsDelivered += drop.length;
        this.io.emit({ type: 'hints-delivered', to: msg.from, count: drop.length });
        return;
      }
      case 'ae-roots': {
        if (msg.rv !== this.ringVersion) return;
        const segs: Array<readonly [number, string[]]> = [];
        for (const [seg, root] of msg.roots) {
          const reps = this.mySegments.get(seg);
          if (!reps?.includes(msg.from)) continue;
          if (this.index.root(seg) !== root) segs.push([seg, this.index.leaves(seg)]);
        }
        if (segs.length > 0)
          this.send(msg.from, { type: 'ae-leaves', from: this.self, rv: this.ringVersion, segs });
        return;
      }
      case 'ae-leaves': {
        if (msg.rv !== this.ringVersion) return;
        const items: Array<readonly [number, number[], Array<[string, string]>]> = [];
        for (const [seg, leaves] of msg.segs) {
          if (
            !this.mySegments.has(seg) ||
            !Array.isArray(leaves) ||
            leaves.length !== this.index.leafCount
          )
            continue;
          const diff = this.index.diffLeaves(seg, leaves);
          if (diff.length > 0) items.push([seg, diff, this.index.keysIn(seg, diff)]);
        }
        if (items.length > 0)
          this.send(msg.from, { type: 'ae-keys', from: this.self, rv: this.ringVersion, items });
        return;
      }
      case 'ae-keys': {
        if (msg.rv !== this.ringVersion) return;
        const records: Array<readonly [string, KeyRecord]> = [];
        const want: string[] = [];
        for (const [seg, leaves, theirs] of msg.items) {
          if (!this.mySegments.has(seg)) continue;
          const mine = new Map(this.index.keysIn(seg, leaves));
          const other = new Map(theirs);
          for (const [k, d] of mine)
            if (other.get(k) !== d) records.push([k, this.data.get(k) as KeyRecord]);
          for (const [k, d] of other) if (mine.get(k) !== d) want.push(k);
        }
        if (records.length + want.length > 0)
          this.send(msg.from, { type: 'ae-push', from: this.self, records, want });
        return;
      }
      case 'ae-push': {
        const valid = msg.records.filter(([k, rec]) => typeof k === 'string' && isKeyRecord(rec));
        const changed = await this.mergeData(valid);
        this.stats.antiEntropyKeysRepaired += changed;
        if (msg.want.length > 0) {
          const records: Array<readonly [string, KeyRecord]> = [];
          for (const k of msg.want) {
            const rec = this.data.get(k);
            if (rec) records.push([k, rec]);
          }
          if (records.length > 0)
            this.send(msg.from, { type: 'ae-push', from: this.self, records, want: [] });
        }
        return;
      }
    }
  }

  private observeClock(rec: KeyRecord): void {
    if (rec.t !== 'lww' || !isHlcTimestamp(rec.s.ts)) return;
    try {
      this.hlc.update(rec.s.ts);
    } catch (e) {
      this.io.emit({ type: 'clock-drift', error: (e as Error).message });
    }
  }

  // ---------------------------------------------------------------- storage

  /** Merges records into the main store (one durable batch); returns how many changed. */
  private async mergeData(items: ReadonlyArray<readonly [string, KeyRecord]>): Promise<number> {
    // a record is unchanged by a merge iff its digest is (one canonical encoding per merge)
    const pending = new Map<string, { rec: KeyRecord; d: Digest }>();
    for (const [key, rec] of items) {
      const cur = pending.get(key)?.rec ?? this.data.get(key);
      const merged = cur === undefined ? rec : mergeRecords(cur, rec);
      const d = recordDigest(key, merged);
      const before = pending.get(key)?.d ?? this.index.digestOf(key);
      if (cur !== undefined && before !== undefined && before[0] === d[0] && before[1] === d[1])
        continue;
      pending.set(key, { rec: merged, d });
    }
    if (pending.size === 0) return 0;
    await this.putData([...pending].map(([key, v]) => [key, v.rec, v.d] as const));
    return pending.size;
  }

  private async putData(
    items: ReadonlyArray<readonly [string, KeyRecord, Digest?]>,
  ): Promise<void> {
    await this.store.write(items.map(([key, rec]) => ({ ns: 'data', key, rec })));
    for (const [key, rec, d] of items) {
      this.data.set(key, rec);
      this.index.set(key, this.ring.segmentOf(key), d ?? recordDigest(key, rec));
    }
  }

  private hintMap(target: string): Map<string, KeyRecord> {
    let m = this.hints.get(target);
    if (!m) {
      m = new Map();
      this.hints.set(target, m);
    }
    return m;
  }

  private async putHint(target: string, key: string, rec: KeyRecord): Promise<void> {
    const m = this.hintMap(target);
    const cur = m.get(key);
    const merged = cur === undefined ? rec : mergeRecords(cur, rec);
    if (cur !== undefined && recordsEqual(cur, merged)) return;
    await this.store.write([{ ns: 'hint', target, key, rec: merged }]);
    m.set(key, merged);
    this.stats.hintsStored++;
  }

  private deliverHints(): void {
    for (const [target, m] of this.hints) {
      if (target === this.self || !this.swim.isUp(target) || m.size === 0) continue;
      const items: Array<readonly [string, KeyRecord]> = [];
      for (const e of m) {
        items.push(e);
        if (items.length >= HINT_BATCH) break;
      }
      this.send(target, { type: 'hint-deliver', from: this.self, items });
    }
  }

  // ---------------------------------------------------------------- anti-entropy

  private antiEntropyRound(): void {
    const peers = this.ring
      .members()
      .filter((m) => m !== this.self && this.swim.stateOf(m) === 'alive');
    if (peers.length === 0) return;
    const peer = this.io.random.pick(peers);
    const roots: Array<readonly [number, string]> = [];
    for (const [seg, reps] of this.mySegments)
      if (reps.includes(peer)) roots.push([seg, this.index.root(seg)]);
    if (roots.length === 0) return;
    this.stats.antiEntropyRounds++;
    this.send(peer, { type: 'ae-roots', from: this.self, rv: this.ringVersion, roots });
  }

  // ---------------------------------------------------------------- misc

  private rid(): string {
    // the incarnation makes ids unique across restarts (the counter starts over)
    return `${this.self}:${this.savedIncarnation}:${++this.ridCounter}`;
  }

  private send(to: string, msg: PeerMessage): void {
    this.stats.peerMessagesSent++;
    this.io.send(to, msg);
  }

  /** Merkle roots of every key range this node replicates (for convergence checks). */
  segmentRoots(): Map<number, string> {
    const out = new Map<number, string>();
    for (const seg of this.mySegments.keys()) out.set(seg, this.index.root(seg));
    return out;
  }

  get ringFingerprint(): string {
    return this.ringVersion;
  }

  /** The key range (ring segment) `key` belongs to, as `segmentRoots` numbers them. */
  segmentOf(key: string): number {
    return this.ring.segmentOf(key);
  }

  /** The stored record of a key (main store only). */
  localRecord(key: string): KeyRecord | undefined {
    return this.data.get(key);
  }

  keys(): string[] {
    return [...this.data.keys()];
  }

  hintCount(): number {
    let n = 0;
    for (const m of this.hints.values()) n += m.size;
    return n;
  }

  snapshot(): ReplicaSnapshot {
    return {
      node: this.self,
      ready: this.ready,
      members: this.swim.memberList(),
      ringMembers: this.ring.members(),
      keys: this.data.size,
      hints: this.hintCount(),
      stats: { ...this.stats },
    };
  }

  /** Fails every pending request (the replica is stopping). */
  stop(): void {
    const err = fail('SYNOD_ERR_NOT_READY', `replica ${this.self} stopped`);
    for (const p of this.writes.values())
      p.respond?.(fail('SYNOD_ERR_TIMEOUT', 'replica stopped; the write may have been applied'));
    for (const p of this.reads.values()) p.respond?.(err);
    for (const p of this.forwards.values())
      p.respond(fail('SYNOD_ERR_TIMEOUT', 'replica stopped; the write may have been applied'));
    this.writes.clear();
    this.reads.clear();
    this.forwards.clear();
    this.started = false;
  }
}
