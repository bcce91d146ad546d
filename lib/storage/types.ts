/**
 * Storage contracts used by Raft, Multi-Paxos acceptors and the backup agent.
 * Implementations: file (lib/storage/file-*.ts) and memory (lib/storage/memory-*.ts,
 * which models crashes faithfully for the simulation).
 *
 * Durability contract: a promise returned by a write method resolves only once the data
 * is durable (fsync/fdatasync covered it). Callers must not send messages that depend on
 * a write before its promise resolves ("persist before sending").
 */

export type EntryType = 'normal' | 'config' | 'noop';

export interface LogEntry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** The command, encoded by the layer above. */
  readonly data: Uint8Array;
}

export interface LogStore {
  /** Index of the first entry held (compacted prefix excluded); `lastIndex()+1` when empty. */
  firstIndex(): number;
  /** Index of the last entry held, or the compaction point when empty. */
  lastIndex(): number;
  /** Term of the entry at `index`, the compaction point's term, or undefined if unknown. */
  term(index: number): number | undefined;
  /** Entries in [lo, hi), at most `maxBytes` of data (at least one entry if any). */
  entries(lo: number, hi: number, maxBytes?: number): Promise<LogEntry[]>;
  /**
   * Appends a batch of consecutive entries. If the first index is ≤ lastIndex(), the
   * conflicting suffix from that index is truncated first. Resolves once durable.
   */
  append(entries: readonly LogEntry[]): Promise<void>;
  /** Removes every entry with index ≥ `fromIndex`. Resolves once durable. */
  truncateSuffix(fromIndex: number): Promise<void>;
  /** Discards entries with index ≤ `upTo` (after a snapshot at `upTo` with `term`). */
  compact(upTo: number, term: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Small records replaced atomically: Raft's term/vote, a Paxos acceptor's promised ballot.
 */
export interface HardStateStore<T> {
  load(): Promise<T | undefined>;
  /** Atomically replaces the stored record; resolves once durable. */
  save(state: T): Promise<void>;
  close(): Promise<void>;
}

export interface RaftHardState {
  term: number;
  vote: string | null;
  commit: number;
}

export interface Membership {
  voters: string[];
  learners: string[];
  /** During joint consensus: the outgoing voter set. */
  votersOutgoing?: string[];
}

export interface SnapshotMeta {
  /** Index of the last entry the snapshot covers. */
  index: number;
  term: number;
  membership: Membership;
  /** Size in bytes of the snapshot data. */
  size: number;
  /** Hex SHA-256 (or the implementation's stated digest) of the data. */
  checksum: string;
  /** Wall-clock creation time (ms since epoch). */
  createdAt: number;
}

export interface SnapshotWriter {
  /**
   * Appends `chunk`. The writer copies it when called unless `opts.owned`: then the caller
   * hands the bytes over and must not change them until the returned promise settles (a
   * writer may still copy them).
   */
  write(chunk: Uint8Array, opts?: { readonly owned?: boolean }): Promise<void>;
  /**
   * Optional: the checksum (as `SnapshotMeta.checksum`) of the data written so far, without
   * finishing the snapshot. A caller that must check the data before publishing it (a
   * streamed restore) uses it instead of hashing the same bytes a second time.
   */
  checksumSoFar?(): string;
  /** Finishes and publishes the snapshot atomically; returns its metadata. */
  commit(): Promise<SnapshotMeta>;
  /** Discards a snapshot being written. */
  abort(): Promise<void>;
}

export interface SnapshotReader {
  readonly meta: SnapshotMeta;
  /** Streams the data; verifies the checksum and throws at the end if it does not match. */
  read(): AsyncIterable<Uint8Array>;
  /** Reads the whole snapshot into memory, verified. */
  readAll(): Promise<Uint8Array>;
}

export interface SnapshotStore {
  create(meta: Omit<SnapshotMeta, 'size' | 'checksum' | 'createdAt'>): Promise<SnapshotWriter>;
  /** The newest snapshot whose checksum verifies; corrupted newer ones are skipped. */
  latest(): Promise<SnapshotReader | undefined>;
  list(): Promise<SnapshotMeta[]>;
  /** Keeps the newest `keep` snapshots, deleting the rest. */
  prune(keep: number): Promise<void>;
  close(): Promise<void>;
}
