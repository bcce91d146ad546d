/** The WebSocket transport: `ws` + msgpack, authenticated, batched, bounded. */
export { CloseCode, ErrorCode, WebSocketTransportError } from './errors.js';
export type { LogLevel, TransportLogger } from './logger.js';
export { defaultLogger } from './logger.js';
export type { PeerSpec, TlsOptions, WebSocketTransportOptions } from './options.js';
export { parsePeer } from './options.js';
export { WebSocketTransport, type WebSocketTransportCounters } from './transport.js';
