/**
 * Per-node identity from TLS certificates (`tls.nodeIdentity`). The cluster secret proves
 * membership only: every holder could claim any node id. With mutual TLS and a private CA
 * that issues one certificate per node, the node id a peer claims in the handshake must be
 * one its certificate names, so only the holder of node X's private key can speak as X.
 *
 * A certificate names node ids by its subject CN, its DNS subject alternative names, and URI
 * SANs of the form `synod:node:<id>`.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';

const URI_PREFIX = 'URI:synod:node:';

/** The node ids a certificate names (empty for no certificate). */
export function certNodeIds(cert: PeerCertificate | Record<string, never> | undefined): string[] {
  if (cert === undefined || !('subject' in cert)) return [];
  const ids: string[] = [];
  const cn = cert.subject?.CN as string | string[] | undefined;
  if (typeof cn === 'string') ids.push(cn);
  else if (Array.isArray(cn)) ids.push(...cn);
  for (const raw of (cert.subjectaltname ?? '').split(',')) {
    const entry = raw.trim();
    if (entry.startsWith('DNS:')) ids.push(entry.slice(4));
    else if (entry.startsWith(URI_PREFIX)) ids.push(entry.slice(URI_PREFIX.length));
  }
  return ids;
}

/**
 * The node ids named by the verified certificate the peer presented on `socket`; undefined
 * when the socket is not TLS or the peer's certificate was not verified against the CA.
 */
export function peerNodeIds(socket: unknown): string[] | undefined {
  const s = socket as Partial<TLSSocket> | undefined;
  if (s === undefined || typeof s.getPeerCertificate !== 'function' || s.authorized !== true) {
    return undefined;
  }
  return certNodeIds(s.getPeerCertificate());
}
