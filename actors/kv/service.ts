/**
 * The KV service actor: one per node, next to that node's replicated log (Raft or Multi-Paxos,
 * anything implementing lib/replicated-log.ts) and its `KvStateMachine`. It proposes writes to
 * the log and serves reads from the local replica at the level each request asks for:
 *
 * - `strong`: a batched read index (ReadIndex: leadership confirmed by a quorum after the read
 *   arrived), then the local state once it has applied that index. Linearizable.
 * - `bounded`: served locally only when provably within `maxLagMs` (a freshness proof from a
 *   read index started at most that long ago, see read-index.ts) and/or `maxLagVersions` (a read
 *   index obtained after the request arrived is at most that many entries ahead of the local
 *   state); otherwise forwarded to the leader, or failed with
 *   `SYNOD_ERR_KV_STALENESS_BOUND_EXCEEDED`.
 * - `session`: served once the local state includes the client's token (log index), so a client
 *   reads its writes and never reads backwards, also after failing over to another node.
 * - `prefix`: the local state, once this replica has caught up with the commit index it learned
 *   after starting: a prefix of the committed log that never moves backwards, not even across a
 *   crash and restart of this node.
 * - `eventual`: the local state right now (fastest; after a restart it may be older than what
 *   this node served before the crash).
 *
 * A read that names no level gets the node's `defaultRead` (the cluster-wide default, set on
 * every node: `synod node --read-level`; `strong` when unset). A request may name any level,
 * weaker or stronger than the default: the default is what a client gets when it does not
 * choose, not a cap. A `bounded` read that names no bound takes the default's bounds when the
 * default is `bounded`. Replies say which level served them (`value.level`).
 *
 * Handlers never await inside the mailbox turn: a read waiting for a read index does not hold
 * up the reads and writes behind it.
 */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { ProposeError, type ReplicatedLog } from '../../lib/replicated-log.js';
import { AppliedWaiters } from './applied-waiters.js';
import { KvError } from './errors.js';
import {
  failure,
  type GetValue,
  KV_WITNESS_VERSION,
  type KvFailure,
  type KvReply,
  type KvRequest,
  type KvWatchPush,
  type RangeValue,
  type ReadDefault,
  type ReadOptions,
  type StatusValue,
  type WriteValue,
} from './messages.js';
import { ReadIndexBatcher } from './read-index.js';
import type { KvStateMachine } from './state-machine.js';
import type { KvOp, KvResult, ReadLevel, SessionToken } from './types.js';
import {
  assertKey,
  assertLimit,
  assertReadDefault,
  opProblem,
  timeoutProblem,
  witnessKeyProblem,
} from './validate.js';
import { WatchHub } from './watch-hub.js';

export interface KvServiceOptions {
  /** This node's replicated log; it applies committed commands to `sm`. */
  readonly log: ReplicatedLog<KvOp, KvResult>;
  readonly sm: KvStateMachine;
  /** Actor path of the KV service on every node (default `kv`). */
  readonly servicePath?: string;
  /** Timeout of a proposal (default 2000 ms). */
  readonly proposeTimeoutMs?: number;
  /** Default time a read may wait for a read index or for this replica to catch up (1000 ms). */
  readonly readWaitMs?: number;
  /**
   * Interval of background read indexes that keep the freshness proof young, so bounded reads
   * with `maxLagMs` are served locally (default 50 ms; 0 = only on demand).
   */
  readonly freshnessIntervalMs?: number;
  /** Interval of watch progress notifications (default 500 ms). */
  readonly watchProgressMs?: number;
  readonly maxValueLength?: number;
  /**
   * The cluster-wide default read level: what a read that names no level gets (default
   * `{ level: 'strong' }`). Give every node the same one. A malformed one throws
   * `SYNOD_ERR_KV_INVALID_READ_LEVEL`.
   */
  readonly defaultRead?: ReadDefault;
}

export const DEFAULT_READ: ReadDefault = { level: 'strong' };

type Internal =
  | { readonly type: 'kv.tick.fresh' }
  | { readonly type: 'kv.tick.progress' }
  | { readonly type: 'kv.tick.ready' };

type Msg = KvRequest | Internal;

export class KvService extends Actor<Msg, StatusValue> {
  private readonly log: ReplicatedLog<KvOp, KvResult>;
  private readonly sm: KvStateMachine;
  private readonly path: string;
  private readonly proposeTimeoutMs: number;
  private readonly readWaitMs: number;
  private readonly freshnessIntervalMs: number;
  private readonly watchProgressMs: number;
  private readonly defaultRead: ReadDefault;
  private waiters!: AppliedWaiters;
  private readIndex!: ReadIndexBatcher;
  private hub!: WatchHub;
  private leader: string | undefined;
  private commit = 0;
  private ready = false;
  private readyInFlight = false;
  private readonly subs: { unsubscribe(): void }[] = [];
  private stopped = false;

  constructor(options: KvServiceOptions) {
    super();
    this.log = options.log;
    this.sm = options.sm;
    this.path = options.servicePath ?? 'kv';
    this.proposeTimeoutMs = options.proposeTimeoutMs ?? 2000;
    this.readWaitMs = options.readWaitMs ?? 1000;
    this.freshnessIntervalMs = options.freshnessIntervalMs ?? 50;
    this.watchProgressMs = options.watchProgressMs ?? 500;
    const d = options.defaultRead ?? DEFAULT_READ;
    assertReadDefault(d);
    this.defaultRead = { ...d };
  }

  override initialState(): StatusValue {
    return {
      nodeId: '',
      leader: undefined,
      appliedIndex: 0,
      commitIndex: 0,
      revision: 0,
      keys: 0,
      ready: false,
      compactedRevision: 0,
      freshness: undefined,
      defaultRead: this.defaultRead,
    };
  }

  override preStart(): void {
    this.waiters = new AppliedWaiters(this.ctx.clock);
    this.readIndex = new ReadIndexBatcher(this.ctx.clock, () => this.obtainReadIndex());
    this.hub = new WatchHub(this.sm, (to, msg: KvWatchPush) => {
      this.ctx.send(to, msg);
    });
    this.waiters.advance(this.sm.appliedIndex);
    this.subs.push(
      this.log.appliedIndex$.subscribe((i) => {
        if (i < this.waiters.index) this.wentBack(i);
        else this.waiters.advance(i);
      }),
      this.log.commitIndex$.subscribe((i) => {
        this.commit = Math.max(this.commit, i);
      }),
      this.log.leader$.subscribe((l) => {
        this.leader = l;
      }),
    );
    if (this.freshnessIntervalMs > 0)
      this.ctx.timers.repeat('fresh', this.freshnessIntervalMs, { type: 'kv.tick.fresh' });
    this.ctx.timers.repeat('progress', this.watchProgressMs, { type: 'kv.tick.progress' });
    this.ctx.timers.repeat('ready', 50, { type: 'kv.tick.ready' });
    this.tryBecomeReady();
    this.publish();
  }

  override postStop(): void {
    this.stopped = true;
    for (const s of this.subs.splice(0)) s.unsubscribe();
    this.waiters.cancelAll();
    this.hub.close();
  }

  /** Applied log index of this replica (from the log, which also counts no-ops). */
  private get applied(): number {
    return Math.max(this.waiters.index, this.sm.appliedIndex);
  }

  private token(): SessionToken {
    return { index: this.applied, rev: this.sm.revision };
  }

  receive(msg: Msg | Terminated): void {
    switch (msg.type) {
      case 'kv.write':
        this.write(msg);
        return;
      case 'kv.get':
      case 'kv.range':
        this.read(msg);
        return;
      case 'kv.status':
        this.ctx.reply(msg, this.ok(this.publish()));
        return;
      case 'kv.readIndex':
        this.log.readBarrier({ timeoutMs: this.readWaitMs }).then(
          (index) => this.ctx.reply(msg, this.ok(index)),
          (err: unknown) => this.ctx.reply(msg, this.mapError(err, 'failed')),
        );
        return;
      case 'kv.watch':
        this.watch(msg);
        return;
      case 'kv.unwatch':
        this.hub.remove(msg.id, msg.subscriber);
        return;
      case 'kv.witness':
        // A chance to skip the leader's heartbeat round for a read, nothing more: a malformed
        // or unknown-version witness is dead-lettered and the read waits for the round.
        if (msg.v !== KV_WITNESS_VERSION || witnessKeyProblem(msg.key) !== undefined) {
          this.ctx.unhandled(msg);
          return;
        }
        this.log.witnessRead?.(msg.key);
        return;
      case 'kv.tick.fresh':
        if (this.leader !== undefined) this.readIndex.next().catch(() => undefined);
        return;
      case 'kv.tick.progress':
        this.hub.progress();
        this.publish();
        return;
      case 'kv.tick.ready':
        this.tryBecomeReady();
        return;
      case 'terminated':
        this.hub.removeSubscriber(msg.address);
        return;
      default:
        this.ctx.unhandled(msg);
    }
  }

  private ok<T>(value: T): KvReply<T> {
    return { ok: true, value, token: this.token(), servedBy: this.ctx.nodeId };
  }

  private publish(): StatusValue {
    const status: StatusValue = {
      nodeId: this.ctx.nodeId,
      leader: this.leader,
      appliedIndex: this.applied,
      commitIndex: this.commit,
      revision: this.sm.revision,
      keys: this.sm.size,
      ready: this.ready,
      compactedRevision: this.sm.compactedRevision,
      freshness: this.readIndex.freshness,
      defaultRead: this.defaultRead,
    };
    this.ctx.setState(status);
    return status;
  }

  // ---------------------------------------------------------------- writes

  private write(msg: Extract<KvRequest, { type: 'kv.write' }>): void {
    const s = msg.session;
    const problem =
      opProblem(msg.op) ??
      (msg.timeoutMs === undefined ? undefined : timeoutProblem(msg.timeoutMs)) ??
      (s === null ||
      typeof s !== 'object' ||
      typeof s.c !== 'string' ||
      s.c.length === 0 ||
      s.c.length > 128 ||
      !Number.isInteger(s.q) ||
      s.q < 1 ||
      !Number.isInteger(s.a) ||
      s.a < 0 ||
      s.a >= s.q
        ? 'session must be {c: non-empty id, q: seq ≥ 1, a: ack < q}'
        : undefined);
    if (problem) {
      this.ctx.reply(msg, failure('SYNOD_ERR_KV_INVALID_ARGUMENT', problem));
      return;
    }
    const op = { ...msg.op, s: { c: s.c, q: s.q, a: s.a } } as KvOp;
    const timeoutMs = Math.min(msg.timeoutMs ?? this.proposeTimeoutMs, 60_000);
    this.log.propose({ clientId: s.c, seq: s.q, op }, { timeoutMs }).then(
      (r) => {
        const result = r.result;
        if (result === undefined || result === null) {
          // The log recognised a duplicate whose result it no longer keeps.
          this.ctx.reply(
            msg,
            failure(
              'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT',
              'the command was applied before; its result is no longer known',
              'indeterminate',
            ),
          );
          return;
        }
        if (result.t === 'error') {
          this.ctx.reply(
            msg,
            failure(
              result.code,
              result.message,
              result.code === 'SYNOD_ERR_KV_INVALID_ARGUMENT' ? 'failed' : 'indeterminate',
            ),
          );
          return;
        }
        const token = { index: Math.max(r.index, this.applied), rev: result.rev };
        this.ctx.reply(msg, { ok: true, value: result, token, servedBy: this.ctx.nodeId });
      },
      (err: unknown) => {
        // Not the leader: forward once to the leader's service, so a client that knows only
        // this node (e.g. `synod kv put --cluster <one URL>`) still writes. Safe: the session
        // tag makes the write exactly-once wherever it is proposed.
        if (err instanceof ProposeError && err.code === 'NotLeader' && msg.forwarded !== true) {
          const leader =
            err.leaderHint ?? (this.leader !== this.ctx.nodeId ? this.leader : undefined);
          if (leader !== undefined && leader !== this.ctx.nodeId) {
            const fwd = { ...msg, forwarded: true, timeoutMs };
            this.ctx.ask(`${leader}/${this.path}`, fwd as never, timeoutMs + 100).then(
              (r) => this.ctx.reply(msg, r as KvReply<WriteValue>),
              (e: unknown) => this.ctx.reply(msg, this.mapError(e, 'indeterminate')),
            );
            return;
          }
        }
        this.ctx.reply(msg, this.mapError(err, 'indeterminate'));
      },
    );
  }

  /** Maps a log or ask error to a reply. `unknown`: the outcome of an unclassified error. */
  private mapError(err: unknown, unknown: 'failed' | 'indeterminate'): KvFailure {
    if (err instanceof ProposeError) {
      const hint = err.leaderHint ?? (this.leader !== this.ctx.nodeId ? this.leader : undefined);
      switch (err.code) {
        case 'NotLeader':
          return failure('SYNOD_ERR_KV_NOT_LEADER', err.message, 'failed', { leaderHint: hint });
        case 'Dropped':
          return failure('SYNOD_ERR_KV_UNAVAILABLE', err.message, 'failed', { leaderHint: hint });
        case 'Timeout':
          return failure('SYNOD_ERR_KV_TIMEOUT', err.message, unknown, { leaderHint: hint });
        case 'Stopped':
          return failure('SYNOD_ERR_KV_STOPPED', err.message, unknown);
      }
    }
    if (err instanceof KvError)
      return failure(err.code, err.message, err.indeterminate ? 'indeterminate' : 'failed', {
        leaderHint: err.details.leaderHint,
        compactRevision: err.details.compactRevision,
      });
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e?.code === 'string' ? e.code : 'SYNOD_ERR_KV_UNAVAILABLE';
    return failure(
      code === 'SYNOD_ERR_ASK_TIMEOUT' ? 'SYNOD_ERR_KV_TIMEOUT' : code,
      String(e?.message ?? err),
      unknown,
    );
  }

  // ---------------------------------------------------------------- read index and readiness

  /** A read index: our own barrier, or the leader service's when we are not the leader. */
  private async obtainReadIndex(): Promise<number> {
    try {
      return await this.log.readBarrier({ timeoutMs: this.readWaitMs });
    } catch (err) {
      const hint = err instanceof ProposeError ? (err.leaderHint ?? this.leader) : undefined;
      if (
        !(err instanceof ProposeError) ||
        err.code !== 'NotLeader' ||
        !hint ||
        hint === this.ctx.nodeId
      )
        throw err;
      const reply = await this.ctx.ask<Extract<KvRequest, { type: 'kv.readIndex' }>>(
        `${hint}/${this.path}`,
        { type: 'kv.readIndex' },
        this.readWaitMs,
      );
      if (!reply.ok)
        throw new KvError(reply.code as KvError['code'], reply.message, false, {
          ...(reply.leaderHint !== undefined ? { leaderHint: reply.leaderHint } : {}),
        });
      return reply.value;
    }
  }

  /**
   * A strong read's index: on the leader, with the client's witness key, a read of its own
   * confirmed by the followers' witnesses (docs/kv.md, "Witnessed reads") — one hop sooner at
   * one client than the batched read index; otherwise (no key, not the leader, or the leader
   * changed meanwhile) the batched read index.
   */
  private strongIndex(witness: string | undefined, waitMs: number): Promise<number> {
    if (witness === undefined || this.leader !== this.ctx.nodeId || !this.log.witnessRead)
      return this.readIndex.next();
    return this.log.readBarrier({ timeoutMs: waitMs, witness }).catch((err: unknown) => {
      if (err instanceof ProposeError && err.code === 'NotLeader') return this.readIndex.next();
      throw err;
    });
  }

  /**
   * The replica's applied index went back (a Multi-Paxos learner restarted alone and resumed
   * from an older snapshot): reads wait for the catch-up, and prefix reads are not served
   * again until it has applied what is committed now, as on a fresh start (they never move
   * backwards on a replica).
   */
  private wentBack(applied: number): void {
    this.waiters.goBack(applied);
    if (!this.ready) return;
    this.ready = false;
    this.ctx.timers.repeat('ready', 50, { type: 'kv.tick.ready' });
    this.tryBecomeReady();
    this.publish();
  }

  /** Prefix reads wait until this replica has applied what was committed when it started. */
  private tryBecomeReady(): void {
    if (this.ready || this.readyInFlight || this.stopped) return;
    this.readyInFlight = true;
    this.readIndex
      .next()
      .then((index) => this.waiters.wait(index, this.readWaitMs))
      .then(
        (ok) => {
          this.readyInFlight = false;
          if (ok && !this.stopped) {
            this.ready = true;
            this.ctx.timers.cancel('ready');
            this.publish();
          }
        },
        () => {
          this.readyInFlight = false;
        },
      );
  }

  // ---------------------------------------------------------------- reads

  private read(msg: Extract<KvRequest, { type: 'kv.get' | 'kv.range' }>): void {
    let serve: () => GetValue | RangeValue;
    try {
      serve = this.reader(msg);
    } catch (err) {
      this.ctx.reply(msg as Replies<KvReply<GetValue | RangeValue>>, this.mapError(err, 'failed'));
      return;
    }
    const o = this.resolveRead(msg.read ?? {});
    const level = o.level;
    if (o.witness !== undefined && witnessKeyProblem(o.witness) !== undefined) {
      this.ctx.reply(
        msg as Replies<KvReply<GetValue | RangeValue>>,
        failure('SYNOD_ERR_KV_INVALID_ARGUMENT', witnessKeyProblem(o.witness) as string),
      );
      return;
    }
    const waitMs = Math.min(o.waitMs ?? this.readWaitMs, 60_000);
    const reply = (r: KvReply<GetValue | RangeValue>): void =>
      this.ctx.reply(msg as Replies<KvReply<GetValue | RangeValue>>, r);
    const serveNow = (): void => reply(this.ok({ ...serve(), level }));
    const forwardOr = (code: KvFailure['code'], message: string): void => {
      const leader = this.leader;
      if (o.forward !== false && leader !== undefined && leader !== this.ctx.nodeId) {
        // The resolved options: the leader serves the level this node chose, whatever its own
        // default.
        const fwd = { ...msg, read: { ...o, forward: false } };
        this.ctx.ask(`${leader}/${this.path}`, fwd as never, waitMs).then(
          (r) => reply(r as KvReply<GetValue | RangeValue>),
          (err: unknown) => reply(this.mapError(err, 'failed')),
        );
        return;
      }
      reply(failure(code, message, 'failed', { leaderHint: leader }));
    };

    switch (level) {
      case 'eventual':
        serveNow();
        return;
      case 'prefix':
        if (this.ready) {
          serveNow();
          return;
        }
        this.tryBecomeReady();
        this.waitFor(() => this.ready, waitMs).then((ok) =>
          ok
            ? serveNow()
            : reply(
                failure(
                  'SYNOD_ERR_KV_NOT_READY',
                  `${this.ctx.nodeId} has not caught up since it started`,
                ),
              ),
        );
        return;
      case 'session': {
        const want = o.token?.index ?? 0;
        if (!Number.isFinite(want) || want < 0) {
          reply(failure('SYNOD_ERR_KV_INVALID_ARGUMENT', 'session token index must be ≥ 0'));
          return;
        }
        if (this.applied >= want) {
          serveNow();
          return;
        }
        this.waiters
          .wait(want, waitMs)
          .then((ok) =>
            ok
              ? serveNow()
              : forwardOr(
                  'SYNOD_ERR_KV_SESSION_NOT_CAUGHT_UP',
                  `${this.ctx.nodeId} has applied ${this.applied}, the session token needs ${want}`,
                ),
          );
        return;
      }
      case 'strong':
        this.strongIndex(o.witness, waitMs)
          .then((index) => this.waiters.wait(index, waitMs))
          .then(
            (ok) =>
              ok
                ? serveNow()
                : reply(
                    failure(
                      'SYNOD_ERR_KV_TIMEOUT',
                      `${this.ctx.nodeId} did not catch up with the read index in time`,
                    ),
                  ),
            (err: unknown) => reply(this.mapError(err, 'failed')),
          );
        return;
      case 'bounded':
        this.boundedRead(o, waitMs, serveNow, forwardOr, reply);
        return;
      default:
        reply(
          failure('SYNOD_ERR_KV_INVALID_ARGUMENT', `unknown read level ${JSON.stringify(level)}`),
        );
    }
  }

  /**
   * The options a read is served with: the request's, with the cluster default's level when it
   * names none, and the default's bounds for a `bounded` read that names none.
   */
  private resolveRead(req: ReadOptions): ReadOptions & { level: ReadLevel } {
    const d = this.defaultRead;
    const level = req.level ?? d.level;
    const named = req.maxLagMs !== undefined || req.maxLagVersions !== undefined;
    if (level === 'bounded' && !named && d.level === 'bounded')
      return {
        ...req,
        level,
        ...(d.maxLagMs !== undefined ? { maxLagMs: d.maxLagMs } : {}),
        ...(d.maxLagVersions !== undefined ? { maxLagVersions: d.maxLagVersions } : {}),
      };
    return { ...req, level };
  }

  private boundedRead(
    o: ReadOptions,
    waitMs: number,
    serveNow: () => void,
    forwardOr: (code: string, message: string) => void,
    reply: (r: KvReply<never>) => void,
  ): void {
    const ms = o.maxLagMs;
    const versions = o.maxLagVersions;
    if (
      (ms !== undefined && !(ms >= 0)) ||
      (versions !== undefined && !(Number.isInteger(versions) && versions >= 0)) ||
      (ms === undefined && versions === undefined)
    ) {
      reply(
        failure(
          'SYNOD_ERR_KV_INVALID_ARGUMENT',
          'a bounded read needs maxLagMs ≥ 0 and/or an integer maxLagVersions ≥ 0',
        ),
      );
      return;
    }
    const timeOk = (): boolean => {
      if (ms === undefined) return true;
      const f = this.readIndex.freshness;
      return f !== undefined && this.applied >= f.index && this.ctx.clock.now() - f.at <= ms;
    };
    const exceeded = (why: string): void =>
      forwardOr('SYNOD_ERR_KV_STALENESS_BOUND_EXCEEDED', `${this.ctx.nodeId}: ${why}`);
    if (versions === undefined) {
      if (timeOk()) {
        serveNow();
        return;
      }
      // Not provably fresh enough: a new read index proves it (lag ≈ 0) once applied.
      this.readIndex
        .next()
        .then((index) => this.waiters.wait(index, waitMs))
        .then(
          (ok) => (ok && timeOk() ? serveNow() : exceeded(`no freshness proof within ${ms} ms`)),
          () => exceeded(`no freshness proof within ${ms} ms (no read index)`),
        );
      return;
    }
    // A version bound needs a read index obtained after the request arrived.
    this.readIndex.next().then(
      (index) => {
        const enough = (): boolean =>
          index - this.applied <= versions && (timeOk() || this.applied >= index);
        if (enough()) {
          serveNow();
          return;
        }
        this.waiters
          .wait(index - versions, waitMs)
          .then((ok) =>
            ok && enough()
              ? serveNow()
              : exceeded(
                  `applied ${this.applied}, more than ${versions} behind read index ${index}`,
                ),
          );
      },
      () => exceeded('no read index to bound the lag'),
    );
  }

  private waitFor(pred: () => boolean, ms: number): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    const deadline = this.ctx.clock.now() + ms;
    return new Promise((resolve) => {
      const check = (): void => {
        if (pred()) resolve(true);
        else if (this.stopped || this.ctx.clock.now() >= deadline) resolve(false);
        else this.ctx.clock.setTimer(10, check);
      };
      this.ctx.clock.setTimer(10, check);
    });
  }

  /** Validates a read and returns the function that reads the local state. */
  private reader(
    msg: Extract<KvRequest, { type: 'kv.get' | 'kv.range' }>,
  ): () => GetValue | RangeValue {
    if (msg.type === 'kv.get') {
      assertKey(msg.key);
      const key = msg.key;
      return () => ({ kv: this.sm.get(key), rev: this.sm.revision, index: this.applied });
    }
    const limit = assertLimit(msg.limit);
    if (msg.prefix !== undefined) {
      if (typeof msg.prefix !== 'string')
        throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'prefix must be a string');
      const prefix = msg.prefix;
      return () => ({
        ...this.sm.prefix(prefix, limit),
        rev: this.sm.revision,
        index: this.applied,
      });
    }
    if (typeof msg.start !== 'string')
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'range start must be a string');
    if (msg.end !== undefined && typeof msg.end !== 'string')
      throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'range end must be a string');
    const q = { start: msg.start, end: msg.end, limit };
    return () => ({ ...this.sm.range(q), rev: this.sm.revision, index: this.applied });
  }

  // ---------------------------------------------------------------- watch

  private watch(msg: Extract<KvRequest, { type: 'kv.watch' }>): void {
    try {
      if (typeof msg.id !== 'string' || msg.id.length === 0 || msg.id.length > 128)
        throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'watch id must be a short string');
      if (typeof msg.subscriber !== 'string')
        throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'watch subscriber must be an address');
      if (msg.prefix) {
        if (typeof msg.key !== 'string')
          throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'prefix must be a string');
      } else assertKey(msg.key);
      if (!Number.isInteger(msg.fromRev) || msg.fromRev < 0)
        throw new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', 'fromRev must be an integer ≥ 0');
      const startRev = this.hub.add(
        msg.id,
        msg.subscriber,
        msg.key,
        msg.prefix === true,
        msg.fromRev,
      );
      this.ctx.watch(msg.subscriber);
      this.ctx.reply(msg, this.ok({ startRev, progressMs: this.watchProgressMs }));
    } catch (err) {
      this.ctx.reply(msg, this.mapError(err, 'failed'));
    }
  }
}
