/**
 * The KV client: one API whether the cluster runs in this process (the client's actor system is
 * one of the nodes' systems, or another system on the same in-memory network) or across
 * machines (an actor system on the WebSocket transport, see `connect`).
 *
 * Writes carry a session (client id, sequence number, acknowledgement): the client retries a
 * write on another node, or after a timeout, without any risk of applying it twice. It follows
 * leader hints, rotates through the nodes when none is given, and gives up at the operation's
 * deadline. Reads choose a level per request (else the client's `read` option, else nothing: the
 * cluster's default level, configured on the nodes, applies) and carry the session token the
 * client has seen, so `session` reads are monotonic and read the client's writes wherever they
 * are served.
 */
import { Observable, type Subscription } from 'rxjs';
import { KvError } from '../../actors/kv/errors.js';
import {
  type GetValue,
  KV_WITNESS_VERSION,
  type KvFailure,
  type KvReply,
  type KvRequest,
  type KvWatchPush,
  type RangeValue,
  type ReadOptions,
  type StatusValue,
  type WriteValue,
} from '../../actors/kv/messages.js';
import {
  type CasCondition,
  type KeyValue,
  maxToken,
  type ReadLevel,
  type SessionToken,
  type WatchEvent,
} from '../../actors/kv/types.js';
import { assertKey, assertTimeout, opProblem, timeoutProblem } from '../../actors/kv/validate.js';
import { Actor, type Terminated } from '../actor.js';
import type { ActorSystem } from '../actor-system.js';
import type { LinkStatus } from '../transport.js';
import type { KvResponse } from './response.js';
import { untrustedLinkAdvice } from './tls-advice.js';

export interface KvClientOptions {
  /** The actor system the client sends from (a node's, or its own on a transport). */
  readonly system: ActorSystem;
  /** Node ids of the cluster's KV services. */
  readonly nodes: readonly string[];
  /** Actor path of the KV service on each node (default `kv`). */
  readonly servicePath?: string;
  /** Session id (default: random). One client object = one session. */
  readonly clientId?: string;
  /** Deadline of a whole operation, retries included (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Timeout of one attempt (default 1000 ms). */
  readonly attemptTimeoutMs?: number;
  /**
   * Default read options of this client. Without a `level` here or on the request, the request
   * names no level and the cluster's default read level applies (`synod node --read-level`;
   * `strong` when the cluster sets none).
   */
  readonly read?: ReadOptions;
  /**
   * Node for reads below `strong` (default: one picked at random per client, so many clients
   * spread over the replicas).
   */
  readonly readNode?: string;
  /**
   * Backoff between attempts: random in [d/2, d] with d = min(max, base × 2^(attempt-1))
   * (default base 10 ms, max 200 ms). Probes that must notice a new leader quickly use less.
   */
  readonly retryBackoffMs?: { readonly base: number; readonly max: number };
  /**
   * Witnessed `strong` reads (docs/kv.md, "Witnessed reads"): with each attempt of a strong
   * read, the client also sends a small witness to as many other nodes as a quorum needs with
   * the leader (one of three, always the same while its link is up), and the followers confirm
   * the leader's term for that read straight to the leader: 3 process-to-process hops in series
   * instead of 4 (the leader's heartbeat round is skipped), the same linearizability. It costs
   * each follower a message per read instead of one per batch, so it pays at low concurrency:
   * `{ maxInFlight: n }` (the default, n = 2) witnesses a read only while at most n strong reads
   * of the clients sharing this actor system are in flight (this one included); `true`
   * always; `false` never. Ignored by a Paxos cluster and by nodes without support (the read
   * then waits for the leader's round, as without).
   */
  readonly witnessReads?: boolean | { readonly maxInFlight: number };
}

/** Strong reads in flight per actor system (the switch of `witnessReads: {maxInFlight}`). */
const strongInFlight = new WeakMap<ActorSystem, { n: number }>();
const DEFAULT_WITNESS_MAX_IN_FLIGHT = 2;

export interface GetResult {
  readonly kv: KeyValue | null;
  /** The value (`null` when absent). */
  readonly value: string | null;
  readonly rev: number;
  readonly index: number;
  /** The level the read was served at (the cluster default when the request named none). */
  readonly level?: ReadLevel;
}

export interface WatchOptions {
  /** Watch every key starting with `key`. */
  readonly prefix?: boolean;
  /** First revision wanted (0 = from the next change on). */
  readonly fromRev?: number;
  /** Node to watch from (default: the client's read node). */
  readonly node?: string;
}

type WatchMsg = KvWatchPush | Terminated | { readonly type: 'kv.client.check' };

interface WatchRoute {
  onPush(p: KvWatchPush): void;
  onTerminated(address: string): void;
  onCheck(): void;
}

/** Receives watch pushes for the client's watches. */
class WatchInbox extends Actor<WatchMsg> {
  readonly routes = new Map<string, WatchRoute>();
  receive(msg: WatchMsg): void {
    if (msg.type === 'terminated') {
      for (const r of [...this.routes.values()]) r.onTerminated(msg.address);
      return;
    }
    if (msg.type === 'kv.client.check') {
      for (const r of [...this.routes.values()]) r.onCheck();
      return;
    }
    const base = msg.id.slice(0, msg.id.lastIndexOf('.'));
    this.routes.get(base)?.onPush(msg);
  }
  watchAddress(a: string): void {
    this.ctx.watch(a);
  }
  unwatchAddress(a: string): void {
    this.ctx.unwatch(a);
  }
  startChecks(ms: number): void {
    if (!this.ctx.timers.isActive('check'))
      this.ctx.timers.repeat('check', ms, { type: 'kv.client.check' });
  }
}

const RETRY_CODES = new Set([
  'SYNOD_ERR_KV_NOT_LEADER',
  'SYNOD_ERR_KV_TIMEOUT',
  'SYNOD_ERR_KV_UNAVAILABLE',
  'SYNOD_ERR_KV_STOPPED',
  'SYNOD_ERR_KV_NOT_READY',
  'SYNOD_ERR_KV_SESSION_NOT_CAUGHT_UP',
  'SYNOD_ERR_ASK_TIMEOUT',
  'SYNOD_ERR_NO_SUCH_ACTOR',
  // The node's KV service stopped (a clean shutdown) before taking the request: not applied.
  'SYNOD_ERR_ACTOR_STOPPED',
  'SYNOD_ERR_UNKNOWN_PEER',
  'SYNOD_ERR_QUEUE_FULL',
  'SYNOD_ERR_NODE_DOWN',
]);

let clientCounter = 0;

export class KvClient {
  readonly system: ActorSystem;
  readonly nodes: readonly string[];
  private readonly path: string;
  private clientIdValue: string;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly readDefaults: ReadOptions;
  private readonly readNode: string;
  private readonly backoffBase: number;
  private readonly backoffMax: number;
  private leaderGuess: string | undefined;
  /** The cluster's default level, as learned from replies to reads that named none. */
  private clusterLevel: ReadLevel | undefined;
  private rotate = 0;
  private seq = 0;
  private readonly outstanding = new Set<number>();
  private tokenValue: SessionToken = { index: 0, rev: 0 };
  private inbox: WatchInbox | undefined;
  private inboxAddress: string | undefined;
  private watchCounter = 0;
  private closed = false;
  private writeChain: Promise<void> = Promise.resolve();
  /** Link state per node, from the transport (absent: unknown, e.g. a local or in-memory node). */
  private readonly links = new Map<string, LinkStatus>();
  private readonly linkWaiters = new Set<() => void>();
  private linkSubscription: Subscription | undefined;
  /** Largest number of strong reads in flight (this system's clients) still witnessed. */
  private readonly witnessMax: number;
  private readonly witnessPrefix: string;
  private witnessSeq = 0;
  /** Where this client starts looking for followers to witness (clients spread over them). */
  private readonly witnessStart: number;
  private readonly inFlight: { n: number };
  /** Counters for tools: attempts, redirects, retries, witnessed read attempts. */
  readonly stats = { requests: 0, attempts: 0, redirects: 0, witnessed: 0 };

  constructor(options: KvClientOptions) {
    if (options.nodes.length === 0)
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'a KV client needs at least one node');
    this.system = options.system;
    this.nodes = [...options.nodes];
    this.path = options.servicePath ?? 'kv';
    const r = this.system.random;
    this.clientIdValue =
      options.clientId ??
      `${this.system.nodeId}.${(r.nextUint32() >>> 0).toString(36)}.${clientCounter++}`;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 1000;
    assertTimeout(this.timeoutMs, 'timeoutMs');
    assertTimeout(this.attemptTimeoutMs, 'attemptTimeoutMs');
    this.readDefaults = options.read ?? {};
    this.readNode = options.readNode ?? (this.nodes[r.int(this.nodes.length)] as string);
    this.backoffBase = Math.max(0, options.retryBackoffMs?.base ?? 10);
    this.backoffMax = Math.max(this.backoffBase, options.retryBackoffMs?.max ?? 200);
    const w = options.witnessReads ?? { maxInFlight: DEFAULT_WITNESS_MAX_IN_FLIGHT };
    if (typeof w === 'boolean') this.witnessMax = w ? Number.POSITIVE_INFINITY : 0;
    else {
      const n = (w as { maxInFlight?: unknown } | null)?.maxInFlight;
      if (
        typeof n !== 'number' ||
        !(Number.isSafeInteger(n) || n === Number.POSITIVE_INFINITY) ||
        n < 0
      )
        throw new KvError(
          'SYNOD_ERR_KV_INVALID_ARGUMENT',
          `witnessReads must be true, false or { maxInFlight: an integer ≥ 0 }; got ${JSON.stringify(w)}`,
        );
      this.witnessMax = n;
    }
    // Keys must never repeat (a witness counts for the read holding its key): the actor
    // system's node id (unique on its network), a random word, and a counter.
    this.witnessPrefix = `${this.system.nodeId}.${(r.nextUint32() >>> 0).toString(36)}.`;
    this.witnessStart = r.int(this.nodes.length);
    let f = strongInFlight.get(this.system);
    if (!f) {
      f = { n: 0 };
      strongInFlight.set(this.system, f);
    }
    this.inFlight = f;
    // The WebSocket transport replays every peer's current state on subscription, then changes.
    this.linkSubscription = this.system.getTransport()?.links$.subscribe((l) => {
      this.links.set(l.peer, l);
      if (l.state === 'up') for (const w of [...this.linkWaiters]) w();
    });
  }

  get clientId(): string {
    return this.clientIdValue;
  }

  /** The session token: the highest log index and revision this client has seen. */
  get token(): SessionToken {
    return this.tokenValue;
  }

  /** Adopts a token (e.g. handed over from another client). Never moves backwards. */
  observe(token: SessionToken): void {
    this.tokenValue = maxToken(this.tokenValue, token);
  }

  /** The leader this client currently believes in (learned from replies and hints). */
  get leader(): string | undefined {
    return this.leaderGuess;
  }

  // ---------------------------------------------------------------- writes

  put(
    key: string,
    value: string,
    opts: { timeoutMs?: number } = {},
  ): Promise<KvResponse<WriteValue>> {
    return this.write({ t: 'put', key, value }, opts.timeoutMs);
  }

  delete(key: string, opts: { timeoutMs?: number } = {}): Promise<KvResponse<WriteValue>> {
    return this.write({ t: 'del', key }, opts.timeoutMs);
  }

  /** Sets `key` to `value` (`null`: deletes it) if the condition holds. */
  cas(
    key: string,
    condition: CasCondition,
    value: string | null,
    opts: { timeoutMs?: number } = {},
  ): Promise<KvResponse<WriteValue>> {
    return this.write({ t: 'cas', key, if: condition, value }, opts.timeoutMs);
  }

  /**
   * Writes of one client run one at a time, in call order: the log's session table (Raft's keeps
   * only the last seq per session) then never sees a session's seqs out of order. Use several
   * clients for concurrent writes.
   */
  private write(
    op: Extract<KvRequest, { type: 'kv.write' }>['op'],
    timeoutMs = this.timeoutMs,
  ): Promise<KvResponse<WriteValue>> {
    const run = this.writeChain.then(() => this.writeNow(op, timeoutMs));
    this.writeChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async writeNow(
    op: Extract<KvRequest, { type: 'kv.write' }>['op'],
    timeoutMs: number,
  ): Promise<KvResponse<WriteValue>> {
    const problem = opProblem(op) ?? timeoutProblem(timeoutMs);
    if (problem) return this.fail('SYNOD_ERR_KV_INVALID_ARGUMENT', problem, 'failed', 0);
    if (this.closed) return this.fail('SYNOD_ERR_KV_STOPPED', 'the client is closed', 'failed', 0);
    this.stats.requests++;
    const q = ++this.seq;
    this.outstanding.add(q);
    const session = { c: this.clientIdValue, q, a: Math.min(...this.outstanding) - 1 };
    const deadline = this.system.clock.now() + timeoutMs;
    let maybeApplied = false;
    let attempts = 0;
    let last: KvFailure | undefined;
    let target = this.leaderGuess ?? this.nextNode();
    try {
      while (!this.closed) {
        const left = deadline - this.system.clock.now();
        if (left <= 0) break;
        attempts++;
        this.stats.attempts++;
        const reply = await this.attempt<WriteValue>(
          target,
          {
            type: 'kv.write',
            op,
            session,
            timeoutMs: Math.ceil(Math.min(this.attemptTimeoutMs, left)),
          } as Extract<KvRequest, { type: 'kv.write' }>,
          Math.ceil(Math.min(this.attemptTimeoutMs, left)) + 50,
        );
        if (reply.ok) {
          // a write forwarded by a follower is served by a leader this client may not know
          if (this.nodes.includes(reply.servedBy)) this.leaderGuess = reply.servedBy;
          this.observe(reply.token);
          return this.okResult(reply, attempts);
        }
        last = reply;
        if (reply.outcome === 'indeterminate') maybeApplied = true;
        if (reply.code === 'SYNOD_ERR_KV_SESSION_EXPIRED') {
          this.renewSession();
          break;
        }
        if (!RETRY_CODES.has(reply.code)) break;
        target = this.redirect(target, reply);
        await this.backoff(attempts, deadline);
      }
    } finally {
      this.outstanding.delete(q);
    }
    const code = last?.code ?? 'SYNOD_ERR_KV_TIMEOUT';
    const message = last?.message ?? `no reply within ${timeoutMs} ms`;
    return this.fail(
      code,
      message,
      maybeApplied || !last ? 'indeterminate' : last.outcome,
      attempts,
      last?.leaderHint,
    );
  }

  private renewSession(): void {
    this.clientIdValue = `${this.clientIdValue.split('~')[0]}~${this.system.random.nextUint32().toString(36)}`;
    this.seq = 0;
    this.outstanding.clear();
  }

  // ---------------------------------------------------------------- reads

  /** Reads `key`. `node`: the replica to ask first (default: the client's read node). */
  async get(
    key: string,
    read: ReadOptions & { node?: string } = {},
  ): Promise<KvResponse<GetResult>> {
    try {
      assertKey(key);
    } catch (err) {
      return this.fail('SYNOD_ERR_KV_INVALID_ARGUMENT', (err as Error).message, 'failed', 0);
    }
    const { node, ...opts } = read;
    const r = await this.readRequest<GetValue>(
      { type: 'kv.get', key, read: this.readOptions(opts) },
      node,
    );
    if (r.outcome !== 'ok') return r;
    return { ...r, value: { ...r.value, value: r.value.kv ? r.value.kv.value : null } };
  }

  range(
    start: string,
    end: string | undefined,
    opts: ReadOptions & { limit?: number } = {},
  ): Promise<KvResponse<RangeValue>> {
    const { limit, ...read } = opts;
    return this.readRequest<RangeValue>({
      type: 'kv.range',
      start,
      ...(end !== undefined ? { end } : {}),
      ...(limit !== undefined ? { limit } : {}),
      read: this.readOptions(read),
    });
  }

  prefix(
    prefix: string,
    opts: ReadOptions & { limit?: number } = {},
  ): Promise<KvResponse<RangeValue>> {
    const { limit, ...read } = opts;
    return this.readRequest<RangeValue>({
      type: 'kv.range',
      start: prefix,
      prefix,
      ...(limit !== undefined ? { limit } : {}),
      read: this.readOptions(read),
    });
  }

  /**
   * The status of one node's KV service. Asks that node only, until it answers or the deadline
   * (`timeoutMs`, default the client's): a link to it that is still coming up (dialling, in the
   * handshake, or redialling after a refused connection) is waited for, not reported as a failure.
   */
  status(node: string, opts: { timeoutMs?: number } = {}): Promise<KvResponse<StatusValue>> {
    const problem = opts.timeoutMs !== undefined ? timeoutProblem(opts.timeoutMs) : undefined;
    if (problem)
      return Promise.resolve(this.fail('SYNOD_ERR_KV_INVALID_ARGUMENT', problem, 'failed', 0));
    return this.readRequest<StatusValue>({ type: 'kv.status' }, node, {
      pinned: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
    });
  }

  private readOptions(read: ReadOptions): ReadOptions {
    const o: ReadOptions = { ...this.readDefaults, ...read };
    // No level: the cluster default decides, and it may be `session`, so the token goes along.
    if ((o.level === 'session' || o.level === undefined) && o.token === undefined)
      return { ...o, token: this.tokenValue };
    return o;
  }

  private async readRequest<T>(
    msg: Extract<KvRequest, { type: 'kv.get' | 'kv.range' | 'kv.status' }>,
    node?: string,
    how: { pinned?: boolean; timeoutMs?: number } = {},
  ): Promise<KvResponse<T>> {
    if (this.closed) return this.fail('SYNOD_ERR_KV_STOPPED', 'the client is closed', 'failed', 0);
    this.stats.requests++;
    const named = 'read' in msg ? msg.read.level : undefined;
    // A read that names no level is routed as the cluster's default (once a reply told it).
    const level = named ?? ('read' in msg ? (this.clusterLevel ?? 'strong') : undefined);
    let target =
      node ??
      (level === 'strong' || level === undefined
        ? (this.leaderGuess ?? this.readNode)
        : this.readNode);
    const timeoutMs = how.timeoutMs ?? this.timeoutMs;
    const deadline = this.system.clock.now() + timeoutMs;
    let attempts = 0;
    let last: KvFailure | undefined;
    const strong = msg.type !== 'kv.status' && level === 'strong';
    if (strong) this.inFlight.n++;
    try {
      while (!this.closed) {
        if (how.pinned && !(await this.linkUp(target, deadline))) {
          const l = this.links.get(target);
          last = {
            ok: false,
            outcome: 'failed',
            code: 'SYNOD_ERR_KV_UNAVAILABLE',
            message: `no link to node ${target} within ${timeoutMs} ms (${l?.state ?? 'unknown'}${l?.reason ? `: ${l.reason}` : ''})`,
          } as KvFailure;
          break;
        }
        const left = deadline - this.system.clock.now();
        if (left <= 0) break;
        attempts++;
        this.stats.attempts++;
        const waitMs = Math.ceil(Math.min(this.attemptTimeoutMs, left));
        let m = 'read' in msg ? { ...msg, read: { waitMs, ...msg.read } } : msg;
        if (strong && 'read' in m && this.inFlight.n <= this.witnessMax && this.nodes.length > 1) {
          const witness = this.sendWitnesses(target);
          m = { ...m, read: { ...m.read, witness } };
        }
        const reply = await this.attempt<T>(target, m as typeof msg, waitMs + 50);
        if (reply.ok) {
          this.observe(reply.token);
          const served = (reply.value as { level?: ReadLevel } | undefined)?.level;
          if ('read' in msg && named === undefined && served !== undefined)
            this.clusterLevel = served;
          if (
            ((served ?? level) === 'strong' || level === undefined) &&
            this.nodes.includes(reply.servedBy)
          )
            this.leaderGuess = reply.servedBy;
          return this.okResult(reply, attempts);
        }
        last = reply;
        if (!RETRY_CODES.has(reply.code)) break;
        // A pinned request (one node's status) retries on that node: another node's is no answer.
        if (!how.pinned) target = this.redirect(target, reply);
        await this.backoff(attempts, deadline);
      }
    } finally {
      if (strong) this.inFlight.n--;
    }
    return this.fail(
      last?.code ?? 'SYNOD_ERR_KV_TIMEOUT',
      last?.message ?? `no reply within ${timeoutMs} ms`,
      'failed',
      attempts,
      last?.leaderHint,
    );
  }

  /**
   * Starts a witnessed attempt (docs/kv.md, "Witnessed reads"): a new key, sent to every node
   * but `target` whose link is not known to be down. Each follower that gets it tells its
   * leader it was in the leader's term after this point — after the read was invoked.
   */
  private sendWitnesses(target: string): string {
    const key = `${this.witnessPrefix}${this.witnessSeq++}`;
    this.stats.witnessed++;
    // As many followers as a quorum needs with the leader (one of three), the same ones every
    // time (each witness costs its follower a message in and one out), skipping nodes whose
    // link is known to be down; the leader falls back to its heartbeat round without them.
    let want = Math.floor(this.nodes.length / 2);
    for (let i = 0; i < this.nodes.length && want > 0; i++) {
      const node = this.nodes[(this.witnessStart + i) % this.nodes.length] as string;
      if (node === target) continue;
      const l = this.links.get(node);
      if (l !== undefined && l.state !== 'up') continue;
      want--;
      this.system.send(`${node}/${this.path}`, {
        type: 'kv.witness',
        v: KV_WITNESS_VERSION,
        key,
      } as Extract<KvRequest, { type: 'kv.witness' }>);
    }
    return key;
  }

  // ---------------------------------------------------------------- watch

  /**
   * Every change to `key` (or under it, with `prefix`) from `fromRev` on, exactly once and in
   * revision order. If the serving node stops answering (no progress beat for 3 intervals, or
   * it is reported down), the watch resumes on another node from the next revision. Errors with
   * `SYNOD_ERR_KV_COMPACTED` when `fromRev` is older than the retained history.
   */
  watch(key: string, opts: WatchOptions = {}): Observable<WatchEvent> {
    return new Observable<WatchEvent>((subscriber) => {
      const inbox = this.ensureInbox();
      const base = `w${this.watchCounter++}`;
      let nextRev = opts.fromRev ?? 0;
      let attempt = 0;
      let node = opts.node ?? this.readNode;
      let current = '';
      let lastHeard = this.system.clock.now();
      let progressMs = 500;
      let done = false;
      let starting = false;
      const serviceOf = (n: string): string => `${n}/${this.path}`;
      const start = (): void => {
        if (done) return;
        starting = true;
        const id = `${base}.${attempt++}`;
        current = id;
        expectN = 1;
        early.clear();
        gapSince = undefined;
        lastHeard = this.system.clock.now();
        this.system
          .ask(
            serviceOf(node),
            {
              type: 'kv.watch',
              id,
              subscriber: this.inboxAddress as string,
              key,
              prefix: opts.prefix === true,
              fromRev: nextRev,
            } as Extract<KvRequest, { type: 'kv.watch' }>,
            this.attemptTimeoutMs,
          )
          .then(
            (reply) => {
              starting = false;
              if (done || current !== id) return;
              if (reply.ok) {
                if (nextRev === 0) nextRev = reply.value.startRev;
                progressMs = reply.value.progressMs;
                inbox.watchAddress(serviceOf(node));
                inbox.startChecks(Math.max(10, Math.floor(progressMs / 2)));
                lastHeard = this.system.clock.now();
                return;
              }
              if (
                reply.code === 'SYNOD_ERR_KV_COMPACTED' ||
                reply.code === 'SYNOD_ERR_KV_INVALID_ARGUMENT'
              ) {
                finish(
                  new KvError(reply.code as KvError['code'], reply.message, false, {
                    ...(reply.compactRevision !== undefined
                      ? { compactRevision: reply.compactRevision }
                      : {}),
                  }),
                );
                return;
              }
              failover(true);
            },
            () => {
              starting = false;
              if (!done && current === id) failover(true);
            },
          );
      };
      /** Resubscribes from the next revision, on the next node when `move`. */
      const failover = (move: boolean): void => {
        if (done) return;
        this.system.send(serviceOf(node), {
          type: 'kv.unwatch',
          id: current,
          subscriber: this.inboxAddress as string,
        });
        if (move) {
          const i = this.nodes.indexOf(node);
          node = this.nodes[(i + 1) % this.nodes.length] as string;
        }
        starting = true;
        current = '';
        this.system.clock.setTimer(move ? 50 : 0, start);
      };
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        inbox.routes.delete(base);
        this.system.send(serviceOf(node), {
          type: 'kv.unwatch',
          id: current,
          subscriber: this.inboxAddress as string,
        });
        if (err) subscriber.error(err);
        else subscriber.complete();
      };
      let expectN = 1;
      const early = new Map<number, KvWatchPush>();
      let gapSince: number | undefined;
      const handle = (p: KvWatchPush): void => {
        if (p.type === 'kv.watch.events') {
          for (const e of p.events) {
            if (e.rev < nextRev) continue;
            nextRev = e.rev + 1;
            subscriber.next(e);
          }
        } else if (p.type === 'kv.watch.error') {
          if (p.code === 'SYNOD_ERR_KV_COMPACTED')
            finish(
              new KvError('SYNOD_ERR_KV_COMPACTED', p.message, false, {
                ...(p.compactRevision !== undefined ? { compactRevision: p.compactRevision } : {}),
              }),
            );
          else failover(false);
        } else if (nextRev !== 0) {
          // Progress: every event up to p.rev was pushed before this beat.
          nextRev = Math.max(nextRev, p.rev + 1);
        }
      };
      inbox.routes.set(base, {
        onPush: (p) => {
          if (p.id !== current || done) return;
          lastHeard = this.system.clock.now();
          if (p.n < expectN) return;
          early.set(p.n, p);
          for (let q = early.get(expectN); q !== undefined && !done; q = early.get(expectN)) {
            early.delete(expectN);
            expectN++;
            handle(q);
          }
          gapSince = early.size > 0 ? (gapSince ?? this.system.clock.now()) : undefined;
        },
        onTerminated: (address) => {
          if (address === serviceOf(node)) failover(true);
        },
        onCheck: () => {
          if (starting || done) return;
          const now = this.system.clock.now();
          if (now - lastHeard > 3 * progressMs) failover(true);
          else if (gapSince !== undefined && now - gapSince > progressMs) failover(false);
        },
      });
      start();
      return () => {
        if (!done) {
          done = true;
          inbox.routes.delete(base);
          this.system.send(serviceOf(node), {
            type: 'kv.unwatch',
            id: current,
            subscriber: this.inboxAddress as string,
          });
        }
      };
    });
  }

  private ensureInbox(): WatchInbox {
    if (this.inbox) return this.inbox;
    const inbox = new WatchInbox();
    const safe = this.clientIdValue.replace(/[^A-Za-z0-9_.:-]/g, '_');
    const ref = this.system.spawn(`kv-client-${safe}`, inbox);
    this.inbox = inbox;
    this.inboxAddress = ref.address;
    return inbox;
  }

  /** Stops the client's watches; pending calls finish with `SYNOD_ERR_KV_STOPPED` on their next step. */
  async close(): Promise<void> {
    this.closed = true;
    this.linkSubscription?.unsubscribe();
    for (const w of [...this.linkWaiters]) w();
    if (this.inboxAddress) await this.system.stop(this.inboxAddress);
  }

  // ---------------------------------------------------------------- plumbing

  /** The `ok` response for a reply that succeeded after `attempts` tries. */
  private okResult<T>(reply: { value: T; servedBy: string }, attempts: number): KvResponse<T> {
    return {
      outcome: 'ok',
      value: reply.value,
      token: this.tokenValue,
      servedBy: reply.servedBy,
      attempts,
    };
  }

  private async attempt<T>(node: string, msg: KvRequest, timeoutMs: number): Promise<KvReply<T>> {
    try {
      return (await this.system.ask(`${node}/${this.path}`, msg as never, timeoutMs)) as KvReply<T>;
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      const code = typeof e?.code === 'string' ? e.code : 'SYNOD_ERR_KV_UNAVAILABLE';
      // An ask that timed out may have reached the service: a write is then indeterminate
      // (even over a link that is not up: the transport delivers its queue once it is).
      const outcome = code === 'SYNOD_ERR_ASK_TIMEOUT' ? 'indeterminate' : 'failed';
      // Say why when the link is not up: a refused handshake (wrong secret) is not a slow node.
      const l = this.links.get(node);
      const advice = l?.reason !== undefined ? untrustedLinkAdvice(l.reason) : undefined;
      const link =
        l && l.state !== 'up' && l.reason
          ? ` (link to ${node}: ${l.reason}${advice !== undefined ? `: ${advice}` : ''})`
          : '';
      return { ok: false, outcome, code, message: `${String(e?.message ?? err)}${link}` };
    }
  }

  /**
   * Resolves true once the transport's link to `node` is up (at once when it is, or when this
   * client cannot know: no transport, or a peer it has no state for), false at `deadline`.
   */
  private linkUp(node: string, deadline: number): Promise<boolean> {
    const isUp = () => {
      const l = this.links.get(node);
      return l === undefined || l.state === 'up';
    };
    if (isUp()) return Promise.resolve(true);
    const left = deadline - this.system.clock.now();
    if (left <= 0 || this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (up: boolean) => {
        this.linkWaiters.delete(waiter);
        timer.cancel();
        resolve(up);
      };
      const waiter = () => {
        if (this.closed) done(false);
        else if (isUp()) done(true);
      };
      const timer = this.system.clock.setTimer(left, () => done(isUp()));
      this.linkWaiters.add(waiter);
    });
  }

  private nextNode(): string {
    const n = this.nodes[this.rotate % this.nodes.length] as string;
    this.rotate++;
    return n;
  }

  private redirect(current: string, reply: KvFailure): string {
    if (reply.leaderHint && reply.leaderHint !== current && this.nodes.includes(reply.leaderHint)) {
      this.stats.redirects++;
      this.leaderGuess = reply.leaderHint;
      return reply.leaderHint;
    }
    if (this.leaderGuess === current) this.leaderGuess = undefined;
    const i = this.nodes.indexOf(current);
    return this.nodes[(i + 1) % this.nodes.length] as string;
  }

  private backoff(attempt: number, deadline: number): Promise<void> {
    const base = Math.min(this.backoffMax, this.backoffBase * 2 ** Math.min(attempt - 1, 16));
    const ms = Math.min(
      base / 2 + this.system.random.int(Math.ceil(base / 2) + 1),
      Math.max(0, deadline - this.system.clock.now()),
    );
    return new Promise((resolve) => this.system.clock.setTimer(ms, resolve));
  }

  private fail<T>(
    code: string,
    message: string,
    outcome: 'failed' | 'indeterminate',
    attempts: number,
    leaderHint?: string,
  ): KvResponse<T> {
    return {
      outcome,
      error: { code, message },
      token: this.tokenValue,
      attempts,
      ...(leaderHint !== undefined ? { leaderHint } : {}),
    };
  }
}
