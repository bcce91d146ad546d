/**
 * Backup errors carry a stable `code` string (SYNOD_ERR_BACKUP_...) so that an operator,
 * a script or a test can tell a wrong key from a missing chunk from a gap in the archive.
 */
import { SynodError } from '../../lib/errors.js';

export type BackupErrorCode =
  /** `--repo` names no repository (no repo.json). */
  | 'SYNOD_ERR_BACKUP_REPO_NOT_FOUND'
  /** repo.json is unreadable, of an unknown format version, or inconsistent. */
  | 'SYNOD_ERR_BACKUP_REPO_FORMAT'
  /** The repository is encrypted and no key was given. */
  | 'SYNOD_ERR_BACKUP_KEY_REQUIRED'
  /** The key given does not open this repository (or a key was given for a plain one). */
  | 'SYNOD_ERR_BACKUP_WRONG_KEY'
  /** The key file or variable does not hold 32 bytes (64 hex digits or base64). */
  | 'SYNOD_ERR_BACKUP_KEY_INVALID'
  /** Another process holds the repository lock. */
  | 'SYNOD_ERR_BACKUP_LOCKED'
  /** A chunk a backup needs is absent. */
  | 'SYNOD_ERR_BACKUP_CHUNK_MISSING'
  /** A chunk fails its hash, authentication tag, size or structure check. */
  | 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT'
  /** A manifest fails its MAC or structure check. */
  | 'SYNOD_ERR_BACKUP_MANIFEST_CORRUPT'
  /** No backup with that id (or no backup at all). */
  | 'SYNOD_ERR_BACKUP_NOT_FOUND'
  /** A differential or incremental backup was asked for, but there is no full backup. */
  | 'SYNOD_ERR_BACKUP_NO_FULL'
  /** A backup's parent chain is incomplete (a parent is missing or does not match). */
  | 'SYNOD_ERR_BACKUP_CHAIN_BROKEN'
  /** An archive segment fails its checksum or structure check. */
  | 'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT'
  /** The log archive lacks entries needed to reach the target. */
  | 'SYNOD_ERR_BACKUP_ARCHIVE_GAP'
  /** The restore target lies before the first backup or after the last archived entry. */
  | 'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE'
  /** The restored state's digest differs from the one the manifest recorded. */
  | 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH'
  /** The repository belongs to another cluster. */
  | 'SYNOD_ERR_BACKUP_CLUSTER_MISMATCH'
  /** A malformed argument (bad target, bad schedule, bad retention numbers, ...). */
  | 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT'
  /** The restore destination is not empty. */
  | 'SYNOD_ERR_BACKUP_DEST_NOT_EMPTY'
  /** A backup was asked at an index older than the agent's state. */
  | 'SYNOD_ERR_BACKUP_STALE_INDEX'
  /** The agent is stopped or busy with an exclusive operation. */
  | 'SYNOD_ERR_BACKUP_BUSY'
  /** A file system operation failed. */
  | 'SYNOD_ERR_BACKUP_IO'
  /** The repository uses a codec this machine cannot load (LZ4 without its native binary). */
  | 'SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE'
  /** No member of the live cluster (`--cluster`) answered, or the cluster has no leader. */
  | 'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE'
  /** The cluster refused to add (or remove) the agent's learner. */
  | 'SYNOD_ERR_BACKUP_JOIN'
  /** The agent did not catch up with the cluster (or start) in time. */
  | 'SYNOD_ERR_BACKUP_TIMEOUT'
  /**
   * A `time:` restore target falls where the archive cannot say which entries the cluster had
   * committed by then (entries caught up by the agent, archived by an older synod, or missing).
   */
  | 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS';

export class BackupError extends SynodError {
  declare readonly code: BackupErrorCode;

  constructor(
    code: BackupErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(code, message);
    this.name = 'BackupError';
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

export function isBackupError(err: unknown, code?: BackupErrorCode): err is BackupError {
  return err instanceof BackupError && (code === undefined || err.code === code);
}
