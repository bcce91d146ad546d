/**
 * The replica's messages. Client-facing requests (`kv-get`, `kv-write`) are asks; the
 * replica-to-replica protocol is one-way tells correlated by request ids, so a coordinator
 * never blocks its mailbox waiting on peers. Every peer message names its sender node.
 */
import type { CausalContext } from './causal-context.js';
import type { KeyRecord, KeyType, Operation } from './record.js';
import type { SwimMessage } from './swim.js';

/** `one`, `quorum` (⌊N/2⌋+1), `all` (N), or a number in [1, N]. */
export type Quorum = 'one' | 'quorum' | 'all' | number;

/** Consistency levels shared with the KV client. */
export type Level = 'eventual' | 'session' | 'strong';

export interface GetRequest {
  readonly type: 'kv-get';
  readonly key: string;
  readonly r?: Quorum;
  readonly level?: Level;
  /** For `session`: the causal context from this client's previous operations on the key. */
  readonly context?: string;
}

export interface WriteRequest {
  readonly type: 'kv-write';
  readonly key: string;
  readonly op: Operation;
  readonly w?: Quorum;
  readonly level?: Level;
  /**
   * The causal context of what the client read. For `dvv` keys it says which siblings
   * this write replaces; without it the write is concurrent with everything stored.
   */
  readonly context?: string;
}

export interface GetResult {
  readonly key: string;
  readonly type: KeyType;
  /** Register values: DVV siblings, MV values, or the LWW value (0 or 1 element). */
  readonly values: unknown[];
  /** Counter value or set elements for `pn` / `orset`. */
  readonly value?: unknown;
  readonly absent: boolean;
  /** Pass back on the next write (resolves siblings) or read (`session`). */
  readonly context: string;
  /** Replicas that answered. */
  readonly replies: number;
}

export interface WriteResult {
  readonly key: string;
  readonly type: KeyType;
  /** Causal context covering this write (read-your-writes with `session`). */
  readonly context: string;
  /** Acknowledgements received (≥ W). */
  readonly acks: number;
  /** Replicas written as hints for an unreachable preferred replica. */
  readonly hinted: number;
  /**
   * `orset` add: the dot (coordinator, counter) this add minted. A remove removes this add
   * exactly when its `observed` context holds this dot (observed remove); otherwise the add
   * wins and the element stays.
   */
  readonly dot?: readonly [string, number];
  /**
   * `orset` remove: the causal context (every add of the key, dot by dot) its coordinator had
   * seen when it removed the element. Every add of the element whose dot is in it is removed
   * for good (also one a later add of the same element had replaced); adds it had not seen keep
   * the element (add wins).
   */
  readonly observed?: CausalContext;
}

export interface ErrorReply {
  readonly code: string;
  readonly message: string;
}

export type PeerMessage =
  | { readonly type: 'swim'; readonly from: string; readonly m: SwimMessage }
  | {
      readonly type: 'rep-write';
      readonly from: string;
      readonly rid: string;
      readonly key: string;
      readonly rec: KeyRecord;
      /** Set when the receiver holds it as a hint for this (unreachable) node. */
      readonly hintFor?: string;
    }
  | { readonly type: 'rep-ack'; readonly from: string; readonly rid: string }
  | { readonly type: 'rep-read'; readonly from: string; readonly rid: string; readonly key: string }
  | {
      readonly type: 'rep-read-ack';
      readonly from: string;
      readonly rid: string;
      readonly rec: KeyRecord | null;
    }
  | {
      readonly type: 'fwd-write';
      readonly from: string;
      readonly rid: string;
      readonly req: WriteRequest;
    }
  | {
      readonly type: 'fwd-result';
      readonly from: string;
      readonly rid: string;
      readonly ok?: WriteResult;
      readonly err?: ErrorReply;
    }
  | {
      readonly type: 'hint-deliver';
      readonly from: string;
      readonly items: ReadonlyArray<readonly [string, KeyRecord]>;
    }
  | {
      readonly type: 'hint-ack';
      readonly from: string;
      readonly items: ReadonlyArray<readonly [string, string]>;
    }
  | {
      readonly type: 'ae-roots';
      readonly from: string;
      /** Ring fingerprint: segments are only comparable on the same ring. */
      readonly rv: string;
      readonly roots: ReadonlyArray<readonly [number, string]>;
    }
  | {
      readonly type: 'ae-leaves';
      readonly from: string;
      readonly rv: string;
      readonly segs: ReadonlyArray<readonly [number, readonly string[]]>;
    }
  | {
      readonly type: 'ae-keys';
      readonly from: string;
      readonly rv: string;
      /** [segment, leaf indices, [key, digest] of the sender's keys in those leaves]. */
      readonly items: ReadonlyArray<
        readonly [number, readonly number[], ReadonlyArray<readonly [string, string]>]
      >;
    }
  | {
      readonly type: 'ae-push';
      readonly from: string;
      readonly records: ReadonlyArray<readonly [string, KeyRecord]>;
      /** Keys the sender wants in return. */
      readonly want: readonly string[];
    };

export type PeerMessageType = PeerMessage['type'];
export const PEER_MESSAGE_TYPES: ReadonlySet<string> = new Set<PeerMessageType>([
  'swim',
  'rep-write',
  'rep-ack',
  'rep-read',
  'rep-read-ack',
  'fwd-write',
  'fwd-result',
  'hint-deliver',
  'hint-ack',
  'ae-roots',
  'ae-leaves',
  'ae-keys',
  'ae-push',
]);
