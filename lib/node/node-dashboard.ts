/**
 * The dashboard source of a real node: it polls its own status and its peers' (through
 * their `admin` actors) twice a second. Controls available on a real cluster: write a key
 * and transfer leadership. Stopping, restarting and partitioning processes on other machines
 * is refused with a message saying so (use the in-process demo, or your process manager).
 */
import { Subject } from 'rxjs';
import type {
  ClusterView,
  Control,
  ControlResult,
  DashboardSource,
  NodeView,
} from '../dashboard/view.js';
import type { AdminMsg, NodeStatus } from './node-admin.js';
import type { RunningNode } from './synod-node.js';

export class NodeDashboardSource implements DashboardSource {
  private readonly statuses = new Map<string, { status?: NodeStatus; at: number }>();
  private readonly changes = new Subject<void>();
  readonly changes$ = this.changes.asObservable();
  private seq = 0;

  constructor(private readonly node: RunningNode) {
    node.system.clock.setInterval(500, () => void this.poll());
    void this.poll();
  }

  private async poll(): Promise<void> {
    const own = await this.node.status().catch(() => undefined);
    if (own) this.statuses.set(own.id, { status: own, at: this.node.system.clock.now() });
    const ids = new Set([
      ...Object.keys(own?.members ?? {}),
      ...(own?.voters ?? []),
      ...(own?.learners ?? []),
    ]);
    ids.delete(this.node.id);
    await Promise.all(
      [...ids].map(async (id) => {
        try {
          const s = await this.node.system.ask(
            `${id}/admin`,
            { type: 'node.status' } as AdminMsg & { type: 'node.status' },
            1_000,
          );
          this.statuses.set(id, { status: s, at: this.node.system.clock.now() });
        } catch {
          this.statuses.set(id, { at: this.node.system.clock.now() });
        }
      }),
    );
    this.changes.next();
  }

  view(): ClusterView {
    const nodes: NodeView[] = [];
    let cluster = 'synod';
    for (const [id, { status: s }] of [...this.statuses].sort(([a], [b]) => a.localeCompare(b))) {
      if (!s) {
        nodes.push({ id, up: false, protocol: 'raft' });
        continue;
      }
      cluster = s.cluster;
      nodes.push({
        id,
        up: true,
        protocol: s.protocol,
        role: s.role,
        term: s.term,
        leader: s.leader,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        voters: s.voters,
        learners: s.learners,
        extra: { revision: s.revision, keys: s.keys, url: s.url },
      });
    }
    return { cluster, nodes, time: this.node.system.clock.wallNow() };
  }

  async control(c: Control): Promise<ControlResult> {
    const raft = this.node.raft;
    const s = raft.status();
    switch (c.op) {
      case 'transfer':
        if (s.role !== 'leader')
          return { ok: false, message: `ask the leader's dashboard (${s.leader ?? 'none'})` };
        raft.transferLeadership(c.to);
        return { ok: true, message: `transferring leadership to ${c.to}` };
      case 'put': {
        if (s.role !== 'leader')
          return {
            ok: false,
            message: `writes go to the leader (${s.leader ?? 'none'}); open its dashboard`,
          };
        const r = await raft.propose({
          clientId: `dashboard-${this.node.id}`,
          seq: ++this.seq,
          op: { t: 'put', key: c.key, value: c.value },
        });
        return { ok: true, message: `put ${c.key} committed at index ${r.index}` };
      }
      default:
        return {
          ok: false,
          message: `"${c.op}" is only available in the in-process demo; on a real cluster use your process manager or synod backup`,
        };
    }
  }
}
