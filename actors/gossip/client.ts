/**
 * The coordinator API a client (the KV client, a CLI, a test) calls: typed operations over
 * `ask`, a causal context per key kept for the caller, and the two levels a leaderless
 * keyspace offers.
 *
 * - `eventual`: any replica answers with whatever R replicas hold.
 * - `session`: reads see this client's own writes and never go back in time (read your
 *   writes, monotonic reads), through the causal context the client carries per key.
 * - `strong` is refused with SYNOD_ERR_STRONG_UNSUPPORTED: use a Raft/Paxos keyspace.
 *
 * For `dvv` keys a write replaces the siblings this client has seen (its context) and
 * keeps any it has not: read, resolve, write back.
 */
import type { Replies } from '../../lib/actor.js';
import type { ActorSystem } from '../../lib/actor-system.js';
import { GossipError, type GossipErrorCode } from './errors.js';
import type {
  GetRequest,
  GetResult,
  Level,
  Quorum,
  WriteRequest,
  WriteResult,
} from './messages.js';
import {
  type CausalToken,
  decodeContext,
  encodeContext,
  joinTokens,
  type Operation,
} from './record.js';

export interface EventualClientOptions {
  /** Replica addresses (`node/gossip`) to send requests to; tried in turn. */
  readonly replicas: readonly string[];
  readonly level?: Exclude<Level, 'strong'> | 'strong';
  /** Ask timeout (longer than the replicas' request timeout). Default 5000 ms. */
  readonly timeoutMs?: number;
}

export interface OpOptions {
  readonly w?: Quorum;
  readonly r?: Quorum;
  readonly level?: Level;
}

export class EventualClient {
  private readonly contexts = new Map<string, CausalToken>();
  private next = 0;
  private readonly timeoutMs: number;

  constructor(
    private readonly system: ActorSystem,
    private readonly options: EventualClientOptions,
  ) {
    if (options.replicas.length === 0)
      throw new RangeError('EventualClient needs at least one replica');
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  private level(o: OpOptions | undefined): Level {
    return o?.level ?? this.options.level ?? 'eventual';
  }

  private pick(): string {
    const r = this.options.replicas[this.next % this.options.replicas.length] as string;
    this.next++;
    return r;
  }

  /** The causal context this client holds for `key` (opaque string), if any. */
  contextOf(key: string): string | undefined {
    const t = this.contexts.get(key);
    return t === undefined ? undefined : encodeContext(t);
  }

  /** Forgets the session's context (a new session). */
  reset(): void {
    this.contexts.clear();
  }

  private remember(key: string, context: string): void {
    try {
      this.contexts.set(key, joinTokens(this.contexts.get(key), decodeContext(context)));
    } catch {
      // a replica of another version may send a context we cannot read: keep ours
    }
  }

  private async ask<R>(
    msg: (GetRequest | WriteRequest) & Replies<R>,
    retryable: boolean,
  ): Promise<R> {
    const tries = retryable ? this.options.replicas.length : 1;
    let last: unknown;
    for (let i = 0; i < tries; i++) {
      const to = this.pick();
      try {
        return (await this.system.ask(to, msg, this.timeoutMs)) as R;
      } catch (e) {
        last = e;
        const code = (e as { code?: string }).code;
        // only definite "not served here" errors are retried elsewhere
        if (
          code !== 'SYNOD_ERR_NOT_READY' &&
          code !== 'SYNOD_ERR_NO_SUCH_ACTOR' &&
          code !== 'SYNOD_ERR_ASK_TIMEOUT'
        )
          break;
        if (code === 'SYNOD_ERR_ASK_TIMEOUT' && msg.type === 'kv-write') break; // may have applied
      }
    }
    const err = last as { code?: string; message?: string };
    throw new GossipError(
      (err.code ?? 'SYNOD_ERR_TIMEOUT') as GossipErrorCode,
      err.message ?? String(last),
      err.code === 'SYNOD_ERR_TIMEOUT' ||
        (err.code === 'SYNOD_ERR_ASK_TIMEOUT' && msg.type === 'kv-write'),
    );
  }

  async get(key: string, o?: OpOptions): Promise<GetResult> {
    const level = this.level(o);
    const context = level === 'session' ? this.contextOf(key) : undefined;
    const req: GetRequest = {
      type: 'kv-get',
      key,
      level,
      ...(o?.r === undefined ? {} : { r: o.r }),
      ...(context === undefined ? {} : { context }),
    };
    const res = await this.ask(req as GetRequest & Replies<GetResult>, true);
    this.remember(key, res.context);
    return res;
  }

  async write(key: string, op: Operation, o?: OpOptions): Promise<WriteResult> {
    const context = this.contextOf(key);
    const req: WriteRequest = {
      type: 'kv-write',
      key,
      op,
      level: this.level(o),
      ...(o?.w === undefined ? {} : { w: o.w }),
      ...(context === undefined ? {} : { context }),
    };
    const res = await this.ask(req as WriteRequest & Replies<WriteResult>, true);
    this.remember(key, res.context);
    return res;
  }

  put(key: string, value: unknown, o?: OpOptions): Promise<WriteResult> {
    return this.write(key, { op: 'put', value }, o);
  }

  delete(key: string, o?: OpOptions): Promise<WriteResult> {
    return this.write(key, { op: 'delete' }, o);
  }

  increment(key: string, by = 1, o?: OpOptions): Promise<WriteResult> {
    return this.write(key, { op: 'increment', by }, o);
  }

  add(key: string, element: string, o?: OpOptions): Promise<WriteResult> {
    return this.write(key, { op: 'add', element }, o);
  }

  remove(key: string, element: string, o?: OpOptions): Promise<WriteResult> {
    return this.write(key, { op: 'remove', element }, o);
  }
}
