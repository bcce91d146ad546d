/**
 * Proof that an operator holds the admin secret, for admin requests that change the cluster
 * (`node.remove`). The secret never crosses the wire: the request carries the wall-clock time
 * it was made and an HMAC-SHA256 over the cluster, the action, its target and that time. A
 * node accepts a proof made with its own admin secret within `ADMIN_PROOF_WINDOW_MS` of its
 * clock, so a captured request cannot be replayed later (e.g. to remove a re-added member).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const ADMIN_PROOF_WINDOW_MS = 5 * 60_000;

export interface AdminProof {
  /** Wall-clock ms when the request was made (the requester's clock). */
  at: number;
  /** Hex HMAC-SHA256 of `synod-admin\n<cluster>\n<action>\n<target>\n<at>` with the admin secret. */
  proof: string;
}

function mac(secret: string, cluster: string, action: string, target: string, at: number) {
  return createHmac('sha256', secret)
    .update(`synod-admin\n${cluster}\n${action}\n${target}\n${at}`)
    .digest();
}

export function makeAdminProof(
  secret: string,
  cluster: string,
  action: string,
  target: string,
  at: number,
): AdminProof {
  return { at, proof: mac(secret, cluster, action, target, at).toString('hex') };
}

/**
 * Why a proof is refused (a sentence for the operator), or undefined when it is good.
 * `secret` undefined: this node has no admin secret, so nothing is accepted.
 */
export function adminProofProblem(
  secret: string | undefined,
  cluster: string,
  action: string,
  target: string,
  p: { at?: unknown; proof?: unknown },
  now: number,
): string | undefined {
  if (secret === undefined)
    return 'this node has no admin secret: start every node with --admin-secret-file to allow it';
  if (typeof p.at !== 'number' || !Number.isFinite(p.at) || typeof p.proof !== 'string')
    return 'the request carries no admin proof: pass --admin-secret-file';
  if (Math.abs(now - p.at) > ADMIN_PROOF_WINDOW_MS)
    return `the admin proof was made ${Math.round((now - p.at) / 1000)} s away from this node's clock (limit ${ADMIN_PROOF_WINDOW_MS / 1000} s): check the clocks`;
  const want = mac(secret, cluster, action, target, p.at);
  const got = Buffer.from(p.proof, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'wrong admin secret';
  return undefined;
}
