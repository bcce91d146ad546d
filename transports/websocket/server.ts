/**
 * The listener: an HTTP or HTTPS server whose upgrade requests become WebSocket connections.
 * Plain HTTP requests get 426; malformed HTTP is counted and the socket destroyed; when too
 * many connections are in the handshake the upgrade is answered with 503.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { ErrorCode, WebSocketTransportError } from './errors.js';
import { peerNodeIds } from './identity.js';

export interface ListenerOptions {
  host: string;
  port: number;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  maxPayload: number;
  timeoutMs: number;
  /**
   * Mutual TLS (`tls.nodeIdentity`): require a client certificate issued by this CA; the
   * node ids it names are passed to `onConnection`.
   */
  clientCa?: Buffer | undefined;
  /** False when too many connections are in the handshake. */
  canAccept(): boolean;
  onConnection(ws: WebSocket, remoteAddress: string, peerIds: string[] | undefined): void;
  onReject(code: string, message: string, remoteAddress: string): void;
}

function remoteOf(socket: Duplex): string {
  const s = socket as Socket;
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
}

export class Listener {
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  readonly secure: boolean;

  constructor(private readonly options: ListenerOptions) {
    const { certFile, keyFile } = options;
    this.secure = certFile !== undefined || keyFile !== undefined;
    if (this.secure) {
      if (certFile === undefined || keyFile === undefined) {
        throw new WebSocketTransportError(
          ErrorCode.BAD_CONFIG,
          'TLS needs both tls.certFile and tls.keyFile',
        );
      }
      let cert: Buffer;
      let key: Buffer;
      try {
        cert = readFileSync(certFile);
        key = readFileSync(keyFile);
      } catch (err) {
        throw new WebSocketTransportError(
          ErrorCode.BAD_CONFIG,
          `cannot read TLS certificate or key: ${(err as Error).message}`,
        );
      }
      try {
        this.server = https.createServer(
          options.clientCa === undefined
            ? { cert, key }
            : { cert, key, ca: options.clientCa, requestCert: true, rejectUnauthorized: true },
        );
      } catch (err) {
        throw new WebSocketTransportError(
          ErrorCode.BAD_CONFIG,
          `TLS certificate ${certFile} or key ${keyFile} is not usable PEM (${(err as Error).message}): check that --tls-cert names the certificate and --tls-key its private key`,
        );
      }
      this.server.on('tlsClientError', (err, socket) => {
        options.onReject(
          ErrorCode.BAD_HTTP,
          `TLS handshake failed: ${err.message}`,
          remoteOf(socket),
        );
        socket.destroy();
      });
    } else {
      this.server = http.createServer();
    }
    this.server.headersTimeout = options.timeoutMs;
    this.server.requestTimeout = options.timeoutMs;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.wss.on('wsClientError', (err, socket) => {
      options.onReject(
        ErrorCode.BAD_HTTP,
        `bad WebSocket upgrade: ${err.message}`,
        remoteOf(socket),
      );
      socket.destroy();
    });
    this.server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end('This is a Synod WebSocket endpoint.\n');
    });
    this.server.on('clientError', (err, socket) => {
      options.onReject(ErrorCode.BAD_HTTP, `malformed HTTP: ${err.message}`, remoteOf(socket));
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      socket.destroy();
    });
    this.server.on('upgrade', (req, socket, head) => {
      const remote = remoteOf(socket);
      socket.on('error', () => {});
      if (!options.canAccept()) {
        options.onReject(ErrorCode.OVERLOADED, 'too many connections in the handshake', remote);
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n');
        socket.destroy();
        return;
      }
      const peerIds = options.clientCa === undefined ? undefined : peerNodeIds(socket);
      this.wss.handleUpgrade(req, socket, head, (ws) => options.onConnection(ws, remote, peerIds));
    });
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          new WebSocketTransportError(
            ErrorCode.LISTEN_FAILED,
            `cannot listen on ${this.options.host}:${this.options.port}: ${err.message}`,
          ),
        );
      };
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        this.server.on('error', () => {});
        const a = this.server.address() as AddressInfo;
        resolve({ host: this.options.host, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.wss.close();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
