/**
 * The KV state machine: a deterministic `StateMachine` (lib/replicated-log.ts) that the
 * replicated log (Raft or Multi-Paxos) drives with committed mutations. Every replica that
 * applies the same log holds the same keys, revisions, sessions and watch history, and the
 * snapshot image is byte-for-byte the same on every replica at the same index.
 *
 * Reads do not go through `apply`: the service reads the local replica (`get`, `range`) after
 * deciding, per read level, whether this replica's applied state may answer.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { encodeValueSliced } from '../../lib/codec-sliced.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import { KvError } from './errors.js';
import { type SessionsImage, SessionTable } from './sessions.js';
import { prefixEnd, SortedKeys } from './sorted-keys.js';
import type { KeyValue, KvOp, KvResult, WatchEvent } from './types.js';
import { opProblem } from './validate.js';
import { WatchHistory } from './watch-history.js';

export interface KvStateMachineOptions {
  /** Events kept for watch to resume from (default 10 000). */
  historyLimit?: number;
  /** Results remembered per session above its ack (default 128). */
  sessionWindow?: number;
  /** Sessions remembered (least recently used are evicted; default 50 000). */
  maxSessions?: number;
  /** Longest value accepted, in UTF-16 code units (default 1 Mi). */
  maxValueLength?: number;
}

export interface RangeQuery {
  /** First key (inclusive). */
  start: string;
  /** End key (exclusive); undefined = to the last key. */
  end?: string | undefined;
  /** At most this many keys (Infinity = all). */
  limit?: number;
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  /** True when more keys matched than `limit` returned. */
  readonly more: boolean;
  /** Number of keys in the range. */
  readonly count: number;
}

interface Image {
  v: 1;
  rev: number;
  index: number;
  kvs: KeyValue[];
  history: { compacted: number; events: WatchEvent[] };
  sessions: SessionsImage;
}

export class KvStateMachine implements StateMachine<KvOp, KvResult> {
  private data = new Map<string, KeyValue>();
  private keys = new SortedKeys();
  private rev = 0;
  private index = 0;
  private history: WatchHistory;
  private sessions: SessionTable;
  private readonly listeners = new Set<(e: WatchEvent) => void>();
  private readonly restoreListeners = new Set<() => void>();
  private readonly opts: Required<KvStateMachineOptions>;

  constructor(options: KvStateMachineOptions = {}) {
    this.opts = {
      historyLimit: options.historyLimit ?? 10_000,
      sessionWindow: options.sessionWindow ?? 128,
      maxSessions: options.maxSessions ?? 50_000,
      maxValueLength: options.maxValueLength ?? 1024 * 1024,
    };
    this.history = new WatchHistory(this.opts.historyLimit);
    this.sessions = new SessionTable(this.opts.sessionWindow, this.opts.maxSessions);
  }

  // ---------------------------------------------------------------- StateMachine

  apply(op: KvOp, meta: { index: number; term: number }): KvResult {
    if (meta.index > this.index) this.index = meta.index;
    const problem = opProblem(op, this.opts.maxValueLength);
    if (problem) return { t: 'error', code: 'SYNOD_ERR_KV_INVALID_ARGUMENT', message: problem };
    const s = op.s;
    if (s) {
      const v = this.sessions.check(s.c, s.q, s.a);
      switch (v.kind) {
        case 'duplicate':
          this.sessions.touch(s.c, s.a, meta.index);
          return v.result;
        case 'stale':
          this.sessions.touch(s.c, s.a, meta.index);
          return {
            t: 'error',
            code: 'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT',
            message: `command ${s.q} of session ${s.c} was applied before; its result is no longer kept`,
          };
        case 'expired':
          return {
            t: 'error',
            code: 'SYNOD_ERR_KV_SESSION_EXPIRED',
            message: `session ${s.c} is unknown (expired); start a new session`,
          };
        case 'new':
          break;
      }
    }
    const result = this.mutate(op);
    if (s) this.sessions.record(s.c, s.q, s.a, result, meta.index);
    return result;
  }

  snapshot(): Uint8Array {
    return encodeValue(this.image());
  }

  /**
   * The snapshot image captured now (key-values, watch events and session results are
   * immutable objects; the arrays holding them are fresh copies) and encoded in slices.
   */
  snapshotAsync(pause: () => Promise<void>): Promise<Uint8Array> {
    return encodeValueSliced(this.image(), pause);
  }

  private image(): Image {
    return {
      v: 1,
      rev: this.rev,
      index: this.index,
      kvs: this.keys.all().map((k) => this.data.get(k) as KeyValue),
      history: this.history.toImage(),
      sessions: this.sessions.toImage(),
    };
  }

  restore(image: Uint8Array): void {
    let img: Image;
    try {
      img = decodeValue(image) as Image;
    } catch (err) {
      throw new KvError('SYNOD_ERR_KV_BAD_SNAPSHOT', `KV snapshot: ${(err as Error).message}`);
    }
    if (
      img === null ||
      typeof img !== 'object' ||
      img.v !== 1 ||
      !Array.isArray(img.kvs) ||
      typeof img.rev !== 'number' ||
      !img.history ||
      !Array.isArray(img.sessions)
    )
      throw new KvError('SYNOD_ERR_KV_BAD_SNAPSHOT', 'KV snapshot image has an unknown shape');
    this.adopt(img);
  }

  /**
   * Replaces the state as `restore` of an image holding these parts would (the watch history
   * compacted at `rev`), without encoding and decoding that image: the backup agent rebuilds
   * its copy of the state from a backup's records this way. `kvs` are taken as they are (they
   * must not be mutated afterwards); sorted by key here unless they already are.
   */
  load(parts: { kvs: KeyValue[]; rev: number; index: number; sessions: SessionsImage }): void {
    const kvs = parts.kvs;
    let sorted = true;
    for (let i = 1; i < kvs.length && sorted; i++) {
      if (!((kvs[i - 1] as KeyValue).key < (kvs[i] as KeyValue).key)) sorted = false;
    }
    this.adopt({
      v: 1,
      rev: parts.rev,
      index: parts.index,
      kvs: sorted ? kvs : [...kvs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
      history: { compacted: parts.rev, events: [] },
      sessions: parts.sessions,
    });
  }

  private adopt(img: Image): void {
    this.data = new Map(img.kvs.map((kv) => [kv.key, kv]));
    this.keys = SortedKeys.from(img.kvs.map((kv) => kv.key));
    this.rev = img.rev;
    this.index = img.index;
    this.history = WatchHistory.fromImage(img.history, this.opts.historyLimit);
    this.sessions = SessionTable.fromImage(
      img.sessions,
      this.opts.sessionWindow,
      this.opts.maxSessions,
    );
    for (const l of this.restoreListeners) l();
  }

  // ---------------------------------------------------------------- reads

  /** Global revision: the number of mutations applied. */
  get revision(): number {
    return this.rev;
  }

  /** Log index of the last command applied (or restored). */
  get appliedIndex(): number {
    return this.index;
  }

  /** Watch events at or below this revision are gone. */
  get compactedRevision(): number {
    return this.history.compacted;
  }

  get size(): number {
    return this.data.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Ids of the remembered client sessions (backup hook: actors/backup/kv-state.ts). */
  sessionIds(): IterableIterator<string> {
    return this.sessions.ids();
  }

  /** One client session as the snapshot image holds it (backup hook). */
  sessionImage(client: string): SessionsImage[number] | undefined {
    return this.sessions.entryImage(client);
  }

  /** Sessions remembered at most before the least recently used are evicted. */
  get maxSessions(): number {
    return this.opts.maxSessions;
  }

  get(key: string): KeyValue | null {
    return this.data.get(key) ?? null;
  }

  range(q: RangeQuery): RangeResult {
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const keys = this.keys.range(
      q.start,
      q.end,
      limit === Number.POSITIVE_INFINITY ? limit : limit + 1,
    );
    const more = keys.length > limit;
    if (more) keys.length = limit;
    return {
      kvs: keys.map((k) => this.data.get(k) as KeyValue),
      more,
      count: this.keys.count(q.start, q.end),
    };
  }

  prefix(prefix: string, limit?: number): RangeResult {
    return this.range({
      start: prefix,
      end: prefixEnd(prefix),
      ...(limit !== undefined ? { limit } : {}),
    });
  }

  /** Retained events with rev ≥ fromRev on keys `match` accepts (throws when compacted). */
  eventsSince(fromRev: number, match: (key: string) => boolean): WatchEvent[] {
    return this.history.since(fromRev, match);
  }

  /** Calls `fn` synchronously with every new event; returns an unsubscribe function. */
  onEvent(fn: (e: WatchEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls `fn` after every `restore` (the watch history may have jumped). */
  onRestore(fn: () => void): () => void {
    this.restoreListeners.add(fn);
    return () => this.restoreListeners.delete(fn);
  }

  // ---------------------------------------------------------------- mutations

  private mutate(op: KvOp): KvResult {
    const prev = this.data.get(op.key) ?? null;
    switch (op.t) {
      case 'put':
        this.write(op.key, op.value, prev);
        return { t: 'put', rev: this.rev, prev };
      case 'del':
        if (prev) this.remove(op.key, prev);
        return { t: 'del', rev: this.rev, deleted: prev !== null, prev };
      case 'cas': {
        const c = op.if;
        const holds =
          'modRev' in c
            ? (prev?.modRev ?? 0) === c.modRev
            : (prev === null ? null : prev.value) === c.value;
        if (holds) {
          if (op.value === null) {
            if (prev) this.remove(op.key, prev);
          } else this.write(op.key, op.value, prev);
        }
        return { t: 'cas', rev: this.rev, succeeded: holds, prev };
      }
    }
  }

  private write(key: string, value: string, prev: KeyValue | null): void {
    const rev = ++this.rev;
    const kv: KeyValue = {
      key,
      value,
      createRev: prev ? prev.createRev : rev,
      modRev: rev,
      version: prev ? prev.version + 1 : 1,
    };
    if (!prev) this.keys.insert(key);
    this.data.set(key, kv);
    this.emit({ rev, type: 'put', key, value, kv, prev });
  }

  private remove(key: string, prev: KeyValue): void {
    const rev = ++this.rev;
    this.data.delete(key);
    this.keys.remove(key);
    this.emit({ rev, type: 'delete', key, value: null, kv: null, prev });
  }

  private emit(e: WatchEvent): void {
    this.history.push(e);
    for (const l of this.listeners) l(e);
  }
}
