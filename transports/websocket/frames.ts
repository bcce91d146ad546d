/**
 * Wire format. Every WebSocket message is one binary frame: a one-byte type tag followed by
 * msgpack. Control frames carry one msgpack map; a batch frame carries one or more
 * msgpack-encoded envelopes back to back (no array header), so an envelope is encoded once
 * when it is queued and a batch is a plain concatenation.
 *
 *   0x01 HELLO      dialer -> acceptor  { p, wv, pv, cluster, node, inc, nonce, to, auth, maxFrame }
 *   0x02 CHALLENGE  acceptor -> dialer  { wv, cluster, node, inc, nonce, proof, maxFrame }
 *   0x03 AUTH       dialer -> acceptor  { proof }
 *   0x04 WELCOME    acceptor -> dialer  {}
 *   0x10 BATCH      both, after WELCOME  envelope envelope ...
 *
 * Plain msgpack (no shared structures or records), so there is no encoder/decoder state to
 * keep in step: a new connection starts clean by construction.
 */
import { Packr } from 'msgpackr';
import { isValidNodeId, nodeOf } from '../../lib/address.js';
import { type Envelope, envelopeProblem } from '../../lib/envelope.js';
import { ErrorCode, WebSocketTransportError } from './errors.js';

export const WIRE_VERSION = 1;

export const FrameType = {
  HELLO: 0x01,
  CHALLENGE: 0x02,
  AUTH: 0x03,
  WELCOME: 0x04,
  BATCH: 0x10,
} as const;

export interface Hello {
  p: 'synod';
  wv: number;
  pv: number;
  cluster: string;
  node: string;
  inc: string;
  nonce: Uint8Array;
  /** The node id the dialer expects to reach, when it knows it. */
  to: string | null;
  /** Whether the dialer has a secret and will prove it. */
  auth: boolean;
  maxFrame: number;
}

export interface Challenge {
  wv: number;
  cluster: string;
  node: string;
  inc: string;
  nonce: Uint8Array;
  proof: Uint8Array | null;
  maxFrame: number;
}

export interface Auth {
  proof: Uint8Array | null;
}

export type ControlFrame =
  | { type: typeof FrameType.HELLO; body: Hello }
  | { type: typeof FrameType.CHALLENGE; body: Challenge }
  | { type: typeof FrameType.AUTH; body: Auth }
  | { type: typeof FrameType.WELCOME; body: Record<string, never> };

/** Same options as lib/codec.ts: plain msgpack that any decoder reads. */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

function fail(code: string, message: string): never {
  throw new WebSocketTransportError(code, message);
}

export function encodeControl(type: number, body: object): Buffer {
  const payload = packr.pack(body);
  const out = Buffer.allocUnsafe(payload.length + 1);
  out[0] = type;
  out.set(payload, 1);
  return out;
}

export function isNonce(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === 32;
}

function str(o: Record<string, unknown>, key: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    fail(ErrorCode.BAD_FRAME, `handshake field "${key}" is not a string of 1..${max} chars`);
  }
  return v;
}

function int(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail(ErrorCode.BAD_FRAME, `handshake field "${key}" is not a non-negative integer`);
  }
  return v;
}

function proofField(o: Record<string, unknown>): Uint8Array | null {
  const v = o.proof;
  if (v === null || v === undefined) return null;
  if (!(v instanceof Uint8Array) || v.length !== 32) {
    fail(ErrorCode.BAD_FRAME, 'handshake field "proof" is not 32 bytes');
  }
  return v;
}

function map(bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (err) {
    fail(ErrorCode.DECODE, `malformed msgpack in control frame: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    fail(ErrorCode.BAD_FRAME, 'control frame body is not a map');
  }
  return v as Record<string, unknown>;
}

function nodeField(o: Record<string, unknown>, key: string): string {
  const v = str(o, key, 128);
  if (!isValidNodeId(v)) fail(ErrorCode.BAD_FRAME, `handshake field "${key}" is not a node id`);
  return v;
}

/** Parses and validates a control frame (anything but BATCH). */
export function decodeControl(frame: Uint8Array): ControlFrame {
  const type = frame[0];
  const body = frame.subarray(1);
  switch (type) {
    case FrameType.HELLO: {
      const o = map(body);
      if (o.p !== 'synod') fail(ErrorCode.BAD_FRAME, 'HELLO is not a Synod handshake');
      const wv = int(o, 'wv');
      const pv = int(o, 'pv');
      const cluster = str(o, 'cluster', 256);
      const node = nodeField(o, 'node');
      const inc = str(o, 'inc', 128);
      if (!isNonce(o.nonce)) fail(ErrorCode.BAD_FRAME, 'HELLO nonce is not 32 bytes');
      const to = o.to === null || o.to === undefined ? null : nodeField(o, 'to');
      if (typeof o.auth !== 'boolean') fail(ErrorCode.BAD_FRAME, 'HELLO field "auth" not boolean');
      const maxFrame = int(o, 'maxFrame');
      return {
        type,
        body: {
          p: 'synod',
          wv,
          pv,
          cluster,
          node,
          inc,
          nonce: o.nonce,
          to,
          auth: o.auth,
          maxFrame,
        },
      };
    }
    case FrameType.CHALLENGE: {
      const o = map(body);
      const wv = int(o, 'wv');
      const cluster = str(o, 'cluster', 256);
      const node = nodeField(o, 'node');
      const inc = str(o, 'inc', 128);
      if (!isNonce(o.nonce)) fail(ErrorCode.BAD_FRAME, 'CHALLENGE nonce is not 32 bytes');
      const proof = proofField(o);
      const maxFrame = int(o, 'maxFrame');
      return { type, body: { wv, cluster, node, inc, nonce: o.nonce, proof, maxFrame } };
    }
    case FrameType.AUTH: {
      const o = map(body);
      return { type, body: { proof: proofField(o) } };
    }
    case FrameType.WELCOME: {
      map(body);
      return { type, body: {} };
    }
    default:
      return fail(
        ErrorCode.BAD_FRAME,
        type === undefined ? 'empty frame' : `unknown frame type 0x${type.toString(16)}`,
      );
  }
}

/**
 * Decodes a BATCH frame into validated envelopes addressed to `localNode`. All or nothing:
 * a frame with one bad envelope is rejected whole (the peer is misbehaving).
 */
export function decodeBatch(frame: Uint8Array, localNode: string): Envelope[] {
  if (frame.length < 2) fail(ErrorCode.BAD_FRAME, 'empty batch frame');
  let values: unknown[];
  try {
    values = packr.unpackMultiple(frame.subarray(1)) as unknown[];
  } catch (err) {
    fail(ErrorCode.DECODE, `malformed msgpack in batch frame: ${(err as Error).message}`);
  }
  for (let i = 0; i < values.length; i++) {
    const problem = envelopeProblem(values[i]);
    if (problem !== undefined) {
      fail(ErrorCode.BAD_ENVELOPE, `envelope ${i} of ${values.length}: ${problem}`);
    }
    const to = (values[i] as Envelope).to;
    if (nodeOf(to) !== localNode) {
      fail(ErrorCode.MISROUTED, `envelope ${i} is addressed to "${to}", not to node ${localNode}`);
    }
  }
  return values as Envelope[];
}
