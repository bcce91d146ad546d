/**
 * Storage errors carry a stable `code` string so callers (and operators reading logs) can
 * tell a full disk from a corrupted segment from a programming mistake.
 */

export type StorageErrorCode =
  /** A log segment or the log's compaction record failed its checksum or structure check. */
  | 'SYNOD_ERR_LOG_CORRUPT'
  /** Another live process (or this one) holds the data directory's lock file. */
  | 'SYNOD_ERR_DATADIR_LOCKED'
  /** A batch handed to `append` does not have consecutive indices. */
  | 'SYNOD_ERR_LOG_NOT_CONSECUTIVE'
  /** `append` would leave a hole after `lastIndex()`. */
  | 'SYNOD_ERR_LOG_GAP'
  /** The operation touches indices at or below the compaction point. */
  | 'SYNOD_ERR_LOG_COMPACTED'
  /** A read asks for indices beyond `lastIndex()`. */
  | 'SYNOD_ERR_LOG_OUT_OF_RANGE'
  /** One entry is larger than the configured `maxEntryBytes`. */
  | 'SYNOD_ERR_LOG_ENTRY_TOO_LARGE'
  /** A malformed argument (non-integer index, unknown entry type, data not bytes, ...). */
  | 'SYNOD_ERR_INVALID_ARGUMENT'
  /** The store was closed (or its memory disk crashed); reopen it. */
  | 'SYNOD_ERR_STORE_CLOSED'
  /**
   * A write or sync failed. The store refuses every later operation: after a failed
   * fsync the page cache can no longer be trusted, so the only safe move is to reopen,
   * which recovers from what is actually on disk.
   */
  | 'SYNOD_ERR_IO'
  /**
   * A write was refused for lack of space (ENOSPC, EDQUOT) before anything was synced.
   * Nothing of the refused operation was kept (a partial write is cut off again) and the
   * store stays usable: retry once space returns. A failed *sync* is SYNOD_ERR_IO instead.
   */
  | 'SYNOD_ERR_NO_SPACE'
  /** A hard-state file failed its checksum or structure check. */
  | 'SYNOD_ERR_HARDSTATE_CORRUPT'
  /** A snapshot failed its checksum (or its header/trailer does not parse). */
  | 'SYNOD_ERR_SNAPSHOT_CORRUPT'
  /** Misuse of a snapshot writer (write after commit, commit twice, ...). */
  | 'SYNOD_ERR_SNAPSHOT_STATE';

export interface StorageErrorDetails {
  /** The file concerned, when there is one. */
  file?: string;
  /** Byte offset inside `file` where the problem starts. */
  offset?: number;
  /** Any further structured detail (pid holding a lock, indices, ...). */
  [key: string]: unknown;
}

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly details: StorageErrorDetails;

  constructor(
    code: StorageErrorCode,
    message: string,
    details: StorageErrorDetails = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StorageError';
    this.code = code;
    this.details = details;
  }

  get file(): string | undefined {
    return this.details.file;
  }

  get offset(): number | undefined {
    return this.details.offset;
  }
}

export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

/** True for the errno codes of a full disk or quota (ENOSPC, EDQUOT). */
export function isNoSpaceErrno(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
