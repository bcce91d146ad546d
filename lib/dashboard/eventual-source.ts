/**
 * The dashboard source of the leaderless store (actors/gossip, an `EventualCluster`): each
 * replica's card shows its keys, pending hints, its share of the ring as primary owner and
 * what its SWIM view says of the others; the event log shows how far the replicas are from
 * converged (Merkle roots per key range, hints, ring views: 0 = converged). Controls: isolate
 * a replica and heal (the simulated network), write a key (W = quorum).
 */
import { Subject } from 'rxjs';
import type { EventualCluster } from '../../actors/gossip/embedded.js';
import { HashRing } from '../../actors/gossip/ring.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { ClusterView, Control, ControlResult, DashboardSource, NodeView } from './view.js';

export interface EventualSourceOptions {
  readonly clock: Clock;
  /** Virtual nodes per member, as the replicas were started with (for the ring share). */
  readonly vnodes?: number;
  /** How often to poll the replicas (ms, default 500). */
  readonly pollMs?: number;
  readonly name?: string;
}

/** The event-log line saying how far the replicas are from converged (`divergenceOf`). */
export function convergenceLine(d: number | undefined): string {
  return d === undefined
    ? 'convergence: not measured yet'
    : d === 0
      ? 'converged: every key range has one Merkle root on all its replicas, no hints left'
      : `diverged: ${d} key range(s), hint(s) or ring view(s) still differ (anti-entropy, read repair and hinted handoff are at work)`;
}

export class EventualDashboardSource implements DashboardSource {
  private readonly changes = new Subject<void>();
  readonly changes$ = this.changes.asObservable();
  private nodes: NodeView[] = [];
  private divergence: number | undefined;
  private partitions: string[][] | undefined;
  private readonly timer: TimerHandle;
  private polling = false;

  constructor(
    private readonly cluster: EventualCluster,
    private readonly o: EventualSourceOptions,
  ) {
    this.timer = o.clock.setInterval(o.pollMs ?? 500, () => void this.poll());
    void this.poll();
  }

  stop(): void {
    this.timer.cancel();
  }

  /** Reads every replica once; resolves when the view is updated. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const snaps = await Promise.all(this.cluster.nodes.map((id) => this.cluster.snapshot(id)));
      const inspected = await this.cluster.inspect();
      this.divergence = await this.cluster.divergence().catch(() => undefined);
      this.nodes = this.cluster.nodes.map((id, i) => {
        const s = snaps[i];
        if (!s) return { id, up: false, protocol: 'gossip' };
        const share = new HashRing(s.ringMembers, this.o.vnodes ?? 64).ownership().get(id) ?? 0;
        const roots = inspected.get(id)?.roots ?? [];
        const states = (st: string) =>
          s.members.filter((m) => m.id !== id && m.state === st).map((m) => m.id);
        return {
          id,
          up: true,
          protocol: 'gossip',
          role: s.ready ? 'replica' : 'joining',
          voters: [...s.ringMembers].sort(),
          extra: {
            keys: s.keys,
            'pending hints': s.hints,
            'ring share': `${(share * 100).toFixed(1)} %`,
            'ring members': s.ringMembers.length,
            'sees alive': states('alive').join(' ') || '-',
            'sees suspect': states('suspect').join(' ') || '-',
            'sees dead': states('dead').join(' ') || '-',
            'key ranges (Merkle roots)': roots.length,
          },
        };
      });
    } finally {
      this.polling = false;
      this.changes.next();
    }
  }

  view(): ClusterView {
    const d = this.divergence;
    return {
      cluster: this.o.name ?? 'eventual',
      nodes: this.nodes,
      time: this.o.clock.wallNow(),
      ...(this.partitions ? { partitions: this.partitions } : {}),
      narration: [convergenceLine(d)],
    };
  }

  async control(c: Control): Promise<ControlResult> {
    switch (c.op) {
      case 'isolate': {
        if (!this.cluster.nodes.includes(c.node))
          return { ok: false, message: `no node ${c.node}` };
        const rest = this.cluster.nodes.filter((n) => n !== c.node);
        this.cluster.split([c.node], rest);
        this.partitions = [[c.node], rest];
        return { ok: true, message: `${c.node} is cut off from ${rest.join(', ')}` };
      }
      case 'heal':
        this.cluster.heal();
        this.partitions = undefined;
        return { ok: true, message: 'network healed' };
      case 'put': {
        const client = this.cluster.client();
        const r = await client.put(c.key, c.value, { w: 'quorum' });
        return r.outcome === 'ok'
          ? { ok: true, message: `put ${c.key} (W = quorum)` }
          : {
              ok: false,
              message: `put ${c.key}: ${r.outcome} ${'error' in r ? String(r.error) : ''}`,
            };
      }
      default:
        return {
          ok: false,
          message: `"${c.op}" does not apply to the leaderless store (no leader, no log to back up)`,
        };
    }
  }
}
