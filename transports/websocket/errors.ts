/**
 * Stable error codes and WebSocket close codes of the WebSocket transport.
 *
 * Every problem the transport detects has a `SYNOD_ERR_...` code that appears in logs, in
 * `counters().errors`, in dead letters and in close reasons, so that operators and tests can
 * match on it. Codes never change meaning; new ones may be added.
 */

export const ErrorCode = {
  /** The per-peer outbound queue is full (count or bytes); the envelope was dead-lettered. */
  QUEUE_FULL: 'SYNOD_ERR_QUEUE_FULL',
  /** `send` to a node this transport has no link and no address for. */
  UNKNOWN_PEER: 'SYNOD_ERR_UNKNOWN_PEER',
  /** The peer has been unreachable longer than `queueWhileDownMs`. */
  PEER_UNREACHABLE: 'SYNOD_ERR_PEER_UNREACHABLE',
  /** The transport was closed with the envelope still queued, or `send` after `close`. */
  TRANSPORT_CLOSED: 'SYNOD_ERR_TRANSPORT_CLOSED',
  /** An envelope handed to `send` does not have the envelope shape. */
  BAD_ENVELOPE: 'SYNOD_ERR_BAD_ENVELOPE',
  /** An envelope could not be msgpack-encoded. */
  ENCODE: 'SYNOD_ERR_ENCODE',
  /** A frame (inbound) or an envelope (outbound) exceeds the frame size limit. */
  FRAME_TOO_LARGE: 'SYNOD_ERR_FRAME_TOO_LARGE',
  /** An inbound frame is not valid msgpack. */
  DECODE: 'SYNOD_ERR_DECODE',
  /** An inbound frame has an unknown type tag or a control frame of the wrong shape. */
  BAD_FRAME: 'SYNOD_ERR_BAD_FRAME',
  /** A text frame arrived; the protocol is binary only. */
  TEXT_FRAME: 'SYNOD_ERR_TEXT_FRAME',
  /** A data frame arrived before the handshake completed. */
  NOT_AUTHENTICATED: 'SYNOD_ERR_NOT_AUTHENTICATED',
  /** A handshake frame arrived out of order (or after the handshake). */
  UNEXPECTED_FRAME: 'SYNOD_ERR_UNEXPECTED_FRAME',
  /** An inbound envelope is addressed to another node. */
  MISROUTED: 'SYNOD_ERR_MISROUTED',
  /**
   * An envelope's sender (`from`) is on another node than the one the connection
   * authenticated as (inbound: the peer is forging senders; outbound: `send` refuses an
   * envelope that claims a sender on another node than this one).
   */
  FORGED_SENDER: 'SYNOD_ERR_FORGED_SENDER',
  /** The peer belongs to another cluster. */
  WRONG_CLUSTER: 'SYNOD_ERR_WRONG_CLUSTER',
  /** The cluster secret proof failed (or only one side has a secret). */
  AUTH_FAILED: 'SYNOD_ERR_AUTH_FAILED',
  /** The peer speaks another wire protocol version. */
  VERSION_MISMATCH: 'SYNOD_ERR_VERSION_MISMATCH',
  /** The node that answered is not the node the address was configured for. */
  WRONG_NODE: 'SYNOD_ERR_WRONG_NODE',
  /** A node dialled itself (a peer address points back at this node). */
  SELF_CONNECTION: 'SYNOD_ERR_SELF_CONNECTION',
  /**
   * `tls.nodeIdentity`: the node id a peer claims is not named by its TLS certificate (or it
   * presented none).
   */
  IDENTITY_MISMATCH: 'SYNOD_ERR_IDENTITY_MISMATCH',
  /** The handshake did not complete within `handshakeTimeoutMs`. */
  HANDSHAKE_TIMEOUT: 'SYNOD_ERR_HANDSHAKE_TIMEOUT',
  /** An inbound node id that is not configured, with `acceptUnknownPeers: false`. */
  PEER_NOT_ALLOWED: 'SYNOD_ERR_PEER_NOT_ALLOWED',
  /** A second connection between the same two nodes; the tie-break kept the other one. */
  DUPLICATE_LINK: 'SYNOD_ERR_DUPLICATE_LINK',
  /** A newer connection (or a new incarnation of the peer) replaced this one. */
  LINK_REPLACED: 'SYNOD_ERR_LINK_REPLACED',
  /** A connection from an incarnation of the peer that a newer one has replaced. */
  STALE_INCARNATION: 'SYNOD_ERR_STALE_INCARNATION',
  /**
   * A connection claims a node id whose current link is alive (it answered a liveness probe):
   * two processes use the same node id, or a member holding the secret impersonates another.
   */
  DUPLICATE_NODE: 'SYNOD_ERR_DUPLICATE_NODE',
  /** Nothing was received from the peer within `heartbeatTimeoutMs`. */
  HEARTBEAT_TIMEOUT: 'SYNOD_ERR_HEARTBEAT_TIMEOUT',
  /** Too many connections are in the handshake at once. */
  OVERLOADED: 'SYNOD_ERR_OVERLOADED',
  /** A WebSocket protocol violation detected by `ws` (bad opcode, bad masking, ...). */
  WS_PROTOCOL: 'SYNOD_ERR_WS_PROTOCOL',
  /** A malformed HTTP request or upgrade reached the listener. */
  BAD_HTTP: 'SYNOD_ERR_BAD_HTTP',
  /** The TCP/TLS connection failed or was reset. */
  CONNECTION_FAILED: 'SYNOD_ERR_CONNECTION_FAILED',
  /** The peer closed the connection. */
  PEER_CLOSED: 'SYNOD_ERR_PEER_CLOSED',
  /** `removePeer` forgot the peer: its connections closed, its queue dead-lettered. */
  PEER_REMOVED: 'SYNOD_ERR_PEER_REMOVED',
  /** The transport could not listen on the configured address. */
  LISTEN_FAILED: 'SYNOD_ERR_LISTEN_FAILED',
  /** A configuration value is invalid. */
  BAD_CONFIG: 'SYNOD_ERR_BAD_CONFIG',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Close codes sent on the WebSocket. 1000-1015 are the standard ones (RFC 6455); 4000-4999
 * are private to Synod. A close reason always starts with the `SYNOD_ERR_...` code.
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  NOT_AUTHENTICATED: 4001,
  BAD_FRAME: 4002,
  BAD_ENVELOPE: 4003,
  MISROUTED: 4004,
  UNEXPECTED_FRAME: 4005,
  FORGED_SENDER: 4006,
  WRONG_CLUSTER: 4010,
  AUTH_FAILED: 4011,
  VERSION_MISMATCH: 4012,
  WRONG_NODE: 4013,
  HANDSHAKE_TIMEOUT: 4014,
  PEER_NOT_ALLOWED: 4015,
  SELF_CONNECTION: 4016,
  IDENTITY_MISMATCH: 4017,
  DUPLICATE_LINK: 4020,
  LINK_REPLACED: 4021,
  STALE_INCARNATION: 4022,
  DUPLICATE_NODE: 4023,
  HEARTBEAT_TIMEOUT: 4030,
} as const;

/** The close code sent for each error code that closes a connection. */
export const closeCodeFor: Readonly<Record<string, number>> = {
  [ErrorCode.FRAME_TOO_LARGE]: CloseCode.MESSAGE_TOO_BIG,
  [ErrorCode.DECODE]: CloseCode.BAD_FRAME,
  [ErrorCode.BAD_FRAME]: CloseCode.BAD_FRAME,
  [ErrorCode.TEXT_FRAME]: CloseCode.UNSUPPORTED_DATA,
  [ErrorCode.BAD_ENVELOPE]: CloseCode.BAD_ENVELOPE,
  [ErrorCode.NOT_AUTHENTICATED]: CloseCode.NOT_AUTHENTICATED,
  [ErrorCode.UNEXPECTED_FRAME]: CloseCode.UNEXPECTED_FRAME,
  [ErrorCode.MISROUTED]: CloseCode.MISROUTED,
  [ErrorCode.FORGED_SENDER]: CloseCode.FORGED_SENDER,
  [ErrorCode.WRONG_CLUSTER]: CloseCode.WRONG_CLUSTER,
  [ErrorCode.AUTH_FAILED]: CloseCode.AUTH_FAILED,
  [ErrorCode.VERSION_MISMATCH]: CloseCode.VERSION_MISMATCH,
  [ErrorCode.WRONG_NODE]: CloseCode.WRONG_NODE,
  [ErrorCode.SELF_CONNECTION]: CloseCode.SELF_CONNECTION,
  [ErrorCode.IDENTITY_MISMATCH]: CloseCode.IDENTITY_MISMATCH,
  [ErrorCode.HANDSHAKE_TIMEOUT]: CloseCode.HANDSHAKE_TIMEOUT,
  [ErrorCode.PEER_NOT_ALLOWED]: CloseCode.PEER_NOT_ALLOWED,
  [ErrorCode.DUPLICATE_LINK]: CloseCode.DUPLICATE_LINK,
  [ErrorCode.LINK_REPLACED]: CloseCode.LINK_REPLACED,
  [ErrorCode.STALE_INCARNATION]: CloseCode.STALE_INCARNATION,
  [ErrorCode.DUPLICATE_NODE]: CloseCode.DUPLICATE_NODE,
  [ErrorCode.HEARTBEAT_TIMEOUT]: CloseCode.HEARTBEAT_TIMEOUT,
  [ErrorCode.OVERLOADED]: CloseCode.TRY_AGAIN_LATER,
  [ErrorCode.WS_PROTOCOL]: CloseCode.PROTOCOL_ERROR,
  [ErrorCode.TRANSPORT_CLOSED]: CloseCode.GOING_AWAY,
  [ErrorCode.PEER_REMOVED]: CloseCode.NORMAL,
};

/** Error codes that mean "the peer is misconfigured", not "the network hiccuped". */
export const REFUSAL_CODES: ReadonlySet<string> = new Set([
  ErrorCode.WRONG_CLUSTER,
  ErrorCode.AUTH_FAILED,
  ErrorCode.VERSION_MISMATCH,
  ErrorCode.WRONG_NODE,
  ErrorCode.SELF_CONNECTION,
  ErrorCode.PEER_NOT_ALLOWED,
  ErrorCode.STALE_INCARNATION,
  ErrorCode.DUPLICATE_NODE,
  ErrorCode.IDENTITY_MISMATCH,
]);

/** Maps a received close code back to the error code the closing side reported. */
export function errorCodeForClose(code: number, reason: string): string {
  const m = /^(SYNOD_ERR_[A-Z_]+)/.exec(reason);
  if (m?.[1]) return m[1];
  for (const [err, close] of Object.entries(closeCodeFor)) {
    if (close === code && code >= 4000) return err;
  }
  if (code === CloseCode.MESSAGE_TOO_BIG) return ErrorCode.FRAME_TOO_LARGE;
  if (code === CloseCode.PROTOCOL_ERROR) return ErrorCode.WS_PROTOCOL;
  if (code === CloseCode.GOING_AWAY || code === CloseCode.NORMAL) return ErrorCode.PEER_CLOSED;
  return ErrorCode.CONNECTION_FAILED;
}

/** An error of the WebSocket transport: a stable code plus the close code to send, if any. */
export class WebSocketTransportError extends Error {
  readonly closeCode: number | undefined;
  constructor(
    readonly code: string,
    message: string,
    closeCode?: number,
  ) {
    super(message);
    this.name = 'WebSocketTransportError';
    this.closeCode = closeCode ?? closeCodeFor[code];
  }
}

/** A close reason: the code first, then as much of the text as fits in 123 bytes. */
export function closeReason(code: string, message: string): string {
  let text = `${code}: ${message}`;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}
