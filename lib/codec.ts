/**
 * One codec everywhere: envelopes are msgpack-encoded (msgpackr) on every transport,
 * including the in-memory one, so a message that cannot cross a wire fails in the first
 * unit test rather than at a demo.
 */
import { Packr } from 'msgpackr';
import { type Envelope, envelopeProblem } from './envelope.js';

export class CodecError extends Error {
  constructor(
    readonly code: 'SYNOD_ERR_DECODE' | 'SYNOD_ERR_BAD_ENVELOPE' | 'SYNOD_ERR_ENCODE',
    message: string,
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

/** Plain msgpack, no shared structures: any decoder can read what any encoder wrote. */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

export function encodeValue(value: unknown): Uint8Array {
  try {
    return packr.pack(value);
  } catch (err) {
    throw new CodecError('SYNOD_ERR_ENCODE', `cannot encode message: ${(err as Error).message}`);
  }
}

export function decodeValue(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new CodecError('SYNOD_ERR_DECODE', `malformed msgpack: ${(err as Error).message}`);
  }
}

/**
 * Decodes the one msgpack value in `source[start, end)` (end > start), like `decodeValue` on
 * that range. msgpackr caches a DataView on the object it reads from: decoding many small
 * views of one buffer through a single wrapper of the whole buffer makes one DataView
 * instead of one per view, and leaves the views themselves untouched (for views that live
 * long, such as log entries, the cached DataView would live as long). A `bin` inside
 * decodes to the class of `source`.
 */
export function decodeValueIn(source: Uint8Array, start: number, end: number): unknown {
  if (!(end > start) || start < 0 || end > source.byteLength) {
    throw new CodecError(
      'SYNOD_ERR_DECODE',
      `bad range [${start}, ${end}) of ${source.byteLength} bytes`,
    );
  }
  try {
    return packr.unpack(source, { start, end });
  } catch (err) {
    throw new CodecError('SYNOD_ERR_DECODE', `malformed msgpack: ${(err as Error).message}`);
  }
}

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encodeValue(envelope);
}

/** Decodes and validates; throws `CodecError` with a stable code on bad input. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const value = decodeValue(bytes);
  const problem = envelopeProblem(value);
  if (problem !== undefined) throw new CodecError('SYNOD_ERR_BAD_ENVELOPE', problem);
  return value as Envelope;
}

/**
 * Throws `CodecError` when `value` holds something msgpack would not carry faithfully
 * across a wire: functions, symbols, Maps, Sets or class instances (they would arrive as
 * something else), a bigint outside 64 bits, or nesting deeper than 64 levels. Plain
 * objects, arrays, strings, numbers, booleans, null, undefined, bigint, Date and Uint8Array
 * are fine. The in-memory transport checks every message with it, so such a message fails in
 * the first simulation test rather than on a real network.
 */
export function assertWireSafe(value: unknown, path = 'message', depth = 0): void {
  // One allocation-free pass; the path of the offending value is only built on failure.
  if (sizeOf(value, depth) < 0) describeProblem(value, path, depth);
}

/**
 * Checks `value` like `assertWireSafe` and returns an upper bound of its msgpack size in
 * bytes (as a map or as a record, whichever the encoder picks), in the same single pass.
 * Transports use it to bound queues and frames before encoding.
 */
export function wireSize(value: unknown): number {
  const n = sizeOf(value, 0);
  if (n < 0) describeProblem(value, 'message', 0);
  return n;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** Upper bound of the encoded size, or -1 when the value cannot cross a wire. */
function sizeOf(value: unknown, depth: number): number {
  if (depth > 64) return -1;
  switch (typeof value) {
    case 'string':
      // UTF-8 is at most 3 bytes per UTF-16 unit; long strings are measured exactly.
      return value.length < 32 ? value.length * 3 + 2 : Buffer.byteLength(value, 'utf8') + 5;
    case 'number':
      return 9;
    case 'object':
      break;
    case 'boolean':
      return 1;
    case 'undefined':
      return 3;
    case 'bigint':
      return value >= INT64_MIN && value <= UINT64_MAX ? 9 : -1;
    default:
      return -1; // function, symbol
  }
  if (value === null) return 1;
  // Plain objects first: they are most of what crosses a wire (envelopes, message bodies).
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype) return objectSize(value as Record<string, unknown>, depth);
  if (Array.isArray(value)) {
    let n = 5;
    for (let i = 0; i < value.length; i++) {
      const e = sizeOf(value[i], depth + 1);
      if (e < 0) return -1;
      n += e;
    }
    return n;
  }
  if (value instanceof Uint8Array) return value.length + 5;
  if (value instanceof Date) return 15;
  if (proto === null) return objectSize(value as Record<string, unknown>, depth);
  return -1;
}

function objectSize(value: Record<string, unknown>, depth: number): number {
  // A map header, or a record reference plus (the first time) its definition: at most 8.
  let n = 8;
  // for-in sees only own keys here: the prototype is Object.prototype or null (an
  // enumerable key added to Object.prototype would only make the bound larger)
  for (const key in value) {
    const v = sizeOf(value[key], depth + 1);
    if (v < 0) return -1;
    n += v + (key.length < 32 ? key.length * 3 + 2 : Buffer.byteLength(key, 'utf8') + 5);
  }
  return n;
}

/** Throws the `CodecError` naming the first value (by path) that cannot cross a wire. */
function describeProblem(value: unknown, path: string, depth: number): never {
  const fail = (message: string): never => {
    throw new CodecError('SYNOD_ERR_ENCODE', message);
  };
  if (depth > 64) fail(`${path} is nested more than 64 levels deep`);
  switch (typeof value) {
    case 'function':
    case 'symbol':
      fail(`${path} is a ${typeof value}, which cannot cross a wire`);
      break;
    case 'bigint':
      fail(`${path} is a bigint outside 64 bits, which msgpack cannot carry`);
      break;
    case 'object': {
      if (value === null || value instanceof Uint8Array || value instanceof Date) break;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (sizeOf(value[i], depth + 1) < 0)
            describeProblem(value[i], `${path}[${i}]`, depth + 1);
        }
        break;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as object).constructor?.name ?? 'object';
        fail(`${path} is a ${name}; send plain objects and arrays (it would not survive msgpack)`);
      }
      for (const key of Object.keys(value as object)) {
        const v = (value as Record<string, unknown>)[key];
        if (sizeOf(v, depth + 1) < 0) describeProblem(v, `${path}.${key}`, depth + 1);
      }
      break;
    }
  }
  return fail(`${path} cannot cross a wire`);
}

/** `String.prototype.isWellFormed` (Node 20; not in this project's TypeScript lib). */
export function wellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Whether msgpack (lib/codec.ts) gives back a value equal to `v` in every way a
 * deterministic state machine could observe: plain objects (no `__proto__` key), dense
 * arrays, well-formed strings, numbers other than -0, booleans and null, at most 32 levels
 * deep. Everything else — undefined, -0 (decodes as 0), lone surrogates (decode as
 * U+FFFD), bigint (decodes as a number), Uint8Array (decodes as a Buffer), Date, Map, class
 * instances, symbols, functions — answers false. The leader applies its own proposal from
 * the command object only when this holds, so it applies exactly what followers decode
 * (Raft's RaftNode and Multi-Paxos' learners both use this rule).
 */
export function decodesToItself(v: unknown, depth = 0): boolean {
  switch (typeof v) {
    case 'string':
      return wellFormed(v);
    case 'number':
      return v !== 0 || 1 / v > 0;
    case 'boolean':
      return true;
    case 'object': {
      if (v === null) return true;
      if (depth >= 32) return false;
      const proto = Object.getPrototypeOf(v);
      if (proto === Object.prototype) {
        const o = v as Record<string, unknown>;
        for (const k in o) {
          if (k === '__proto__' || !wellFormed(k)) return false;
          if (!decodesToItself(o[k], depth + 1)) return false;
        }
        return true;
      }
      if (proto === Array.prototype) {
        const a = v as unknown[];
        for (let i = 0; i < a.length; i++) {
          if (!(i in a) || !decodesToItself(a[i], depth + 1)) return false;
        }
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}
