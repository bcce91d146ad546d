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
