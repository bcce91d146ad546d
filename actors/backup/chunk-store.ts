/**
 * Content-addressed chunk storage. A chunk is stored once, under its content address
 * (SHA-256 of the plain bytes, or HMAC-SHA256 under the repository's id key when
 * encrypted), at chunks/<first two hex digits>/<address>. File layout:
 *
 *     0  "SYNC"          magic
 *     4  u8 version (1)
 *     5  u8 flags        bit 0: deflated, bit 1: AES-256-GCM sealed
 *     6  u16 reserved (0)
 *     8  u32 plainLen    bytes of the chunk before compression
 *    12  u32 payloadLen
 *    16  payload         (sealed: iv | ciphertext | tag, the header and the address as AAD)
 *
 * A read checks everything: structure, the GCM tag, decompression, the plain length and the
 * content address, so a flipped bit, a truncated file or a chunk copied under another name
 * is refused as SYNOD_ERR_BACKUP_CHUNK_CORRUPT.
 */
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { chunkId, open, type RepoKeys, seal } from './crypto.js';
import { BackupError } from './errors.js';
import type { RepoFs } from './fs.js';

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

const MAGIC = 0x53594e43; // "SYNC"
const HEADER = 16;
const F_DEFLATE = 1;
const F_SEALED = 2;

export interface CompressionParams {
  algo: 'deflate' | 'none';
  /** zlib level 1..9 for deflate. */
  level: number;
}

export interface ChunkRef {
  /** Content address. */
  readonly id: string;
  /** Plain size in bytes. */
  readonly size: number;
  /** Bytes on disk (0 when the chunk was already stored by an earlier backup). */
  readonly stored: number;
}

/** fsyncs in flight at once when a backup's chunks are made durable. */
const SYNC_PARALLEL = 16;

export class ChunkStore {
  private readonly dirty = new Set<string>();
  /** Chunks written to .tmp files and not yet synced and renamed: address → final path. */
  private readonly pending = new Map<string, string>();
  /** Chunks known to exist on disk (written or seen in this process). */
  private readonly known = new Set<string>();

  constructor(
    private readonly fs: RepoFs,
    readonly root: string,
    private readonly keys: RepoKeys,
    private readonly compression: CompressionParams,
  ) {}

  pathOf(id: string): string {
    return path.join(this.root, id.slice(0, 2), id);
  }

  /**
   * Stores a chunk unless an identical one is already stored. The chunk is written to a
   * temporary file without fsync; `sync` makes every such file durable (fsyncs issued
   * together, so the file system can batch them), then renames it into place: a chunk
   * is visible under its address only once its bytes are durable.
   */
  async put(plain: Buffer): Promise<ChunkRef> {
    const id = chunkId(this.keys, plain);
    const file = this.pathOf(id);
    if (this.pending.has(id)) return { id, size: plain.length, stored: 0 };
    if (this.known.has(id) || ((await this.fs.size(file)) ?? 0) > HEADER) {
      this.known.add(id);
      return { id, size: plain.length, stored: 0 };
    }
    if (this.pending.has(id)) return { id, size: plain.length, stored: 0 };
    this.pending.set(id, file);
    const bytes = await this.encode(id, plain);
    const dir = path.dirname(file);
    if (!this.dirty.has(dir)) {
      await this.fs.mkdirp(dir);
      this.dirty.add(dir);
    }
    await this.fs.writeFile(`${file}.tmp`, bytes);
    return { id, size: plain.length, stored: bytes.length };
  }

  /** Forgets chunks written but not synced (their .tmp files are swept by expire). */
  abandon(): void {
    this.pending.clear();
  }

  /**
   * Makes every chunk written so far durable: fsyncs the temporary files (several at a
   * time), renames them into place, then fsyncs their directories.
   */
  async sync(): Promise<void> {
    const todo = [...this.pending];
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const [id, file] = todo[next++] as [string, string];
        await this.fs.fsyncFile(`${file}.tmp`);
        await this.fs.rename(`${file}.tmp`, file);
        this.known.add(id);
        this.pending.delete(id);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SYNC_PARALLEL, todo.length) }, worker));
    for (const dir of [...this.dirty].sort()) await this.fs.fsyncDir(dir);
    if (this.dirty.size > 0) await this.fs.fsyncDir(this.root);
    this.dirty.clear();
  }

  /** Reads and fully checks a chunk. */
  async get(id: string, expectedSize?: number): Promise<Buffer> {
    let raw: Buffer;
    try {
      raw = await this.fs.readFile(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BackupError('SYNOD_ERR_BACKUP_CHUNK_MISSING', `chunk ${id} is missing`, {
          chunk: id,
          file: this.pathOf(id),
        });
      }
      throw new BackupError(
        'SYNOD_ERR_BACKUP_IO',
        `cannot read chunk ${id}: ${(err as Error).message}`,
        { chunk: id },
        err,
      );
    }
    return this.decode(id, raw, expectedSize);
  }

  /** Lists every stored chunk address. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const d of (await this.fs.readdir(this.root)).sort()) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await this.fs.readdir(path.join(this.root, d))) {
        if (/^[0-9a-f]{64}$/.test(f)) out.push(f);
      }
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    await this.fs.unlink(this.pathOf(id));
    this.known.delete(id);
    this.dirty.add(path.dirname(this.pathOf(id)));
  }

  /** Removes leftovers of interrupted writes. */
  async removeTemporaries(): Promise<number> {
    let n = 0;
    for (const d of await this.fs.readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await this.fs.readdir(path.join(this.root, d))) {
        if (f.endsWith('.tmp')) {
          await this.fs.unlink(path.join(this.root, d, f));
          n++;
        }
      }
    }
    return n;
  }

  private async encode(id: string, plain: Buffer): Promise<Buffer> {
    let flags = 0;
    let payload: Buffer = plain;
    if (this.compression.algo === 'deflate') {
      const z = await deflateRaw(plain, { level: this.compression.level });
      if (z.length < plain.length) {
        payload = z;
        flags |= F_DEFLATE;
      }
    }
    if (this.keys.encrypted) flags |= F_SEALED;
    const header = Buffer.alloc(HEADER);
    header.writeUInt32BE(MAGIC, 0);
    header[4] = 1;
    header[5] = flags;
    header.writeUInt32BE(plain.length, 8);
    if (flags & F_SEALED) {
      const sealedLen = payload.length + 12 + 16;
      header.writeUInt32BE(sealedLen, 12);
      const sealed = seal(this.keys, payload, Buffer.concat([header, Buffer.from(id, 'ascii')]));
      return Buffer.concat([header, sealed]);
    }
    header.writeUInt32BE(payload.length, 12);
    return Buffer.concat([header, payload]);
  }

  private async decode(id: string, raw: Buffer, expectedSize?: number): Promise<Buffer> {
    const corrupt = (why: string): never => {
      throw new BackupError('SYNOD_ERR_BACKUP_CHUNK_CORRUPT', `chunk ${id} is corrupt: ${why}`, {
        chunk: id,
        file: this.pathOf(id),
      });
    };
    if (raw.length < HEADER || raw.readUInt32BE(0) !== MAGIC) corrupt('bad header');
    if (raw[4] !== 1) corrupt(`unknown version ${raw[4]}`);
    const flags = raw[5] as number;
    const plainLen = raw.readUInt32BE(8);
    const payloadLen = raw.readUInt32BE(12);
    if (raw.length !== HEADER + payloadLen) {
      corrupt(`file is ${raw.length} bytes, header says ${HEADER + payloadLen}`);
    }
    if (expectedSize !== undefined && plainLen !== expectedSize) {
      corrupt(`plain size ${plainLen}, manifest says ${expectedSize}`);
    }
    let payload: Buffer = raw.subarray(HEADER);
    if (flags & F_SEALED) {
      if (!this.keys.encrypted) corrupt('chunk is encrypted but the repository is not');
      const opened = open(
        this.keys,
        payload,
        Buffer.concat([raw.subarray(0, HEADER), Buffer.from(id, 'ascii')]),
      );
      if (!opened)
        corrupt('authentication failed (tampered, truncated or stored under another name)');
      payload = opened as Buffer;
    } else if (this.keys.encrypted) {
      corrupt('chunk is not encrypted but the repository is');
    }
    let plain: Buffer = payload;
    if (flags & F_DEFLATE) {
      try {
        plain = await inflateRaw(payload);
      } catch (err) {
        corrupt(`does not decompress (${(err as Error).message})`);
      }
    }
    if (plain.length !== plainLen)
      corrupt(`decoded ${plain.length} bytes, header says ${plainLen}`);
    if (chunkId(this.keys, plain) !== id) corrupt('content does not match its address');
    return plain;
  }
}
