/**
 * The `admin` actor of a node (`<id>/admin`): reports the node's status (Raft, KV, links,
 * known members) for `synod status` and the dashboard, and handles `join` requests: the
 * leader adds the new node as a learner, waits until it has caught up, and promotes it to
 * voter (a follower forwards the request to the leader).
 */

import type { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import type { RaftNode } from '../../actors/raft/raft-node.js';
import { Actor, type Replies } from '../actor.js';
import type { LinkStatus } from '../transport.js';

export interface NodeStatus {
  id: string;
  cluster: string;
  url: string;
  protocol: 'raft' | 'paxos';
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  voters: string[];
  learners: string[];
  /** On the leader: how far each member's log is behind the leader's last index. */
  lag?: Record<string, number>;
  revision: number;
  keys: number;
  links: { peer: string; state: string }[];
  members: Record<string, string>;
  uptimeMs: number;
  /** Multi-Paxos nodes only (`term` is then the ballot round, `commitIndex` the chosen prefix). */
  paxos?: PaxosNodeStatus;
}

/** What `synod status` shows of a Multi-Paxos node (see lib/node/paxos-node.ts). */
export interface PaxosNodeStatus {
  /** This node's proposer ballot, `round.node`. */
  ballot: string;
  /** The distinguished proposer (leader) as this node knows it. */
  distinguished: string | null;
  /** The highest ballot this node's acceptor promised, `round.node`. */
  promised: string;
  /** Slots ≤ this are chosen (as far as this node knows). */
  chosenUpTo: number;
  /** The highest slot assigned (leader) or accepted here. */
  highestSlot: number;
  /** On the leader: slots sent and not yet chosen, and commands queued behind the window. */
  inFlight: number;
  queued: number;
  /** Slots ≤ floor were compacted into a snapshot by this node's acceptor. */
  floor: number;
  snapshotIndex: number;
  /** Leader lease expiry (this node's clock, ms since it started), when held. */
  leaseUntil?: number;
}

export type AdminMsg =
  | ({ type: 'node.status' } & Replies<NodeStatus>)
  | ({ type: 'node.join'; id: string; url: string } & Replies<{
      ok: boolean;
      message: string;
      members: Record<string, string>;
    }>)
  | { type: 'node.members'; members: Record<string, string> };

export interface AdminDeps {
  cluster: string;
  url: string;
  raft: RaftNode<KvOp, KvResult>;
  sm: () => KvStateMachine | undefined;
  links: () => LinkStatus[];
  addPeer: (id: string, url: string) => void;
  members: Map<string, string>;
  startedAt: number;
}

const NODE_ID = /^[A-Za-z0-9_.:$-]{1,128}$/;

export class NodeAdmin extends Actor<AdminMsg> {
  constructor(private readonly deps: AdminDeps) {
    super();
  }

  override accepts(msg: unknown): msg is AdminMsg {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as Record<string, unknown>;
    if (m.type === 'node.status') return true;
    if (m.type === 'node.members') return typeof m.members === 'object' && m.members !== null;
    if (m.type === 'node.join')
      return (
        typeof m.id === 'string' &&
        NODE_ID.test(m.id) &&
        typeof m.url === 'string' &&
        /^wss?:\/\//.test(m.url)
      );
    return false;
  }

  async receive(msg: AdminMsg): Promise<void> {
    switch (msg.type) {
      case 'node.status':
        this.ctx.reply(msg, this.status());
        return;
      case 'node.join':
        // Joins take a while (catch-up): run them beside the mailbox so status stays served.
        void this.join(msg);
        return;
      case 'node.members':
        for (const [id, url] of Object.entries(msg.members)) {
          if (id === this.ctx.nodeId || this.deps.members.get(id) === url) continue;
          if (typeof url !== 'string' || !/^wss?:\/\//.test(url) || !NODE_ID.test(id)) continue;
          this.deps.members.set(id, url);
          this.deps.addPeer(id, url);
        }
        return;
    }
  }

  private status(): NodeStatus {
    const d = this.deps;
    const raft = d.raft;
    const s = raft.started ? raft.status() : undefined;
    const sm = d.sm();
    const out: NodeStatus = {
      id: this.ctx.nodeId,
      cluster: d.cluster,
      url: d.url,
      protocol: 'raft',
      role: s?.role ?? 'starting',
      term: s?.term ?? 0,
      leader: s?.leader ?? null,
      commitIndex: s?.commit ?? 0,
      appliedIndex: s?.applied ?? 0,
      lastIndex: s?.lastIndex ?? 0,
      voters: s ? [...s.membership.voters] : [],
      learners: s ? [...s.membership.learners] : [],
      revision: sm?.revision ?? 0,
      keys: sm ? sm.range({ start: '', limit: 0 }).count : 0,
      links: d.links().map((l) => ({ peer: l.peer, state: l.state })),
      members: Object.fromEntries(d.members),
      uptimeMs: Math.round(this.ctx.clock.now() - d.startedAt),
    };
    if (s && s.role === 'leader') {
      const lag: Record<string, number> = {};
      for (const [id, p] of Object.entries(s.progress))
        lag[id] = Math.max(0, s.lastIndex - (p as { match: number }).match);
      out.lag = lag;
    }
    return out;
  }

  private async join(msg: Extract<AdminMsg, { type: 'node.join' }>): Promise<void> {
    const d = this.deps;
    const s = d.raft.started ? d.raft.status() : undefined;
    if (!s) {
      this.ctx.reply(msg, {
        ok: false,
        message: 'this node is still starting; try again',
        members: {},
      });
      return;
    }
    if (s.role !== 'leader') {
      if (!s.leader) {
        this.ctx.reply(msg, {
          ok: false,
          message: 'no leader right now; try again in a moment',
          members: {},
        });
        return;
      }
      try {
        const r = await this.ctx.ask(
          `${s.leader}/admin`,
          { type: 'node.join', id: msg.id, url: msg.url } as AdminMsg &
            Replies<{ ok: boolean; message: string; members: Record<string, string> }>,
          60_000,
        );
        this.ctx.reply(msg, r);
      } catch (err) {
        this.ctx.reply(msg, {
          ok: false,
          message: `forwarding to leader ${s.leader} failed: ${(err as Error).message}`,
          members: {},
        });
      }
      return;
    }
    d.members.set(msg.id, msg.url);
    d.addPeer(msg.id, msg.url);
    try {
      if (!s.membership.voters.includes(msg.id) && !s.membership.learners.includes(msg.id)) {
        await d.raft.addLearner(msg.id);
      }
      if (!d.raft.status().membership.voters.includes(msg.id)) {
        const deadline = this.ctx.clock.now() + 60_000;
        for (;;) {
          try {
            await d.raft.promote(msg.id, 100);
            break;
          } catch (err) {
            if (this.ctx.clock.now() > deadline) throw err;
            await new Promise<void>((resolve) => this.ctx.clock.setTimer(200, resolve));
          }
        }
      }
      this.ctx.reply(msg, {
        ok: true,
        message: `${msg.id} joined as a voter`,
        members: Object.fromEntries(d.members),
      });
    } catch (err) {
      this.ctx.reply(msg, {
        ok: false,
        message: `adding ${msg.id} failed: ${(err as Error).message}`,
        members: Object.fromEntries(d.members),
      });
    }
  }
}
