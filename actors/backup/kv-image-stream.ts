/**
 * The node snapshot image of a `kv` repository's full backup, built from the backup's record
 * stream one record at a time, without the KV state machine in memory (stream-restore.ts).
 *
 * The image is what `kvNodeImage` (kv-state.ts) encodes from a restored state, byte for byte:
 *
 *     {v: 1, sessions: [Raft client sessions], user: bin(
 *       {v: 1, rev, index, kvs: [{key, value, createRev, modRev, version}…],
 *        history: {compacted: rev, events: []}, sessions: [KV sessions]})}
 *
 * In a full backup's sorted stream every reserved key ("\0kv/rev", "\0kv/s/…", "\0session/…")
 * comes before the first user key ("k" + key), so the sessions and the revision are known
 * before any user key. Each user record's value is msgpack `[value, createRev, modRev,
 * version]`: its image element is those same encoded fields spliced behind the constant field
 * names, with the key's bytes behind a str header (plain msgpack, no shared structures: the
 * codec writes minimal headers, lib/codec.ts). A value of another shape goes through the codec
 * (decoded, re-encoded) as the in-memory path does.
 *
 * The elements are streamed to `sink` in pieces (the restore spools them to a file); `finish`
 * returns what goes before them (the image up to the `kvs` array's header, whose length and
 * count are known only then) and after them. The parts around the elements are encoded by
 * `kvNodeImage` itself, from a state holding the reserved entries and one marker key, so the
 * two paths cannot drift apart silently; test/backup/kv-stream-restore.test.ts checks the
 * whole image against `kvNodeImage`'s.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { KvOp } from '../kv/types.js';
import { BackupError } from './errors.js';
import { KV_USER_PREFIX, KvKeyedState, kvNodeImage } from './kv-state.js';
import { SessionState } from './sessions.js';

/** A copy (the codec's result may share its buffer with later encodings). */
function enc(v: unknown): Buffer {
  return Buffer.from(encodeValue(v));
}

/** msgpack str header of a string of `n` UTF-8 bytes (minimal, as the codec writes it). */
export function strHeader(n: number): Buffer {
  if (n < 0x20) return Buffer.from([0xa0 | n]);
  if (n < 0x100) return Buffer.from([0xd9, n]);
  if (n < 0x10000) return Buffer.from([0xda, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdb;
  b.writeUInt32BE(n, 1);
  return b;
}

/** msgpack array header of `n` elements. */
export function arrayHeader(n: number): Buffer {
  if (n < 0x10) return Buffer.from([0x90 | n]);
  if (n < 0x10000) return Buffer.from([0xdc, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/** msgpack bin header of `n` bytes. */
export function binHeader(n: number): Buffer {
  if (n < 0x100) return Buffer.from([0xc4, n]);
  if (n < 0x10000) return Buffer.from([0xc5, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xc6;
  b.writeUInt32BE(n, 1);
  return b;
}

interface Template {
  /** Map header and "key". */
  readonly head: Buffer;
  readonly value: Buffer;
  readonly createRev: Buffer;
  readonly modRev: Buffer;
  readonly version: Buffer;
  /** Bytes of an element besides the key's and the four fields' encodings. */
  readonly fixed: number;
}

/**
 * The constant parts of an encoded KeyValue, checked against the codec on a sample; undefined
 * (every element then goes through the codec) if the codec encodes it differently.
 */
function template(): Template | undefined {
  const parts = {
    value: enc('value'),
    createRev: enc('createRev'),
    modRev: enc('modRev'),
    version: enc('version'),
  };
  const sample = enc({ key: 'a', value: 'b', createRev: 1, modRev: 300, version: 70000 });
  const tail = Buffer.concat([
    enc('key'),
    enc('a'),
    parts.value,
    enc('b'),
    parts.createRev,
    enc(1),
    parts.modRev,
    enc(300),
    parts.version,
    enc(70000),
  ]);
  if (sample.length <= tail.length) return undefined;
  const mapHead = sample.subarray(0, sample.length - tail.length);
  if (!sample.subarray(mapHead.length).equals(tail)) return undefined;
  const head = Buffer.concat([mapHead, enc('key')]);
  return {
    head,
    ...parts,
    fixed:
      head.length +
      parts.value.length +
      parts.createRev.length +
      parts.modRev.length +
      parts.version.length,
  };
}

const TEMPLATE = template();

/** The end of the msgpack number at `i` in `b` (before `end`), or -1 if there is none. */
function numberEnd(b: Buffer, i: number, end: number): number {
  if (i >= end) return -1;
  const t = b[i] as number;
  let n: number;
  if (t < 0x80 || t >= 0xe0) n = 1;
  else if (t === 0xcc || t === 0xd0) n = 2;
  else if (t === 0xcd || t === 0xd1) n = 3;
  else if (t === 0xce || t === 0xd2 || t === 0xca) n = 5;
  else if (t === 0xcf || t === 0xd3 || t === 0xcb) n = 9;
  else return -1;
  return i + n <= end ? i + n : -1;
}

/** The end of the msgpack string at `i` in `b` (before `end`), or -1 if there is none. */
function stringEnd(b: Buffer, i: number, end: number): number {
  if (i >= end) return -1;
  const t = b[i] as number;
  let len: number;
  let hdr: number;
  if (t >= 0xa0 && t <= 0xbf) {
    len = t & 0x1f;
    hdr = 1;
  } else if (t === 0xd9 && i + 2 <= end) {
    len = b[i + 1] as number;
    hdr = 2;
  } else if (t === 0xda && i + 3 <= end) {
    len = b.readUInt16BE(i + 1);
    hdr = 3;
  } else if (t === 0xdb && i + 5 <= end) {
    len = b.readUInt32BE(i + 1);
    hdr = 5;
  } else return -1;
  return i + hdr + len <= end ? i + hdr + len : -1;
}

const PIECE = 1 << 20;

/** Copies `src` into `dst` at `p`; returns the end. */
function put(dst: Buffer, p: number, src: Buffer): number {
  for (let i = 0; i < src.length; i++) dst[p++] = src[i] as number;
  return p;
}

/** Copies `src[s, e)` into `dst` at `p`; returns the end. */
function copy(src: Buffer, s: number, e: number, dst: Buffer, p: number): number {
  if (e - s >= 64) return p + src.copy(dst, p, s, e);
  for (let i = s; i < e; i++) dst[p++] = src[i] as number;
  return p;
}
const USER = KV_USER_PREFIX.charCodeAt(0);

/**
 * Builds the image of one full backup's records, fed chunk by chunk in stream order (the
 * caller has checked that the keys ascend and that there is no delete).
 */
export class KvImageStream {
  private readonly reserved: Array<[string, Uint8Array]> = [];
  private users = 0;
  private bodyBytes = 0;
  private buf: Buffer = Buffer.allocUnsafe(PIECE);
  private pos = 0;
  private readonly pending: Promise<void>[] = [];
  /** Piece buffers whose sink write finished, for reuse. */
  private readonly free: Buffer[] = [];

  /**
   * `sink` receives the elements in order, in pieces; a piece's memory is reused once the
   * promise `sink` returned for it settles.
   */
  constructor(private readonly sink: (piece: Buffer) => Promise<void>) {}

  /** Adds the records of one chunk (records.ts's format). */
  async add(chunk: Buffer, chunkId: string): Promise<void> {
    let off = 0;
    const len = chunk.length;
    const corrupt = (why: string): never => {
      throw new BackupError('SYNOD_ERR_BACKUP_CHUNK_CORRUPT', `chunk ${chunkId}: ${why}`, {
        chunk: chunkId,
        offset: off,
      });
    };
    while (off < len) {
      // The chunk store's scan parsed this chunk already: a malformed one never gets here.
      if (off + 9 > len || chunk[off] !== 0) corrupt('not a put record');
      const kLen = chunk.readUInt32BE(off + 1);
      const kStart = off + 5;
      const vLenAt = kStart + kLen;
      if (vLenAt + 4 > len) corrupt('truncated record');
      const vLen = chunk.readUInt32BE(vLenAt);
      const vStart = vLenAt + 4;
      const vEnd = vStart + vLen;
      if (vEnd > len) corrupt('truncated value');
      if (kLen > 0 && chunk[kStart] === USER) {
        this.element(chunk, kStart + 1, vLenAt, vStart, vEnd, chunkId);
        this.users++;
      } else {
        if (this.users > 0) corrupt('a reserved key after a user key');
        this.reserved.push([
          chunk.toString('utf8', kStart, vLenAt),
          Buffer.from(chunk.subarray(vStart, vEnd)),
        ]);
      }
      off = vEnd;
      if (this.pending.length > 2) await this.pending.shift();
    }
  }

  /** Appends the image element of one user record. */
  private element(
    b: Buffer,
    kStart: number,
    kEnd: number,
    vStart: number,
    vEnd: number,
    chunkId: string,
  ): void {
    const t = TEMPLATE;
    let s0 = -1;
    let s1 = -1;
    let n1 = -1;
    let n2 = -1;
    let n3 = -1;
    if (t && b[vStart] === 0x94) {
      s0 = vStart + 1;
      s1 = stringEnd(b, s0, vEnd);
      n1 = s1 < 0 ? -1 : numberEnd(b, s1, vEnd);
      n2 = n1 < 0 ? -1 : numberEnd(b, n1, vEnd);
      n3 = n2 < 0 ? -1 : numberEnd(b, n2, vEnd);
    }
    if (!t || n3 !== vEnd) {
      this.append(this.generic(b, kStart, kEnd, vStart, vEnd, chunkId));
      return;
    }
    const kLen = kEnd - kStart;
    const kh = kLen < 0x20 ? 1 : kLen < 0x100 ? 2 : kLen < 0x10000 ? 3 : 5;
    const size = t.fixed + kh + kLen + (vEnd - s0);
    if (size > this.buf.length - this.pos) {
      this.flush();
      if (size > this.buf.length) this.buf = Buffer.allocUnsafe(size);
    }
    // Byte loops for the short pieces: Buffer#copy costs more than it moves below ~64 bytes.
    const o = this.buf;
    let p = put(o, this.pos, t.head);
    if (kh === 1) o[p++] = 0xa0 | kLen;
    else if (kh === 2) {
      o[p++] = 0xd9;
      o[p++] = kLen;
    } else if (kh === 3) {
      o[p++] = 0xda;
      o[p++] = kLen >> 8;
      o[p++] = kLen & 0xff;
    } else {
      o[p++] = 0xdb;
      p = o.writeUInt32BE(kLen, p);
    }
    p = copy(b, kStart, kEnd, o, p);
    p = put(o, p, t.value);
    p = copy(b, s0, s1, o, p);
    p = put(o, p, t.createRev);
    p = copy(b, s1, n1, o, p);
    p = put(o, p, t.modRev);
    p = copy(b, n1, n2, o, p);
    p = put(o, p, t.version);
    p = copy(b, n2, n3, o, p);
    this.bodyBytes += p - this.pos;
    this.pos = p;
  }

  /** As the in-memory path: the value decoded, its first four fields a KeyValue, encoded. */
  private generic(
    b: Buffer,
    kStart: number,
    kEnd: number,
    vStart: number,
    vEnd: number,
    chunkId: string,
  ): Buffer {
    const key = b.toString('utf8', kStart, kEnd);
    let v: unknown;
    try {
      v = decodeValue(b.subarray(vStart, vEnd));
    } catch (err) {
      v = err;
    }
    if (!Array.isArray(v)) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
        `chunk ${chunkId}: the value of KV key ${JSON.stringify(key.slice(0, 60))} is not a KV value ([value, createRev, modRev, version])`,
        { chunk: chunkId },
      );
    }
    const [value, createRev, modRev, version] = v as [string, number, number, number];
    return enc({ key, value, createRev, modRev, version });
  }

  private append(bytes: Buffer): void {
    if (bytes.length > this.buf.length - this.pos) {
      this.flush();
      if (bytes.length > this.buf.length) this.buf = Buffer.allocUnsafe(bytes.length);
    }
    this.pos += bytes.copy(this.buf, this.pos);
    this.bodyBytes += bytes.length;
  }

  private flush(): void {
    if (this.pos === 0) return;
    const full = this.buf;
    const piece = full.subarray(0, this.pos);
    this.buf = this.free.pop() ?? Buffer.allocUnsafe(PIECE);
    this.pos = 0;
    const w = this.sink(piece).then(() => {
      if (full.length === PIECE) this.free.push(full);
    });
    w.catch(() => undefined);
    this.pending.push(w);
  }

  /** User keys seen so far. */
  get userKeys(): number {
    return this.users;
  }

  /**
   * After the last chunk: every element handed to the sink (and written), and the image's
   * bytes before the elements (`head`) and after them (`tail`) for a state at `index`.
   */
  async finish(index: number): Promise<{ head: Buffer; tail: Buffer; bodyBytes: number }> {
    this.flush();
    await Promise.all(this.pending.splice(0));
    // The reserved entries plus one marker key, through the in-memory path's own code: the
    // image around the marker's element is the image around the real elements. Only v, rev
    // and index come before the kvs array, so the marker's first occurrence is its element.
    const markerKey = `${KV_USER_PREFIX}\u0001synod:kv-image-marker\u0001`;
    const markerValue = 'synod:kv-image-marker';
    const state = new SessionState<KvOp>(new KvKeyedState());
    state.load([...this.reserved, [markerKey, encodeValue([markerValue, 1, 1, 1])]]);
    const inner = (state.inner as KvKeyedState).image(index);
    const outer = kvNodeImage(state, index);
    const marker = enc({
      key: markerKey.slice(1),
      value: markerValue,
      createRev: 1,
      modRev: 1,
      version: 1,
    });
    const innerBuf = Buffer.from(inner.buffer, inner.byteOffset, inner.byteLength);
    const outerBuf = Buffer.from(outer.buffer, outer.byteOffset, outer.byteLength);
    const at = innerBuf.indexOf(marker);
    const innerHead = at > 0 ? innerBuf.subarray(0, at - 1) : undefined;
    const tail = innerBuf.subarray(at + marker.length);
    const outerHeadLen = outerBuf.length - innerBuf.length - binHeader(innerBuf.length).length;
    if (
      !innerHead ||
      innerBuf[at - 1] !== 0x91 ||
      outerHeadLen <= 0 ||
      !outerBuf.subarray(outerHeadLen).equals(Buffer.concat([binHeader(innerBuf.length), innerBuf]))
    ) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        'internal error: the KV node image does not have the layout the streamed restore writes (restore with the in-memory path)',
      );
    }
    const kvsHeader = arrayHeader(this.users);
    const userBytes = innerHead.length + kvsHeader.length + this.bodyBytes + tail.length;
    const head = Buffer.concat([
      outerBuf.subarray(0, outerHeadLen),
      binHeader(userBytes),
      innerHead,
      kvsHeader,
    ]);
    return { head, tail: Buffer.from(tail), bodyBytes: this.bodyBytes };
  }
}
