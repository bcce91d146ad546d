/**
 * The `admin` actor of a node (`<id>/admin`): reports the node's status (Raft, KV, links,
 * known members) for `synod status` and the dashboard, and handles `join` requests: the
 * leader adds the new node as a learner, waits until it has caught up, and promotes it to
 * voter (a follower forwards the request to the leader). With a proof of the admin secret it
 * stops and restarts the node's consensus part (`node.stop` / `node.restart`) while the
 * process and this actor stay up.
 */

import type { Subscription } from 'rxjs';
import type { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import type { RaftStatus } from '../../actors/raft/core/raft-core.js';
import type { RaftNode } from '../../actors/raft/raft-node.js';
import { decodeCommand } from '../../actors/raft/raft-node.js';
import { Actor, type Replies } from '../actor.js';
import type { LogTailEntry } from '../dashboard/view.js';
import type { LogEntry } from '../storage/types.js';
import type { LinkStatus } from '../transport.js';
import { adminProofProblem } from './admin-auth.js';
import type { JoinReply } from './join-cluster.js';
import type { LinkGate } from './link-gate.js';
import type { MessageSampler, SampledMessage } from './message-samples.js';

/** Entries of a node's log tail in a detailed status (the dashboard's node card). */
export const LOG_TAIL = 20;

/** A short label of a KV command (`put k1`), for the log tail. */
export function opLabel(op: unknown): string {
  const o = op as { t?: unknown; key?: unknown } | null | undefined;
  const t = typeof o?.t === 'string' ? o.t : 'command';
  return (typeof o?.key === 'string' ? `${t} ${o.key}` : t).slice(0, 40);
}

function entryLabel(e: LogEntry): string {
  if (e.type === 'noop') return 'no-op';
  if (e.type === 'config') return 'config change';
  try {
    return opLabel(decodeCommand(e.data).op);
  } catch {
    return 'command';
  }
}

export interface NodeStatus {
  id: string;
  cluster: string;
  url: string;
  protocol: 'raft' | 'paxos' | 'gossip';
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  voters: string[];
  learners: string[];
  /** Voters of the old configuration while a joint change is in progress (Raft). */
  votersOutgoing?: string[];
  /** Log index of the configuration shown in `voters`/`learners` (Raft; committed when ≤ `commitIndex`). */
  configIndex?: number;
  /** Term of the entry at `configIndex`, when the log still holds it (Raft). */
  configTerm?: number;
  /**
   * Asked `about` a node: the newest configuration in this node's log (applied or only
   * appended) that has it, -1 for none (Raft; lib/node/removal-watch.ts).
   */
  configWith?: number;
  /** Raft: reads this node served as leader on followers' witnesses since it started (docs/kv.md). */
  witnessedReads?: number;
  /** On the leader: how far each member's log is behind the leader's last index. */
  lag?: Record<string, number>;
  revision: number;
  keys: number;
  links: { peer: string; state: string }[];
  members: Record<string, string>;
  /** Peers whose links an operator has cut from this node (dashboard "isolate"). */
  cut: string[];
  uptimeMs: number;
  /** Multi-Paxos nodes only (`term` is then the ballot round, `commitIndex` the chosen prefix). */
  paxos?: PaxosNodeStatus;
  /** Leaderless (gossip) nodes only: the replica's view (lib/node/gossip-node.ts). */
  gossip?: GossipNodeStatus;
  /** Detailed status only: the newest entries of its log (at most `LOG_TAIL`), oldest first. */
  logTail?: LogTailEntry[];
  /** Detailed status only: sampled messages it sent after the `since` asked for. */
  messages?: SampledMessage[];
}

/** What `synod status` shows of a leaderless node: its replica's SWIM and ring view. */
export interface GossipNodeStatus {
  /** The replica has joined (through a seed) and serves requests. */
  ready: boolean;
  /** SWIM members as this node sees them: id → alive | suspect | dead | left. */
  members: Record<string, string>;
  /** Members on the placement ring. */
  ring: string[];
  /** Replicas per key (N). */
  n: number;
  keys: number;
  hints: number;
  stats: Record<string, number>;
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

/** The answer to an operator's control request. */
export interface ControlReply {
  ok: boolean;
  message: string;
}

export type AdminMsg =
  /**
   * `detail`: with the log tail and the sampled messages sent after `since` (the dashboard).
   * `about`: a node id; the reply's `configWith` says the newest configuration in this node's
   * log that has it (a removal watch asking whether it was removed).
   */
  | ({
      type: 'node.status';
      detail?: boolean;
      since?: number;
      about?: string;
    } & Replies<NodeStatus>)
  /**
   * Adds a node to the cluster (a learner, promoted to voter once caught up; `learner: true`
   * keeps it a learner). Any node takes it and forwards it to the leader; `hops` counts the
   * forwards (at most MAX_JOIN_HOPS). Idempotent: a member already is answered ok.
   */
  | ({
      type: 'node.join';
      id: string;
      url: string;
      learner?: boolean;
      hops?: number;
    } & Replies<JoinReply>)
  /**
   * Removes a member, voter or learner (`synod member remove`); forwarded to the leader.
   * Needs a proof of the admin secret (lib/node/admin-auth.ts). Refused for the leader itself
   * (transfer leadership first), the last voter, and when the voters left would not have a
   * quorum of recently active members (etcd's strict reconfiguration check).
   */
  | ({ type: 'node.remove'; id: string; at: number; proof: string } & Replies<ControlReply>)
  /** Removes a learner (a backup agent leaving); forwarded to the leader. Voters are refused. */
  | ({ type: 'node.leave'; id: string } & Replies<{ ok: boolean; message: string }>)
  | { type: 'node.members'; members: Record<string, string> }
  /**
   * Operator controls (the dashboard of a node started with an admin secret sends these).
   * `node.cut`, `node.heal` and `node.transfer` need a proof of the admin secret
   * (lib/node/admin-auth.ts; the target is the receiving node's id, for a transfer the node
   * that is to lead): without one they are refused with `SYNOD_ERR_ADMIN_REFUSED`, so the
   * cluster secret alone (every KV client holds it) cannot partition the cluster or move its
   * leader. `node.put` is a plain write, which a KV client may make anyway: no proof.
   */
  | ({ type: 'node.cut'; peers: string[] } & OperatorProof & Replies<ControlReply>)
  | ({ type: 'node.heal' } & OperatorProof & Replies<ControlReply>)
  | ({ type: 'node.put'; key: string; value: string } & Replies<ControlReply>)
  | ({ type: 'node.transfer'; to: string } & OperatorProof & Replies<ControlReply>)
  /**
   * Stops this node's consensus part (the Raft or Multi-Paxos actors and the KV service,
   * storage closed cleanly) while the process and this actor stay up; `node.restart`
   * reopens the data directory and rejoins. Both need a proof of the admin secret with this
   * node's id as the target (lib/node/admin-auth.ts).
   */
  | ({ type: 'node.stop'; at: number; proof: string } & Replies<ControlReply>)
  | ({ type: 'node.restart'; at: number; proof: string } & Replies<ControlReply>);

/** Operator stop/restart of a node's consensus part (lib/node/synod-node.ts, paxos-node.ts). */
export interface ConsensusControl {
  running(): boolean;
  stop(): Promise<ControlReply>;
  restart(): Promise<ControlReply>;
  /** Raft: the status the node had when it was stopped (shown while it is stopped). */
  lastStatus?(): RaftStatus | undefined;
}

/**
 * The admin proof an operator control carries. Optional in the message's shape so that a
 * request without one reaches the actor and is answered with a refusal (not dropped).
 */
export interface OperatorProof {
  at?: number;
  proof?: string;
}

/** Checks the shape of an optional operator proof (the proof itself is checked on receipt). */
export function operatorProofShape(m: Record<string, unknown>): boolean {
  return (
    (m.at === undefined || (typeof m.at === 'number' && Number.isFinite(m.at))) &&
    (m.proof === undefined || (typeof m.proof === 'string' && m.proof.length <= 128))
  );
}

/**
 * Why an operator's `node.cut`/`node.heal`/`node.transfer` is refused (with the
 * `SYNOD_ERR_ADMIN_REFUSED` code), or undefined when it carries a good proof of this node's
 * admin secret. The target proved is this node (`self`), or for a transfer the node to lead.
 */
export function operatorProofProblem(
  msg: { type: 'node.cut' | 'node.heal' | 'node.transfer'; to?: string } & OperatorProof,
  d: { adminSecret?: string | undefined; cluster: string },
  self: string,
  now: number,
): string | undefined {
  const target = msg.type === 'node.transfer' ? (msg.to ?? '') : self;
  const problem = adminProofProblem(d.adminSecret, d.cluster, msg.type, target, msg, now);
  return problem === undefined ? undefined : `SYNOD_ERR_ADMIN_REFUSED: ${problem}`;
}

/** A node id as admin messages may name it. */
export const NODE_ID = /^[A-Za-z0-9_.:$-]{1,128}$/;

/**
 * Learns the member URLs another node pushed (`node.members`) into `d.members`, and has the
 * transport dial each new or moved one (`d.addPeer`). Entries for this node itself, not a
 * `ws://`/`wss://` URL or not a node id are passed over. A URL the transport refuses (no
 * port, a `ws://` URL where TLS node identity needs `wss://`) changes nothing: the member keeps
 * the URL it had, or stays unknown, and the other entries are still learned. Returns what was
 * refused, one line each, for the caller to log.
 */
export function learnMemberUrls(
  pushed: Record<string, unknown>,
  self: string,
  d: { members: Map<string, string>; addPeer: (id: string, url: string) => void },
): string[] {
  const refused: string[] = [];
  for (const [id, url] of Object.entries(pushed)) {
    if (id === self || d.members.get(id) === url) continue;
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url) || !NODE_ID.test(id)) continue;
    try {
      // The transport checks the URL before it changes anything: a refusal leaves it as it was.
      d.addPeer(id, url);
    } catch (err) {
      refused.push(`member ${id} at ${url} was not learned: ${(err as Error).message}`);
      continue;
    }
    d.members.set(id, url);
  }
  return refused;
}

/** Accepts a `node.cut` message shape: an operator proof and at most 1024 node ids. */
export function isCutShape(m: Record<string, unknown>): boolean {
  return (
    operatorProofShape(m) &&
    Array.isArray(m.peers) &&
    m.peers.length <= 1024 &&
    m.peers.every((p) => typeof p === 'string' && NODE_ID.test(p))
  );
}

/**
 * Runs an operator's `node.cut`/`node.heal` on a node without a leader to transfer (the
 * Multi-Paxos and leaderless admins) after checking its admin proof (refused:
 * `SYNOD_ERR_ADMIN_REFUSED`); a proven `node.transfer` is refused with `noTransfer`, which
 * says why this protocol has none.
 */
export function runLinkControl(
  msg:
    | ({ type: 'node.cut'; peers: string[] } & OperatorProof)
    | ({ type: 'node.heal' } & OperatorProof)
    | ({ type: 'node.transfer'; to: string } & OperatorProof),
  d: { adminSecret?: string | undefined; cluster: string; gate: LinkGate },
  node: { nodeId: string; clock: { wallNow(): number } },
  noTransfer: string,
): ControlReply {
  const self = node.nodeId;
  // Operator controls prove the admin secret (operatorProofProblem).
  const refused = operatorProofProblem(msg, d, self, node.clock.wallNow());
  if (refused !== undefined) return { ok: false, message: refused };
  if (msg.type === 'node.cut') {
    d.gate.block(msg.peers);
    return { ok: true, message: `${self} cut its links to ${d.gate.cut().join(', ')}` };
  }
  if (msg.type === 'node.heal') {
    d.gate.heal();
    return { ok: true, message: `${self} healed its links` };
  }
  return { ok: false, message: noTransfer };
}

/** The `since` of a detailed status request (0 when absent or bad). */
export function sinceOf(msg: { since?: unknown }): number {
  return typeof msg.since === 'number' && Number.isFinite(msg.since) ? msg.since : 0;
}

/** Accepts a `node.stop`/`node.restart` message shape. */
export function isConsensusControl(m: Record<string, unknown>): boolean {
  return (
    (m.type === 'node.stop' || m.type === 'node.restart') &&
    typeof m.at === 'number' &&
    typeof m.proof === 'string' &&
    m.proof.length <= 128
  );
}

/**
 * Runs an operator's `node.stop`/`node.restart` after checking its admin proof, beside the
 * mailbox (status keeps being served while the storage closes or reopens), and replies with
 * what happened (refused: `SYNOD_ERR_ADMIN_REFUSED`; a stop or restart that threw: its message).
 */
export function runConsensusControl(
  msg: { type: 'node.stop' | 'node.restart'; at: number; proof: string } & Replies<ControlReply>,
  d: {
    adminSecret?: string | undefined;
    cluster: string;
    consensus?: ConsensusControl | undefined;
  },
  ctx: {
    nodeId: string;
    clock: { wallNow(): number };
    reply<R>(msg: Replies<R>, value: R): void;
  },
): void {
  const self = ctx.nodeId;
  const run = async (): Promise<ControlReply> => {
    const problem = adminProofProblem(
      d.adminSecret,
      d.cluster,
      msg.type,
      self,
      msg,
      ctx.clock.wallNow(),
    );
    if (problem !== undefined) return { ok: false, message: `SYNOD_ERR_ADMIN_REFUSED: ${problem}` };
    if (!d.consensus)
      return { ok: false, message: `${self} cannot stop and restart its consensus` };
    return msg.type === 'node.stop' ? d.consensus.stop() : d.consensus.restart();
  };
  const reply = (r: ControlReply) => ctx.reply(msg, r);
  void run().then(reply, (err: Error) => reply({ ok: false, message: err.message }));
}

export interface AdminDeps {
  cluster: string;
  url: string;
  /** The running Raft node; undefined while an operator has it stopped. */
  raft: () => RaftNode<KvOp, KvResult> | undefined;
  sm: () => KvStateMachine | undefined;
  /** Operator stop/restart; absent: `node.stop`/`node.restart` are refused. */
  consensus?: ConsensusControl;
  /** Samples of the messages this node sends (detailed status). */
  samples?: MessageSampler;
  links: () => LinkStatus[];
  addPeer: (id: string, url: string) => void;
  members: Map<string, string>;
  startedAt: number;
  /** Cuts links for operator partitions; absent: `node.cut` is refused. */
  gate?: LinkGate;
  /** The admin secret; absent: `node.remove`, `node.stop` and `node.restart` are refused. */
  adminSecret?: string;
}

export class NodeAdmin extends Actor<AdminMsg> {
  private seq = 0;
  /** A session id per admin incarnation, so a restarted node's writes are not deduplicated
   * against its previous life's sequence numbers. */
  private session = '';
  /** Joins this leader is serving, by member id (and kind): a retry waits for the same one. */
  private readonly joining = new Map<string, Promise<JoinReply | typeof LOST_LEADERSHIP>>();
  constructor(private readonly deps: AdminDeps) {
    super();
  }

  override accepts(msg: unknown): msg is AdminMsg {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as Record<string, unknown>;
    if (m.type === 'node.status')
      return m.about === undefined || (typeof m.about === 'string' && m.about.length <= 256);
    if (m.type === 'node.members') return typeof m.members === 'object' && m.members !== null;
    if (m.type === 'node.heal') return operatorProofShape(m);
    if (m.type === 'node.cut') return isCutShape(m);
    if (m.type === 'node.put')
      return (
        typeof m.key === 'string' &&
        m.key.length > 0 &&
        m.key.length <= 4096 &&
        typeof m.value === 'string' &&
        m.value.length <= 1 << 20
      );
    if (m.type === 'node.transfer')
      return typeof m.to === 'string' && NODE_ID.test(m.to) && operatorProofShape(m);
    if (m.type === 'node.join')
      return (
        typeof m.id === 'string' &&
        NODE_ID.test(m.id) &&
        typeof m.url === 'string' &&
        /^wss?:\/\//.test(m.url) &&
        (m.learner === undefined || typeof m.learner === 'boolean') &&
        (m.hops === undefined ||
          (Number.isInteger(m.hops) && (m.hops as number) >= 0 && (m.hops as number) <= 16))
      );
    if (m.type === 'node.leave') return typeof m.id === 'string' && NODE_ID.test(m.id);
    if (m.type === 'node.stop' || m.type === 'node.restart') return isConsensusControl(m);
    if (m.type === 'node.remove')
      return (
        typeof m.id === 'string' &&
        NODE_ID.test(m.id) &&
        typeof m.at === 'number' &&
        typeof m.proof === 'string' &&
        m.proof.length <= 128
      );
    return false;
  }

  async receive(msg: AdminMsg): Promise<void> {
    switch (msg.type) {
      case 'node.status': {
        const out = this.status(msg.about);
        if (msg.detail === true) {
          out.logTail = this.logTail();
          out.messages = this.deps.samples?.since(sinceOf(msg)) ?? [];
        }
        this.ctx.reply(msg, out);
        return;
      }
      case 'node.join':
        // Joins take a while (catch-up): run them beside the mailbox so status stays served.
        void this.join(msg);
        return;
      case 'node.leave':
        void this.leave(msg);
        return;
      case 'node.remove':
        void this.remove(msg);
        return;
      case 'node.members':
        for (const r of learnMemberUrls(msg.members, this.ctx.nodeId, this.deps))
          this.ctx.log.log('warn', r);
        return;
      case 'node.cut':
      case 'node.heal':
      case 'node.transfer': {
        const refused = operatorProofProblem(
          msg,
          this.deps,
          this.ctx.nodeId,
          this.ctx.clock.wallNow(),
        );
        if (refused !== undefined) this.ctx.reply(msg, { ok: false, message: refused });
        else if (msg.type === 'node.transfer') void this.onLeader(msg);
        else if (msg.type === 'node.heal') {
          this.deps.gate?.heal();
          this.ctx.reply(msg, { ok: true, message: `${this.ctx.nodeId} healed its links` });
        } else if (!this.deps.gate)
          this.ctx.reply(msg, { ok: false, message: 'this node cannot cut links' });
        else {
          this.deps.gate.block(msg.peers);
          this.ctx.reply(msg, {
            ok: true,
            message: `${this.ctx.nodeId} cut its links to ${this.deps.gate.cut().join(', ')}`,
          });
        }
        return;
      }
      case 'node.put':
        void this.onLeader(msg);
        return;
      case 'node.stop':
      case 'node.restart':
        runConsensusControl(msg, this.deps, this.ctx);
        return;
    }
  }

  /** The newest entries of the running Raft node's log, with their terms and commands. */
  private logTail(): LogTailEntry[] {
    const core = this.deps.raft()?.inspectCore();
    if (!core) return [];
    const log = core.log;
    const last = log.lastIndex();
    const out: LogTailEntry[] = [];
    for (let i = Math.max(log.firstIndex(), last - LOG_TAIL + 1); i <= last; i++) {
      const e = log.entryAt(i);
      if (e) out.push({ index: i, term: e.term, label: entryLabel(e) });
    }
    return out;
  }

  /** The running Raft node's status, or undefined (starting, or stopped by an operator). */
  private raftStatus(): RaftStatus | undefined {
    const raft = this.deps.raft();
    return raft?.started ? raft.status() : undefined;
  }

  /** The running Raft node, or a refusal saying why there is none. */
  private runningRaft(): RaftNode<KvOp, KvResult> {
    const raft = this.deps.raft();
    if (!raft?.started)
      throw new Error(
        `SYNOD_ERR_NODE_STOPPED: ${this.ctx.nodeId}'s Raft node is ${this.deps.consensus?.running() === false ? 'stopped (restart it from the dashboard)' : 'not running'}`,
      );
    return raft;
  }

  private sessionId(): string {
    if (!this.session)
      this.session = `admin-${this.ctx.nodeId}-${this.ctx.random.int(2 ** 31).toString(36)}${this.ctx.random.int(2 ** 31).toString(36)}`;
    return this.session;
  }

  /** Runs a put or a transfer on the leader, forwarding there when this node is not it. */
  private async onLeader(
    msg: Extract<AdminMsg, { type: 'node.put' } | { type: 'node.transfer' }>,
  ): Promise<void> {
    const s = this.raftStatus();
    try {
      if (this.deps.raft() === undefined) this.runningRaft();
      if (s?.role !== 'leader') {
        if (!s?.leader || s.leader === this.ctx.nodeId) {
          this.ctx.reply(msg, { ok: false, message: 'no leader right now; try again in a moment' });
          return;
        }
        const forwarded =
          msg.type === 'node.put'
            ? { type: 'node.put' as const, key: msg.key, value: msg.value }
            : {
                type: 'node.transfer' as const,
                to: msg.to,
                // The leader checks the operator's proof again (its target is `to`).
                ...(msg.at !== undefined ? { at: msg.at } : {}),
                ...(msg.proof !== undefined ? { proof: msg.proof } : {}),
              };
        const r = await this.ctx.ask(
          `${s.leader}/admin`,
          forwarded as AdminMsg & Replies<ControlReply>,
          10_000,
        );
        this.ctx.reply(msg, r);
        return;
      }
      if (msg.type === 'node.transfer') {
        if (!s.membership.voters.includes(msg.to) || msg.to === this.ctx.nodeId) {
          this.ctx.reply(msg, { ok: false, message: `${msg.to} is not another voter` });
          return;
        }
        this.runningRaft().transferLeadership(msg.to);
        this.ctx.reply(msg, { ok: true, message: `${s.leader} transfers leadership to ${msg.to}` });
        return;
      }
      const r = await this.runningRaft().propose({
        clientId: this.sessionId(),
        seq: ++this.seq,
        op: { t: 'put', key: msg.key, value: msg.value },
      });
      this.ctx.reply(msg, {
        ok: true,
        message: `put ${msg.key} committed at index ${r.index} by ${this.ctx.nodeId}`,
      });
    } catch (err) {
      this.ctx.reply(msg, { ok: false, message: (err as Error).message });
    }
  }

  /** The configuration fields of a Raft status (see NodeStatus.configIndex). */
  private configReport(about: string | undefined): {
    configIndex: number;
    configTerm?: number;
    configWith?: number;
  } {
    const core = this.deps.raft()?.inspectCore();
    const configIndex = core?.configIndex ?? 0;
    const configTerm = core?.log.term(configIndex);
    return {
      configIndex,
      ...(configTerm !== undefined ? { configTerm } : {}),
      ...(core && about !== undefined ? { configWith: core.lastConfigWith(about) } : {}),
    };
  }

  private status(about?: string): NodeStatus {
    const d = this.deps;
    const stopped = d.consensus?.running() === false;
    // Stopped by an operator: the state it had when it stopped, with role "stopped".
    const s = stopped ? d.consensus?.lastStatus?.() : this.raftStatus();
    const sm = d.sm();
    const out: NodeStatus = {
      id: this.ctx.nodeId,
      cluster: d.cluster,
      url: d.url,
      protocol: 'raft',
      role: stopped ? 'stopped' : (s?.role ?? 'starting'),
      term: s?.term ?? 0,
      leader: s?.leader ?? null,
      commitIndex: s?.commit ?? 0,
      appliedIndex: s?.applied ?? 0,
      lastIndex: s?.lastIndex ?? 0,
      voters: s ? [...s.membership.voters] : [],
      learners: s ? [...s.membership.learners] : [],
      ...(s?.membership.votersOutgoing?.length
        ? { votersOutgoing: [...s.membership.votersOutgoing] }
        : {}),
      ...(s && !stopped
        ? {
            ...this.configReport(about),
            witnessedReads: d.raft()?.witnessedReads ?? 0,
          }
        : {}),
      revision: sm?.revision ?? 0,
      keys: sm ? sm.range({ start: '', limit: 0 }).count : 0,
      links: d.links().map((l) => ({ peer: l.peer, state: l.state })),
      members: Object.fromEntries(d.members),
      cut: d.gate?.cut() ?? [],
      uptimeMs: Math.round(this.ctx.clock.now() - d.startedAt),
    };
    if (s && s.role === 'leader' && !stopped) {
      const lag: Record<string, number> = {};
      for (const [id, p] of Object.entries(s.progress))
        lag[id] = Math.max(0, s.lastIndex - (p as { match: number }).match);
      out.lag = lag;
    }
    return out;
  }

  private async remove(msg: Extract<AdminMsg, { type: 'node.remove' }>): Promise<void> {
    const d = this.deps;
    const refuse = (message: string) => this.ctx.reply(msg, { ok: false, message });
    const problem = adminProofProblem(
      d.adminSecret,
      d.cluster,
      'node.remove',
      msg.id,
      msg,
      this.ctx.clock.wallNow(),
    );
    if (problem !== undefined) {
      refuse(`SYNOD_ERR_ADMIN_REFUSED: ${problem}`);
      return;
    }
    const s = this.raftStatus();
    if (!s || (s.role !== 'leader' && !s.leader)) {
      refuse('SYNOD_ERR_NO_LEADER: no leader right now; try again in a moment');
      return;
    }
    if (s.role !== 'leader') {
      try {
        const r = await this.ctx.ask(
          `${s.leader}/admin`,
          { type: 'node.remove', id: msg.id, at: msg.at, proof: msg.proof } as AdminMsg &
            Replies<ControlReply>,
          30_000,
        );
        this.ctx.reply(msg, r);
      } catch (err) {
        refuse(`forwarding to leader ${s.leader} failed: ${(err as Error).message}`);
      }
      return;
    }
    const m = s.membership;
    const isVoter = m.voters.includes(msg.id);
    if (!isVoter && !m.learners.includes(msg.id)) {
      refuse(`SYNOD_ERR_NOT_A_MEMBER: ${msg.id} is not a member (voters ${m.voters.join(', ')})`);
      return;
    }
    if (msg.id === this.ctx.nodeId) {
      refuse(
        `SYNOD_ERR_REMOVE_LEADER: ${msg.id} is the leader: transfer leadership to another voter first, then remove it`,
      );
      return;
    }
    if (isVoter) {
      const left = m.voters.filter((v) => v !== msg.id);
      const active = left.filter(
        (v) => v === this.ctx.nodeId || (s.progress[v] as { recentActive?: boolean })?.recentActive,
      );
      const quorum = Math.floor(left.length / 2) + 1;
      if (active.length < quorum) {
        refuse(
          `SYNOD_ERR_QUORUM_AT_RISK: without ${msg.id}, ${active.length} of the ${left.length} voters left are active (${active.join(', ')}); a quorum needs ${quorum}: bring members back first`,
        );
        return;
      }
    }
    try {
      const at = await this.runningRaft().removeMember(msg.id);
      d.members.delete(msg.id);
      this.ctx.reply(msg, {
        ok: true,
        message: `${msg.id} removed from the cluster at index ${at.index}; stop it, and wipe its data directory before it joins again`,
      });
    } catch (err) {
      refuse(`removing ${msg.id} failed: ${(err as Error).message}`);
    }
  }

  private async leave(msg: Extract<AdminMsg, { type: 'node.leave' }>): Promise<void> {
    const d = this.deps;
    const s = this.raftStatus();
    if (!s || (s.role !== 'leader' && !s.leader)) {
      this.ctx.reply(msg, { ok: false, message: 'no leader right now; try again in a moment' });
      return;
    }
    if (s.role !== 'leader') {
      try {
        const r = await this.ctx.ask(
          `${s.leader}/admin`,
          { type: 'node.leave', id: msg.id } as AdminMsg &
            Replies<{ ok: boolean; message: string }>,
          30_000,
        );
        this.ctx.reply(msg, r);
      } catch (err) {
        this.ctx.reply(msg, {
          ok: false,
          message: `forwarding to leader ${s.leader} failed: ${(err as Error).message}`,
        });
      }
      return;
    }
    try {
      const m = s.membership;
      if (m.voters.includes(msg.id)) {
        this.ctx.reply(msg, {
          ok: false,
          message: `${msg.id} is a voter: node.leave removes learners only`,
        });
        return;
      }
      if (m.learners.includes(msg.id)) await this.runningRaft().removeMember(msg.id);
      d.members.delete(msg.id);
      this.ctx.reply(msg, { ok: true, message: `${msg.id} left the cluster` });
    } catch (err) {
      this.ctx.reply(msg, {
        ok: false,
        message: `removing ${msg.id} failed: ${(err as Error).message}`,
      });
    }
  }

  /**
   * `node.join`: the leader adds the node (learner, then voter once caught up); any other
   * node forwards the request to the leader it knows, and re-routes it when the leadership
   * moves while it waits. Every refusal carries a stable code; the joiner retries the
   * "not now" ones (lib/node/join-cluster.ts).
   */
  private async join(msg: Extract<AdminMsg, { type: 'node.join' }>): Promise<void> {
    let r: JoinReply;
    try {
      r = await this.serveJoin(msg, msg.hops ?? 0);
    } catch (err) {
      r = joinRefusal('SYNOD_ERR_JOIN', `adding ${msg.id} failed: ${(err as Error).message}`);
    }
    this.ctx.reply(msg, r);
  }

  private async serveJoin(
    msg: Extract<AdminMsg, { type: 'node.join' }>,
    hops: number,
  ): Promise<JoinReply> {
    const s = this.raftStatus();
    if (!s)
      return joinRefusal(
        'SYNOD_ERR_NODE_STARTING',
        `${this.ctx.nodeId} is still starting (or stopped); try again`,
      );
    if (s.role === 'leader') {
      const key = `${msg.id}${msg.learner ? ' learner' : ''}`;
      // A retry of a join still running here (its reply was lost, or it timed out at the
      // joiner) waits for the same outcome instead of racing it.
      let running = this.joining.get(key);
      if (!running) {
        running = this.addMember(msg).finally(() => this.joining.delete(key));
        this.joining.set(key, running);
      }
      const r = await running;
      if (r !== LOST_LEADERSHIP) return r;
      // Counted as a hop, so a leadership that flips back and forth cannot loop here.
      return this.forwardJoin(msg, hops + 1);
    }
    return this.forwardJoin(msg, hops);
  }

  /**
   * Sends the request on to the leader this node knows (at most MAX_JOIN_HOPS times in all,
   * counted in the message, so it cannot go round in circles), following the leadership
   * while it waits: when another leader is elected meanwhile, the request goes there.
   */
  private async forwardJoin(
    msg: Extract<AdminMsg, { type: 'node.join' }>,
    hops: number,
  ): Promise<JoinReply> {
    for (;;) {
      const s = this.raftStatus();
      if (!s)
        return joinRefusal(
          'SYNOD_ERR_NODE_STARTING',
          `${this.ctx.nodeId} is still starting (or stopped); try again`,
        );
      if (s.role === 'leader') return this.serveJoin(msg, hops);
      const leader = s.leader;
      if (!leader || leader === this.ctx.nodeId)
        return joinRefusal(
          'SYNOD_ERR_NO_LEADER',
          `no leader right now (${this.ctx.nodeId} is ${s.role}, term ${s.term}); try again in a moment`,
        );
      if (hops >= MAX_JOIN_HOPS)
        return joinRefusal(
          'SYNOD_ERR_NOT_LEADER',
          `${this.ctx.nodeId} is not the leader and the request was already forwarded ${hops} times (leader now ${leader}); try again`,
        );
      hops++;
      const r = await this.askFollowingLeader(leader, {
        type: 'node.join',
        id: msg.id,
        url: msg.url,
        ...(msg.learner ? { learner: true } : {}),
        hops,
      });
      if (r !== undefined) return r;
      // The leadership moved while we waited: forward to the new leader.
    }
  }

  /**
   * Asks `leader` to serve the join; undefined when another node became leader before it
   * answered (the caller forwards there), a "no leader" refusal when an election began. A
   * failed ask is a retryable refusal. Abandoning a forward is safe: the leader's join is
   * idempotent, and a retry of the same join waits for the one it is running.
   */
  private askFollowingLeader(
    leader: string,
    msg: Extract<AdminMsg, { type: 'node.join' }>,
  ): Promise<JoinReply | undefined> {
    return new Promise<JoinReply | undefined>((resolve) => {
      let done = false;
      let sub: Subscription | undefined;
      const finish = (r: JoinReply | undefined) => {
        if (done) return;
        done = true;
        sub?.unsubscribe();
        resolve(r);
      };
      const raft = this.deps.raft();
      sub = raft?.leader$.subscribe((l) => {
        if (l === leader) return;
        // An election began: say so now rather than wait on a leader that may be gone.
        if (l === undefined)
          finish(
            joinRefusal(
              'SYNOD_ERR_NO_LEADER',
              `no leader right now (${this.ctx.nodeId} lost contact with ${leader}); try again in a moment`,
            ),
          );
        else finish(undefined);
      });
      if (done) {
        sub?.unsubscribe();
        return;
      }
      this.ctx.ask(`${leader}/admin`, msg as AdminMsg & Replies<JoinReply>, FORWARD_JOIN_MS).then(
        (r) => finish(r),
        (err: Error) =>
          finish(
            joinRefusal(
              'SYNOD_ERR_NOT_LEADER',
              `forwarding to leader ${leader} failed: ${err.message}; try again`,
            ),
          ),
      );
    });
  }

  /** On the leader: adds the node, or says why not; LOST_LEADERSHIP when it stopped leading. */
  private async addMember(
    msg: Extract<AdminMsg, { type: 'node.join' }>,
  ): Promise<JoinReply | typeof LOST_LEADERSHIP> {
    const d = this.deps;
    const members = () => Object.fromEntries(d.members);
    try {
      // The transport checks the URL before it changes anything: a refused one is recorded
      // nowhere (it would otherwise be pushed to every member), and the node is not added.
      d.addPeer(msg.id, msg.url);
    } catch (err) {
      return joinRefusal(
        'SYNOD_ERR_JOIN_REFUSED',
        `${msg.id} at ${msg.url} cannot be dialled: ${(err as Error).message}`,
        members(),
      );
    }
    d.members.set(msg.id, msg.url);
    try {
      const m = this.runningRaft().status().membership;
      const already = m.voters.includes(msg.id) || m.learners.includes(msg.id);
      if (!already) await this.runningRaft().addLearner(msg.id);
      if (msg.learner) {
        // A non-voting member (the backup agent): it receives the committed log, never votes.
        if (this.runningRaft().status().membership.voters.includes(msg.id))
          return joinRefusal(
            'SYNOD_ERR_JOIN_REFUSED',
            `${msg.id} is a voter, not a learner`,
            members(),
          );
        return {
          ok: true,
          message: already ? `${msg.id} is a learner already` : `${msg.id} joined as a learner`,
          members: members(),
        };
      }
      const wasVoter = this.runningRaft().status().membership.voters.includes(msg.id);
      if (!wasVoter) {
        const deadline = this.ctx.clock.now() + PROMOTE_MS;
        for (;;) {
          try {
            await this.runningRaft().promote(msg.id, 100);
            break;
          } catch (err) {
            // Leadership lost: not something waiting here can fix (the caller re-routes).
            if (this.raftStatus()?.role !== 'leader') throw err;
            if (this.runningRaft().status().membership.voters.includes(msg.id)) break;
            if (this.ctx.clock.now() > deadline)
              throw new JoinServeError(
                'SYNOD_ERR_JOIN_TIMEOUT',
                `${msg.id} did not catch up within ${PROMOTE_MS} ms (${(err as Error).message}); try again`,
              );
            await new Promise<void>((resolve) => this.ctx.clock.setTimer(200, resolve));
          }
        }
      }
      return {
        ok: true,
        message: wasVoter ? `${msg.id} is a voter already` : `${msg.id} joined as a voter`,
        members: members(),
      };
    } catch (err) {
      if (this.raftStatus()?.role !== 'leader') return LOST_LEADERSHIP;
      const e = err as { code?: unknown; message?: string };
      const text = `adding ${msg.id} failed: ${e.message ?? String(err)}`;
      if (err instanceof JoinServeError) return joinRefusal(err.code, err.message, members());
      // Another change still in flight, or a leadership transfer: it passes.
      if (e.code === 'SYNOD_ERR_RAFT_CONF_PENDING' || e.code === 'SYNOD_ERR_RAFT_PROPOSAL_DROPPED')
        return joinRefusal('SYNOD_ERR_JOIN_BUSY', `${text}; try again`, members());
      if (e.code === 'Timeout' || e.code === 'Dropped')
        return joinRefusal('SYNOD_ERR_JOIN_TIMEOUT', `${text}; try again`, members());
      if (e.code === 'Stopped' || e.code === 'SYNOD_ERR_RAFT_BAD_STATE')
        return joinRefusal('SYNOD_ERR_NODE_STARTING', `${text}; try again`, members());
      return joinRefusal('SYNOD_ERR_JOIN_REFUSED', text, members());
    }
  }
}

/** The leader stopped leading while adding a member: the request goes to the new one. */
const LOST_LEADERSHIP = Symbol('lost leadership');

/** How many times a `node.join` may be forwarded from node to node (no loops). */
export const MAX_JOIN_HOPS = 3;
/** How long a forwarded join is waited for (the leader answers once the joiner caught up). */
const FORWARD_JOIN_MS = 60_000;
/** How long the leader waits for a joining learner to catch up before promoting it. */
const PROMOTE_MS = 60_000;

class JoinServeError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A refused `node.join`: `code`, and the message prefixed with it. */
export function joinRefusal(
  code: string,
  message: string,
  members: Record<string, string> = {},
): JoinReply {
  return {
    ok: false,
    code,
    message: message.startsWith(code) ? message : `${code}: ${message}`,
    members,
  };
}
