/**
 * The data model of the KV service, shared by the state machine, the service actor and the
 * client. Everything here is plain data so it crosses msgpack unchanged.
 *
 * Revisions follow etcd: one global revision counts every mutation (a put, a delete that
 * removed something, a cas that succeeded); each key records the revision that created it
 * (`createRev`), the one that last changed it (`modRev`) and how many times it changed since
 * it was created (`version`). A delete ends a key's life; a later put starts a new one.
 */

/** A key with its value and revisions. */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRev: number;
  readonly modRev: number;
  readonly version: number;
}

/** Session tag carried by every mutation: client id, sequence number and acknowledgement. */
export interface SessionTag {
  /** Client (session) id. */
  readonly c: string;
  /** Sequence number of this command in the session (1, 2, ...). */
  readonly q: number;
  /**
   * Every seq ≤ `a` has been answered to the client: the state machine may forget their
   * results, and an unknown session with `a > 0` is an expired one.
   */
  readonly a: number;
}

/** What a cas compares against. `modRev: 0` and `value: null` both mean "absent". */
export type CasCondition = { readonly value: string | null } | { readonly modRev: number };

/** Mutations: the commands proposed to the replicated log. */
export type KvOp =
  | { readonly t: 'put'; readonly key: string; readonly value: string; readonly s?: SessionTag }
  | { readonly t: 'del'; readonly key: string; readonly s?: SessionTag }
  | {
      readonly t: 'cas';
      readonly key: string;
      readonly if: CasCondition;
      /** The new value, or `null` to delete the key when the condition holds. */
      readonly value: string | null;
      readonly s?: SessionTag;
    };

/** The result of applying a mutation. `rev` is the global revision after it. */
export type KvResult =
  | { readonly t: 'put'; readonly rev: number; readonly prev: KeyValue | null }
  | {
      readonly t: 'del';
      readonly rev: number;
      readonly deleted: boolean;
      readonly prev: KeyValue | null;
    }
  | {
      readonly t: 'cas';
      readonly rev: number;
      readonly succeeded: boolean;
      /** The key before the cas (what the condition was checked against). */
      readonly prev: KeyValue | null;
    }
  | {
      readonly t: 'error';
      readonly code:
        | 'SYNOD_ERR_KV_SESSION_EXPIRED'
        | 'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT'
        | 'SYNOD_ERR_KV_INVALID_ARGUMENT';
      readonly message: string;
    };

/** One change, as watch delivers it. Exactly one event per revision. */
export interface WatchEvent {
  readonly rev: number;
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** The new value (`null` for a delete). */
  readonly value: string | null;
  /** The key after the change (`null` for a delete). */
  readonly kv: KeyValue | null;
  /** The key before the change (`null` if it did not exist). */
  readonly prev: KeyValue | null;
}

/** The five read levels, strongest first. */
export type ReadLevel = 'strong' | 'bounded' | 'session' | 'prefix' | 'eventual';
export const READ_LEVELS: readonly ReadLevel[] = [
  'strong',
  'bounded',
  'session',
  'prefix',
  'eventual',
];

/**
 * A session token: the highest log index (and KV revision) a client has seen. A replica
 * serves a `session` read only once it has applied at least `index`.
 */
export interface SessionToken {
  readonly index: number;
  readonly rev: number;
}

export function maxToken(a: SessionToken | undefined, b: SessionToken | undefined): SessionToken {
  if (!a) return b ?? { index: 0, rev: 0 };
  if (!b) return a;
  return { index: Math.max(a.index, b.index), rev: Math.max(a.rev, b.rev) };
}

/** Limits enforced on every request (bad input gets `SYNOD_ERR_KV_INVALID_ARGUMENT`). */
export const MAX_KEY_LENGTH = 4096;
export const DEFAULT_MAX_VALUE_LENGTH = 1024 * 1024;
