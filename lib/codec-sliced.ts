/**
 * Encodes a large value in slices, giving the event loop back between them.
 *
 * A state machine's snapshot image can be megabytes of msgpack (a KV store with 10,000 keys
 * and its watch history is about 7 MB). Encoded in one call it holds the node's event loop
 * for 100–400 ms on a busy 2-core machine, and every request in flight waits that long: the
 * cluster's p99 latency is then set by its snapshots. Encoded here, large arrays go out
 * `sliceItems` elements at a time with `await pause()` between slices, so heartbeats,
 * appends and client replies keep flowing while a snapshot is encoded.
 *
 * The bytes decode (with `decodeValue`) to the same value `encodeValue` would give: plain
 * objects become msgpack maps with their keys in insertion order, arrays become msgpack
 * arrays, everything else is encoded by the same Packr as `encodeValue`. The caller must
 * not mutate what it passes until the promise settles (capture immutable parts, or copies).
 * Byte arrays of 4 KiB and more are referenced, not copied, until the final concatenation.
 */
import { CodecError, encodeValue } from './codec.js';

export interface SlicedEncodeOptions {
  /** Array elements encoded per slice (default 512). */
  readonly sliceItems?: number;
  /** How deep plain objects and arrays are split further (default 3); deeper values are packed whole. */
  readonly depth?: number;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function arrayHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x90 | n);
  if (n < 0x10000) return Uint8Array.of(0xdc, n >> 8, n & 0xff);
  return Uint8Array.of(0xdd, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function mapHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x80 | n);
  if (n < 0x10000) return Uint8Array.of(0xde, n >> 8, n & 0xff);
  return Uint8Array.of(0xdf, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function binHeader(n: number): Uint8Array {
  if (n < 0x100) return Uint8Array.of(0xc4, n);
  if (n < 0x10000) return Uint8Array.of(0xc5, n >> 8, n & 0xff);
  return Uint8Array.of(0xc6, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Byte arrays at least this long are not copied through the encoder (a header and the bytes themselves). */
const BIN_BY_REFERENCE = 4096;

/** Length of the msgpack array header at the start of `bytes`. */
function arrayHeaderLength(bytes: Uint8Array): number {
  const b = bytes[0] as number;
  if (b >= 0x90 && b <= 0x9f) return 1;
  if (b === 0xdc) return 3;
  if (b === 0xdd) return 5;
  throw new CodecError(
    'SYNOD_ERR_ENCODE',
    `expected a msgpack array, found byte 0x${b.toString(16)}`,
  );
}

export async function encodeValueSliced(
  value: unknown,
  pause: () => Promise<void>,
  options: SlicedEncodeOptions = {},
): Promise<Uint8Array> {
  const sliceItems = Math.max(1, options.sliceItems ?? 512);
  const parts: Uint8Array[] = [];
  let sinceYield = 0;
  const maybePause = async (n: number): Promise<void> => {
    sinceYield += n;
    if (sinceYield >= sliceItems) {
      sinceYield = 0;
      await pause();
    }
  };
  const walk = async (v: unknown, depth: number): Promise<void> => {
    if (depth > 0 && Array.isArray(v) && v.length > sliceItems) {
      parts.push(arrayHeader(v.length));
      for (let i = 0; i < v.length; i += sliceItems) {
        const chunk = encodeValue(v.slice(i, i + sliceItems));
        parts.push(chunk.subarray(arrayHeaderLength(chunk)));
        await maybePause(Math.min(sliceItems, v.length - i));
      }
      return;
    }
    if (
      v instanceof Uint8Array &&
      v.byteLength >= BIN_BY_REFERENCE &&
      (Object.getPrototypeOf(v) === Uint8Array.prototype || Buffer.isBuffer(v))
    ) {
      // Byte for byte what the encoder writes for a Uint8Array or Buffer (bin 8/16/32), without
      // copying a large nested image (a state machine's inner snapshot) into the encoder first.
      parts.push(binHeader(v.byteLength), v);
      await maybePause(1);
      return;
    }
    if (depth > 0 && isPlainObject(v)) {
      const keys = Object.keys(v);
      parts.push(mapHeader(keys.length));
      for (const k of keys) {
        parts.push(encodeValue(k));
        await walk(v[k], depth - 1);
      }
      return;
    }
    parts.push(encodeValue(v));
    await maybePause(1);
  };
  await walk(value, options.depth ?? 3);
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
