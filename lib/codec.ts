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
 * something else). Plain objects, arrays, strings, numbers, booleans, null, undefined,
 * bigint, Date and Uint8Array are fine. The in-memory transport checks every message with
 * it, so such a message fails in the first simulation test rather than on a real network.
 */
export function assertWireSafe(value: unknown, path = 'message', depth = 0): void {
  if (depth > 64)
    throw new CodecError('SYNOD_ERR_ENCODE', `${path} is nested more than 64 levels deep`);
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return;
    case 'function':
    case 'symbol':
      throw new CodecError(
        'SYNOD_ERR_ENCODE',
        `${path} is a ${typeof value}, which cannot cross a wire`,
      );
  }
  if (value === null || value instanceof Uint8Array || value instanceof Date) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) assertWireSafe(value[i], `${path}[${i}]`, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as object).constructor?.name ?? 'object';
    throw new CodecError(
      'SYNOD_ERR_ENCODE',
      `${path} is a ${name}; send plain objects and arrays (it would not survive msgpack)`,
    );
  }
  for (const key of Object.keys(value as object)) {
    assertWireSafe((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
  }
}
