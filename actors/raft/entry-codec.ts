/**
 * The wire form of the entries of an AppendEntries message: one byte string instead of an
 * array of objects. msgpack would walk, encode and decode every entry object (and the
 * in-memory transport would check every one for wire safety); a packed batch is copied
 * once, encoded once for every follower that needs the same range, and crosses the codec
 * as a single `bin`. Decoding makes entry views into the received bytes (no copy).
 *
 * Layout, little-endian, repeated per entry:
 *
 *     index f64 | term f64 | type u8 (0 normal, 1 config, 2 noop) | length u32 | data
 *
 * Malformed input throws `RaftError('SYNOD_ERR_RAFT_BAD_MESSAGE')`; the shell drops such a
 * message (the remaining checks of `raftMessageProblem` then run on the decoded entries).
 */
import type { EntryType, LogEntry } from '../../lib/storage/types.js';
import { RaftError } from './core/types.js';

const HEADER = 21;
const TYPES: readonly EntryType[] = ['normal', 'config', 'noop'];

function typeCode(t: EntryType): number {
  return t === 'normal' ? 0 : t === 'config' ? 1 : 2;
}

export function packEntries(entries: readonly LogEntry[]): Uint8Array {
  let size = 0;
  for (let i = 0; i < entries.length; i++)
    size += HEADER + (entries[i] as LogEntry).data.byteLength;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let off = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as LogEntry;
    dv.setFloat64(off, e.index, true);
    dv.setFloat64(off + 8, e.term, true);
    dv.setUint8(off + 16, typeCode(e.type));
    dv.setUint32(off + 17, e.data.byteLength, true);
    out.set(e.data, off + HEADER);
    off += HEADER + e.data.byteLength;
  }
  return out;
}

function bad(why: string): never {
  throw new RaftError('SYNOD_ERR_RAFT_BAD_MESSAGE', `packed entries: ${why}`);
}

export function unpackEntries(bytes: Uint8Array): LogEntry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LogEntry[] = [];
  let off = 0;
  const end = bytes.byteLength;
  while (off < end) {
    if (end - off < HEADER) bad(`truncated header at byte ${off}`);
    const index = dv.getFloat64(off, true);
    const term = dv.getFloat64(off + 8, true);
    const type = TYPES[dv.getUint8(off + 16)];
    if (type === undefined) bad(`unknown entry type at byte ${off + 16}`);
    const len = dv.getUint32(off + 17, true);
    const start = off + HEADER;
    if (start + len > end) bad(`entry at byte ${off} runs past the end`);
    out.push({ index, term, type, data: bytes.subarray(start, start + len) });
    off = start + len;
  }
  return out;
}
