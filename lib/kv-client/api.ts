/**
 * The KV client API both keyspaces implement: `KvClient` (a Raft or Multi-Paxos keyspace,
 * actors/kv) and `LeaderlessKvClient` (the leaderless eventually consistent store,
 * actors/gossip). Code written against `KvApi` runs on either; every call resolves (never
 * rejects) with an outcome (`ok`, `failed`, `indeterminate`), and reads choose a level per
 * request. What a keyspace cannot do it refuses with a stable code and `outcome: 'failed'`
 * (nothing applied): a leaderless keyspace refuses `strong`, `bounded` and `prefix` reads,
 * `cas`, scans and watches.
 */
import type { Observable } from 'rxjs';
import type { RangeValue, ReadOptions, WriteValue } from '../../actors/kv/messages.js';
import type { CasCondition, SessionToken, WatchEvent } from '../../actors/kv/types.js';
import type { GetResult, WatchOptions } from './client.js';
import type { KvResponse } from './response.js';

export interface KvApi {
  readonly nodes: readonly string[];
  /** Session token (`{ index: 0, rev: 0 }` on a leaderless keyspace: it uses causal contexts). */
  readonly token: SessionToken;
  get(key: string, read?: ReadOptions & { node?: string }): Promise<KvResponse<GetResult>>;
  put(key: string, value: string, opts?: { timeoutMs?: number }): Promise<KvResponse<WriteValue>>;
  delete(key: string, opts?: { timeoutMs?: number }): Promise<KvResponse<WriteValue>>;
  cas(
    key: string,
    condition: CasCondition,
    value: string | null,
    opts?: { timeoutMs?: number },
  ): Promise<KvResponse<WriteValue>>;
  range(
    start: string,
    end: string | undefined,
    opts?: ReadOptions & { limit?: number },
  ): Promise<KvResponse<RangeValue>>;
  prefix(prefix: string, opts?: ReadOptions & { limit?: number }): Promise<KvResponse<RangeValue>>;
  watch(key: string, opts?: WatchOptions): Observable<WatchEvent>;
  close(): Promise<void>;
}
