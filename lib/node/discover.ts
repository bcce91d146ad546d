/**
 * Finds the node id behind a bare `ws://host:port` by starting the transport handshake
 * (HELLO) and reading the id from the acceptor's CHALLENGE, then hanging up. No secret is
 * involved: the id is not a secret, and nothing is authenticated by this exchange.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { WebSocket } from 'ws';
import {
  decodeControl,
  encodeControl,
  FrameType,
  WIRE_VERSION,
} from '../../transports/websocket/frames.js';
import { type Clock, systemClock } from '../clock.js';
import { PROTOCOL_VERSION } from '../envelope.js';
import { untrustedAdvice } from '../kv-client/tls-advice.js';

/**
 * Checks a CA file a client command was given (`--tls-ca FILE` / `SYNOD_TLS_CA`) before it
 * dials anything: it must be a readable file holding at least one PEM certificate. Returns the
 * file's contents; throws an `Error` whose message is one line naming `flag` (the command turns
 * it into its usage error, exit 2).
 */
export function readTlsCaFile(file: string, flag = '--tls-ca'): Buffer {
  let pem: Buffer;
  try {
    if (statSync(file).isDirectory()) throw new Error(`${flag} ${file} is a directory`);
    pem = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    throw new Error(
      `${flag}: cannot read CA file ${file} (${code}): pass the PEM file of the CA that signed the nodes' certificates`,
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error(
      `${flag}: ${file} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line): pass the CA certificate, not a key or a DER file`,
    );
  return pem;
}

/** Node's codes for a server certificate that no trusted CA vouches for. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * One actionable line for a TLS failure dialling `url` (error code `code` from Node's TLS
 * layer), or undefined when `code` is not a TLS problem. `caFile` is the CA the client trusted
 * (`--tls-ca`), if any.
 */
export function tlsAdvice(
  url: string,
  code: string | undefined,
  caFile?: string,
): string | undefined {
  if (code === undefined) return undefined;
  if (UNTRUSTED.has(code))
    return `${url}: certificate not trusted (${code}): ${untrustedAdvice(caFile)}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `${url}: the node's certificate does not name host ${hostOf(url)} (${code}): dial the name or IP address in its certificate (subjectAltName), or give the node a certificate for this one`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return `${url}: the node's certificate is outside its validity period (${code}): renew it, or check the clocks`;
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER')
    return `${url}: the node does not speak TLS there (${code}): use ws:// for a node started without --tls-cert`;
  return undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

/** How a client reaches a node to learn its id (and, in kv-client/connect, its peers). */
export interface DiscoverOptions {
  cluster?: string;
  timeoutMs?: number;
  clock?: Clock;
  auth?: boolean;
  /** PEM CA file trusted when the URL is `wss://` (a private or self-signed CA). */
  caFile?: string;
}

export async function discoverNodeId(url: string, options: DiscoverOptions = {}): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const ca = options.caFile !== undefined ? readTlsCaFile(options.caFile) : undefined;
  return new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(url, {
      handshakeTimeout: timeoutMs,
      ...(ca !== undefined ? { ca } : {}),
    });
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
            : (tlsAdvice(url, err.code, options.caFile) ??
                (url.startsWith('ws://') &&
                (err.code === 'ECONNRESET' || /socket hang up/.test(err.message))
                  ? `${url} hung up on a plain ws:// request (${err.code ?? err.message}): if the nodes were started with --tls-cert, use wss://`
                  : `cannot reach ${url}: ${err.message}: check the address, and that no firewall blocks the port`)),
        ),
      ),
    );
  });
}
