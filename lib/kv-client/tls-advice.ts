/**
 * Actionable text for a `wss://` link that fails because the client does not trust the node's
 * certificate (a private or self-signed CA). No dependency on `ws`, so the in-process KV
 * client can use it without loading the WebSocket transport.
 */

/** The advice for an untrusted certificate, without the URL. */
export function untrustedAdvice(caFile?: string): string {
  return caFile === undefined
    ? "pass --tls-ca FILE (or SYNOD_TLS_CA) with the CA that signed the nodes' certificates"
    : `it is not signed by the CA in --tls-ca ${caFile}; pass the CA that signed the nodes' certificates`;
}

/** Node's messages for a server certificate that no trusted CA vouches for. */
const UNTRUSTED_MESSAGE =
  /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate|certificate signature failure|certificate not trusted/i;

/**
 * When a link's failure reason (e.g. `SYNOD_ERR_CONNECTION_FAILED: self-signed certificate`)
 * says the node's certificate is not trusted: `certificate not trusted: <advice>`.
 */
export function untrustedLinkAdvice(reason: string, caFile?: string): string | undefined {
  return UNTRUSTED_MESSAGE.test(reason)
    ? `certificate not trusted: ${untrustedAdvice(caFile)}`
    : undefined;
}
