/**
 * The replica actor: the ReplicaNode logic inside the actor runtime. Spawn one per node at
 * the same path (default `gossip`); peers are addressed as `<node>/<path>`.
 *
 *     const store = new MemoryKeyStore();           // or new LogKeyStore(await FileLogStore.open(dir))
 *     system.spawn('gossip', new GossipReplica({ store, seeds: ['a'], n: 3 }));
 *     const client = new EventualClient(system, { replicas: ['a/gossip', 'b/gossip'] });
 *
 * Client requests (`kv-get`, `kv-write`) are asks answered once R/W replicas responded;
 * the mailbox never blocks on peers: peer traffic is one-way and correlated by ids.
 */
import { Actor, type Replies } from '../../lib/actor.js';
import type {
  ErrorReply,
  GetRequest,
  GetResult,
  PeerMessage,
  WriteRequest,
  WriteResult,
} from './messages.js';
import { PEER_MESSAGE_TYPES } from './messages.js';
import {
  type ReplicaEvent,
  ReplicaNode,
  type ReplicaOptions,
  type ReplicaSnapshot,
} from './replica-node.js';
import type { KeyStore } from './store.js';

export const DEFAULT_REPLICA_PATH = 'gossip';

export interface GossipReplicaOptions extends ReplicaOptions {
  readonly store: KeyStore;
  /** Actor path of the replica on every node. Default `gossip`. */
  readonly path?: string;
}

/** Convergence data for tests and tools. */
export interface InspectResult {
  readonly ring: string;
  readonly roots: Array<[number, string]>;
  readonly hints: number;
  readonly keys: number;
}

export type ReplicaMessage =
  | PeerMessage
  | (GetRequest & Replies<GetResult>)
  | (WriteRequest & Replies<WriteResult>)
  | ({ readonly type: 'replica-snapshot' } & Replies<ReplicaSnapshot>)
  | ({ readonly type: 'replica-inspect' } & Replies<InspectResult>)
  | { readonly type: 'replica-leave' }
  | { readonly type: 'replica-wake' };

export class GossipReplica extends Actor<ReplicaMessage, ReplicaSnapshot | undefined> {
  private node: ReplicaNode | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private readonly path: string;

  constructor(private readonly options: GossipReplicaOptions) {
    super();
    this.path = options.path ?? DEFAULT_REPLICA_PATH;
  }

  override async preStart(): Promise<void> {
    const ctx = this.ctx;
    const node = new ReplicaNode(
      {
        self: ctx.nodeId,
        now: () => ctx.clock.now(),
        wallNow: () => ctx.clock.wallNow(),
        random: ctx.random,
        send: (to, msg) => {
          ctx.send(`${to}/${this.path}`, msg);
        },
        emit: (e: ReplicaEvent) => ctx.emit(e),
      },
      this.options.store,
      this.options,
    );
    await node.start();
    this.node = node;
    this.reschedule();
    ctx.setState(node.snapshot());
  }

  override postStop(): void {
    this.node?.stop();
  }

  async receive(msg: ReplicaMessage | { type: 'terminated' }): Promise<void> {
    const node = this.node;
    if (!node) return;
    switch (msg.type) {
      case 'kv-get': {
        const m = msg as GetRequest & Replies<GetResult>;
        await node.get(m, (o) => ('ok' in o ? this.ctx.reply(m, o.ok) : this.fail(m, o.err)));
        break;
      }
      case 'kv-write': {
        const m = msg as WriteRequest & Replies<WriteResult>;
        await node.write(m, (o) => ('ok' in o ? this.ctx.reply(m, o.ok) : this.fail(m, o.err)));
        break;
      }
      case 'replica-wake':
        this.wakeAt = Number.POSITIVE_INFINITY;
        await node.wake();
        this.ctx.setState(node.snapshot());
        break;
      case 'replica-snapshot':
        this.ctx.reply(
          msg as { type: 'replica-snapshot' } & Replies<ReplicaSnapshot>,
          node.snapshot(),
        );
        break;
      case 'replica-inspect':
        this.ctx.reply(msg as { type: 'replica-inspect' } & Replies<InspectResult>, {
          ring: node.ringFingerprint,
          roots: [...node.segmentRoots()],
          hints: node.hintCount(),
          keys: node.keys().length,
        });
        break;
      case 'replica-leave':
        node.leave();
        break;
      default:
        if (PEER_MESSAGE_TYPES.has(msg.type)) await node.onPeer(msg as PeerMessage);
        else this.ctx.unhandled(msg as ReplicaMessage);
    }
    this.reschedule();
  }

  private fail(msg: Replies<unknown>, err: ErrorReply): void {
    this.ctx.replyError(msg, err);
  }

  /** One timer: at the node's next deadline. */
  private reschedule(): void {
    const node = this.node;
    if (!node) return;
    const at = node.nextWake();
    if (at >= this.wakeAt && this.ctx.timers.isActive('wake')) return;
    this.wakeAt = at;
    this.ctx.timers.once('wake', Math.max(0, at - this.ctx.clock.now()), { type: 'replica-wake' });
  }
}
