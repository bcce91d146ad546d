/**
 * Keeps a node's transport in step with the committed Raft configuration: when a member leaves
 * (a voter removed with `synod member remove`, a backup agent's learner leaving), the transport
 * forgets it (`removePeer`: the link closes, nothing redials it, its queue is dead-lettered
 * with `SYNOD_ERR_PEER_REMOVED`); when a member whose address this node knows is (re-)added,
 * it is dialled again.
 *
 * Only *committed* configurations count (an appended change may still be truncated), and a
 * member is forgotten only when the latest configuration — committed or not — no longer has
 * it either, so a node replaying history (a joiner catching up through "remove n3 … add n3")
 * does not tear down a link the log will need again a few entries later. The link goes
 * `graceMs` after the change commits, so what is already on its way to the member — above all
 * the answer to its own `node.leave` — still reaches it.
 */
import type { Subscription } from 'rxjs';
import { merge } from 'rxjs';
import type { RaftNode } from '../../actors/raft/raft-node.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../logger.js';
import type { Membership } from '../storage/types.js';

export interface MemberLinksDeps {
  // biome-ignore lint/suspicious/noExplicitAny: any command and result types
  raft: RaftNode<any, any>;
  selfId: string;
  transport: {
    removePeer(id: string, reason?: string): boolean;
    addPeer(spec: string): void;
    peers(): string[];
  };
  /** Known member addresses (id → URL), shown by `synod status`; left members are dropped. */
  members: Map<string, string>;
  log: Logger;
  clock: Clock;
  /** How long after the removal commits the link is closed (default 2,000 ms). */
  graceMs?: number;
}

export function memberIds(m: Membership): Set<string> {
  return new Set([...m.voters, ...m.learners, ...(m.votersOutgoing ?? [])]);
}

/** Follows the Raft configuration until the returned subscription is closed. */
export function followMembership(d: MemberLinksDeps): Subscription {
  /** Addresses ever learned, kept after a removal so a re-added member is dialled again. */
  const urls = new Map(d.members);
  let committed: Set<string> | undefined;
  let latest = new Set<string>();
  const leaving = new Map<string, TimerHandle>();
  const forget = (id: string) => {
    leaving.delete(id);
    if (committed?.has(id) || latest.has(id)) return; // re-added meanwhile
    if (d.transport.removePeer(id, 'left the cluster (removed from the Raft configuration)'))
      d.log.log('info', `${id} left the cluster: its link is closed and no longer redialled`);
    d.members.delete(id);
  };
  let handled = -1;
  const check = () => {
    const core = d.raft.inspectCore();
    if (!core || !d.raft.started) return;
    for (const [id, url] of d.members) urls.set(id, url);
    // The configuration in force is the committed one once its entry is committed.
    if (core.configIndex > core.log.committed) return;
    // commitIndex$ fires per committed batch: each committed configuration is handled once.
    if (core.configIndex === handled) return;
    handled = core.configIndex;
    const now = memberIds(core.membership());
    if (committed === undefined) {
      committed = now;
      return;
    }
    latest = memberIds(d.raft.status().membership);
    for (const id of committed) {
      if (now.has(id) || latest.has(id) || id === d.selfId || leaving.has(id)) continue;
      leaving.set(
        id,
        d.clock.setTimer(d.graceMs ?? 2000, () => forget(id)),
      );
    }
    for (const id of now) {
      if (committed.has(id) || id === d.selfId) continue;
      const url = urls.get(id);
      if (url !== undefined && !d.transport.peers().includes(id)) {
        d.transport.addPeer(`${id}=${url}`);
        d.members.set(id, url);
      }
    }
    committed = now;
  };
  const sub = merge(d.raft.membership$, d.raft.commitIndex$).subscribe({
    next: check,
    error: () => {},
  });
  sub.add(() => {
    for (const h of leaving.values()) h.cancel();
    leaving.clear();
  });
  return sub;
}
