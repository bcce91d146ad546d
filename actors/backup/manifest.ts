/**
 * A manifest describes one backup completely: what it is (type, parent chain), what state
 * it holds (index, term, commit time, key count, state digest) and where its bytes are
 * (the ordered chunk list with sizes). It is written last, atomically, after every chunk is
 * durable: a backup exists exactly when its manifest does. Manifests are JSON with a MAC
 * (HMAC-SHA256 under the repository's mac key when encrypted; a public-key checksum
 * otherwise), and each one records its parent's MAC, so a replaced or edited parent breaks
 * the chain visibly.
 */
import { mac, type RepoKeys } from './crypto.js';
import { DIGEST_VERSION } from './digest.js';
import { BackupError } from './errors.js';

export type BackupType = 'full' | 'diff' | 'incr';

export interface ManifestChunk {
  readonly id: string;
  /** Plain bytes. */
  readonly size: number;
}

export interface Manifest {
  readonly format: 1;
  readonly id: string;
  /** Creation order in the repository (1, 2, ...). */
  readonly seq: number;
  readonly type: BackupType;
  /** The backup this one is relative to (null for a full backup). */
  readonly parent: string | null;
  /** The parent manifest's MAC, binding the chain. */
  readonly parentMac: string | null;
  /** The full backup at the root of the chain (its own id for a full). */
  readonly full: string;
  /** The last log index the backup covers, and that entry's term and commit time (ms). */
  readonly index: number;
  readonly term: number;
  readonly time: number;
  /** Wall-clock time the manifest was written (ms). */
  readonly createdAt: number;
  readonly clusterId: string;
  readonly chunks: readonly ManifestChunk[];
  /** Plain bytes of this backup's record stream. */
  readonly bytes: number;
  /** Bytes this backup added to the repository (new chunks only). */
  readonly storedBytes: number;
  /** Records in this backup (puts + deletes). */
  readonly records: number;
  readonly deletes: number;
  /** Keys in the whole state at `index`. */
  readonly keyCount: number;
  /** Digest (digest.ts, the additive one) of the whole state at `index`. */
  readonly stateDigest: string;
  /**
   * Which state digests the manifest carries (digest.ts). Absent: version 1, `stateDigest`
   * only. 2: a full backup also carries `streamDigest`, which a restore of that full checks
   * instead of hashing every record (its `stateDigest` is then taken from the manifest).
   */
  readonly digestVersion?: typeof DIGEST_VERSION;
  /** Version 2, full backups: SHA-256 (hex) of the backup's record stream (digest.ts). */
  readonly streamDigest?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

const TYPE_LETTER: Record<BackupType, string> = { full: 'F', diff: 'D', incr: 'I' };

export function manifestId(type: BackupType, seq: number, createdAt: number): string {
  const d = new Date(createdAt);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
  return `${stamp}-${p(seq, 6)}${TYPE_LETTER[type]}`;
}

export const MANIFEST_ID_RE = /^\d{8}-\d{6}-\d{6}[FDI]$/;

export function encodeManifest(keys: RepoKeys, m: Manifest): { bytes: Buffer; mac: string } {
  const body = JSON.stringify(m);
  const tag = mac(keys, body);
  return { bytes: Buffer.from(`${JSON.stringify({ manifest: m, mac: tag })}\n`), mac: tag };
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Parses and authenticates a manifest file; throws SYNOD_ERR_BACKUP_MANIFEST_CORRUPT. */
export function decodeManifest(
  keys: RepoKeys,
  bytes: Uint8Array,
  name: string,
): { manifest: Manifest; mac: string } {
  const bad = (why: string): never => {
    throw new BackupError('SYNOD_ERR_BACKUP_MANIFEST_CORRUPT', `manifest ${name}: ${why}`, {
      backup: name,
    });
  };
  let outer: { manifest?: unknown; mac?: unknown };
  try {
    outer = JSON.parse(Buffer.from(bytes).toString('utf8')) as typeof outer;
  } catch {
    return bad('not valid JSON (truncated or overwritten)');
  }
  if (typeof outer !== 'object' || outer === null || typeof outer.mac !== 'string') {
    return bad('no MAC');
  }
  const m = outer.manifest as Manifest;
  if (typeof m !== 'object' || m === null) return bad('no manifest body');
  if (mac(keys, JSON.stringify(m)) !== outer.mac) {
    return bad(
      keys.encrypted
        ? 'MAC does not verify (tampered, or written under another key)'
        : 'checksum does not verify (tampered or damaged)',
    );
  }
  if (m.digestVersion !== undefined && m.digestVersion !== DIGEST_VERSION) {
    bad(
      `state digest version ${JSON.stringify(m.digestVersion)} is not one this synod reads (1 or ${DIGEST_VERSION}): written by a newer synod?`,
    );
  }
  const ok =
    m.format === 1 &&
    typeof m.id === 'string' &&
    m.id === name &&
    isNum(m.seq) &&
    (m.type === 'full' || m.type === 'diff' || m.type === 'incr') &&
    (m.type === 'full' ? m.parent === null : typeof m.parent === 'string') &&
    typeof m.full === 'string' &&
    isNum(m.index) &&
    isNum(m.term) &&
    isNum(m.time) &&
    isNum(m.keyCount) &&
    typeof m.stateDigest === 'string' &&
    HEX64.test(m.stateDigest) &&
    (m.digestVersion === undefined ||
      (m.digestVersion === DIGEST_VERSION &&
        (m.type === 'full'
          ? typeof m.streamDigest === 'string' && HEX64.test(m.streamDigest)
          : m.streamDigest === undefined))) &&
    (m.digestVersion !== undefined || m.streamDigest === undefined) &&
    Array.isArray(m.chunks) &&
    m.chunks.every(
      (c) => typeof c?.id === 'string' && /^[0-9a-f]{64}$/.test(c.id) && isNum(c.size),
    );
  if (!ok) bad('fields missing or malformed');
  return { manifest: m, mac: outer.mac };
}
