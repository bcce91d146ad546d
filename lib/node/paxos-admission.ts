/**
 * Who may talk to a node's Multi-Paxos actors (`<node>/paxos/acceptor|proposer|learner`).
 *
 * The cluster secret proves that a peer belongs to the cluster's *traffic*, not that it is a
 * Multi-Paxos member: every KV client and backup agent holds it. Without this check anyone
 * holding the secret could send well-formed Multi-Paxos messages — a `mp.decide` naming
 * values nobody proposed, which every learner applied (finding F6, RELIABILITY.md: a strong
 * read then returned the forged value), a `mp.prepare` with a ballot no member can outbid, a
 * `mp.catchup-reply` carrying a snapshot. Raft drops the equivalent messages in `RaftNode`
 * (finding F1); Multi-Paxos membership is static, so the node checks it once, here, at the
 * transport edge (`LinkGate.admit`), before the envelope reaches an actor:
 *
 * - from a **member** (the node the transport authenticated): accepted, provided the
 *   message's own `from` (an actor address) is on that node — a member speaks only for itself;
 * - from anyone else, only the two questions an outside reader asks (they change nothing):
 *   `mp.catchup` to the learner (a backup agent pulling chosen slots,
 *   actors/backup/paxos-learner.ts), with its `from` on the sender's node since the reply goes
 *   there, and `mp.read` to the proposer (the read index, actors/paxos/read-index.ts);
 * - everything else addressed to the Multi-Paxos actors is refused: counted and logged per
 *   peer by the transport (`SYNOD_ERR_PAXOS_NOT_MEMBER`, `SYNOD_ERR_FORGED_SENDER`).
 *
 * Replies (correlated asks) and envelopes to other actors (`kv`, `admin`) are not looked at.
 * Like Raft's check, this trusts the transport's authentication of the peer's node id, which
 * the shared secret does not bind to one node (RELIABILITY.md, F1 "Remaining").
 */
import type { Envelope } from '../envelope.js';

export interface Refusal {
  code: string;
  reason: string;
}

function nodeOf(address: string): string {
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
}

/** The admission check of node `self` whose Multi-Paxos members are `members`. */
export function paxosAdmission(
  self: string,
  members: readonly string[],
  path = 'paxos',
): (e: Envelope, sender: string | undefined) => Refusal | undefined {
  const memberSet = new Set(members);
  const prefix = `${self}/${path}/`;
  const learner = `${prefix}learner`;
  const proposer = `${prefix}proposer`;
  const list = [...memberSet].sort().join(', ');
  return (e, sender) => {
    if (e.k === 'reply' || !e.to.startsWith(prefix)) return undefined;
    const m = e.m as { type?: unknown; from?: unknown } | null;
    const type = m !== null && typeof m === 'object' ? m.type : undefined;
    if (sender === undefined || sender === self) return undefined; // delivered in this process
    const member = memberSet.has(sender);
    const outsideQuestion =
      (e.to === learner && type === 'mp.catchup') || (e.to === proposer && type === 'mp.read');
    if (!member && !outsideQuestion) {
      return {
        code: 'SYNOD_ERR_PAXOS_NOT_MEMBER',
        reason: `${String(type)} to ${e.to} from ${sender}, which is not a Multi-Paxos member (members: ${list}); a non-member may only ask mp.catchup of a learner and mp.read of a proposer`,
      };
    }
    const from = m !== null && typeof m === 'object' ? m.from : undefined;
    if (typeof from === 'string' && nodeOf(from) !== sender) {
      return {
        code: 'SYNOD_ERR_FORGED_SENDER',
        reason: `${String(type)} to ${e.to} claims to come from ${from}, but ${sender} sent it`,
      };
    }
    return undefined;
  };
}
