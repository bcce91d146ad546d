/**
 * Fast paths for the one msgpack value every write carries: a command `[clientId, seq, op]`.
 *
 * msgpackr's per-call set-up (buffer bookkeeping, a `Buffer` view per result, state saved
 * for re-entrancy) cost more than writing or reading a small command: encoding on the
 * leader and decoding on each follower were ~17 % of the in-process benchmark's CPU. The
 * writer and reader here handle the common subset directly and give up (return
 * `undefined`) on anything else, so the caller falls back to msgpackr and behaves exactly as
 * before.
 *
 * - `encodeCommandFast` writes the bytes msgpackr (lib/codec.ts options: no records) would
 *   write, byte for byte, when `op` is plain data that decodes to itself (`decodesToItself`
 *   in lib/codec.ts: plain objects, dense arrays, well-formed strings, numbers other than
 *   -0, booleans, null, at most 32 levels). So a command that takes this path is also one
 *   the leader may apply from the object (no separate check).
 * - `decodeCommandFast` reads the same subset (map keys: strings other than `__proto__`;
 *   no bin, ext, float32 or 64-bit integers) and gives up on anything else, on truncated
 *   or trailing bytes, on invalid UTF-8 and beyond 64 levels: msgpackr then decodes (or
 *   rejects) the entry as it always did, so every replica reaches the same value.
 *
 * test/raft/command-codec.test.ts compares both against msgpackr on random values and on
 * random corruptions of their bytes.
 */

import { decodeValue, decodeValueIn, encodeValue } from '../../lib/codec.js';
import type { Command } from '../../lib/replicated-log.js';

const SLAB = 64 * 1024;
/** Bytes are written into a shared slab and handed out as views (as msgpackr does). */
let slab = new Uint8Array(SLAB);
let view = new DataView(slab.buffer);
let pos = 0;
/** Start of the command being written (moved with it when the slab is replaced). */
let start = 0;

/** Makes room for `n` more bytes, moving the partial command to a new slab if needed. */
function need(n: number): void {
  if (pos + n <= slab.length) return;
  const partial = pos - start;
  const next = new Uint8Array(Math.max(SLAB, (partial + n) * 2));
  next.set(slab.subarray(start, pos));
  slab = next;
  view = new DataView(next.buffer);
  start = 0;
  pos = partial;
}

/** Writes `s` (well-formed) as msgpackr does; false if it is not well-formed. */
function writeString(s: string): boolean {
  const n = s.length;
  const header = n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  need(header + n * 3);
  let p = pos + header;
  const buf = slab;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) buf[p++] = c;
    else if (c < 0x800) {
      buf[p++] = (c >> 6) | 0xc0;
      buf[p++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xfc00) === 0xd800) {
      const c2 = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if ((c2 & 0xfc00) !== 0xdc00) return false; // lone high surrogate
      c = 0x10000 + ((c & 0x03ff) << 10) + (c2 & 0x03ff);
      i++;
      buf[p++] = (c >> 18) | 0xf0;
      buf[p++] = ((c >> 12) & 0x3f) | 0x80;
      buf[p++] = ((c >> 6) & 0x3f) | 0x80;
      buf[p++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xfc00) === 0xdc00)
      return false; // lone low surrogate
    else {
      buf[p++] = (c >> 12) | 0xe0;
      buf[p++] = ((c >> 6) & 0x3f) | 0x80;
      buf[p++] = (c & 0x3f) | 0x80;
    }
  }
  const len = p - pos - header;
  // The smallest header for the byte length, as msgpackr (it moves the bytes when its
  // guess from the character count was too small).
  const h = len < 0x20 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
  if (h !== header) buf.copyWithin(pos + h, pos + header, p);
  if (h === 1) buf[pos] = 0xa0 | len;
  else if (h === 2) {
    buf[pos] = 0xd9;
    buf[pos + 1] = len;
  } else if (h === 3) {
    buf[pos] = 0xda;
    buf[pos + 1] = len >> 8;
    buf[pos + 2] = len & 0xff;
  } else {
    buf[pos] = 0xdb;
    view.setUint32(pos + 1, len);
  }
  pos += h + len;
  return true;
}

function writeNumber(v: number): boolean {
  need(9);
  const buf = slab;
  if (v >>> 0 === v) {
    if (v === 0 && 1 / v < 0) return false; // -0 decodes as 0
    if (v < 0x80) buf[pos++] = v;
    else if (v < 0x100) {
      buf[pos++] = 0xcc;
      buf[pos++] = v;
    } else if (v < 0x10000) {
      buf[pos++] = 0xcd;
      buf[pos++] = v >> 8;
      buf[pos++] = v & 0xff;
    } else {
      buf[pos++] = 0xce;
      view.setUint32(pos, v);
      pos += 4;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) buf[pos++] = 0x100 + v;
    else if (v >= -0x80) {
      buf[pos++] = 0xd0;
      buf[pos++] = v + 0x100;
    } else if (v >= -0x8000) {
      buf[pos++] = 0xd1;
      view.setInt16(pos, v);
      pos += 2;
    } else {
      buf[pos++] = 0xd2;
      view.setInt32(pos, v);
      pos += 4;
    }
  } else {
    buf[pos++] = 0xcb;
    view.setFloat64(pos, v);
    pos += 8;
  }
  return true;
}

const hasOwn = Object.prototype.hasOwnProperty;

function writeValue(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
      return writeString(v);
    case 'number':
      return writeNumber(v);
    case 'boolean':
      need(1);
      slab[pos++] = v ? 0xc3 : 0xc2;
      return true;
    case 'object': {
      if (v === null) {
        need(1);
        slab[pos++] = 0xc0;
        return true;
      }
      if (depth >= 32) return false;
      const proto = Object.getPrototypeOf(v);
      if (proto === Object.prototype) {
        const o = v as Record<string, unknown>;
        // msgpackr (no records) writes every object as a map16 and fills in the count after.
        need(3);
        slab[pos] = 0xde;
        const at = pos + 1 - start;
        pos += 3;
        let size = 0;
        for (const k in o) {
          if (k === '__proto__' || !hasOwn.call(o, k)) return false;
          if (!writeString(k) || !writeValue(o[k], depth + 1)) return false;
          size++;
        }
        if (size > 0xffff) return false;
        slab[start + at] = size >> 8;
        slab[start + at + 1] = size & 0xff;
        return true;
      }
      if (proto === Array.prototype) {
        const a = v as unknown[];
        const n = a.length;
        need(5);
        if (n < 0x10) slab[pos++] = 0x90 | n;
        else if (n < 0x10000) {
          slab[pos++] = 0xdc;
          slab[pos++] = n >> 8;
          slab[pos++] = n & 0xff;
        } else {
          slab[pos++] = 0xdd;
          view.setUint32(pos, n);
          pos += 4;
        }
        for (let i = 0; i < n; i++) {
          if (!(i in a) || !writeValue(a[i], depth + 1)) return false;
        }
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

/**
 * The msgpack array `[clientId, seq, op]` exactly as msgpackr encodes it, when `op` (and
 * the client id) decode to themselves; `undefined` otherwise (use msgpackr then). The view
 * is into a shared slab: never written again.
 */
export function encodeCommandFast(
  clientId: string,
  seq: number,
  op: unknown,
): Uint8Array | undefined {
  start = pos;
  need(1);
  slab[pos++] = 0x93;
  let ok: boolean;
  try {
    ok = writeString(clientId) && writeNumber(seq) && writeValue(op, 0);
  } catch {
    ok = false; // a getter that throws, say: msgpackr reports it as it always did
  }
  if (!ok) {
    pos = start;
    return undefined;
  }
  const out = slab.subarray(start, pos);
  // Leave the rest of the slab for the next commands; a new one once it is nearly full.
  if (slab.length - pos < 256) {
    slab = new Uint8Array(SLAB);
    view = new DataView(slab.buffer);
    pos = 0;
  }
  return out;
}

// ---------------------------------------------------------------------------------- reading

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Thrown (as a value, not an Error: no stack) to give up on the fast path. */
const GIVE_UP = Symbol('give up');

let src: Uint8Array = new Uint8Array(0);
let srcView: DataView = new DataView(src.buffer);
let at = 0;
let end = 0;

function u8(): number {
  if (at >= end) throw GIVE_UP;
  return src[at++] as number;
}

function readString(len: number): string {
  const s = at;
  const e = s + len;
  if (e > end) throw GIVE_UP;
  at = e;
  if (len < 16) {
    for (let i = s; i < e; i++) if ((src[i] as number) >= 0x80) return readUtf8(s, e);
    return len <= 8 ? ascii(s, len) : ascii(s, 8) + ascii(s + 8, len - 8);
  }
  return readUtf8(s, e);
}

/** `n` ≤ 8 ASCII bytes at `s` as a string: one `fromCharCode` call (as msgpackr does). */
function ascii(s: number, n: number): string {
  const b = src;
  const f = String.fromCharCode;
  switch (n) {
    case 0:
      return '';
    case 1:
      return f(b[s] as number);
    case 2:
      return f(b[s] as number, b[s + 1] as number);
    case 3:
      return f(b[s] as number, b[s + 1] as number, b[s + 2] as number);
    case 4:
      return f(b[s] as number, b[s + 1] as number, b[s + 2] as number, b[s + 3] as number);
    case 5:
      return f(
        b[s] as number,
        b[s + 1] as number,
        b[s + 2] as number,
        b[s + 3] as number,
        b[s + 4] as number,
      );
    case 6:
      return f(
        b[s] as number,
        b[s + 1] as number,
        b[s + 2] as number,
        b[s + 3] as number,
        b[s + 4] as number,
        b[s + 5] as number,
      );
    case 7:
      return f(
        b[s] as number,
        b[s + 1] as number,
        b[s + 2] as number,
        b[s + 3] as number,
        b[s + 4] as number,
        b[s + 5] as number,
        b[s + 6] as number,
      );
    default:
      return f(
        b[s] as number,
        b[s + 1] as number,
        b[s + 2] as number,
        b[s + 3] as number,
        b[s + 4] as number,
        b[s + 5] as number,
        b[s + 6] as number,
        b[s + 7] as number,
      );
  }
}

function readUtf8(s: number, e: number): string {
  try {
    return utf8.decode(src.subarray(s, e));
  } catch {
    throw GIVE_UP; // invalid UTF-8: msgpackr decides what it means
  }
}

function len16(): number {
  if (at + 2 > end) throw GIVE_UP;
  const v = srcView.getUint16(at);
  at += 2;
  return v;
}

function len32(): number {
  if (at + 4 > end) throw GIVE_UP;
  const v = srcView.getUint32(at);
  at += 4;
  return v;
}

function readMap(n: number, depth: number): Record<string, unknown> {
  if (n * 2 > end - at) throw GIVE_UP; // every key and value takes at least one byte
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const b = u8();
    let k: string;
    if (b >= 0xa0 && b <= 0xbf) k = readString(b & 0x1f);
    else if (b === 0xd9) k = readString(u8());
    else if (b === 0xda) k = readString(len16());
    else if (b === 0xdb) k = readString(len32());
    else throw GIVE_UP; // a non-string key
    if (k === '__proto__') throw GIVE_UP;
    o[k] = readValue(depth + 1);
  }
  return o;
}

function readArray(n: number, depth: number): unknown[] {
  if (n > end - at) throw GIVE_UP; // every element takes at least one byte
  const a = new Array<unknown>(n);
  for (let i = 0; i < n; i++) a[i] = readValue(depth + 1);
  return a;
}

function readValue(depth: number): unknown {
  if (depth > 64) throw GIVE_UP;
  const b = u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return readString(b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return readArray(b & 0x0f, depth);
  if (b <= 0x8f) return readMap(b & 0x0f, depth);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcc:
      return u8();
    case 0xcd:
      return len16();
    case 0xce:
      return len32();
    case 0xd0: {
      const v = u8();
      return v < 0x80 ? v : v - 0x100;
    }
    case 0xd1: {
      if (at + 2 > end) throw GIVE_UP;
      const v = srcView.getInt16(at);
      at += 2;
      return v;
    }
    case 0xd2: {
      if (at + 4 > end) throw GIVE_UP;
      const v = srcView.getInt32(at);
      at += 4;
      return v;
    }
    case 0xcb: {
      if (at + 8 > end) throw GIVE_UP;
      const v = srcView.getFloat64(at);
      at += 8;
      return v;
    }
    case 0xd9:
      return readString(u8());
    case 0xda:
      return readString(len16());
    case 0xdb:
      return readString(len32());
    case 0xdc:
      return readArray(len16(), depth);
    case 0xdd:
      return readArray(len32(), depth);
    case 0xde:
      return readMap(len16(), depth);
    case 0xdf:
      return readMap(len32(), depth);
    default:
      throw GIVE_UP; // bin, ext, float32, 64-bit integers, 0xc1
  }
}

/** A command shaped like `Command` (the caller validates clientId and seq). */
export interface DecodedCommand {
  clientId: unknown;
  seq: unknown;
  op: unknown;
}

/**
 * Decodes `[clientId, seq, op]` from `bytes` when it is in the subset this
 * reader knows (see the file comment); `undefined` otherwise, including for malformed
 * bytes: decode those with msgpackr, which decides as it always did.
 */
export function decodeCommandFast(bytes: Uint8Array): DecodedCommand | undefined {
  return decodeCommandFastAt(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * `decodeCommandFast` of the `n` bytes at `offset` in `buffer`, without a view of them: a
 * Multi-Paxos acceptor keeps an accept's packed entries as they arrived, and its learner
 * decodes each command where it lies. Reads through one view of the whole memory (the entries
 * of one message or store batch share it): no view per command.
 */
export function decodeCommandFastAt(
  buffer: ArrayBufferLike,
  offset: number,
  n: number,
): DecodedCommand | undefined {
  if (buffer !== src.buffer) {
    src = new Uint8Array(buffer);
    srcView = new DataView(buffer);
  }
  if (n <= 0 || src[offset] !== 0x93) return undefined;
  at = offset + 1;
  end = offset + n;
  try {
    const clientId = readValue(1);
    const seq = readValue(1);
    const op = readValue(1);
    if (at !== end) return undefined; // trailing bytes
    return { clientId, seq, op };
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    throw e;
  }
}

/**
 * A command in the log: the msgpack array `[clientId, seq, op]` (an array decodes faster
 * than a map). Logs written before this format hold the map `{c, s, o}`; both decode.
 */
export function encodeCommand(cmd: Command): Uint8Array {
  return (
    encodeCommandFast(cmd.clientId, cmd.seq, cmd.op) ?? encodeValue([cmd.clientId, cmd.seq, cmd.op])
  );
}

/** A Buffer over the whole memory of the last entry decoded (entries of one message share it). */
let wholeOf: ArrayBufferLike | undefined;
let whole: Buffer | undefined;

export function decodeCommand(data: Uint8Array): Command {
  // Read through one Buffer over the whole underlying memory (a message's packed entries,
  // a store's batch), by range: msgpack would otherwise make a DataView for, and attach it
  // to, every entry's long-lived view. Reading from a Buffer also makes a `bin` inside the
  // command decode to a Buffer on every replica, whatever store or message held the bytes
  // (msgpack follows the class of its input, and a state machine could tell them apart).
  const fast = decodeCommandFast(data);
  if (fast !== undefined) return fast as Command;
  let v: unknown;
  if (data.byteLength === 0) v = decodeValue(data);
  else {
    if (data.buffer !== wholeOf || whole === undefined) {
      wholeOf = data.buffer;
      whole = Buffer.from(data.buffer);
    }
    v = decodeValueIn(whole, data.byteOffset, data.byteOffset + data.byteLength);
  }
  const c = v as [string, number, unknown] | { c: string; s: number; o: unknown };
  if (Array.isArray(c)) return { clientId: c[0], seq: c[1], op: c[2] };
  return { clientId: c.c, seq: c.s, op: c.o };
}
