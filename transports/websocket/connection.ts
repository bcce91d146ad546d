/**
 * One WebSocket connection: runs the handshake (as dialer or acceptor), then carries batch
 * frames and heartbeats. Every problem becomes a stable error code; a misbehaving peer is
 * answered by closing this connection with a close code, never by throwing.
 */
import type { WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Envelope } from '../../lib/envelope.js';
import {
  CloseCode,
  closeCodeFor,
  closeReason,
  ErrorCode,
  errorCodeForClose,
  REFUSAL_CODES,
  WebSocketTransportError,
} from './errors.js';
import {
  BatchDecoder,
  BatchEncoder,
  type Challenge,
  decodeControl,
  encodeControl,
  FRAME_HEADROOM,
  FrameType,
  type Hello,
} from './frames.js';
import {
  answerChallenge,
  checkAuth,
  checkHello,
  type LocalIdentity,
  makeChallenge,
  makeHello,
  newNonce,
  type Transcript,
} from './handshake.js';
import { peerNodeIds } from './identity.js';
import type { LogLevel } from './logger.js';

export type Role = 'dialer' | 'acceptor';
export type ConnectionState = 'handshake' | 'open' | 'closed';

export interface Refusal {
  code: string;
  /** The full text for this node's log. */
  reason: string;
  /** A shorter text for the close reason the peer reads (at most 123 bytes with the code). */
  remote?: string;
}

/** What a connection needs from the transport that owns it. */
export interface ConnectionHost {
  readonly local: LocalIdentity;
  readonly clock: Clock;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Dialled connections mask their frames with random keys (`maskFrames`). */
  readonly maskFrames?: boolean;
  /** Rate-limited log keyed by `key`. */
  log(key: string, level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  countError(code: string): void;
  countFrameIn(bytes: number): void;
  /** Acceptor, after HELLO: may this node connect at all? */
  admit(conn: Connection, hello: Hello): Refusal | undefined;
  /**
   * Both roles, once the peer has proved the secret and before the handshake's last step
   * (the acceptor's WELCOME, the dialer's AUTH): may this connection claim the peer's node
   * id? `decide` runs at once, or later (after a liveness probe of the current link); a
   * refusal closes the connection.
   */
  claim(conn: Connection, decide: (refusal: Refusal | undefined) => void): void;
  /** Both roles, once authenticated: keep this connection as the link, or refuse it. */
  authenticated(conn: Connection): Refusal | undefined;
  envelopes(conn: Connection, envelopes: Envelope[]): void;
  /** A frame written earlier has left the process (room in the socket buffer). */
  written(conn: Connection): void;
  closed(conn: Connection, code: string, reason: string): void;
}

let nextId = 1;

/** The parts of a `ws` WebSocket that `sendBatch` relies on (ws 8: `_socket`, `_sender`). */
interface WsInternals {
  readyState: number;
  _socket: { write(data: Uint8Array, cb: (err?: Error | null) => void): boolean } | null;
  _sender: { _state: number; _queue: unknown[] } | null;
}

/**
 * Envelopes a connection delivers before it stops reading its socket until the next turn of
 * the event loop (`clock.schedule`). Without it one poll phase can read megabytes from a fast
 * peer — 100,000+ small envelopes — into actor mailboxes before any actor runs; with it the
 * actors drain between reads, and a sender that outruns its receiver meets TCP backpressure
 * (then its own bounded queue) instead of the receiver's mailbox bound.
 */
export const READ_BUDGET_ENVELOPES = 16_384;

export class Connection {
  readonly id = nextId++;
  state: ConnectionState = 'handshake';
  remoteNode: string | undefined;
  remoteIncarnation: string | undefined;
  /** The largest frame the peer accepts (announced in the handshake). */
  peerMaxFrame = Number.MAX_SAFE_INTEGER;
  /** Set when the flusher stopped on `bufferedAmount`; cleared when room appears. */
  waitingDrain = false;
  /** When the handshake completed (`clock.now()`), 0 before. */
  openedAt = 0;
  /**
   * The node ids named by the peer's verified TLS certificate (`tls.nodeIdentity`):
   * undefined without TLS or without a verified certificate.
   */
  certIds: string[] | undefined;
  /** Record-structure state of this connection's outbound batches (fresh per connection). */
  readonly encoder = new BatchEncoder();
  private readonly decoder = new BatchDecoder();
  private nonce: Uint8Array = newNonce();
  private transcript: Transcript | undefined;
  private step: 'hello' | 'challenge' | 'auth' | 'claim' | 'welcome' | 'done';
  /** Callers of `probe` waiting for the peer to show it is alive. */
  private probeWaiters: ((alive: boolean) => void)[] = [];
  private probeTimer: TimerHandle | undefined;
  private lastReceived: number;
  private handshakeTimer: TimerHandle | undefined;
  private heartbeat: TimerHandle | undefined;
  private killTimer: TimerHandle | undefined;
  private closeInfo: { code: string; reason: string } | undefined;
  /** Envelopes delivered since reading last yielded to the event loop. */
  private readSinceYield = 0;
  private readonly resumeReading = () => {
    this.readSinceYield = 0;
    if (this.closeInfo === undefined) this.ws.resume();
  };
  /** A dialler with `maskFrames`: every frame goes through `ws.send`, which masks it. */
  private readonly maskOwnFrames: boolean;
  private readonly onWritten = (err?: Error | null) => {
    if (!err && this.state === 'open') this.host.written(this);
  };

  constructor(
    readonly role: Role,
    readonly ws: WebSocket,
    private readonly host: ConnectionHost,
    /** Where the socket goes or comes from (`ip:port` or the url), for logs. */
    readonly remoteAddress: string,
    /** Dialer: the node id the address was configured for. */
    readonly expectedPeer: string | null = null,
  ) {
    this.step = role === 'dialer' ? 'challenge' : 'hello';
    this.maskOwnFrames = role === 'dialer' && host.maskFrames === true;
    this.lastReceived = host.clock.now();
    this.handshakeTimer = host.clock.setTimer(host.handshakeTimeoutMs, () => {
      this.handshakeTimer = undefined;
      if (this.state === 'handshake') {
        this.fail(
          ErrorCode.HANDSHAKE_TIMEOUT,
          `handshake did not complete within ${host.handshakeTimeoutMs} ms`,
        );
      }
    });
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.lastReceived = this.host.clock.now();
      if (this.probeWaiters.length > 0) this.endProbe(true);
    });
    ws.on('ping', () => {
      this.lastReceived = this.host.clock.now();
      if (this.probeWaiters.length > 0) this.endProbe(true);
    });
    ws.on('error', (err: Error & { code?: string }) => this.onError(err));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString()));
    if (role === 'dialer') {
      ws.on('upgrade', (res: { socket: unknown }) => {
        this.certIds = peerNodeIds(res.socket);
      });
      ws.on('open', () => this.sendHello());
    }
  }

  /** For logs: `b (127.0.0.1:7001) #3`. */
  get label(): string {
    return `${this.remoteNode ?? this.expectedPeer ?? '?'} (${this.remoteAddress}) #${this.id}`;
  }

  get isOpen(): boolean {
    return this.state === 'open' && this.ws.readyState === this.ws.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Writes one frame; the host's `written` runs when it has left the process. */
  sendFrame(frame: Uint8Array): void {
    this.ws.send(frame, { binary: true, compress: false }, this.onWritten);
  }

  /**
   * Writes one batch frame from `BatchEncoder.encode` (whose `FRAME_HEADROOM` bytes in front
   * belong to it) as a single socket write: the WebSocket frame header goes into the headroom,
   * so header and payload leave in one `write` instead of `ws`'s corked pair of writes (a
   * `writev` of two buffers and a header allocation per frame). Only when `ws` itself would
   * write at once — socket open, nothing queued in its sender (no compression here: every
   * frame, ping and close goes straight to the socket) — so frames stay in order, and
   * `bufferedAmount` (the socket's buffer) still counts what is not yet written. A dialled
   * connection's frames carry the all-zero mask `maskFrames: false` gives them; with
   * `maskFrames` on, and in any other state, the frame goes through `ws.send`.
   */
  sendBatch(frame: Buffer): void {
    const ws = this.ws as unknown as WsInternals;
    const socket = ws._socket;
    const sender = ws._sender;
    if (
      this.maskOwnFrames ||
      ws.readyState !== 1 ||
      socket == null ||
      sender == null ||
      sender._state !== 0 ||
      sender._queue.length !== 0 ||
      frame.byteOffset < FRAME_HEADROOM
    ) {
      this.sendFrame(frame);
      return;
    }
    const n = frame.length;
    const maskBytes = this.role === 'dialer' ? 4 : 0;
    const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
    const headerBytes = 2 + lengthBytes + maskBytes;
    const out = Buffer.from(frame.buffer, frame.byteOffset - headerBytes, n + headerBytes);
    out[0] = 0x82; // FIN, binary
    const maskBit = maskBytes === 0 ? 0 : 0x80;
    if (lengthBytes === 0) out[1] = maskBit | n;
    else if (lengthBytes === 2) {
      out[1] = maskBit | 126;
      out[2] = n >>> 8;
      out[3] = n & 0xff;
    } else {
      out[1] = maskBit | 127;
      out.writeUInt32BE(0, 2);
      out.writeUInt32BE(n, 6);
    }
    if (maskBytes !== 0) out.writeUInt32BE(0, 2 + lengthBytes);
    socket.write(out, this.onWritten);
  }

  /**
   * Closes with the close code that belongs to `code` and a reason starting with `code`.
   * Refusals and protocol violations are sent as a close frame; if the peer does not finish
   * the closing handshake within 2 s, the socket is destroyed.
   */
  close(code: string, message: string, level: LogLevel = 'info', remote?: string): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = { code, reason: message };
    this.endProbe(false);
    this.host.log(`close:${code}`, level, `closing connection ${this.label}: ${code}: ${message}`, {
      peer: this.remoteNode ?? this.expectedPeer,
      address: this.remoteAddress,
      code,
    });
    this.stopTimers();
    const closeCode = closeCodeFor[code] ?? CloseCode.NORMAL;
    if (code === ErrorCode.HEARTBEAT_TIMEOUT) {
      this.ws.terminate();
      return;
    }
    try {
      this.ws.close(closeCode, closeReason(code, remote ?? message));
    } catch {
      this.ws.terminate();
      return;
    }
    this.killTimer = this.host.clock.setTimer(2000, () => this.ws.terminate());
  }

  /** Counts the error, logs it, and closes (`remote`: a shorter close reason for the peer). */
  fail(code: string, message: string, remote?: string): void {
    if (this.closeInfo !== undefined) return;
    this.host.countError(code);
    const level: LogLevel = REFUSAL_CODES.has(code) ? 'error' : 'warn';
    this.close(code, message, level, remote);
  }

  /**
   * Asks whether the peer behind this open connection is still there: sends a ping and calls
   * `done(true)` as soon as anything arrives from the peer (a pong, a ping, a frame), or
   * `done(false)` when nothing did within `ms` or the connection closed. Concurrent probes
   * share one ping.
   */
  probe(ms: number, done: (alive: boolean) => void): void {
    if (this.closeInfo !== undefined || this.state !== 'open') {
      done(false);
      return;
    }
    this.probeWaiters.push(done);
    if (this.probeWaiters.length > 1) return;
    this.probeTimer = this.host.clock.setTimer(ms, () => {
      this.probeTimer = undefined;
      this.endProbe(false);
    });
    try {
      this.ws.ping();
    } catch {
      // the socket is closing: its close event (or the timer) ends the probe
    }
  }

  private endProbe(alive: boolean): void {
    if (this.probeWaiters.length === 0) return;
    const waiters = this.probeWaiters;
    this.probeWaiters = [];
    this.probeTimer?.cancel();
    this.probeTimer = undefined;
    for (const done of waiters) done(alive);
  }

  private stopTimers(): void {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    this.heartbeat?.cancel();
    this.heartbeat = undefined;
  }

  private sendControl(type: number, body: object): void {
    this.ws.send(encodeControl(type, body), { binary: true, compress: false });
  }

  private sendHello(): void {
    if (this.closeInfo !== undefined) return;
    this.sendControl(FrameType.HELLO, makeHello(this.host.local, this.nonce, this.expectedPeer));
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closeInfo !== undefined) return;
    this.lastReceived = this.host.clock.now();
    if (this.probeWaiters.length > 0) this.endProbe(true);
    this.host.countFrameIn(data.length);
    if (!isBinary) {
      this.fail(ErrorCode.TEXT_FRAME, 'text frame received; the Synod protocol is binary');
      return;
    }
    try {
      if (this.state === 'open') {
        if (data[0] !== FrameType.BATCH && data[0] !== FrameType.BATCH_RESET) {
          const t = data[0] === undefined ? 'empty' : `0x${data[0].toString(16)}`;
          throw new WebSocketTransportError(
            data[0] !== undefined && data[0] >= FrameType.HELLO && data[0] <= FrameType.WELCOME
              ? ErrorCode.UNEXPECTED_FRAME
              : ErrorCode.BAD_FRAME,
            `frame type ${t} after the handshake`,
          );
        }
        const envelopes = this.decoder.decode(data, this.host.local.node, this.remoteNode);
        this.host.envelopes(this, envelopes);
        this.readSinceYield += envelopes.length;
        if (this.readSinceYield >= READ_BUDGET_ENVELOPES && !this.ws.isPaused) {
          this.ws.pause();
          this.host.clock.schedule(this.resumeReading);
        }
        return;
      }
      if (data[0] === FrameType.BATCH || data[0] === FrameType.BATCH_RESET) {
        throw new WebSocketTransportError(
          ErrorCode.NOT_AUTHENTICATED,
          'data frame before the handshake completed',
        );
      }
      this.onControl(data);
    } catch (err) {
      if (err instanceof WebSocketTransportError) this.fail(err.code, err.message);
      else this.fail(ErrorCode.BAD_FRAME, `cannot process frame: ${(err as Error).message}`);
    }
  }

  private onControl(data: Buffer): void {
    const frame = decodeControl(data);
    const local = this.host.local;
    const expect = (type: number, step: string) => {
      if (frame.type !== type) {
        throw new WebSocketTransportError(
          ErrorCode.UNEXPECTED_FRAME,
          `expected ${step} in the handshake, got frame type 0x${frame.type.toString(16)}`,
        );
      }
    };
    switch (this.step) {
      case 'hello': {
        expect(FrameType.HELLO, 'HELLO');
        const hello = frame.body as Hello;
        this.remoteNode = hello.node;
        this.remoteIncarnation = hello.inc;
        this.peerMaxFrame = hello.maxFrame;
        checkHello(local, hello);
        const refusal = this.host.admit(this, hello);
        if (refusal) throw new WebSocketTransportError(refusal.code, refusal.reason);
        const { challenge, transcript } = makeChallenge(local, hello, this.nonce);
        this.transcript = transcript;
        this.step = 'auth';
        this.sendControl(FrameType.CHALLENGE, challenge);
        return;
      }
      case 'challenge': {
        expect(FrameType.CHALLENGE, 'CHALLENGE');
        const c = frame.body as Challenge;
        this.remoteNode = c.node;
        this.remoteIncarnation = c.inc;
        this.peerMaxFrame = c.maxFrame;
        const { proof, transcript } = answerChallenge(local, this.expectedPeer, this.nonce, c);
        this.transcript = transcript;
        // The acceptor proved the secret; before proving ours, may it take this node id?
        this.step = 'claim';
        this.host.claim(this, (refusal) => {
          if (this.closeInfo !== undefined) return;
          if (refusal) {
            this.fail(refusal.code, refusal.reason, refusal.remote);
            return;
          }
          this.step = 'welcome';
          this.sendControl(FrameType.AUTH, { proof });
        });
        return;
      }
      case 'auth': {
        expect(FrameType.AUTH, 'AUTH');
        checkAuth(
          local,
          this.transcript as Transcript,
          (frame.body as { proof: Uint8Array | null }).proof,
        );
        // The dialer proved the secret; may it take this node id (is the current link dead)?
        this.step = 'claim';
        this.host.claim(this, (claimRefused) => {
          if (this.closeInfo !== undefined) return;
          if (claimRefused) {
            this.fail(claimRefused.code, claimRefused.reason, claimRefused.remote);
            return;
          }
          const refusal = this.host.authenticated(this);
          if (refusal) {
            this.close(refusal.code, refusal.reason);
            return;
          }
          this.sendControl(FrameType.WELCOME, {});
          this.open();
        });
        return;
      }
      case 'welcome': {
        expect(FrameType.WELCOME, 'WELCOME');
        const refusal = this.host.authenticated(this);
        if (refusal) {
          this.close(refusal.code, refusal.reason);
          return;
        }
        this.open();
        return;
      }
      default:
        throw new WebSocketTransportError(
          ErrorCode.UNEXPECTED_FRAME,
          'handshake frame after handshake',
        );
    }
  }

  private open(): void {
    this.step = 'done';
    this.state = 'open';
    this.openedAt = this.host.clock.now();
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    this.lastReceived = this.host.clock.now();
    this.heartbeat = this.host.clock.setInterval(this.host.heartbeatIntervalMs, () => this.beat());
  }

  private beat(): void {
    if (this.state !== 'open') return;
    const silent = this.host.clock.now() - this.lastReceived;
    if (silent > this.host.heartbeatTimeoutMs) {
      this.fail(
        ErrorCode.HEARTBEAT_TIMEOUT,
        `nothing received for ${Math.round(silent)} ms (limit ${this.host.heartbeatTimeoutMs} ms)`,
      );
      return;
    }
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  private onError(err: Error & { code?: string }): void {
    if (this.closeInfo !== undefined) return;
    const wsCode = err.code ?? '';
    let code: string = ErrorCode.CONNECTION_FAILED;
    if (wsCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') code = ErrorCode.FRAME_TOO_LARGE;
    else if (wsCode.startsWith('WS_ERR_')) code = ErrorCode.WS_PROTOCOL;
    this.host.countError(code);
    this.closeInfo = { code, reason: err.message };
    this.endProbe(false);
    this.stopTimers();
    const level: LogLevel = code === ErrorCode.CONNECTION_FAILED ? 'debug' : 'warn';
    this.host.log(`error:${code}`, level, `connection ${this.label}: ${code}: ${err.message}`, {
      peer: this.remoteNode ?? this.expectedPeer,
      address: this.remoteAddress,
      code,
    });
    // ws closes the socket itself after an error; make sure it does.
    this.killTimer = this.host.clock.setTimer(2000, () => this.ws.terminate());
  }

  private onClose(wsCode: number, reason: string): void {
    this.stopTimers();
    this.endProbe(false);
    this.killTimer?.cancel();
    this.killTimer = undefined;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    let info = this.closeInfo;
    if (info === undefined) {
      const code = errorCodeForClose(wsCode, reason);
      const text = reason.replace(/^SYNOD_ERR_[A-Z_]+: /, '');
      info = { code, reason: text || `connection closed (${wsCode})` };
      const refused = REFUSAL_CODES.has(code);
      if (refused) this.host.countError(code);
      const level: LogLevel = refused ? 'error' : wasOpen ? 'info' : 'debug';
      this.host.log(
        `peer-close:${code}`,
        level,
        refused
          ? `peer ${this.label} refused the connection: ${code}: ${info.reason}`
          : `peer ${this.label} closed the connection: ${code}: ${info.reason}`,
        { peer: this.remoteNode ?? this.expectedPeer, address: this.remoteAddress, code, wsCode },
      );
      this.closeInfo = info;
    }
    this.host.closed(this, info.code, info.reason);
  }
}
