/**
 * Stable error codes of the leaderless store. Every refusal carries one of these strings in
 * `code`, so a client (or the KV layer above) can branch on it without parsing messages.
 */
export type GossipErrorCode =
  /** The request is malformed (bad key, bad level, bad W/R, bad operation). Nothing applied. */
  | 'SYNOD_ERR_BAD_REQUEST'
  /** `strong` was asked of a leaderless keyspace: it cannot give linearizability. Nothing applied. */
  | 'SYNOD_ERR_STRONG_UNSUPPORTED'
  /** The operation does not fit the key's declared type (e.g. `increment` on an OR-set). */
  | 'SYNOD_ERR_WRONG_TYPE'
  /** Fewer live nodes than W or R (or no live primary to coordinate). Nothing applied. */
  | 'SYNOD_ERR_UNAVAILABLE'
  /**
   * W (or R) acknowledgements did not arrive in time. For writes this is indeterminate:
   * the value is stored on some replicas and will spread by anti-entropy.
   */
  | 'SYNOD_ERR_TIMEOUT'
  /** A session read could not find a version at least as new as the caller's context. */
  | 'SYNOD_ERR_SESSION_STALE'
  /** The causal context string does not decode. Nothing applied. */
  | 'SYNOD_ERR_BAD_CONTEXT'
  /** A remote HLC timestamp is further ahead of the local clock than the allowed drift. */
  | 'SYNOD_ERR_CLOCK_DRIFT'
  /** The replica is not started (or is stopping). */
  | 'SYNOD_ERR_NOT_READY';

export class GossipError extends Error {
  constructor(
    readonly code: GossipErrorCode,
    message: string,
    /** True when a write may have been applied despite the error. */
    readonly indeterminate = code === 'SYNOD_ERR_TIMEOUT',
  ) {
    super(message);
    this.name = 'GossipError';
  }
}
