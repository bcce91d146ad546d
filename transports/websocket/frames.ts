/**
 * Wire format. Every WebSocket message is one binary frame: a one-byte type tag followed by
 * msgpack. Control frames carry one msgpack map; a batch frame carries msgpack values back to
 * back, each either one envelope or an array of envelopes.
 *
 *   0x01 HELLO        dialer -> acceptor  { p, wv, pv, cluster, node, inc, nonce, to, auth, maxFrame }
 *   0x02 CHALLENGE    acceptor -> dialer  { wv, cluster, node, inc, nonce, proof, maxFrame }
 *   0x03 AUTH         dialer -> acceptor  { proof }
 *   0x04 WELCOME      acceptor -> dialer  {}
 *   0x10 BATCH        both, after WELCOME  [envelope, envelope, ...]
 *   0x11 BATCH_RESET  both, after WELCOME  like BATCH, after forgetting every record structure
 *
 * Control frames are plain msgpack. Batch frames (wire version 2) use msgpackr records in
 * sequential mode: an object's shape (its keys) is written once, the first time the shape is
 * used on a connection, and later objects of that shape carry a one-byte reference and their
 * values only. The structure state lives in the connection (`BatchEncoder`/`BatchDecoder`,
 * one pair per connection), so it is reset on every reconnect; an encoder that had to
 * discard a frame starts over and says so with BATCH_RESET. Plain msgpack maps are still
 * read, so a batch of concatenated plain envelopes is valid too.
 */
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import { isValidNodeId, nodeOf } from '../../lib/address.js';
import { type Envelope, envelopeProblem } from '../../lib/envelope.js';
import { ErrorCode, WebSocketTransportError } from './errors.js';

/** 2: batch frames carry msgpackr records with per-connection structures. */
export const WIRE_VERSION = 2;

export const FrameType = {
  HELLO: 0x01,
  CHALLENGE: 0x02,
  AUTH: 0x03,
  WELCOME: 0x04,
  BATCH: 0x10,
  BATCH_RESET: 0x11,
} as const;

/** Bytes a batch frame adds around its envelopes: the type tag and an array header. */
export const BATCH_OVERHEAD = 6;

/** Most record structures a peer may define on one connection (ours uses at most 64). */
export const MAX_RECORD_STRUCTURES = 256;

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
 * msgpackr keeps its structure state in the options object it is given, so every encoder and
 * decoder gets its own copy (`{ ...recordOptions }`), never this object.
 */
const recordOptions = {
  useRecords: true,
  sequential: true,
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: 'number',
  maxOwnStructures: 64,
} as const;

/**
 * Bytes reserved in front of every encoded batch frame for its WebSocket frame header: 2,
 * plus 8 for a 64-bit length, plus 4 for a (zero) masking key.
 */
export const FRAME_HEADROOM = 14;

/**
 * Encodes the batch frames of one connection. Envelopes must be encoded in the order they
 * are written to the socket, and every frame encoded must be written: the decoder learns
 * record structures from the frames as they arrive.
 */
export class BatchEncoder {
  private packr = new Packr({ ...recordOptions });
  private resetNext = false;

  /**
   * One frame holding `envelopes`; throws (and starts over) when msgpack cannot encode them.
   * The frame is preceded, in the same memory, by `FRAME_HEADROOM` bytes that belong to it:
   * the connection writes the WebSocket frame header there and the frame leaves in a single
   * socket write (see `Connection.sendBatch`).
   */
  encode(envelopes: Envelope[]): Buffer {
    let packed: Buffer;
    try {
      packed = this.packr.pack(envelopes, RESERVE_START_SPACE | (FRAME_HEADROOM + 1));
    } catch (err) {
      this.reset();
      throw err;
    }
    const frame = packed.subarray(FRAME_HEADROOM);
    frame[0] = this.resetNext ? FrameType.BATCH_RESET : FrameType.BATCH;
    this.resetNext = false;
    return frame;
  }

  /**
   * Forgets every structure (after a frame was encoded but not written): the next frame is a
   * BATCH_RESET, so the decoder forgets them too.
   */
  reset(): void {
    this.packr = new Packr({ ...recordOptions });
    this.resetNext = true;
  }
}

/** Decodes the batch frames of one connection (the counterpart of `BatchEncoder`). */
export class BatchDecoder {
  private unpackr = new Unpackr({ ...recordOptions });

  /**
   * Decodes a BATCH or BATCH_RESET frame into validated envelopes addressed to `localNode`.
   * With `remoteNode` (the node id the connection authenticated as), every envelope that
   * names a sender must name one on that node (`SYNOD_ERR_FORGED_SENDER` otherwise).
   * All or nothing: a frame with one bad envelope is rejected whole (the peer is
   * misbehaving, and the connection is closed).
   */
  decode(frame: Uint8Array, localNode: string, remoteNode?: string): Envelope[] {
    if (frame.length < 2) fail(ErrorCode.BAD_FRAME, 'empty batch frame');
    if (frame[0] === FrameType.BATCH_RESET) this.unpackr = new Unpackr({ ...recordOptions });
    let values: unknown[];
    try {
      values = this.unpackr.unpackMultiple(frame.subarray(1)) as unknown[];
    } catch (err) {
      fail(ErrorCode.DECODE, `malformed msgpack in batch frame: ${(err as Error).message}`);
    }
    const structures = (this.unpackr as unknown as { structures?: unknown[] }).structures;
    if (structures !== undefined && structures.length > MAX_RECORD_STRUCTURES) {
      fail(
        ErrorCode.BAD_FRAME,
        `more than ${MAX_RECORD_STRUCTURES} record structures defined on one connection`,
      );
    }
    let out: Envelope[];
    if (values.length === 1 && Array.isArray(values[0])) out = values[0] as Envelope[];
    else {
      out = [];
      for (const v of values) {
        if (Array.isArray(v)) for (const e of v) out.push(e as Envelope);
        else out.push(v as Envelope);
      }
    }
    // every value holds at least one envelope (an encoder never writes an empty array)
    for (const v of values) {
      if (Array.isArray(v) && v.length === 0) fail(ErrorCode.BAD_ENVELOPE, 'empty batch array');
    }
    const prefixLength = localNode.length;
    for (let i = 0; i < out.length; i++) {
      const problem = envelopeProblem(out[i]);
      if (problem !== undefined) {
        fail(ErrorCode.BAD_ENVELOPE, `envelope ${i} of ${out.length}: ${problem}`);
      }
      const to = (out[i] as Envelope).to;
      // `localNode/...` without slicing; anything else gets the exact (slower) test
      const fast = to.charCodeAt(prefixLength) === 0x2f && to.startsWith(localNode);
      if (!fast && nodeOf(to) !== localNode) {
        fail(
          ErrorCode.MISROUTED,
          `envelope ${i} is addressed to "${to}", not to node ${localNode}`,
        );
      }
    }
    // A second pass, so that a batch with a malformed envelope is still reported as such.
    if (remoteNode !== undefined) {
      const remoteLength = remoteNode.length;
      for (let i = 0; i < out.length; i++) {
        const from = (out[i] as Envelope).from;
        if (from === undefined) continue; // no sender claimed (replies, anonymous tells)
        if (from.charCodeAt(remoteLength) === 0x2f && from.startsWith(remoteNode)) continue;
        if (from === remoteNode) continue;
        fail(
          ErrorCode.FORGED_SENDER,
          `envelope ${i} of ${out.length} claims sender "${from.length > 200 ? `${from.slice(0, 200)}...` : from}", but the connection is authenticated as node ${remoteNode}`,
        );
      }
    }
    return out;
  }
}

/**
 * Decodes one self-contained batch frame (no record structures from earlier frames), e.g.
 * concatenated plain envelopes. A connection decodes with its own `BatchDecoder`.
 */
export function decodeBatch(frame: Uint8Array, localNode: string): Envelope[] {
  return new BatchDecoder().decode(frame, localNode);
}
