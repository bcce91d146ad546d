/**
 * Repository encryption: AES-256-GCM with keys derived (HKDF-SHA256, per-repository salt)
 * from one 32-byte master key given in a file or an environment variable. Three subkeys:
 * `enc` encrypts chunks and archive segments, `id` names chunks (HMAC-SHA256 of the plain
 * chunk, so equal plaintexts still deduplicate without the names revealing the content), and
 * `mac` authenticates manifests. Without encryption, chunks are named by plain SHA-256 and
 * manifests carry a SHA-256 checksum under a fixed, public key.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BackupError } from './errors.js';

export const KEY_ENV = 'SYNOD_BACKUP_KEY';

/** Parses a 32-byte key written as 64 hex digits, base64, or 32 raw bytes. */
export function parseKey(raw: Uint8Array, source: string): Buffer {
  const buf = Buffer.from(raw);
  if (buf.length === 32) return buf;
  const text = buf.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const b = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (b.length === 32) return b;
  }
  throw new BackupError(
    'SYNOD_ERR_BACKUP_KEY_INVALID',
    `${source} does not hold a 32-byte key (expected 64 hex digits, base64 of 32 bytes, or 32 raw bytes)`,
    { source },
  );
}

/** Loads the master key from `file`, else from $SYNOD_BACKUP_KEY; undefined when neither. */
export function loadKey(opts: { keyFile?: string; env?: NodeJS.ProcessEnv }): Buffer | undefined {
  if (opts.keyFile !== undefined) {
    let raw: Buffer;
    try {
      raw = readFileSync(opts.keyFile);
    } catch (err) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_KEY_INVALID',
        `cannot read key file ${opts.keyFile}: ${(err as Error).message}`,
        { file: opts.keyFile },
      );
    }
    return parseKey(raw, `key file ${opts.keyFile}`);
  }
  const v = (opts.env ?? process.env)[KEY_ENV];
  if (v !== undefined && v !== '') return parseKey(Buffer.from(v, 'utf8'), `$${KEY_ENV}`);
  return undefined;
}

export function newKey(): Buffer {
  return randomBytes(32);
}

const PUBLIC_MAC_KEY = Buffer.from('synod-backup-manifest-checksum-v1');
const KEY_CHECK_TEXT = 'synod-backup-key-check-v1';

export interface RepoKeys {
  readonly encrypted: boolean;
  readonly enc?: Buffer;
  readonly id?: Buffer;
  readonly mac: Buffer;
}

export function deriveKeys(master: Buffer | undefined, saltHex: string): RepoKeys {
  if (!master) return { encrypted: false, mac: PUBLIC_MAC_KEY };
  const salt = Buffer.from(saltHex, 'hex');
  const d = (info: string) => Buffer.from(hkdfSync('sha256', master, salt, info, 32));
  return {
    encrypted: true,
    enc: d('synod-backup enc'),
    id: d('synod-backup id'),
    mac: d('synod-backup mac'),
  };
}

/** A value stored in repo.json that proves a key right or wrong without decrypting data. */
export function keyCheck(keys: RepoKeys): string {
  return createHmac('sha256', keys.mac).update(KEY_CHECK_TEXT).digest('hex');
}

export function checkKey(keys: RepoKeys, expected: string): boolean {
  const a = Buffer.from(keyCheck(keys), 'hex');
  const b = Buffer.from(expected, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The content address of a plain chunk. */
export function chunkId(keys: RepoKeys, plain: Uint8Array): string {
  return keys.id
    ? createHmac('sha256', keys.id).update(plain).digest('hex')
    : createHash('sha256').update(plain).digest('hex');
}

export function mac(keys: RepoKeys, data: string | Uint8Array): string {
  return createHmac('sha256', keys.mac).update(data).digest('hex');
}

export const IV_LEN = 12;
export const TAG_LEN = 16;

/** AES-256-GCM: returns iv | ciphertext | tag, authenticating `aad` too. */
export function seal(keys: RepoKeys, plain: Uint8Array, aad: Uint8Array): Buffer {
  if (!keys.enc) throw new Error('seal without an encryption key');
  const iv = randomBytes(IV_LEN);
  const c = createCipheriv('aes-256-gcm', keys.enc, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]);
}

/** Opens what `seal` made; undefined when authentication fails. */
export function open(keys: RepoKeys, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (!keys.enc) throw new Error('open without an encryption key');
  if (sealed.byteLength < IV_LEN + TAG_LEN) return undefined;
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const iv = b.subarray(0, IV_LEN);
  const tag = b.subarray(b.length - TAG_LEN);
  const d = createDecipheriv('aes-256-gcm', keys.enc, iv);
  d.setAAD(aad);
  d.setAuthTag(tag);
  try {
    return Buffer.concat([d.update(b.subarray(IV_LEN, b.length - TAG_LEN)), d.final()]);
  } catch {
    return undefined;
  }
}
