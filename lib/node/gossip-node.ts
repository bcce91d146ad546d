/**
 * A Synod node process on the leaderless store (`synod node --protocol gossip`): the same actor
 * system, WebSocket transport (cluster name, secret, handshake, TLS), data-directory checks and
 * `admin` actor as the Raft and Multi-Paxos nodes (lib/node/synod-node.ts), with a
 * `GossipReplica` (actors/gossip) at `<id>/gossip` instead of a replicated log and KV service.
 * Its state is in `<data>/gossip`: a `LogKeyStore` on a `FileLogStore` (every batch fsynced
 * before the replica acknowledges or forwards it; SWIM incarnation in the same log).
 *
 * Membership is SWIM's: every `--peers` member is a seed (one reachable seed is enough to join);
 * `--join ws://host:port[,…]` starts with the nodes named there as seeds instead (a newcomer to a
 * running keyspace) and learns the others' URLs from their `admin` actors. Every node pushes its
 * member URLs to the others every few seconds (`node.members`), so a node that joined through one
 * member is dialled by all. There is no leader: `node.transfer` and `node.remove` are refused
 * with what to do instead.
 *
 * The keyspace's shape (N, key types by prefix) is recorded in `<data>/gossip/keyspace.json` on
 * first start, and a restart with another one is refused (`SYNOD_ERR_GOSSIP_KEYSPACE_CHANGED`):
 * a key whose type changed would merge records of two types.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogKeyStore } from '../../actors/gossip/log-store.js';
import type { KeyType } from '../../actors/gossip/record.js';
import { GossipReplica, type ReplicaMessage } from '../../actors/gossip/replica.js';
import type {
  KeyTypeRule,
  ReplicaOptions,
  ReplicaSnapshot,
} from '../../actors/gossip/replica-node.js';
import { CliError } from '../../cli/args.js';
import type { WebSocketTransport } from '../../transports/websocket/transport.js';
import { Actor, type ActorRef } from '../actor.js';
import type { ActorSystem } from '../actor-system.js';
import { FileLogStore } from '../storage/file-log.js';
import type { LinkStatus } from '../transport.js';
import { type AdminProof, makeAdminProof } from './admin-auth.js';
import { discoverJoinTarget, JoinError } from './join-cluster.js';
import type { LinkGate } from './link-gate.js';
import type { MessageSampler } from './message-samples.js';
import {
  type AdminMsg,
  type GossipNodeStatus,
  isCutShape,
  joinRefusal,
  learnMemberUrls,
  type NodeStatus,
  operatorProofShape,
  runLinkControl,
  sinceOf,
} from './node-admin.js';
import { actorStarted, type NodeConfig, type NodeEnd, openNodeBase } from './synod-node.js';

export const KEY_TYPES: readonly KeyType[] = ['dvv', 'lww', 'mv', 'pn', 'orset'];

/** The leaderless keyspace's settings of a node process (every node must use the same). */
export interface GossipNodeOptions {
  /** Replicas per key (N). Default 3. */
  n?: number;
  /** Key types by prefix (longest match wins); other keys are `dvv` registers. */
  keyTypes?: KeyTypeRule[];
  /** Replica timing (SWIM, anti-entropy, request timeout): tests and the chaos harness. */
  replica?: Omit<ReplicaOptions, 'n' | 'keyTypes' | 'seeds'>;
}

export interface GossipNodeConfig extends NodeConfig {
  gossip?: GossipNodeOptions;
}

export interface RunningGossipNode {
  readonly protocol: 'gossip';
  readonly id: string;
  readonly url: string;
  readonly system: ActorSystem;
  readonly transport: WebSocketTransport;
  /** The replica actor (`<id>/gossip`). */
  readonly replica: ActorRef<ReplicaMessage, ReplicaSnapshot | undefined>;
  readonly store: LogKeyStore;
  adminProof(action: string, target: string): AdminProof | undefined;
  status(): Promise<NodeStatus>;
  /** Stops the replica (pending requests fail as the store documents), closes the log and links. */
  stop(): Promise<void>;
  /** Resolves when the replica stopped for good without `stop()` (a storage failure). */
  ended: Promise<NodeEnd>;
}

/**
 * Parses `--key-types prefix=type,…` entries. An empty prefix, an unknown type or a prefix
 * given twice is a CliError naming the entry.
 */
export function parseKeyTypes(entries: readonly string[]): KeyTypeRule[] {
  const out: KeyTypeRule[] = [];
  for (const e of entries) {
    const i = e.lastIndexOf('=');
    const prefix = i > 0 ? e.slice(0, i) : '';
    const type = i > 0 ? e.slice(i + 1) : '';
    if (prefix === '' || !KEY_TYPES.includes(type as KeyType))
      throw new CliError(
        `--key-types "${e}": expected PREFIX=TYPE with TYPE one of ${KEY_TYPES.join(', ')} (e.g. counter/=pn)`,
      );
    if (out.some((r) => r.prefix === prefix))
      throw new CliError(`--key-types: prefix "${prefix}" is given twice`);
    out.push({ prefix, type: type as KeyType });
  }
  return out;
}

/** How often a node pushes its member URLs to the others (ms). */
const MEMBER_PUSH_MS = 3000;

export async function startGossipNode(config: GossipNodeConfig): Promise<RunningGossipNode> {
  const n = config.gossip?.n ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new CliError(`--replicas must be a whole number between 1 and 64; got ${String(n)}`);
  const keyTypes = [...(config.gossip?.keyTypes ?? [])].sort((a, b) =>
    a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0,
  );
  const base = await openNodeBase(config, 'gossip');
  const { clock, log, system, transport, url, members, peers, gate, joinTargets, samples } = base;
  const startedAt = clock.now();
  const dir = path.join(config.dataDir, 'gossip');
  let stopping: Promise<void> | undefined;
  let resolveEnded: (e: NodeEnd) => void = () => {};
  const ended = new Promise<NodeEnd>((resolve) => {
    resolveEnded = resolve;
  });
  const closeBase = async () => {
    await system.shutdown();
    await transport.close(100);
  };

  let seeds: string[];
  let store: LogKeyStore;
  try {
    // The seeds: every --peers member, or the --join targets (ids of bare URLs asked for).
    if (joinTargets) {
      seeds = [];
      for (const j of joinTargets) {
        let id = j.id;
        if (id === undefined) {
          try {
            id = await discoverJoinTarget(j.url, {
              cluster: config.cluster,
              ...(config.tls?.caFile ? { caFile: config.tls.caFile } : {}),
            });
          } catch (err) {
            if (err instanceof JoinError && !err.retryable) throw err;
            log.log(
              'warn',
              `--join ${j.url} did not answer (${(err as Error).message}); trying the others`,
            );
            continue;
          }
          if (id === config.id)
            throw new CliError(`--join ${j.url} is this node (${config.id}) itself`);
          members.set(id, j.url);
          transport.addPeer(`${id}=${j.url}`);
        }
        seeds.push(id);
      }
      if (seeds.length === 0)
        throw new CliError(
          `--join: none of ${joinTargets.map((j) => j.url).join(', ')} answered; start the node with a reachable member (or --peers)`,
          1,
          'SYNOD_ERR_CONNECTION_FAILED',
        );
    } else seeds = peers.map((p) => p.id);
    checkKeyspace(dir, { n, keyTypes });
    try {
      store = new LogKeyStore(await FileLogStore.open(dir));
    } catch (err) {
      throw new CliError(
        `cannot open the leaderless store in ${config.dataDir}: ${(err as Error).message}`,
        1,
        (err as { code?: string }).code ?? 'SYNOD_ERR_NODE_START',
      );
    }
  } catch (err) {
    await closeBase();
    if (err instanceof JoinError) throw new CliError(err.message, 1, err.code);
    throw err;
  }

  const replica = system.spawn(
    'gossip',
    new GossipReplica({
      ...(config.gossip?.replica ?? {}),
      store,
      seeds,
      n,
      keyTypes,
    }),
    { supervision: { kind: 'stop' } },
  ) as ActorRef<ReplicaMessage, ReplicaSnapshot | undefined>;
  try {
    await actorStarted(replica, 'the gossip replica');
  } catch (err) {
    await store.close().catch(() => undefined);
    await closeBase();
    throw err;
  }
  let why = 'stopped';
  replica.events$.subscribe((e) => {
    const ev = e as { type: string; error?: string };
    if (ev.type === 'failed') {
      why = String(ev.error);
      log.log('error', `the gossip replica of ${config.id} failed and stopped: ${ev.error}`);
    } else if (ev.type === 'stopped' && stopping === undefined)
      resolveEnded({
        exitCode: 1,
        code: 'SYNOD_ERR_GOSSIP_STOPPED',
        message: `the gossip replica of ${config.id} stopped and the node cannot serve: ${why}`,
      });
  });

  const admin = system.spawn(
    'admin',
    new GossipNodeAdmin({
      cluster: config.cluster,
      url,
      members,
      startedAt,
      n,
      replica: () => replica.getSnapshot(),
      samples,
      ...(config.adminSecret ? { adminSecret: config.adminSecret } : {}),
      ...base.peerLinks,
      gate,
    }),
  );
  // A newcomer learns the members' URLs from the nodes it joined through.
  if (joinTargets) for (const s of seeds) admin.tell({ type: 'node.members-from', node: s });

  return {
    protocol: 'gossip',
    id: config.id,
    url,
    system,
    transport,
    replica,
    store,
    ended,
    adminProof: (action, target) =>
      config.adminSecret === undefined
        ? undefined
        : makeAdminProof(config.adminSecret, config.cluster, action, target, clock.wallNow()),
    status: () => admin.ask({ type: 'node.status' }, 5_000),
    stop: () => {
      stopping ??= (async () => {
        // Pending requests are answered (writes as indeterminate: they may have been applied).
        await system.stop(`${config.id}/gossip`).catch(() => undefined);
        await store.close().catch(() => undefined);
        await closeBase();
      })();
      return stopping;
    },
  };
}

/**
 * Records N and the key types on first start; refuses a restart with others (a key whose type
 * changed would merge records of two types, and a changed N moves every key's replicas).
 */
function checkKeyspace(dir: string, shape: { n: number; keyTypes: KeyTypeRule[] }): void {
  const file = path.join(dir, 'keyspace.json');
  const want = JSON.stringify(shape);
  if (existsSync(file)) {
    let stored: { n?: unknown; keyTypes?: unknown };
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    } catch {
      throw new CliError(`${file} is unreadable`, 1, 'SYNOD_ERR_DATADIR');
    }
    if (JSON.stringify({ n: stored.n, keyTypes: stored.keyTypes }) !== want) {
      const types = Array.isArray(stored.keyTypes)
        ? (stored.keyTypes as KeyTypeRule[]).map((r) => `${r.prefix}=${r.type}`).join(',')
        : '?';
      throw new CliError(
        `this data directory's keyspace has --replicas ${String(stored.n)} and --key-types "${types}", not --replicas ${shape.n} and --key-types "${shape.keyTypes.map((r) => `${r.prefix}=${r.type}`).join(',')}": every node of a keyspace must use the same settings, and they cannot change over existing data`,
        1,
        'SYNOD_ERR_GOSSIP_KEYSPACE_CHANGED',
      );
    }
    return;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(shape, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

interface GossipAdminDeps {
  cluster: string;
  url: string;
  members: Map<string, string>;
  startedAt: number;
  n: number;
  replica: () => ReplicaSnapshot | undefined;
  /** Samples of the messages this node sends (the dashboard's message flow). */
  samples?: MessageSampler;
  adminSecret?: string;
  links: () => LinkStatus[];
  addPeer: (id: string, url: string) => void;
  gate: LinkGate;
}

type GossipAdminMsg =
  | AdminMsg
  | { type: 'node.members-from'; node: string }
  | { type: 'node.members-push' };

/** The code of a refused `node.join`/`node.remove`. */
const SWIM_MEMBERSHIP = 'SYNOD_ERR_GOSSIP_SWIM_MEMBERSHIP';

/** The answer to a proven `node.transfer`. */
const NO_TRANSFER = 'a leaderless keyspace has no leader to transfer';

/**
 * The `admin` actor of a leaderless node: `node.status` for `synod status` and the dashboard,
 * member URLs (learned and pushed), operator link cuts. No leader, so no transfer; membership
 * is SWIM's, so `node.join`/`node.remove` are answered with what to do instead.
 */
export class GossipNodeAdmin extends Actor<GossipAdminMsg> {
  constructor(private readonly deps: GossipAdminDeps) {
    super();
  }

  override preStart(): void {
    this.ctx.timers.repeat('push', MEMBER_PUSH_MS, { type: 'node.members-push' });
  }

  override accepts(msg: unknown): msg is GossipAdminMsg {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case 'node.status':
      case 'node.join':
      case 'node.remove':
      case 'node.put':
      case 'node.members-push':
        return true;
      case 'node.members-from':
        return typeof m.node === 'string';
      case 'node.heal':
      case 'node.transfer':
        return operatorProofShape(m);
      case 'node.members':
        return typeof m.members === 'object' && m.members !== null;
      case 'node.cut':
        return isCutShape(m);
      case 'node.stop':
      case 'node.restart':
        return true;
      default:
        return false;
    }
  }

  receive(msg: GossipAdminMsg): void {
    switch (msg.type) {
      case 'node.status': {
        const out = this.status();
        // Detailed (the dashboard): the messages it sent since the last ask. No log tail: a
        // leaderless replica has no log of commands.
        if (msg.detail === true) out.messages = this.deps.samples?.since(sinceOf(msg)) ?? [];
        this.ctx.reply(msg, out);
        return;
      }
      case 'node.members':
        this.learn(msg.members as Record<string, unknown>);
        return;
      case 'node.members-push': {
        const members = Object.fromEntries(this.deps.members);
        for (const id of this.deps.members.keys())
          if (id !== this.ctx.nodeId)
            this.ctx.send(`${id}/admin`, { type: 'node.members', members });
        return;
      }
      case 'node.members-from':
        void this.ctx
          .ask(`${msg.node}/admin`, { type: 'node.status' } as never, 5_000)
          .then((s) => {
            const m = (s as { members?: unknown }).members;
            if (typeof m === 'object' && m !== null) this.learn(m as Record<string, unknown>);
          })
          .catch(() => {
            // SWIM finds the members anyway; their URLs come with their next push.
          });
        return;
      case 'node.join':
        this.ctx.reply(
          msg,
          joinRefusal(
            SWIM_MEMBERSHIP,
            'a leaderless keyspace has no membership change to ask for: start the new node with --protocol gossip --join ws://host:port (any member) and it joins through SWIM',
            Object.fromEntries(this.deps.members),
          ),
        );
        return;
      case 'node.remove':
        this.ctx.reply(msg, {
          ok: false,
          message: `${SWIM_MEMBERSHIP}: a leaderless node leaves the ring when SWIM declares it left; a crashed one stays on the ring and its keys are served by fallbacks`,
        });
        return;
      case 'node.put':
        this.ctx.reply(msg, {
          ok: false,
          message:
            'a leaderless keyspace takes writes through its KV client (synod kv put --protocol gossip, LeaderlessKvClient), not the admin actor',
        });
        return;
      case 'node.stop':
      case 'node.restart':
        this.ctx.reply(msg, {
          ok: false,
          message:
            'a leaderless node has no consensus part to stop or restart: stop the process (SIGTERM) and start it again',
        });
        return;
      case 'node.cut':
      case 'node.heal':
      case 'node.transfer':
        this.ctx.reply(msg, runLinkControl(msg, this.deps, this.ctx, NO_TRANSFER));
        return;
    }
  }

  private learn(members: Record<string, unknown>): void {
    for (const r of learnMemberUrls(members, this.ctx.nodeId, this.deps))
      this.ctx.log.log('warn', r);
  }

  private status(): NodeStatus {
    const d = this.deps;
    const r = d.replica();
    const gossip: GossipNodeStatus = {
      ready: r?.ready ?? false,
      members: Object.fromEntries((r?.members ?? []).map((m) => [m.id, m.state])),
      ring: [...(r?.ringMembers ?? [])],
      n: d.n,
      keys: r?.keys ?? 0,
      hints: r?.hints ?? 0,
      stats: { ...(r?.stats ?? {}) } as unknown as Record<string, number>,
    };
    return {
      id: this.ctx.nodeId,
      cluster: d.cluster,
      url: d.url,
      protocol: 'gossip',
      role: r?.ready ? 'replica' : 'joining',
      term: 0,
      leader: null,
      commitIndex: 0,
      appliedIndex: 0,
      lastIndex: 0,
      voters: [...gossip.ring],
      learners: [],
      revision: 0,
      keys: gossip.keys,
      links: d.links().map((x) => ({ peer: x.peer, state: x.state })),
      members: Object.fromEntries(d.members),
      cut: d.gate.cut(),
      uptimeMs: Math.round(this.ctx.clock.now() - d.startedAt),
      gossip,
    };
  }
}
