/**
 * Handshake and authentication.
 *
 *   dialer                                   acceptor
 *   HELLO {cluster, node, inc, nonceD, ...}  ->
 *                                          <-  CHALLENGE {node, inc, nonceA, proofA}
 *   AUTH {proofD}                            ->
 *                                          <-  WELCOME            (or close with a code)
 *
 * proofX = HMAC-SHA256(secret, "synod-auth-v1" | role X | cluster | dialer node | dialer inc |
 *          acceptor node | acceptor inc | nonceD | nonceA). Both sides prove knowledge of the
 * secret over fresh nonces from both sides (from `crypto.randomBytes`), with the role in the
 * transcript so a proof cannot be reflected back. The secret never crosses the wire.
 * Without a secret on both sides there are no proofs; a secret on only one side is refused.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PROTOCOL_VERSION } from '../../lib/envelope.js';
import { ErrorCode, WebSocketTransportError } from './errors.js';
import { type Challenge, type Hello, WIRE_VERSION } from './frames.js';

export interface LocalIdentity {
  cluster: string;
  node: string;
  inc: string;
  secret: Uint8Array | undefined;
  maxFrame: number;
  /**
   * The wire version this node speaks; `WIRE_VERSION` unless set. Only tests set it, to play
   * a node of another Synod version.
   */
  wv?: number;
}

function wireVersion(local: LocalIdentity): number {
  return local.wv ?? WIRE_VERSION;
}

export function newNonce(): Uint8Array {
  return randomBytes(32);
}

export interface Transcript {
  cluster: string;
  dialerNode: string;
  dialerInc: string;
  acceptorNode: string;
  acceptorInc: string;
  dialerNonce: Uint8Array;
  acceptorNonce: Uint8Array;
}

export function computeProof(
  secret: Uint8Array,
  role: 'dialer' | 'acceptor',
  t: Transcript,
): Uint8Array {
  const h = createHmac('sha256', secret);
  for (const part of [
    'synod-auth-v1',
    role,
    t.cluster,
    t.dialerNode,
    t.dialerInc,
    t.acceptorNode,
    t.acceptorInc,
  ]) {
    const bytes = Buffer.from(part, 'utf8');
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(bytes.length);
    h.update(len);
    h.update(bytes);
  }
  h.update(t.dialerNonce);
  h.update(t.acceptorNonce);
  return h.digest();
}

export function proofMatches(
  secret: Uint8Array,
  role: 'dialer' | 'acceptor',
  t: Transcript,
  proof: Uint8Array | null,
): boolean {
  if (proof === null || proof.length !== 32) return false;
  return timingSafeEqual(computeProof(secret, role, t), proof);
}

function refuse(code: string, message: string): never {
  throw new WebSocketTransportError(code, message);
}

export function makeHello(local: LocalIdentity, nonce: Uint8Array, to: string | null): Hello {
  return {
    p: 'synod',
    wv: wireVersion(local),
    pv: PROTOCOL_VERSION,
    cluster: local.cluster,
    node: local.node,
    inc: local.inc,
    nonce,
    to,
    auth: local.secret !== undefined,
    maxFrame: local.maxFrame,
  };
}

/** Acceptor side: checks a HELLO; throws a refusal with a stable code. */
export function checkHello(local: LocalIdentity, hello: Hello): void {
  const wv = wireVersion(local);
  if (hello.wv !== wv || hello.pv !== PROTOCOL_VERSION) {
    refuse(
      ErrorCode.VERSION_MISMATCH,
      `peer ${hello.node} speaks wire v${hello.wv}/protocol v${hello.pv}, this node ${local.node} wire v${wv}/protocol v${PROTOCOL_VERSION}`,
    );
  }
  if (hello.cluster !== local.cluster) {
    refuse(
      ErrorCode.WRONG_CLUSTER,
      `peer ${hello.node} is in cluster "${hello.cluster}", this node is in "${local.cluster}"`,
    );
  }
  if (hello.node === local.node) {
    refuse(ErrorCode.SELF_CONNECTION, `node ${local.node} connected to itself`);
  }
  if (hello.to !== null && hello.to !== local.node) {
    refuse(
      ErrorCode.WRONG_NODE,
      `peer ${hello.node} expected node ${hello.to} at this address, but this is ${local.node}`,
    );
  }
  if (local.secret !== undefined && !hello.auth) {
    refuse(
      ErrorCode.AUTH_FAILED,
      `peer ${hello.node} has no cluster secret, this node requires one`,
    );
  }
  if (local.secret === undefined && hello.auth) {
    refuse(
      ErrorCode.AUTH_FAILED,
      `peer ${hello.node} has a cluster secret, this node has none configured`,
    );
  }
}

export function makeChallenge(
  local: LocalIdentity,
  hello: Hello,
  nonce: Uint8Array,
): { challenge: Challenge; transcript: Transcript } {
  const transcript: Transcript = {
    cluster: local.cluster,
    dialerNode: hello.node,
    dialerInc: hello.inc,
    acceptorNode: local.node,
    acceptorInc: local.inc,
    dialerNonce: hello.nonce,
    acceptorNonce: nonce,
  };
  const proof =
    local.secret === undefined ? null : computeProof(local.secret, 'acceptor', transcript);
  return {
    challenge: {
      wv: wireVersion(local),
      cluster: local.cluster,
      node: local.node,
      inc: local.inc,
      nonce,
      proof,
      maxFrame: local.maxFrame,
    },
    transcript,
  };
}

/** Dialer side: checks the acceptor's CHALLENGE and returns the dialer's proof. */
export function answerChallenge(
  local: LocalIdentity,
  expectedPeer: string | null,
  dialerNonce: Uint8Array,
  c: Challenge,
): { proof: Uint8Array | null; transcript: Transcript } {
  const wv = wireVersion(local);
  if (c.wv !== wv) {
    refuse(
      ErrorCode.VERSION_MISMATCH,
      `peer ${c.node} speaks wire v${c.wv}, this node ${local.node} wire v${wv}`,
    );
  }
  if (c.cluster !== local.cluster) {
    refuse(
      ErrorCode.WRONG_CLUSTER,
      `peer ${c.node} is in cluster "${c.cluster}", this node is in "${local.cluster}"`,
    );
  }
  if (c.node === local.node) refuse(ErrorCode.SELF_CONNECTION, `node ${local.node} dialled itself`);
  if (expectedPeer !== null && c.node !== expectedPeer) {
    refuse(
      ErrorCode.WRONG_NODE,
      `dialled ${expectedPeer} but node ${c.node} answered: check the peer address`,
    );
  }
  const transcript: Transcript = {
    cluster: local.cluster,
    dialerNode: local.node,
    dialerInc: local.inc,
    acceptorNode: c.node,
    acceptorInc: c.inc,
    dialerNonce,
    acceptorNonce: c.nonce,
  };
  if (local.secret === undefined) {
    if (c.proof !== null) {
      refuse(ErrorCode.AUTH_FAILED, `peer ${c.node} has a cluster secret, this node has none`);
    }
    return { proof: null, transcript };
  }
  if (c.proof === null) {
    refuse(ErrorCode.AUTH_FAILED, `peer ${c.node} has no cluster secret, this node requires one`);
  }
  if (!proofMatches(local.secret, 'acceptor', transcript, c.proof)) {
    refuse(
      ErrorCode.AUTH_FAILED,
      `peer ${c.node} failed to prove the cluster secret: the secrets differ`,
    );
  }
  return { proof: computeProof(local.secret, 'dialer', transcript), transcript };
}

/** Acceptor side: checks the dialer's proof. */
export function checkAuth(
  local: LocalIdentity,
  transcript: Transcript,
  proof: Uint8Array | null,
): void {
  if (local.secret === undefined) return;
  if (!proofMatches(local.secret, 'dialer', transcript, proof)) {
    refuse(
      ErrorCode.AUTH_FAILED,
      `peer ${transcript.dialerNode} failed to prove the cluster secret: the secrets differ`,
    );
  }
}
