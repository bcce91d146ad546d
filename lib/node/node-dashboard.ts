/**
 * The dashboard source of a real node: it polls its own status and its peers' (through
 * their `admin` actors) twice a second. Controls available on a real cluster: write a key,
 * transfer leadership, isolate a node and heal, and — when the node was started with
 * `--backup-repo` — take a backup and restore one into a new cluster's data directories
 * (node-backups.ts). "Stop" and "restart" stop a node's consensus part (its Raft or
 * Multi-Paxos actors and KV service, storage closed) and start it again from its data
 * directory, through that node's admin actor with a proof of the admin secret; the process,
 * its admin endpoint and its dashboard stay up and show it as stopped.
 */
import { Subject } from 'rxjs';
import { divergenceOf } from '../../actors/gossip/embedded.js';
import type { InspectResult } from '../../actors/gossip/replica.js';
import { HashRing } from '../../actors/gossip/ring.js';
import type { Replies } from '../actor.js';
import { convergenceLine } from '../dashboard/eventual-source.js';
import type {
  ClusterView,
  Control,
  ControlResult,
  DashboardSource,
  MessageSample,
  NodeView,
} from '../dashboard/view.js';
import type { AdminMsg, ControlReply, NodeStatus } from './node-admin.js';
import type { NodeBackups } from './node-backups.js';
import type { RunningNode } from './synod-node.js';

/**
 * One answer for a control sent to several nodes: ok when every node did it, otherwise which
 * did not answer and what the others refused (e.g. a node without the admin secret).
 */
function settle(
  results: PromiseSettledResult<ControlReply>[],
  done: string,
  doing: string,
): ControlResult {
  const silent = results.filter((r) => r.status === 'rejected').length;
  const refusals = [
    ...new Set(
      results.flatMap((r) => (r.status === 'fulfilled' && !r.value.ok ? [r.value.message] : [])),
    ),
  ];
  if (silent === 0 && refusals.length === 0) return { ok: true, message: done };
  return {
    ok: false,
    message: `${doing}: ${[
      ...(silent > 0 ? [`${silent} node(s) did not answer`] : []),
      ...refusals,
    ].join('; ')}`,
  };
}

/** Virtual nodes per member on a leaderless node's ring (ReplicaNode's default). */
const GOSSIP_VNODES = 32;

export class NodeDashboardSource implements DashboardSource {
  private readonly statuses = new Map<string, { status?: NodeStatus; at: number }>();
  private readonly changes = new Subject<void>();
  readonly changes$ = this.changes.asObservable();
  private readonly messages = new Subject<MessageSample>();
  /** Messages between the nodes, sampled by each node (lib/node/message-samples.ts). */
  readonly messages$ = this.messages.asObservable();
  /** Per node, the last message sample seen. */
  private readonly seen = new Map<string, number>();
  /** Samples fetched with a poll, paced out over the next poll interval (bounded). */
  private readonly queue: MessageSample[] = [];
  static readonly MAX_QUEUED = 128;
  readonly stats = { samplesReceived: 0, samplesDropped: 0 };

  private polls = 0;
  /** The cluster's protocol and learners, from this node's own last status. */
  private protocol: NodeStatus['protocol'] = 'raft';
  private learners = new Set<string>();
  /** This node's other members as of its own last status. */
  private members = new Set<string>();
  /** Leaderless store: how far the replicas are from converged (`divergenceOf`). */
  private divergence: number | undefined;

  constructor(
    private readonly node: RunningNode,
    private readonly backups?: NodeBackups,
  ) {
    this.timers.push(
      node.system.clock.setInterval(500, () => void this.poll()),
      node.system.clock.setInterval(50, () => this.pace()),
    );
    void this.poll();
  }

  private readonly timers: { cancel(): void }[] = [];

  close(): void {
    for (const t of this.timers.splice(0)) t.cancel();
  }

  /** Asks a node's admin for its detailed status (log tail, new message samples). */
  private ask(id: string) {
    return this.node.system.ask(
      `${id}/admin`,
      {
        type: 'node.status',
        detail: true,
        since: this.seen.get(id) ?? 0,
      } as AdminMsg & { type: 'node.status' },
      1_000,
    );
  }

  /** Takes a status's message samples into the queue. */
  private take(s: NodeStatus): void {
    const got = s.messages ?? [];
    if (got.length === 0) return;
    this.seen.set(s.id, Math.max(...got.map((m) => m.seq)));
    for (const m of got) {
      this.stats.samplesReceived++;
      this.queue.push({ from: m.from, to: m.to, type: m.type });
    }
    const over = this.queue.length - NodeDashboardSource.MAX_QUEUED;
    if (over > 0) {
      this.queue.splice(0, over);
      this.stats.samplesDropped += over;
    }
  }

  /** Emits queued samples, spread over about one poll interval. */
  private pace(): void {
    if (this.queue.length === 0) return;
    const n = Math.max(1, Math.ceil(this.queue.length / 10));
    for (const m of this.queue.splice(0, n)) this.messages.next(m);
  }

  /** Samples waiting to be emitted (≤ MAX_QUEUED). */
  queued(): number {
    return this.queue.length;
  }

  private async poll(): Promise<void> {
    // The backup catalog is files on disk: re-read it every 5 s, not every poll.
    if (this.backups && this.polls++ % 10 === 0)
      await this.backups.refresh().catch(() => undefined);
    const own = await this.ask(this.node.id).catch(() => undefined);
    if (own) {
      this.statuses.set(own.id, { status: own, at: this.node.system.clock.now() });
      this.take(own);
    }
    const ids = new Set([
      ...Object.keys(own?.members ?? {}),
      ...(own?.voters ?? []),
      ...(own?.learners ?? []),
    ]);
    ids.delete(this.node.id);
    // A member that left the cluster (a backup agent done, a removed node) leaves the page:
    // the statuses held are this node's and its current members' only.
    if (own) {
      this.protocol = own.protocol;
      this.learners = new Set(own.learners);
      this.members = ids;
      for (const id of [...this.statuses.keys()])
        if (id !== this.node.id && !ids.has(id)) {
          this.statuses.delete(id);
          this.seen.delete(id);
        }
    }
    await Promise.all(
      [...ids].map(async (id) => {
        // An answer that arrives after a later poll saw the member leave is not kept.
        const record = (status?: NodeStatus) => {
          if (!this.members.has(id)) return;
          this.statuses.set(id, {
            ...(status ? { status } : {}),
            at: this.node.system.clock.now(),
          });
          if (status) this.take(status);
        };
        await this.ask(id).then(record, () => record());
      }),
    );
    if (own?.protocol === 'gossip') await this.measureConvergence(own);
    this.changes.next();
  }

  /**
   * Leaderless store: asks every ring member's replica for its Merkle roots and hints (as the
   * in-process eventual source does) and keeps how far they are from converged.
   */
  private async measureConvergence(own: NodeStatus): Promise<void> {
    const ring = own.gossip?.ring ?? [];
    const answers = await Promise.all(
      ring.map((id) =>
        this.node.system
          .ask(
            `${id}/gossip`,
            { type: 'replica-inspect' } as { type: 'replica-inspect' } & Replies<InspectResult>,
            1_000,
          )
          .catch(() => undefined),
      ),
    );
    this.divergence = ring.length === 0 ? undefined : divergenceOf(answers);
  }

  view(): ClusterView {
    const nodes: NodeView[] = [];
    let cluster = 'synod';
    for (const [id, { status: s }] of [...this.statuses].sort(([a], [b]) => a.localeCompare(b))) {
      if (!s) {
        // Not answering: down (or, like a backup agent, a member without an admin actor).
        nodes.push({
          id,
          up: false,
          protocol: this.protocol,
          ...(this.learners.has(id) ? { role: 'learner' } : {}),
        });
        continue;
      }
      cluster = s.cluster;
      if (s.gossip) {
        nodes.push(this.gossipView(id, s));
        continue;
      }
      nodes.push({
        id,
        // An operator-stopped node answers (its process is up) but takes no part.
        up: s.role !== 'stopped',
        protocol: s.protocol,
        role: s.role,
        term: s.term,
        leader: s.leader,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        ...(s.logTail ? { logTail: s.logTail } : {}),
        voters: s.voters,
        learners: s.learners,
        extra: {
          revision: s.revision,
          keys: s.keys,
          url: s.url,
          // Multi-Paxos: ballots and slots, as synod status shows them.
          ...(s.paxos
            ? {
                ballot: s.paxos.ballot,
                promised: s.paxos.promised,
                distinguished: s.paxos.distinguished ?? '-',
                'chosen up to slot': s.paxos.chosenUpTo,
                'highest slot': s.paxos.highestSlot,
                'slots in flight': s.paxos.inFlight + s.paxos.queued,
              }
            : {}),
        },
      });
    }
    const partitions = this.partitions();
    const linksDown = this.linksDown();
    return {
      cluster,
      nodes,
      time: this.node.system.clock.wallNow(),
      ...(partitions ? { partitions } : {}),
      ...(linksDown.length > 0 ? { linksDown } : {}),
      ...(this.backups
        ? { backups: this.backups.catalog(), narration: this.backups.narration() }
        : {}),
      ...(this.protocol === 'gossip' ? { narration: [convergenceLine(this.divergence)] } : {}),
    };
  }

  /** A leaderless replica's card: keys, hints, ring share and its SWIM view of the others. */
  private gossipView(id: string, s: NodeStatus): NodeView {
    const g = s.gossip as NonNullable<NodeStatus['gossip']>;
    // The replicas' placement ring (32 virtual nodes a member, ReplicaNode's default, which
    // synod node does not change): this member's share as primary owner.
    const share =
      g.ring.length > 0 ? (new HashRing(g.ring, GOSSIP_VNODES).ownership().get(id) ?? 0) : 0;
    const sees = (state: string) =>
      Object.entries(g.members)
        .filter(([m, st]) => m !== id && st === state)
        .map(([m]) => m)
        .sort()
        .join(' ') || '-';
    return {
      id,
      up: true,
      protocol: 'gossip',
      role: s.role,
      voters: [...g.ring].sort(),
      learners: [],
      extra: {
        keys: g.keys,
        'pending hints': g.hints,
        'ring share': `${(share * 100).toFixed(1)} %`,
        'ring members': g.ring.length,
        'replicas per key': g.n,
        'sees alive': sees('alive'),
        'sees suspect': sees('suspect'),
        'sees dead': sees('dead'),
        url: s.url,
      },
    };
  }

  /**
   * Pairs of answering nodes whose link each reports as not up (whatever cut it: a firewall,
   * a cable, an operator's isolate). One end still up means they can still talk (the link
   * is being re-dialled from the other side), and a node that does not answer is shown down.
   */
  private linksDown(): [string, string][] {
    const notUp = (x: string, y: string) => {
      const link = this.statuses.get(x)?.status?.links.find((l) => l.peer === y);
      return link !== undefined && link.state !== 'up';
    };
    const ids = [...this.statuses.keys()].filter((id) => this.statuses.get(id)?.status).sort();
    const out: [string, string][] = [];
    for (const [i, x] of ids.entries())
      for (const y of ids.slice(i + 1)) if (notUp(x, y) && notUp(y, x)) out.push([x, y]);
    return out;
  }

  /** Groups of nodes that can still talk, from each node's operator-cut links (if any). */
  private partitions(): string[][] | undefined {
    const ids = [...this.statuses.keys()].sort();
    const cut = (x: string, y: string) =>
      (this.statuses.get(x)?.status?.cut ?? []).includes(y) ||
      (this.statuses.get(y)?.status?.cut ?? []).includes(x);
    if (!ids.some((x) => ids.some((y) => x !== y && cut(x, y)))) return undefined;
    const groups: string[][] = [];
    const seen = new Set<string>();
    for (const start of ids) {
      if (seen.has(start)) continue;
      const group: string[] = [];
      const todo = [start];
      seen.add(start);
      while (todo.length > 0) {
        const x = todo.pop() as string;
        group.push(x);
        for (const y of ids)
          if (!seen.has(y) && !cut(x, y)) {
            seen.add(y);
            todo.push(y);
          }
      }
      groups.push(group.sort());
    }
    return groups;
  }

  /**
   * The node whose admin takes a put or transfer (and forwards it to the leader): this one,
   * or, while an operator has this one's consensus stopped, the leader or another running one.
   */
  private via(): string {
    const running = (id: string) => {
      const s = this.statuses.get(id)?.status;
      return s !== undefined && s.role !== 'stopped';
    };
    if (running(this.node.id)) return this.node.id;
    const leader = [...this.statuses.values()].find((x) => x.status?.role === 'leader');
    if (leader?.status) return leader.status.id;
    return [...this.statuses.keys()].find(running) ?? this.node.id;
  }

  async control(c: Control): Promise<ControlResult> {
    const ask = (node: string, msg: AdminMsg) =>
      this.node.system.ask(`${node}/admin`, msg as AdminMsg & Replies<ControlReply>, 10_000);
    const members = () => [...this.statuses.keys()];
    // Isolate, heal, transfer, stop and restart carry a proof of the admin secret that each
    // node checks itself (lib/node/admin-auth.ts), for that node (a transfer: for its target).
    const proof = (type: string, target: string) => this.node.adminProof?.(type, target);
    const noSecret = {
      ok: false,
      message: `SYNOD_ERR_ADMIN_REFUSED: ${c.op} needs the admin secret: start this node with --admin-secret-file`,
    };
    switch (c.op) {
      case 'transfer': {
        const p = proof('node.transfer', c.to);
        if (!p) return noSecret;
        return ask(this.via(), { type: 'node.transfer', to: c.to, ...p } as AdminMsg);
      }
      case 'put':
        return ask(this.via(), { type: 'node.put', key: c.key, value: c.value } as AdminMsg);
      case 'isolate': {
        if (!this.statuses.has(c.node)) return { ok: false, message: `no node ${c.node}` };
        if (!proof('node.cut', c.node)) return noSecret;
        const others = members().filter((m) => m !== c.node);
        const cut = (m: string, peers: string[]) =>
          ask(m, { type: 'node.cut', peers, ...proof('node.cut', m) } as AdminMsg);
        const results = await Promise.allSettled([
          cut(c.node, others),
          ...others.map((m) => cut(m, [c.node])),
        ]);
        return settle(
          results,
          `${c.node} is isolated from ${others.join(', ')}`,
          `isolating ${c.node}`,
        );
      }
      case 'heal': {
        if (!proof('node.heal', this.node.id)) return noSecret;
        const results = await Promise.allSettled(
          members().map((m) => ask(m, { type: 'node.heal', ...proof('node.heal', m) } as AdminMsg)),
        );
        return settle(results, 'every link is healed', 'healing');
      }
      case 'backup':
        if (!this.backups)
          return {
            ok: false,
            message: 'start this node with --backup-repo DIR to take backups from the dashboard',
          };
        return this.backups.backup();
      case 'restore': {
        if (!this.backups)
          return {
            ok: false,
            message: 'start this node with --backup-repo DIR to restore from the dashboard',
          };
        const own = this.statuses.get(this.node.id)?.status;
        return this.backups
          .restore(c.backup, own?.voters ?? [this.node.id])
          .catch((err: { code?: string; message?: string }) => ({
            ok: false,
            message: `restore failed: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(err)}`,
          }));
      }
      case 'stop':
      case 'restart': {
        if (!this.statuses.has(c.node)) return { ok: false, message: `no node ${c.node}` };
        const type = c.op === 'stop' ? 'node.stop' : 'node.restart';
        const p = proof(type, c.node);
        if (!p) return noSecret;
        const r = await this.node.system
          .ask(`${c.node}/admin`, { type, ...p } as AdminMsg & Replies<ControlReply>, 60_000)
          .catch((err: Error) => ({
            ok: false,
            message: `${c.node} did not answer (${err.message}); a node whose process is down needs your process manager`,
          }));
        void this.poll();
        return r;
      }
      default:
        return { ok: false, message: `"${(c as { op: string }).op}" is not a control` };
    }
  }
}
