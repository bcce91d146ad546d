/**
 * What every KV client call resolves with (it never rejects): an outcome, the value or the
 * error, and the session token after the call.
 *
 * - `ok`: it happened (for a write: applied exactly once), `value` holds the result;
 * - `failed`: it definitely did not happen (not applied);
 * - `indeterminate`: it may or may not have been applied (a timeout, a lost leader, an expired
 *   session). Record it as Jepsen's `info`.
 */
import type { SessionToken } from '../../actors/kv/types.js';

export type KvResponse<T> =
  | {
      readonly outcome: 'ok';
      readonly value: T;
      readonly token: SessionToken;
      readonly servedBy: string;
      readonly attempts: number;
    }
  | {
      readonly outcome: 'failed' | 'indeterminate';
      readonly error: { readonly code: string; readonly message: string };
      readonly token: SessionToken;
      readonly attempts: number;
      readonly leaderHint?: string;
      readonly compactRevision?: number;
    };

/** The value of an `ok` response, or throws a `KvError` carrying the code and outcome. */
export { KvError } from '../../actors/kv/errors.js';
