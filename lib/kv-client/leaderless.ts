/**
 * The KV client API on the leaderless store (actors/gossip): the same calls, outcomes and read
 * levels as `KvClient` (see api.ts), plus what a leaderless keyspace adds:
 *
 * - per-request W and R (`w` on writes, `r` on reads: `one`, `quorum`, `all` or a number in
 *   [1, N]; defaults from the client options, else the replicas' defaults);
 * - **siblings and causal context**: a `dvv` key written concurrently holds several values. A
 *   read returns them all (`siblings`) with the key's causal `context`; `value` is the value
 *   when there is exactly one, `null` when the key is absent *or* in conflict (`conflict:
 *   true`). The client keeps the latest context per key, so `put` after `get` replaces exactly
 *   the siblings that read returned (read, resolve, write back); a context can also be passed
 *   explicitly (`{ context }`), e.g. from another client;
 * - CRDT operations on keys whose type (the replicas' `keyTypes` rules) is a counter or a set:
 *   `increment`, `add`, `remove`; a read returns the merged value in `crdt`.
 *
 * Levels: `eventual` (default: whatever R replicas hold) and `session` (read your writes and
 * monotonic reads, through the context the client carries, also when it moves to another
 * coordinator). `strong` is refused with `SYNOD_ERR_STRONG_UNSUPPORTED`; `bounded` and
 * `prefix` (defined by a replicated log) with `SYNOD_ERR_KV_UNSUPPORTED`; so are `cas`, scans
 * and watches. Nothing is sent for a refused call.
 *
 * Outcomes: a write that timed out waiting for W acknowledgements (`SYNOD_ERR_TIMEOUT`) or whose
 * ask timed out is `indeterminate` (it is stored on some replica and will spread) and is not
 * retried: a leaderless write is not idempotent (a retry of a counter increment counts twice; of
 * a blind put, makes a duplicate sibling). Errors that prove nothing was applied (not ready, no
 * such actor, node down, unavailable) are retried on the next node until the deadline.
 */
import { Observable } from 'rxjs';
import type {
  GetResult as GossipGetResult,
  Quorum,
  WriteResult,
} from '../../actors/gossip/messages.js';
import {
  type CausalToken,
  decodeContext,
  encodeContext,
  joinTokens,
  type KeyType,
  type Operation,
} from '../../actors/gossip/record.js';
import type { ReplicaSnapshot } from '../../actors/gossip/replica-node.js';
import { KvError } from '../../actors/kv/errors.js';
import type { RangeValue, ReadOptions } from '../../actors/kv/messages.js';
import type { CasCondition, KeyValue, SessionToken, WatchEvent } from '../../actors/kv/types.js';
import { READ_LEVELS } from '../../actors/kv/types.js';
import type { ActorSystem } from '../actor-system.js';
import type { KvApi } from './api.js';
import type { GetResult } from './client.js';
import type { KvResponse } from './response.js';

export interface LeaderlessKvClientOptions {
  readonly system: ActorSystem;
  /** Node ids running a replica (at `servicePath`). Any of them can coordinate any key. */
  readonly nodes: readonly string[];
  /** Actor path of the replica on each node (default `gossip`). */
  readonly servicePath?: string;
  /** Deadline of a whole operation, retries included (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Timeout of one attempt (default 3000 ms: longer than the replicas' request timeout). */
  readonly attemptTimeoutMs?: number;
  /** Default read level (default `eventual`). */
  readonly read?: ReadOptions & { readonly r?: Quorum };
  /** Default W (default: the replicas' own default). */
  readonly w?: Quorum;
  /**
   * The node every request goes to first (the next ones only when it cannot serve). Default:
   * requests rotate over the nodes from a random start, so clients spread.
   */
  readonly node?: string;
}

/** A read on a leaderless keyspace: `GetResult` (rev and index are 0) plus siblings and context. */
export interface LeaderlessGetResult extends GetResult {
  readonly type: KeyType;
  /** Every concurrent value (DVV siblings, MV values; 0 or 1 for LWW). */
  readonly siblings: readonly string[];
  /** True when more than one sibling is held: `value` is then null; resolve by writing back. */
  readonly conflict: boolean;
  readonly absent: boolean;
  /** `pn` keys: the counter; `orset` keys: the sorted elements. */
  readonly crdt?: number | readonly string[];
  /** The key's causal context after this read (opaque; the client keeps it for the next write). */
  readonly context: string;
  /** Replicas that answered. */
  readonly replies: number;
}

/** A write on a leaderless keyspace: `WriteValue`'s shape (rev 0, prev null) plus W facts. */
export type LeaderlessWriteValue = (
  | { readonly t: 'put'; readonly rev: 0; readonly prev: null }
  | { readonly t: 'del'; readonly rev: 0; readonly deleted: true; readonly prev: null }
) & {
  readonly type: KeyType;
  readonly context: string;
  /** Acknowledgements received (≥ W). */
  readonly acks: number;
  /** Replicas written as hints for an unreachable preferred replica (sloppy quorum). */
  readonly hinted: number;
};

export interface LeaderlessReadOptions extends ReadOptions {
  readonly r?: Quorum;
  readonly node?: string;
  /** Use this causal context for a `session` read instead of the one the client holds. */
  readonly context?: string;
}

export interface LeaderlessWriteOptions {
  readonly w?: Quorum;
  readonly node?: string;
  readonly timeoutMs?: number;
  /** Causal context of what this write replaces (default: the one the client holds for the key). */
  readonly context?: string;
}

const NO_TOKEN: SessionToken = { index: 0, rev: 0 };

/** Codes that prove a request was not applied: safe to send to the next node. */
const NOT_APPLIED = new Set([
  'SYNOD_ERR_NOT_READY',
  'SYNOD_ERR_UNAVAILABLE',
  'SYNOD_ERR_NO_SUCH_ACTOR',
  'SYNOD_ERR_UNKNOWN_PEER',
  'SYNOD_ERR_NODE_DOWN',
  'SYNOD_ERR_QUEUE_FULL',
]);
/** Reads may also be retried after these. */
const READ_RETRY = new Set([
  ...NOT_APPLIED,
  'SYNOD_ERR_TIMEOUT',
  'SYNOD_ERR_ASK_TIMEOUT',
  'SYNOD_ERR_SESSION_STALE',
]);
/** Codes after which a write may have been applied. */
const MAYBE_APPLIED = new Set(['SYNOD_ERR_TIMEOUT', 'SYNOD_ERR_ASK_TIMEOUT']);

function asString(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export class LeaderlessKvClient implements KvApi {
  readonly system: ActorSystem;
  readonly nodes: readonly string[];
  private readonly path: string;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly readDefaults: ReadOptions & { readonly r?: Quorum };
  private readonly w: Quorum | undefined;
  private rotate: number;
  private readonly home: string | undefined;
  private readonly contexts = new Map<string, CausalToken>();
  private closed = false;
  readonly stats = { requests: 0, attempts: 0 };

  constructor(options: LeaderlessKvClientOptions) {
    if (options.nodes.length === 0)
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'a KV client needs at least one node');
    this.system = options.system;
    this.nodes = [...options.nodes];
    this.path = options.servicePath ?? 'gossip';
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 3000;
    this.readDefaults = options.read ?? { level: 'eventual' };
    this.w = options.w;
    if (options.node !== undefined && !this.nodes.includes(options.node))
      throw new KvError(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `node "${options.node}" is not one of ${this.nodes.join(', ')}`,
      );
    this.home = options.node;
    this.rotate = this.system.random.int(this.nodes.length);
  }

  /** No log positions on a leaderless keyspace: the session lives in the per-key contexts. */
  get token(): SessionToken {
    return NO_TOKEN;
  }

  /** The causal context this client holds for `key` (opaque), if any. */
  contextOf(key: string): string | undefined {
    const t = this.contexts.get(key);
    return t === undefined ? undefined : encodeContext(t);
  }

  /** Adopts a context (e.g. handed over from another client); joins with what is held. */
  observe(key: string, context: string): void {
    try {
      this.contexts.set(key, joinTokens(this.contexts.get(key), decodeContext(context)));
    } catch {
      // a context of another type or version: keep ours
    }
  }

  /** Forgets every context (a new session). */
  resetSession(): void {
    this.contexts.clear();
  }

  // ---------------------------------------------------------------- reads

  async get(
    key: string,
    read: LeaderlessReadOptions = {},
  ): Promise<KvResponse<LeaderlessGetResult>> {
    const o = { ...this.readDefaults, ...read };
    const level = o.level ?? 'eventual';
    if (!READ_LEVELS.includes(level))
      return this.fail(
        'SYNOD_ERR_KV_INVALID_ARGUMENT',
        `unknown read level "${level}"`,
        'failed',
        0,
      );
    if (level === 'strong')
      return this.fail(
        'SYNOD_ERR_STRONG_UNSUPPORTED',
        'a leaderless keyspace cannot serve linearizable reads: use a Raft or Multi-Paxos keyspace (KvClient)',
        'failed',
        0,
      );
    if (level === 'bounded' || level === 'prefix')
      return this.fail(
        'SYNOD_ERR_KV_UNSUPPORTED',
        `level "${level}" is defined by a replicated log; a leaderless keyspace offers eventual and session`,
        'failed',
        0,
      );
    const context = level === 'session' ? (read.context ?? this.contextOf(key)) : undefined;
    const req = {
      type: 'kv-get' as const,
      key,
      level,
      ...(o.r !== undefined ? { r: o.r } : {}),
      ...(context !== undefined ? { context } : {}),
    };
    const r = await this.call<GossipGetResult>(req, read.node, READ_RETRY, this.timeoutMs);
    if (!r.ok) return this.fail(r.code, r.message, 'failed', r.attempts);
    const g = r.value;
    this.observe(key, g.context);
    const siblings = g.values.map(asString);
    const conflict = siblings.length > 1;
    const value = g.absent || conflict || siblings.length === 0 ? null : (siblings[0] as string);
    const kv: KeyValue | null =
      value === null ? null : { key, value, createRev: 0, modRev: 0, version: 0 };
    const out: LeaderlessGetResult = {
      kv,
      value,
      rev: 0,
      index: 0,
      type: g.type,
      siblings,
      conflict,
      absent: g.absent,
      ...(g.type === 'pn' ? { crdt: g.value as number } : {}),
      ...(g.type === 'orset' ? { crdt: g.value as string[] } : {}),
      context: g.context,
      replies: g.replies,
    };
    return {
      outcome: 'ok',
      value: out,
      token: NO_TOKEN,
      servedBy: r.servedBy,
      attempts: r.attempts,
    };
  }

  range(
    _start: string,
    _end: string | undefined,
    _opts?: ReadOptions & { limit?: number },
  ): Promise<KvResponse<RangeValue>> {
    return Promise.resolve(this.unsupported('range scans'));
  }

  prefix(
    _prefix: string,
    _opts?: ReadOptions & { limit?: number },
  ): Promise<KvResponse<RangeValue>> {
    return Promise.resolve(this.unsupported('prefix scans'));
  }

  /** Watches need a total order of changes (a log): refused with `SYNOD_ERR_KV_UNSUPPORTED`. */
  watch(_key: string): Observable<WatchEvent> {
    return new Observable<WatchEvent>((s) =>
      s.error(
        new KvError(
          'SYNOD_ERR_KV_UNSUPPORTED',
          'watch needs a replicated log: a leaderless keyspace has no order of changes to replay',
        ),
      ),
    );
  }

  /** The replica's state on `node` (members, ring, key and hint counts). */
  async status(node: string): Promise<KvResponse<ReplicaSnapshot>> {
    const r = await this.call<ReplicaSnapshot>(
      { type: 'replica-snapshot' },
      node,
      new Set(),
      this.attemptTimeoutMs,
      1,
    );
    if (!r.ok) return this.fail(r.code, r.message, 'failed', r.attempts);
    return { outcome: 'ok', value: r.value, token: NO_TOKEN, servedBy: r.servedBy, attempts: 1 };
  }

  // ---------------------------------------------------------------- writes

  put(
    key: string,
    value: string,
    opts: LeaderlessWriteOptions = {},
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    if (typeof value !== 'string')
      return Promise.resolve(
        this.fail('SYNOD_ERR_KV_INVALID_ARGUMENT', 'values are strings', 'failed', 0),
      );
    return this.write(key, { op: 'put', value }, opts);
  }

  delete(
    key: string,
    opts: LeaderlessWriteOptions = {},
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    return this.write(key, { op: 'delete' }, opts);
  }

  /** Adds `by` (a safe integer, may be negative) to a `pn` counter key. */
  increment(
    key: string,
    by = 1,
    opts: LeaderlessWriteOptions = {},
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    return this.write(key, { op: 'increment', by }, opts);
  }

  /** Adds an element to an `orset` key (add wins over a concurrent remove). */
  add(
    key: string,
    element: string,
    opts: LeaderlessWriteOptions = {},
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    return this.write(key, { op: 'add', element }, opts);
  }

  /** Removes the element's adds this replica has seen from an `orset` key. */
  remove(
    key: string,
    element: string,
    opts: LeaderlessWriteOptions = {},
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    return this.write(key, { op: 'remove', element }, opts);
  }

  /** Compare-and-set needs a leader: refused with `SYNOD_ERR_KV_UNSUPPORTED`. */
  cas(
    _key: string,
    _condition: CasCondition,
    _value: string | null,
    _opts?: { timeoutMs?: number },
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    return Promise.resolve(this.unsupported('cas (compare-and-set needs a leader or consensus)'));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private async write(
    key: string,
    op: Operation,
    opts: LeaderlessWriteOptions,
  ): Promise<KvResponse<LeaderlessWriteValue>> {
    const context = opts.context ?? this.contextOf(key);
    const w = opts.w ?? this.w;
    const req = {
      type: 'kv-write' as const,
      key,
      op,
      ...(w !== undefined ? { w } : {}),
      ...(context !== undefined ? { context } : {}),
    };
    const r = await this.call<WriteResult>(
      req,
      opts.node,
      NOT_APPLIED,
      opts.timeoutMs ?? this.timeoutMs,
    );
    if (!r.ok)
      return this.fail(
        r.code,
        r.message,
        MAYBE_APPLIED.has(r.code) || r.maybe ? 'indeterminate' : 'failed',
        r.attempts,
      );
    this.observe(key, r.value.context);
    const facts = {
      type: r.value.type,
      context: r.value.context,
      acks: r.value.acks,
      hinted: r.value.hinted,
    };
    const value: LeaderlessWriteValue =
      op.op === 'delete'
        ? { t: 'del', rev: 0, deleted: true, prev: null, ...facts }
        : { t: 'put', rev: 0, prev: null, ...facts };
    return { outcome: 'ok', value, token: NO_TOKEN, servedBy: r.servedBy, attempts: r.attempts };
  }

  // ---------------------------------------------------------------- plumbing

  private async call<T>(
    msg: object,
    node: string | undefined,
    retry: ReadonlySet<string>,
    timeoutMs: number,
    maxAttempts = Number.POSITIVE_INFINITY,
  ): Promise<
    | { ok: true; value: T; servedBy: string; attempts: number }
    | { ok: false; code: string; message: string; attempts: number; maybe: boolean }
  > {
    if (this.closed)
      return {
        ok: false,
        code: 'SYNOD_ERR_KV_STOPPED',
        message: 'the client is closed',
        attempts: 0,
        maybe: false,
      };
    this.stats.requests++;
    const clock = this.system.clock;
    const deadline = clock.now() + timeoutMs;
    let target = node ?? this.next();
    let attempts = 0;
    let maybe = false;
    let last = { code: 'SYNOD_ERR_KV_TIMEOUT', message: `no reply within ${timeoutMs} ms` };
    while (!this.closed && attempts < maxAttempts) {
      const left = deadline - clock.now();
      if (left <= 0) break;
      attempts++;
      this.stats.attempts++;
      try {
        const value = (await this.system.ask(
          `${target}/${this.path}`,
          msg as never,
          Math.min(this.attemptTimeoutMs, left),
        )) as T;
        return { ok: true, value, servedBy: target, attempts };
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        last = {
          code: typeof e?.code === 'string' ? e.code : 'SYNOD_ERR_KV_UNAVAILABLE',
          message: String(e?.message ?? err),
        };
        if (MAYBE_APPLIED.has(last.code)) maybe = true;
        if (!retry.has(last.code)) break;
        const i = this.nodes.indexOf(target);
        target = this.nodes[(i + 1) % this.nodes.length] as string;
        await this.backoff(attempts, deadline);
      }
    }
    return { ok: false, ...last, attempts, maybe };
  }

  private next(): string {
    if (this.home !== undefined) return this.home;
    const n = this.nodes[this.rotate % this.nodes.length] as string;
    this.rotate++;
    return n;
  }

  private backoff(attempt: number, deadline: number): Promise<void> {
    const base = Math.min(200, 10 * 2 ** Math.min(attempt - 1, 5));
    const ms = Math.min(
      base / 2 + this.system.random.int(Math.ceil(base / 2) + 1),
      Math.max(0, deadline - this.system.clock.now()),
    );
    return new Promise((resolve) => this.system.clock.setTimer(ms, resolve));
  }

  private unsupported<T>(what: string): KvResponse<T> {
    return this.fail(
      'SYNOD_ERR_KV_UNSUPPORTED',
      `${what}: not offered by a leaderless keyspace (use a Raft or Multi-Paxos keyspace)`,
      'failed',
      0,
    );
  }

  private fail<T>(
    code: string,
    message: string,
    outcome: 'failed' | 'indeterminate',
    attempts: number,
  ): KvResponse<T> {
    return { outcome, error: { code, message }, token: NO_TOKEN, attempts };
  }
}
