/**
 * Finds the node id behind a bare `ws://host:port` by starting the transport handshake
 * (HELLO) and reading the id from the acceptor's CHALLENGE, then hanging up. No secret is
 * involved: the id is not a secret, and nothing is authenticated by this exchange.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import {
  decodeControl,
  encodeControl,
  FrameType,
  WIRE_VERSION,
} from '../../transports/websocket/frames.js';
import { type Clock, systemClock } from '../clock.js';
import { PROTOCOL_VERSION } from '../envelope.js';

export async function discoverNodeId(
  url: string,
  options: { cluster?: string; timeoutMs?: number; clock?: Clock; auth?: boolean } = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
    const timer = (options.clock ?? systemClock).setTimer(timeoutMs, () => {
      ws.terminate();
      reject(
        new Error(`no answer from ${url} within ${timeoutMs} ms: is a synod node listening there?`),
      );
    });
    const done = (err: Error | undefined, id?: string) => {
      timer.cancel();
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      if (err) reject(err);
      else resolve(id as string);
    };
    ws.on('open', () => {
      ws.send(
        encodeControl(FrameType.HELLO, {
          p: 'synod',
          wv: WIRE_VERSION,
          pv: PROTOCOL_VERSION,
          cluster: options.cluster ?? 'synod',
          node: `probe-${randomBytes(4).toString('hex')}`,
          inc: randomBytes(8).toString('hex'),
          nonce: randomBytes(32),
          to: null,
          // Say whether we hold a secret as a real client would: a node without one refuses a
          // hello that claims one.
          auth: options.auth ?? true,
          maxFrame: 1 << 20,
        }),
      );
    });
    ws.on('message', (data: Buffer) => {
      try {
        const frame = decodeControl(new Uint8Array(data)) as { body?: { node?: unknown } };
        const node = frame.body?.node;
        if (typeof node === 'string') done(undefined, node);
        else done(new Error(`${url} answered the handshake without a node id`));
      } catch (err) {
        done(new Error(`${url} did not answer like a synod node: ${(err as Error).message}`));
      }
    });
    ws.on('close', (code, reason) => {
      const text = reason.toString();
      // What to change for the refusals a person can fix from this side.
      const advice = /SYNOD_ERR_WRONG_CLUSTER/.test(text)
        ? ": pass the nodes' cluster name with --cluster-name (or SYNOD_CLUSTER_NAME)"
        : /SYNOD_ERR_AUTH_FAILED/.test(text)
          ? ': pass the secret file the nodes were started with (--secret-file or SYNOD_SECRET_FILE)'
          : '';
      done(new Error(`${url} closed the connection (${code} ${text || 'no reason'})${advice}`));
    });
    ws.on('error', (err: NodeJS.ErrnoException) =>
      done(
        new Error(
          err.code === 'ECONNREFUSED'
            ? `nothing listens at ${url} (connection refused): is the node running, and is that its address and port?`
            : `cannot reach ${url}: ${err.message}: check the address, and that no firewall blocks the port`,
        ),
      ),
    );
  });
}
