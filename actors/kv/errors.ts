/**
 * KV errors carry a stable `code` (`SYNOD_ERR_KV_...`) and say whether the operation they
 * end may still have been applied (`indeterminate`), so a client can report the outcome
 * exactly: `failed` means definitely not applied, `indeterminate` means it may have been.
 */

export type KvErrorCode =
  /** A key, value, range or option is malformed (too long, wrong type, ...). */
  | 'SYNOD_ERR_KV_INVALID_ARGUMENT'
  /** This replica is not the leader; `leaderHint` may name the leader. Not applied. */
  | 'SYNOD_ERR_KV_NOT_LEADER'
  /** No answer in time; a write may still be applied. */
  | 'SYNOD_ERR_KV_TIMEOUT'
  /** A bounded read could not be served within the requested staleness bound. */
  | 'SYNOD_ERR_KV_STALENESS_BOUND_EXCEEDED'
  /** A session read could not reach the session token's index in time. */
  | 'SYNOD_ERR_KV_SESSION_NOT_CAUGHT_UP'
  /** The client session is no longer known to the state machine (evicted). */
  | 'SYNOD_ERR_KV_SESSION_EXPIRED'
  /** A retried command was applied before but its result is no longer kept. */
  | 'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT'
  /** A watch asked for revisions older than the retained history (like etcd's ErrCompacted). */
  | 'SYNOD_ERR_KV_COMPACTED'
  /** The replica has not caught up since it started (prefix reads wait for this). */
  | 'SYNOD_ERR_KV_NOT_READY'
  /** The service or client was stopped. */
  | 'SYNOD_ERR_KV_STOPPED'
  /** A request reached no replica (all unreachable). */
  | 'SYNOD_ERR_KV_UNAVAILABLE'
  /** A malformed snapshot image. */
  | 'SYNOD_ERR_KV_BAD_SNAPSHOT'
  /**
   * A node's default read level (`defaultRead`, `synod node --read-level`, its config key or
   * environment variable) is malformed: an unknown level, `bounded` without a bound, a bound
   * that is not a number ≥ 0, or a bound given with a level other than `bounded`.
   */
  | 'SYNOD_ERR_KV_INVALID_READ_LEVEL'
  /** The keyspace does not offer this operation or level (e.g. cas on a leaderless keyspace). */
  | 'SYNOD_ERR_KV_UNSUPPORTED';

export class KvError extends Error {
  override readonly name = 'KvError';
  constructor(
    readonly code: KvErrorCode,
    message: string,
    /** True when the operation may have been applied despite the error. */
    readonly indeterminate = false,
    readonly details: { leaderHint?: string; compactRevision?: number } = {},
  ) {
    super(message);
  }
}

export function isKvError(e: unknown): e is KvError {
  return e instanceof KvError;
}
