/**
 * Options of the WebSocket transport, their defaults, and the peer address syntax
 * `id=ws://host:port` / `id=wss://host:port`.
 */
import { isValidNodeId } from '../../lib/address.js';
import type { Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import { ErrorCode, WebSocketTransportError } from './errors.js';
import type { TransportLogger } from './logger.js';

export interface PeerSpec {
  readonly id: string;
  /** `ws://host:port[/path]` or `wss://host:port[/path]`. */
  readonly url: string;
}

export interface TlsOptions {
  /** PEM certificate chain file served by the listener (required to listen with TLS). */
  certFile?: string;
  /** PEM private key file of the listener. */
  keyFile?: string;
  /** PEM CA file(s) trusted when dialling `wss://` peers (e.g. a self-signed cert). */
  caFile?: string;
  /** Skip certificate verification when dialling. For development only: logs a warning. */
  insecureSkipVerify?: boolean;
  /**
   * Per-node identity by mutual TLS: the listener requires a client certificate issued by
   * `caFile`, the dialler presents `certFile`/`keyFile`, and on both sides the node id a peer
   * claims in the handshake must be named by its certificate (subject CN, a DNS SAN, or a
   * URI SAN `synod:node:<id>`), else `SYNOD_ERR_IDENTITY_MISMATCH`. Needs `certFile`,
   * `keyFile` and `caFile`, and `wss://` peer URLs.
   */
  nodeIdentity?: boolean;
}

export interface WebSocketTransportOptions {
  /** This node's id (letters, digits, `-_.:$`). */
  nodeId: string;
  /** Cluster name; peers with another name are refused. Default `synod`. */
  cluster?: string;
  /**
   * Shared cluster secret. Peers prove they know it by HMAC-SHA256 challenge-response; it
   * never crosses the wire. Both sides need the same secret (or both none).
   */
  secret?: string | Uint8Array;
  /** Where to listen. Omit `listen` to only dial out. Port 0 picks a free port. */
  listen?: { host?: string; port: number };
  /** Serve `wss://` (listener) and the trust settings used when dialling `wss://` peers. */
  tls?: TlsOptions;
  /** Peers to dial: `['b=ws://10.0.0.2:7400', ...]` or `{ id, url }` objects. */
  peers?: ReadonlyArray<string | PeerSpec>;
  /** Accept authenticated inbound connections from nodes not listed in `peers`. Default true. */
  acceptUnknownPeers?: boolean;
  /** Incarnation id of this process; default a random UUID. */
  incarnation?: string;
  clock?: Clock;
  random?: Random;
  logger?: TransportLogger;
  /**
   * Runs a flush "soon": the batching window. Default `queueMicrotask` (envelopes sent in
   * one synchronous run share a frame); pass `clock.schedule` for a wider window.
   */
  scheduler?: (fn: () => void) => void;
  /** Largest frame accepted (ws maxPayload) and sent, in bytes. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Target size of one batch frame. Default 256 KiB. */
  batchBytes?: number;
  /** Most envelopes in one batch frame. Default 4096. */
  batchEnvelopes?: number;
  /** Per-peer outbound queue bound, in encoded bytes. Default 16 MiB. */
  maxQueueBytes?: number;
  /** Per-peer outbound queue bound, in envelopes. Default 100,000. */
  maxQueueEnvelopes?: number;
  /** Stop writing to a socket while its `bufferedAmount` is above this. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Dead-letter the queue of a peer that has been down this long. Default 30 s. */
  queueWhileDownMs?: number;
  /** Ping interval. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /** A link with nothing received for this long is dead. Default 5,000 ms. */
  heartbeatTimeoutMs?: number;
  /** Connect + handshake must finish within this. Default 5,000 ms. */
  handshakeTimeoutMs?: number;
  /** Most connections in the handshake at once (inbound). Default 64. */
  maxPendingHandshakes?: number;
  /**
   * Mask outgoing frames of dialled connections (RFC 6455 client masking). Default false: a
   * zero mask, which `ws` skips on both ends. Masking protects HTTP intermediaries from
   * browser-scripted payloads; between Synod nodes it only costs CPU. Set true when links
   * pass through HTTP proxies that require it.
   */
  maskFrames?: boolean;
  /** Reconnect backoff: first delay, cap, growth factor and jitter fraction (0..1). */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number; jitter?: number };
}

export interface ResolvedOptions {
  nodeId: string;
  cluster: string;
  secret: Uint8Array | undefined;
  listen: { host: string; port: number } | undefined;
  tls: TlsOptions;
  peers: PeerSpec[];
  acceptUnknownPeers: boolean;
  maxFrameBytes: number;
  batchBytes: number;
  batchEnvelopes: number;
  maxQueueBytes: number;
  maxQueueEnvelopes: number;
  maxBufferedBytes: number;
  queueWhileDownMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxPendingHandshakes: number;
  maskFrames: boolean;
  backoff: { initialMs: number; maxMs: number; factor: number; jitter: number };
}

function bad(message: string): never {
  throw new WebSocketTransportError(ErrorCode.BAD_CONFIG, message);
}

/** Parses `id=ws://host:port`; throws `SYNOD_ERR_BAD_CONFIG` with the reason. */
export function parsePeer(spec: string | PeerSpec): PeerSpec {
  let id: string;
  let url: string;
  if (typeof spec === 'string') {
    const eq = spec.indexOf('=');
    if (eq <= 0) bad(`bad peer "${spec}": expected id=ws://host:port or id=wss://host:port`);
    id = spec.slice(0, eq).trim();
    url = spec.slice(eq + 1).trim();
  } else {
    id = spec.id;
    url = spec.url;
  }
  if (!isValidNodeId(id)) bad(`bad peer node id "${id}"`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    bad(`bad peer url "${url}" for ${id}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    bad(`peer url "${url}" for ${id} must start with ws:// or wss://`);
  }
  if (parsed.port === '') bad(`peer url "${url}" for ${id} has no port`);
  return { id, url: parsed.toString() };
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) bad(`option ${name} must be a positive number, got ${v}`);
  return v;
}

export function resolveOptions(o: WebSocketTransportOptions): ResolvedOptions {
  if (!isValidNodeId(o.nodeId)) bad(`bad node id "${o.nodeId}"`);
  const peers = (o.peers ?? []).map(parsePeer);
  const seen = new Set<string>();
  for (const p of peers) {
    if (p.id === o.nodeId) bad(`peer list contains this node's own id "${p.id}"`);
    if (seen.has(p.id)) bad(`peer "${p.id}" is listed twice`);
    seen.add(p.id);
  }
  const maxFrameBytes = positive('maxFrameBytes', o.maxFrameBytes, 16 * 1024 * 1024);
  if (maxFrameBytes < 1024) bad('option maxFrameBytes must be at least 1024');
  const secret =
    o.secret === undefined
      ? undefined
      : typeof o.secret === 'string'
        ? new TextEncoder().encode(o.secret)
        : o.secret;
  if (secret !== undefined && secret.length === 0) bad('option secret must not be empty');
  const heartbeatIntervalMs = positive('heartbeatIntervalMs', o.heartbeatIntervalMs, 1000);
  const heartbeatTimeoutMs = positive('heartbeatTimeoutMs', o.heartbeatTimeoutMs, 5000);
  if (heartbeatTimeoutMs < heartbeatIntervalMs) {
    bad('option heartbeatTimeoutMs must be at least heartbeatIntervalMs');
  }
  const b = o.backoff ?? {};
  const jitter = b.jitter ?? 0.5;
  if (!(jitter >= 0 && jitter <= 1)) bad('option backoff.jitter must be within 0..1');
  const cluster = o.cluster ?? 'synod';
  if (cluster.length === 0 || cluster.length > 256) bad('option cluster must be 1..256 chars');
  const tls = o.tls ?? {};
  if (tls.nodeIdentity) {
    if (!tls.certFile || !tls.keyFile || !tls.caFile) {
      bad('option tls.nodeIdentity needs tls.certFile, tls.keyFile and tls.caFile');
    }
    if (tls.insecureSkipVerify)
      bad('option tls.nodeIdentity cannot be used with insecureSkipVerify');
    for (const p of peers) {
      if (!p.url.startsWith('wss:')) bad(`peer ${p.id}: tls.nodeIdentity needs a wss:// URL`);
    }
  }
  if (o.listen !== undefined) {
    const port = o.listen.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) bad(`bad listen port ${port}`);
  }
  return {
    nodeId: o.nodeId,
    cluster,
    secret,
    listen:
      o.listen === undefined
        ? undefined
        : { host: o.listen.host ?? '127.0.0.1', port: o.listen.port },
    tls,
    peers,
    acceptUnknownPeers: o.acceptUnknownPeers ?? true,
    maxFrameBytes,
    batchBytes: Math.min(positive('batchBytes', o.batchBytes, 256 * 1024), maxFrameBytes),
    batchEnvelopes: positive('batchEnvelopes', o.batchEnvelopes, 4096),
    maxQueueBytes: positive('maxQueueBytes', o.maxQueueBytes, 16 * 1024 * 1024),
    maxQueueEnvelopes: positive('maxQueueEnvelopes', o.maxQueueEnvelopes, 100_000),
    maxBufferedBytes: positive('maxBufferedBytes', o.maxBufferedBytes, 1024 * 1024),
    queueWhileDownMs: positive('queueWhileDownMs', o.queueWhileDownMs, 30_000),
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    handshakeTimeoutMs: positive('handshakeTimeoutMs', o.handshakeTimeoutMs, 5000),
    maxPendingHandshakes: positive('maxPendingHandshakes', o.maxPendingHandshakes, 64),
    maskFrames: o.maskFrames ?? false,
    backoff: {
      initialMs: positive('backoff.initialMs', b.initialMs, 100),
      maxMs: positive('backoff.maxMs', b.maxMs, 5000),
      factor: positive('backoff.factor', b.factor, 2),
      jitter,
    },
  };
}

/** True for addresses only reachable from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
