/**
 * A hand-driven Synod peer for tests: speaks the handshake frame by frame so a test can stop
 * half way, send garbage, stop answering pings or stop reading.
 */
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import {
  type Challenge,
  decodeControl,
  encodeControl,
  FrameType,
  type Hello,
} from '../../transports/websocket/frames.js';
import {
  answerChallenge,
  type LocalIdentity,
  makeChallenge,
  makeHello,
  newNonce,
} from '../../transports/websocket/handshake.js';

export function identity(node: string, secret?: string, cluster = 'synod'): LocalIdentity {
  return {
    cluster,
    node,
    inc: `raw-${node}-${Math.floor(performance.now() * 1000)}`,
    secret: secret === undefined ? undefined : new TextEncoder().encode(secret),
    maxFrame: 16 * 1024 * 1024,
  };
}

function nextMessage(ws: WebSocket, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('raw peer: no frame within timeout'));
    }, ms);
    const onMsg = (d: Buffer) => {
      cleanup();
      resolve(d);
    };
    const onClose = (code: number, reason: Buffer) => {
      cleanup();
      reject(new Error(`raw peer: closed ${code} ${reason.toString()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      ws.off('message', onMsg);
      ws.off('close', onClose);
    };
    ws.on('message', onMsg);
    ws.on('close', onClose);
  });
}

export function opened(ws: WebSocket, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('raw peer: open timeout')), ms);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export function closed(ws: WebSocket, ms = 5000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === ws.CLOSED) return resolve({ code: 1006, reason: '' });
    const timer = setTimeout(() => reject(new Error('raw peer: close timeout')), ms);
    ws.once('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/** Dials `url` and completes the handshake as `local`; resolves with the open socket. */
export async function rawDial(
  url: string,
  local: LocalIdentity,
  expect: string | null = null,
  wsOptions: ConstructorParameters<typeof WebSocket>[2] = {},
): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...wsOptions });
  ws.on('error', () => {});
  await opened(ws);
  const nonce = newNonce();
  ws.send(encodeControl(FrameType.HELLO, makeHello(local, nonce, expect)));
  const c = decodeControl(await nextMessage(ws));
  if (c.type !== FrameType.CHALLENGE) throw new Error('raw peer: expected CHALLENGE');
  const { proof } = answerChallenge(local, expect, nonce, c.body as Challenge);
  ws.send(encodeControl(FrameType.AUTH, { proof }));
  const w = await nextMessage(ws);
  if (w[0] !== FrameType.WELCOME) throw new Error('raw peer: expected WELCOME');
  return ws;
}

/**
 * A listening fake node: accepts, answers the handshake as `local`, then hands each socket
 * to `onOpen`. `autoPong: false` makes it ignore pings (a hung peer).
 */
export async function rawAcceptor(
  local: LocalIdentity,
  onOpen: (ws: WebSocket) => void,
  options: { autoPong?: boolean } = {},
): Promise<{ url: string; close(): Promise<void>; sockets: Set<WebSocket> }> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    autoPong: options.autoPong ?? true,
  });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    sockets.add(ws);
    ws.on('error', () => {});
    ws.on('close', () => sockets.delete(ws));
    void (async () => {
      const h = decodeControl(await nextMessage(ws));
      if (h.type !== FrameType.HELLO) return ws.terminate();
      const { challenge } = makeChallenge(local, h.body as Hello, newNonce());
      ws.send(encodeControl(FrameType.CHALLENGE, challenge));
      const a = await nextMessage(ws);
      if (a[0] !== FrameType.AUTH) return ws.terminate();
      ws.send(encodeControl(FrameType.WELCOME, {}));
      onOpen(ws);
    })().catch(() => ws.terminate());
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.terminate();
        wss.close(() => r());
      }),
  };
}
