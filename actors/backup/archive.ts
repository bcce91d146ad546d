/**
 * The continuous log archive: committed entries, each tagged with index, term and commit
 * time, in segment files archive/<first>-<last>.seg (indices zero-padded to 16 digits).
 * A segment is written whole and atomically (tmp, fsync, rename, directory fsync), so a
 * crash leaves it absent rather than half there. Layout:
 *
 *     0  "SYNA" | u8 version (3; 1 and 2 still read) | u8 flags (bit 0 deflated, bit 1 sealed) | u16 0
 *     8  u64 firstIndex | u64 lastIndex | u32 count | u32 payloadLen
 *    32  payload: records  u64 index | u64 term | f64 time | u8 timing | u32 len | data | u32 crc32
 *        (versions 1 and 2: no timing byte), deflated, then sealed with AES-256-GCM when the
 *        repository is encrypted
 *     .  32-byte SHA-256 of everything before it
 *
 * `time` is when the agent applied the entry, always at or after its commit. Version 3's timing
 * byte says how close (`ArchiveTiming`): 1 observed (the agent was following the cluster live:
 * within its follow latency of the commit), 2 caught up (the agent was catching up: committed at
 * or before `time`, when exactly is unknown), 0 unknown (versions 1 and 2 read as that). Restores
 * to a time refuse a time that caught-up or unknown records leave ambiguous (restore.ts).
 *
 * A record's `data` is the command, or nothing for an entry without one (a no-op, a
 * configuration change). Version 2: the command as the replicated log encodes it
 * (`encodeCommand`, actors/raft/command-codec.ts: the msgpack array [clientId, seq, op], or the
 * map {c, s, o} of older Raft logs), so the agent archives the bytes its learner received
 * instead of encoding every command again. Version 1 (segments written before): msgpack map
 * {clientId, seq, op}. `decodeArchivedCommand` reads both.
 *
 * Point-in-time recovery replays these entries after the nearest backup; a missing index
 * between two segments is a gap that verify reports and restore refuses to cross.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import zlib from 'node:zlib';
import { unpack } from 'msgpackr';
import type { Command } from '../../lib/replicated-log.js';
import { decodeCommand, encodeCommand } from '../raft/command-codec.js';
import { deflateRaw, inflateRaw } from './chunk-pool.js';
import { open, type RepoKeys, seal } from './crypto.js';
import { BackupError } from './errors.js';
import { atomicWrite, type RepoFs } from './fs.js';

export interface ArchivedEntry {
  readonly index: number;
  readonly term: number;
  /** Commit time, ms since the Unix epoch. */
  readonly time: number;
  /** The command (`encodeArchivedCommand`); empty for an entry without a command. */
  readonly data: Uint8Array;
  /**
   * How `data` encodes the command: the segment format version it was read from (1, 2 or 3; see
   * the file comment). Absent: the current format.
   */
  readonly format?: number;
  /** How close `time` is to the commit (see the file comment). Absent: `unknown`. */
  readonly timing?: ArchiveTiming;
}

/**
 * What an archived record's `time` says about its commit: `observed`, applied by an agent that
 * was following the cluster live (within its follow latency of the commit); `caught-up`,
 * applied while the agent caught up (committed at or before `time`, maybe long before);
 * `unknown`, archived without saying (segment formats 1 and 2).
 */
export type ArchiveTiming = 'observed' | 'caught-up' | 'unknown';

const TIMING_CODE: Record<ArchiveTiming, number> = { unknown: 0, observed: 1, 'caught-up': 2 };
const TIMING_OF: readonly ArchiveTiming[] = ['unknown', 'observed', 'caught-up'];

/** The segment format `write` produces. */
export const ARCHIVE_FORMAT = 3;

/** Whether entries read from a segment of `format` encode commands as the current format. */
const currentCommandBytes = (format: number | undefined) => format === undefined || format >= 2;

/** A command as the archive's current format stores it (the replicated log's own bytes). */
export function encodeArchivedCommand(cmd: Command<unknown>): Uint8Array {
  return encodeCommand(cmd as Command);
}

/**
 * The command an archived entry holds, whichever format it was written in (undefined for an
 * entry without a command). Throws on bytes that are not a command of that format.
 */
export function decodeArchivedCommand<Op>(e: ArchivedEntry): Command<Op> | undefined {
  if (e.data.byteLength === 0) return undefined;
  let c: Command<Op> | undefined;
  let why = 'not a command';
  try {
    c = (currentCommandBytes(e.format) ? decodeCommand(e.data) : unpack(e.data)) as Command<Op>;
  } catch (err) {
    why = (err as Error).message;
  }
  if (
    c === null ||
    typeof c !== 'object' ||
    typeof c.clientId !== 'string' ||
    typeof c.seq !== 'number'
  ) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT',
      `archived entry ${e.index} (format ${e.format ?? ARCHIVE_FORMAT}) does not decode to a command: ${why}`,
      { index: e.index },
    );
  }
  return c;
}

export interface SegmentInfo {
  readonly file: string;
  readonly name: string;
  readonly first: number;
  readonly last: number;
}

export interface ArchiveGap {
  /** First missing index. */
  readonly from: number;
  /** Last missing index. */
  readonly to: number;
}

const MAGIC = 0x53594e41; // "SYNA"
const HEADER = 32;
const SEG_RE = /^(\d{16})-(\d{16})\.seg$/;

const pad = (n: number) => String(n).padStart(16, '0');

/** A u64 of a safe integer, big-endian, without a BigInt per field (as writeBigUInt64BE). */
function writeU64(b: Buffer, n: number, off: number): void {
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), off);
  b.writeUInt32BE(n >>> 0, off + 4);
}

function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x1_0000_0000 + b.readUInt32BE(off + 4);
}
const crc32 = (zlib as unknown as { crc32(data: Uint8Array, value?: number): number }).crc32;

export class LogArchive {
  constructor(
    private readonly fs: RepoFs,
    readonly root: string,
    private readonly keys: RepoKeys,
  ) {}

  async list(): Promise<SegmentInfo[]> {
    const out: SegmentInfo[] = [];
    for (const name of await this.fs.readdir(this.root)) {
      const m = SEG_RE.exec(name);
      if (!m) continue;
      out.push({ file: path.join(this.root, name), name, first: Number(m[1]), last: Number(m[2]) });
    }
    return out.sort((a, b) => a.first - b.first || a.last - b.last);
  }

  /** Writes a segment of consecutive entries; resolves once it is durable. */
  async write(entries: readonly ArchivedEntry[]): Promise<SegmentInfo> {
    if (entries.length === 0) throw new RangeError('empty archive segment');
    for (let i = 1; i < entries.length; i++) {
      if ((entries[i] as ArchivedEntry).index !== (entries[i - 1] as ArchivedEntry).index + 1) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
          'archive segment entries must be consecutive',
        );
      }
    }
    const first = (entries[0] as ArchivedEntry).index;
    const last = (entries[entries.length - 1] as ArchivedEntry).index;
    let size = 0;
    const datas: Uint8Array[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as ArchivedEntry;
      // An entry read from an older segment is stored in this format.
      const d =
        currentCommandBytes(e.format) || e.data.byteLength === 0
          ? e.data
          : encodeArchivedCommand(decodeArchivedCommand(e) as Command<unknown>);
      datas[i] = d;
      size += 33 + d.byteLength;
    }
    const body = Buffer.allocUnsafe(size);
    let off = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as ArchivedEntry;
      const d = datas[i] as Uint8Array;
      const start = off;
      writeU64(body, e.index, off);
      writeU64(body, e.term, off + 8);
      body.writeDoubleBE(e.time, off + 16);
      body[off + 24] = TIMING_CODE[e.timing ?? 'unknown'];
      body.writeUInt32BE(d.byteLength, off + 25);
      body.set(d, off + 29);
      off += 29 + d.byteLength;
      body.writeUInt32BE(crc32(body.subarray(start, off)), off);
      off += 4;
    }
    let flags = 0;
    let payload: Buffer = body;
    // On libuv's pool, one output buffer: a 4 MiB segment is ~60 ms of deflate, which must not
    // block the event loop of the agent (or of the node it is embedded in).
    const z = await deflateRaw(body, { level: 1, chunkSize: body.length + 1024 });
    if (z.length < body.length) {
      payload = z;
      flags |= 1;
    }
    const header = Buffer.alloc(HEADER);
    header.writeUInt32BE(MAGIC, 0);
    header[4] = ARCHIVE_FORMAT;
    if (this.keys.encrypted) flags |= 2;
    header[5] = flags;
    header.writeBigUInt64BE(BigInt(first), 8);
    header.writeBigUInt64BE(BigInt(last), 16);
    header.writeUInt32BE(entries.length, 24);
    if (this.keys.encrypted) {
      header.writeUInt32BE(payload.length + 28, 28);
      payload = seal(this.keys, payload, header);
    } else {
      header.writeUInt32BE(payload.length, 28);
    }
    const pre = Buffer.concat([header, payload]);
    const file = Buffer.concat([pre, createHash('sha256').update(pre).digest()]);
    const name = `${pad(first)}-${pad(last)}.seg`;
    await this.fs.mkdirp(this.root);
    await atomicWrite(this.fs, path.join(this.root, name), file);
    return { file: path.join(this.root, name), name, first, last };
  }

  /** Reads and checks a segment. */
  async read(seg: SegmentInfo): Promise<ArchivedEntry[]> {
    const bad = (why: string): never => {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT',
        `archive segment ${seg.name}: ${why}`,
        {
          segment: seg.name,
          file: seg.file,
        },
      );
    };
    let raw: Buffer;
    try {
      raw = await this.fs.readFile(seg.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return bad('missing');
      throw err;
    }
    if (raw.length < HEADER + 32 || raw.readUInt32BE(0) !== MAGIC) bad('bad header');
    const format = raw[4] as number;
    if (format !== 1 && format !== 2 && format !== 3) {
      bad(`format version ${format} is not one this synod reads (1-3): written by a newer one?`);
    }
    const sum = createHash('sha256')
      .update(raw.subarray(0, raw.length - 32))
      .digest();
    if (!sum.equals(raw.subarray(raw.length - 32))) bad('checksum mismatch');
    const flags = raw[5] as number;
    const first = Number(raw.readBigUInt64BE(8));
    const last = Number(raw.readBigUInt64BE(16));
    const count = raw.readUInt32BE(24);
    const payloadLen = raw.readUInt32BE(28);
    if (first !== seg.first || last !== seg.last)
      bad(`header range ${first}-${last} does not match its name`);
    if (HEADER + payloadLen + 32 !== raw.length) bad('length mismatch');
    let payload: Buffer = raw.subarray(HEADER, HEADER + payloadLen);
    if (flags & 2) {
      if (!this.keys.encrypted) bad('segment is encrypted but the repository is not');
      const o = open(this.keys, payload, raw.subarray(0, HEADER));
      if (!o) bad('authentication failed');
      payload = o as Buffer;
    } else if (this.keys.encrypted) {
      bad('segment is not encrypted but the repository is');
    }
    if (flags & 1) {
      try {
        payload = await inflateRaw(payload, {
          chunkSize: Math.min(Math.max(payload.length * 4, 64 * 1024), 16 << 20),
        });
      } catch {
        bad('does not decompress');
      }
    }
    const out: ArchivedEntry[] = [];
    // Version 3 has the timing byte after the time.
    const t = format >= 3 ? 1 : 0;
    let off = 0;
    while (off < payload.length) {
      if (off + 32 + t > payload.length) bad(`truncated record at ${off}`);
      const len = payload.readUInt32BE(off + 24 + t);
      const end = off + 28 + t + len;
      if (end + 4 > payload.length) bad(`truncated record at ${off}`);
      if (crc32(payload.subarray(off, end)) !== payload.readUInt32BE(end))
        bad(`record crc mismatch at ${off}`);
      const timing = t ? TIMING_OF[payload[off + 24] as number] : 'unknown';
      if (timing === undefined) bad(`record at ${off} has an unknown timing ${payload[off + 24]}`);
      out.push({
        index: readU64(payload, off),
        term: readU64(payload, off + 8),
        time: payload.readDoubleBE(off + 16),
        data: payload.subarray(off + 28 + t, end),
        format,
        timing: timing as ArchiveTiming,
      });
      off = end + 4;
    }
    if (out.length !== count) bad(`holds ${out.length} entries, header says ${count}`);
    for (let i = 0; i < out.length; i++) {
      if ((out[i] as ArchivedEntry).index !== first + i) bad('entries are not consecutive');
    }
    return out;
  }

  async remove(seg: SegmentInfo): Promise<void> {
    await this.fs.unlink(seg.file);
  }

  /** Removes leftovers of interrupted segment writes. */
  async removeTemporaries(): Promise<void> {
    for (const name of await this.fs.readdir(this.root)) {
      if (name.endsWith('.tmp')) await this.fs.unlink(path.join(this.root, name));
    }
  }

  /**
   * Missing indices in (after, upTo] given the segment names (not their content). `after`
   * is where coverage must start (e.g. the oldest backup's index).
   */
  static gaps(segs: readonly SegmentInfo[], after: number, upTo: number): ArchiveGap[] {
    const gaps: ArchiveGap[] = [];
    let next = after + 1;
    for (const s of segs) {
      if (s.last < next) continue;
      if (s.first > next) gaps.push({ from: next, to: Math.min(s.first - 1, upTo) });
      next = Math.max(next, s.last + 1);
      if (next > upTo) break;
    }
    if (next <= upTo) gaps.push({ from: next, to: upTo });
    return gaps.filter((g) => g.from <= g.to);
  }

  /** Highest archived index (0 when empty). */
  static tip(segs: readonly SegmentInfo[]): number {
    let t = 0;
    for (const s of segs) t = Math.max(t, s.last);
    return t;
  }

  /**
   * Yields entries with after < index ≤ upTo, in order; throws SYNOD_ERR_BACKUP_ARCHIVE_GAP
   * when one is missing.
   */
  async *entries(
    after: number,
    upTo: number,
    segs?: readonly SegmentInfo[],
  ): AsyncGenerator<ArchivedEntry> {
    const all = segs ?? (await this.list());
    let next = after + 1;
    for (const s of all) {
      if (next > upTo) return;
      if (s.last < next) continue;
      if (s.first > next) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
          `the log archive has no entries ${next}..${s.first - 1}`,
          { from: next, to: s.first - 1 },
        );
      }
      for (const e of await this.read(s)) {
        if (e.index < next) continue;
        if (e.index > upTo) return;
        yield e;
        next = e.index + 1;
      }
    }
    if (next <= upTo) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
        `the log archive has no entries ${next}..${upTo}`,
        {
          from: next,
          to: upTo,
        },
      );
    }
  }
}
