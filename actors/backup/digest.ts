/**
 * The state digests a manifest carries (manifest.ts `digestVersion`).
 *
 * Version 1 (every manifest): `stateDigest`, the additive digest below.
 *
 * Version 2 (manifests written since session 9) adds, for a full backup, `streamDigest`:
 * SHA-256 over the backup's record stream, the put records of every key in ascending key
 * order exactly as records.ts serializes them (the concatenation of its chunks' plain bytes
 * in manifest order). It depends neither on where the chunks were cut nor on their size, and
 * it is computed by feeding whole chunks (about 1 MiB) to one hash: near nothing per record,
 * where the additive digest pays one SHA-256 call per record (measured 2.4–3.9 ms of CPU per
 * MB of 1 KB records, mostly per-call overhead). A restore of a version-2 full backup checks
 * the stream digest (and the key count) instead of hashing every record: the rebuilt state
 * is then byte for byte what the agent captured, so its additive digest is the manifest's
 * `stateDigest`, which the restore reports and replays from. Differential and incremental
 * backups, and chains, are still checked with the additive digest (their state is a merge,
 * not one stream). Manifests without `digestVersion` (version 1) restore as before.
 *
 * The additive state digest: a multiset hash of the state (AdHash): the sum, modulo 2^256, of
 * SHA-256(u32 keyLen | key | value) over every key. It does not depend on the order keys
 * were written in, and it can be maintained incrementally (subtract the old record's hash,
 * add the new one's) at O(1) per applied change, so the agent knows the digest of its state
 * at every index without rescanning it, and a restore recomputes it from what it rebuilt.
 * It is a check against restoring wrong data by accident (a missed delete, a wrong chain, a
 * replay bug), not a cryptographic commitment: chunk contents are protected by SHA-256 (and
 * GCM when encrypted), manifests by their MAC.
 */
import { createHash, type Hash, hash } from 'node:crypto';

/** The digest version new manifests are written with (see above). */
export const DIGEST_VERSION = 2;

/** The version-2 stream digest: SHA-256 of a full backup's record stream, fed chunk by chunk. */
export class StreamDigest {
  private readonly h: Hash = createHash('sha256');
  bytes = 0;

  update(plain: Uint8Array): void {
    this.h.update(plain);
    this.bytes += plain.byteLength;
  }

  hex(): string {
    return this.h.digest('hex');
  }
}

const WORDS = 8;

/** Scratch space for the hashed bytes: one one-shot hash per record, no Hash object. */
let scratch = Buffer.allocUnsafe(64 * 1024);

export function recordHash(key: string, value: Uint8Array): Buffer {
  const max = 4 + key.length * 3 + value.byteLength;
  if (max > scratch.length) scratch = Buffer.allocUnsafe(Math.max(max, scratch.length * 2));
  const kLen = scratch.write(key, 4, 'utf8');
  scratch.writeUInt32BE(kLen, 0);
  scratch.set(value, 4 + kLen);
  return hash('sha256', scratch.subarray(0, 4 + kLen + value.byteLength), 'buffer') as Buffer;
}

export class StateDigest {
  /** 256-bit accumulator, little-endian 32-bit words. */
  private readonly acc = new Uint32Array(WORDS);
  count = 0;

  static fromHex(hex: string, count: number): StateDigest {
    const d = new StateDigest();
    const b = Buffer.from(hex, 'hex');
    if (b.length !== 32) throw new RangeError('state digest must be 64 hex digits');
    for (let i = 0; i < WORDS; i++) d.acc[i] = b.readUInt32BE(28 - i * 4);
    d.count = count;
    return d;
  }

  clone(): StateDigest {
    const d = new StateDigest();
    d.acc.set(this.acc);
    d.count = this.count;
    return d;
  }

  add(key: string, value: Uint8Array): void {
    this.addHash(recordHash(key, value), 1);
    this.count++;
  }

  remove(key: string, value: Uint8Array): void {
    this.addHash(recordHash(key, value), -1);
    this.count--;
  }

  /** Adds a record whose hash (`recordHash`) is the 32 bytes of `hashes` at `off`. */
  addHashAt(hashes: Uint8Array, off: number): void {
    let carry = 0;
    for (let i = 0; i < WORDS; i++) {
      const p = off + 28 - i * 4;
      const w =
        (((hashes[p] as number) << 24) |
          ((hashes[p + 1] as number) << 16) |
          ((hashes[p + 2] as number) << 8) |
          (hashes[p + 3] as number)) >>>
        0;
      const s = (this.acc[i] as number) + w + carry;
      this.acc[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
    this.count++;
  }

  /**
   * Adds a partial digest: the sum (32 bytes, big-endian, as `bytes()`) of `count` records'
   * hashes, computed elsewhere (a chunk worker).
   */
  addSum(sum: Uint8Array, count: number): void {
    this.addHashAt(sum, 0);
    this.count += count - 1;
  }

  /** The accumulator, big-endian (the bytes `hex()` spells). */
  bytes(): Buffer {
    const b = Buffer.allocUnsafe(32);
    for (let i = 0; i < WORDS; i++) b.writeUInt32BE(this.acc[i] as number, 28 - i * 4);
    return b;
  }

  /** Hex, big-endian. */
  hex(): string {
    return this.bytes().toString('hex');
  }

  private addHash(v: Buffer, sign: 1 | -1): void {
    let carry = 0;
    for (let i = 0; i < WORDS; i++) {
      const w = v.readUInt32BE(28 - i * 4);
      // sign -1: add the two's complement (~w + 1) so that subtraction is addition mod 2^256
      const x = sign === 1 ? w : ~w >>> 0;
      const s = (this.acc[i] as number) + x + carry + (sign === -1 && i === 0 ? 1 : 0);
      this.acc[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
  }
}
