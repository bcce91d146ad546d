/**
 * What a node's transport says about its peers, made actionable for the person running
 * `synod node`: the transport knows that node b has been unreachable for 30 s, but not that the
 * operator gave b's address in `--peers` or that a firewall may be in the way. This logger sits
 * between the transport and the node's logger and
 *
 * - adds to "node b unreachable for N ms" what to check (is b running, is its `--peers` address
 *   right, does a firewall let this machine reach that port), with the last dial error and the
 *   guide to read (docs/across-laptops.md);
 * - drops the transport's own no-secret warning (logged at debug): the node prints one itself,
 *   naming the flag (`--secret-file`), so the operator sees the warning once, not twice.
 *
 * Everything else passes through unchanged.
 */
import type { Logger, LogLevel } from '../logger.js';

export const PEER_UNREACHABLE = 'SYNOD_ERR_PEER_UNREACHABLE';
export const WARN_NO_SECRET = 'SYNOD_WARN_NO_SECRET';

export interface PeerAdviceOptions {
  /** The URL this node dials for `peer` (from `--peers`, `--join` or the member list). */
  peerUrl(peer: string): string | undefined;
  /** Why the last attempt to reach `peer` failed, when known (the link's reason). */
  lastError?(peer: string): string | undefined;
}

/** The advice line for a peer that has been unreachable for `ms` (exported for the docs test). */
export function unreachableAdvice(
  peer: string,
  ms: number,
  given: string | undefined,
  lastError: string | undefined,
): string {
  const url = given?.replace(/\/$/, '');
  let where = '';
  let port = 'its port';
  if (url !== undefined) {
    where = ` at ${url}`;
    try {
      const u = new URL(url);
      port = `port ${u.port || (u.protocol === 'wss:' ? '443' : '80')}`;
    } catch {
      // a URL the transport accepted but URL cannot parse: name the port generically
    }
  }
  const last = lastError ? ` (last attempt: ${lastError})` : '';
  return `node ${peer} unreachable${where} for ${ms} ms${last}; messages queued for it are dropped — check that ${peer} is running, that ${url ?? 'its URL'} in --peers is its address (its --listen/--advertise), and that no firewall blocks ${port} from this machine (see docs/across-laptops.md); still retrying`;
}

export function peerAdviceLogger(inner: Logger, options: PeerAdviceOptions): Logger {
  return {
    log(level: LogLevel, message: string, fields?: Record<string, unknown>) {
      const code = typeof fields?.code === 'string' ? fields.code : undefined;
      if (code === WARN_NO_SECRET) {
        inner.log('debug', message, fields);
        return;
      }
      if (code === PEER_UNREACHABLE && typeof fields?.peer === 'string') {
        const peer = fields.peer;
        const ms = /unreachable for (\d+) ms/.exec(message)?.[1];
        if (ms !== undefined) {
          inner.log(
            level,
            unreachableAdvice(
              peer,
              Number(ms),
              options.peerUrl(peer),
              options.lastError?.(peer)?.replace(/^SYNOD_ERR_[A-Z_]+: /, ''),
            ),
            fields,
          );
          return;
        }
      }
      inner.log(level, message, fields);
    },
  };
}
