/**
 * The wire protocol between KV clients and KV service actors (and between services, for
 * forwarded reads and read indexes). Every message is plain data; every request is an `ask`
 * whose reply is a `KvReply` (never a rejected ask: errors travel as data so they keep their
 * code, outcome and leader hint across any transport).
 */
import type { Replies } from '../../lib/actor.js';
import type { RangeResult } from './state-machine.js';
import type {
  CasCondition,
  KeyValue,
  KvResult,
  ReadLevel,
  SessionTag,
  SessionToken,
  WatchEvent,
} from './types.js';

/** How a request ended. `failed`: definitely not applied. `indeterminate`: it may have been. */
export type Outcome = 'ok' | 'failed' | 'indeterminate';

export interface KvFailure {
  readonly ok: false;
  readonly outcome: 'failed' | 'indeterminate';
  readonly code: string;
  readonly message: string;
  readonly leaderHint?: string;
  readonly compactRevision?: number;
}

export interface KvSuccess<T> {
  readonly ok: true;
  readonly value: T;
  /** The session token after this request (log index and revision it reflects). */
  readonly token: SessionToken;
  /** The node that served the request. */
  readonly servedBy: string;
}

export type KvReply<T> = KvSuccess<T> | KvFailure;

export interface ReadOptions {
  /**
   * The level of this read. Omitted: the cluster's default (`KvService` option `defaultRead`,
   * `synod node --read-level`; `strong` when none is configured). A request may name any level,
   * weaker or stronger than the default.
   */
  readonly level?: ReadLevel;
  /** `bounded`: the served state misses no write committed more than this many ms ago. */
  readonly maxLagMs?: number;
  /** `bounded`: the served state is at most this many log entries behind the commit. */
  readonly maxLagVersions?: number;
  /** `session`: serve only a state that includes this token. */
  readonly token?: SessionToken;
  /** Forward to the leader when this replica cannot serve (default true). */
  readonly forward?: boolean;
  /** How long the service may wait (catching up, read index) before failing. */
  readonly waitMs?: number;
  /**
   * `strong`: the key of this attempt's witnesses (docs/kv.md, "Witnessed reads"): the client
   * sent `kv.witness` with it to the other nodes when it started the attempt. A string of 1–256
   * characters, new for every attempt. A service that cannot use it serves the read as usual.
   */
  readonly witness?: string;
}

/** The version of `kv.witness` this code writes and reads. */
export const KV_WITNESS_VERSION = 1;

/**
 * A cluster-wide default read level: what a read that names no level gets. `bounded` needs
 * `maxLagMs` and/or `maxLagVersions` (also used by a `bounded` read that names no bound).
 */
export interface ReadDefault {
  readonly level: ReadLevel;
  readonly maxLagMs?: number;
  readonly maxLagVersions?: number;
}

export interface GetValue {
  readonly kv: KeyValue | null;
  /** Global revision of the state that was read. */
  readonly rev: number;
  /** Log index of the state that was read. */
  readonly index: number;
  /** The level the read was served at (the cluster default when the request named none). */
  readonly level?: ReadLevel;
}

export interface RangeValue extends RangeResult {
  readonly rev: number;
  readonly index: number;
  /** The level the read was served at (the cluster default when the request named none). */
  readonly level?: ReadLevel;
}

export type WriteValue = Exclude<KvResult, { t: 'error' }>;

export interface StatusValue {
  readonly nodeId: string;
  readonly leader: string | undefined;
  readonly appliedIndex: number;
  readonly commitIndex: number;
  readonly revision: number;
  readonly keys: number;
  readonly ready: boolean;
  readonly compactedRevision: number;
  readonly freshness: { readonly at: number; readonly index: number } | undefined;
  /** The level (and bounds) reads that name no level get on this node. */
  readonly defaultRead?: ReadDefault;
}

export type KvRequest =
  | ({
      readonly type: 'kv.write';
      readonly op:
        | { readonly t: 'put'; readonly key: string; readonly value: string }
        | { readonly t: 'del'; readonly key: string }
        | {
            readonly t: 'cas';
            readonly key: string;
            readonly if: CasCondition;
            readonly value: string | null;
          };
      readonly session: SessionTag;
      readonly timeoutMs?: number;
      /** Set by a follower's service forwarding the write to the leader (forwarded once). */
      readonly forwarded?: boolean;
    } & Replies<KvReply<WriteValue>>)
  | ({ readonly type: 'kv.get'; readonly key: string; readonly read: ReadOptions } & Replies<
      KvReply<GetValue>
    >)
  | ({
      readonly type: 'kv.range';
      readonly start: string;
      readonly end?: string;
      readonly prefix?: string;
      readonly limit?: number;
      readonly read: ReadOptions;
    } & Replies<KvReply<RangeValue>>)
  | ({ readonly type: 'kv.status' } & Replies<KvReply<StatusValue>>)
  /** Service to leader service: a read index (leadership confirmed after the ask arrived). */
  | ({ readonly type: 'kv.readIndex' } & Replies<KvReply<number>>)
  | ({
      readonly type: 'kv.watch';
      /** Chosen by the subscriber; unique per subscriber. */
      readonly id: string;
      /** Where events go (an actor address). */
      readonly subscriber: string;
      readonly key: string;
      readonly prefix: boolean;
      /** First revision wanted (etcd's start_revision; 0 = from the next change). */
      readonly fromRev: number;
    } & Replies<KvReply<{ readonly startRev: number; readonly progressMs: number }>>)
  | { readonly type: 'kv.unwatch'; readonly id: string; readonly subscriber: string }
  /**
   * Client to a follower's service, sent (not asked: no reply) when a `strong` read attempt
   * starts: the follower tells its leader it is in its term, for the read carrying `key`
   * (docs/kv.md, "Witnessed reads"). Versioned: another `v` is dead-lettered, and the read then
   * waits for the leader's heartbeat round.
   */
  | { readonly type: 'kv.witness'; readonly v: typeof KV_WITNESS_VERSION; readonly key: string };

/**
 * Pushed by a service to a watch subscriber. `n` numbers the pushes of one watch 1, 2, ... so the
 * subscriber restores their order (a network may reorder) and notices a lost one (it then
 * resubscribes from its next revision).
 */
export type KvWatchPush =
  | {
      readonly type: 'kv.watch.events';
      readonly id: string;
      readonly n: number;
      readonly events: WatchEvent[];
    }
  /** No event up to `rev` (etcd's progress notification); also a liveness heartbeat. */
  | {
      readonly type: 'kv.watch.progress';
      readonly id: string;
      readonly n: number;
      readonly rev: number;
    }
  | {
      readonly type: 'kv.watch.error';
      readonly id: string;
      readonly n: number;
      readonly code: string;
      readonly message: string;
      readonly compactRevision?: number;
    };

export function failure(
  code: string,
  message: string,
  outcome: 'failed' | 'indeterminate' = 'failed',
  extra: { leaderHint?: string | undefined; compactRevision?: number | undefined } = {},
): KvFailure {
  const f: { -readonly [K in keyof KvFailure]: KvFailure[K] } = {
    ok: false,
    outcome,
    code,
    message,
  };
  if (extra.leaderHint !== undefined) f.leaderHint = extra.leaderHint;
  if (extra.compactRevision !== undefined) f.compactRevision = extra.compactRevision;
  return f;
}
