/**
 * A Synod node process: an actor system on the WebSocket transport, a RaftNode over a data
 * directory (file log, hard state and snapshots with fsync), the KV service on top, and the
 * admin actor. `synod node` is a thin CLI around `startNode`.
 */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import type { ReadDefault } from '../../actors/kv/messages.js';
import { KvService } from '../../actors/kv/service.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import type { RaftStatus } from '../../actors/raft/core/raft-core.js';
import { RaftNode } from '../../actors/raft/raft-node.js';
import { CliError } from '../../cli/args.js';
import { parsePeer } from '../../transports/websocket/options.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import type { ActorRef } from '../actor.js';
import { ActorSystem } from '../actor-system.js';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../logger.js';
import { randomFromEntropy } from '../random.js';
import { openDataDir } from '../storage/data-dir.js';
import type { LinkStatus } from '../transport.js';
import { type AdminProof, makeAdminProof } from './admin-auth.js';
import {
  askWatchingLink,
  discoverJoinTarget,
  type JoinTarget,
  joinCluster,
  parseJoinTargets,
} from './join-cluster.js';
import { lazyCommitHardState } from './lazy-commit.js';
import { handOffLeadership } from './leader-handoff.js';
import { LinkGate } from './link-gate.js';
import { followMembership, memberIds } from './member-links.js';
import { MessageSampler } from './message-samples.js';
import {
  type AdminMsg,
  type ConsensusControl,
  learnMemberUrls,
  NodeAdmin,
  type NodeStatus,
} from './node-admin.js';
import { checkDirWritable, checkNodeIdentity } from './node-identity.js';
import { peerAdviceLogger, WARN_NO_SECRET } from './peer-advice.js';
import { DrainingLog } from './proposal-drain.js';
import { RETRYING, RefusalReport } from './refusal-report.js';
import { watchRemoval } from './removal-watch.js';

export interface NodeConfig {
  id: string;
  listen: { host: string; port: number };
  /** The URL other nodes use to reach this one (default derived from `listen`). */
  advertise?: string;
  /** `id=ws://host:port` of the other founding members. */
  peers: string[];
  dataDir: string;
  cluster: string;
  secret?: string;
  /** The admin secret: admin requests that change the cluster (`node.remove`) must prove it. */
  adminSecret?: string;
  /**
   * Join a running cluster through these nodes: `ws://host:port` or `id=ws://host:port`,
   * several separated by commas (each is tried in turn until one adds this node).
   */
  join?: string;
  /**
   * How long `join` keeps retrying answers that can change (no leader, not the leader, a
   * node down or starting, a timeout) before the node gives up (ms, default 60,000).
   */
  joinTimeoutMs?: number;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  logger: Logger;
  clock?: Clock;
  /** The cluster-wide default read level of the KV service (default strong). */
  defaultRead?: ReadDefault;
  /** Raft / Multi-Paxos timing (ms). */
  heartbeatMs?: number;
  electionMs?: number;
  /**
   * Snapshot the state and compact the log every this many applied entries (default 10,000;
   * 0: never, the log grows without bound).
   */
  snapshotEvery?: number;
  /**
   * How long a peer may be unreachable before messages queued for it are dropped and the node
   * logs what to check (the transport's `queueWhileDownMs`, default 30,000 ms).
   */
  peerDownMs?: number;
  /**
   * On `stop()` (SIGINT/SIGTERM), how long in-flight writes may take to commit and be answered
   * before the log is closed (default 2,000 ms); new writes are refused meanwhile.
   */
  drainMs?: number;
  /**
   * On `stop()`, a leader hands its leadership to the most up-to-date voter after the drain
   * and waits this long for it to lead before closing (default 1,000 ms; 0: no hand-off, the
   * others elect a leader after their election timeout).
   */
  handoffMs?: number;
}

/** The default bound of a shutdown's wait for in-flight writes. */
export const DEFAULT_DRAIN_MS = 2000;

/**
 * Stops taking writes and waits (bounded) for the in-flight ones to be answered; logs what it
 * did. Shared by the Raft and Multi-Paxos node processes.
 */
export async function drainWrites(
  drain: DrainingLog<KvOp, KvResult> | undefined,
  config: NodeConfig,
  /** Runs once nothing is in flight any more (a leader hands its leadership over). */
  settled?: () => Promise<void>,
): Promise<void> {
  if (!drain) {
    await settled?.();
    return;
  }
  const maxMs = config.drainMs ?? DEFAULT_DRAIN_MS;
  const r = await drain.drain(maxMs, settled ? { settled } : {});
  if (r.inFlight === 0 && r.refused === 0) return;
  config.logger.log(
    r.left > 0 ? 'warn' : 'info',
    r.left > 0
      ? `shutdown: ${r.inFlight - r.left} of ${r.inFlight} in-flight writes finished within ${maxMs} ms; ${r.left} did not (no quorum?) and are answered as indeterminate; ${r.refused} new writes refused`
      : `shutdown: ${r.inFlight} in-flight writes finished and answered in ${Math.round(r.tookMs)} ms; ${r.refused} new writes refused`,
    { inFlight: r.inFlight, left: r.left, refused: r.refused },
  );
}

/** Why a running node can no longer serve (see `RunningNode.ended`). */
export interface NodeEnd {
  /** The process exit code `synod node` uses. */
  exitCode: number;
  /** A stable `SYNOD_ERR_...` code. */
  code: string;
  message: string;
}

export interface RunningNode {
  id: string;
  url: string;
  system: ActorSystem;
  transport: WebSocketTransport;
  /** The Raft node (the current one; after an operator's stop, the stopped one). */
  readonly raft: RaftNode<KvOp, KvResult>;
  /**
   * Operator stop/restart of the consensus part (the Raft or Multi-Paxos actors and the KV
   * service): "stop" closes its storage while the process, its admin actor and dashboard
   * stay up; "restart" reopens the data directory and rejoins. Absent: not restartable.
   */
  readonly consensus?: ConsensusControl;
  /** A proof of this node's admin secret for an admin request (undefined without one). */
  adminProof?(action: string, target: string): AdminProof | undefined;
  status(): Promise<NodeStatus>;
  /** Finishes in-flight work, closes the log and the connections. */
  stop(): Promise<void>;
  /**
   * Resolves (never rejects) when the node can no longer serve although nobody called
   * `stop()`: its consensus actor stopped for good (a storage error it cannot recover from,
   * a bug). `synod node` then exits with `exitCode` and the cause, as etcd exits
   * (`lg.Fatal("failed to save Raft hard state and entries")`) rather than linger as a
   * process that is up and serves nothing.
   */
  ended: Promise<NodeEnd>;
}

function defaultAdvertise(listen: { host: string; port: number }, tls: boolean): string {
  let host = listen.host;
  if (host === '0.0.0.0' || host === '::') {
    host = '127.0.0.1';
    for (const addrs of Object.values(networkInterfaces())) {
      const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
      if (v4) {
        host = v4.address;
        break;
      }
    }
  }
  return `${tls ? 'wss' : 'ws'}://${host}:${listen.port}`;
}

/**
 * Resolves once the actor behind `ref` has started; rejects with `SYNOD_ERR_NODE_START` naming
 * `what` (e.g. "the gossip replica") when it fails or stops first.
 */
export function actorStarted(ref: ActorRef<never, unknown>, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sub = ref.events$.subscribe((e) => {
      const ev = e as { type: string; error?: string };
      if (ev.type === 'started') {
        sub.unsubscribe();
        resolve();
      } else if (ev.type === 'failed' || ev.type === 'stopped') {
        sub.unsubscribe();
        reject(
          new CliError(
            `${what} could not start: ${String(ev.error ?? 'stopped')}`,
            1,
            'SYNOD_ERR_NODE_START',
          ),
        );
      }
    });
  });
}

export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** What every node process has, whatever its protocol: the transport and the actor system. */
export interface NodeBase {
  clock: Clock;
  log: Logger;
  system: ActorSystem;
  transport: WebSocketTransport;
  url: string;
  /** Known members (id → URL), this node included. */
  members: Map<string, string>;
  peers: { id: string; url: string }[];
  /** The nodes `--join` names (ids of bare URLs are learned when the join asks them). */
  joinTargets: JoinTarget[] | undefined;
  /** Cuts links for operator partitions (the system's transport). */
  gate: LinkGate;
  /** Samples of the messages this node sends, for the dashboard (off until asked). */
  samples: MessageSampler;
  /** How handshake refusals are logged (its `then` changes once a `--join` succeeded). */
  refusals: RefusalReport;
  /** The transport as the admin actor sees it: each peer link's state, and adding a peer. */
  peerLinks: {
    links: () => LinkStatus[];
    addPeer: (id: string, url: string) => void;
  };
}

/** What each protocol keeps in the data directory, and how to name it in messages. */
const PROTOCOL_DIRS = {
  raft: 'Raft',
  paxos: 'Multi-Paxos',
  gossip: 'leaderless (gossip)',
} as const;
export type NodeProtocol = keyof typeof PROTOCOL_DIRS;

/**
 * Refuses a data directory that holds another protocol's state (`<data>/raft` for Raft,
 * `<data>/paxos` for Multi-Paxos, `<data>/gossip` for the leaderless store): starting it would
 * silently begin from an empty state.
 */
export function checkProtocolDir(dataDir: string, protocol: NodeProtocol): void {
  for (const other of Object.keys(PROTOCOL_DIRS) as NodeProtocol[]) {
    if (other === protocol || !existsSync(path.join(dataDir, other))) continue;
    throw new CliError(
      `data directory ${dataDir} holds ${PROTOCOL_DIRS[other]} state (${other}/), not ${PROTOCOL_DIRS[protocol]}: start it with --protocol ${other} or use another --data directory`,
      1,
      'SYNOD_ERR_DATADIR_OTHER_PROTOCOL',
    );
  }
}

/** Identity and protocol checks, the WebSocket transport and the actor system of a node. */
export async function openNodeBase(config: NodeConfig, protocol: NodeProtocol): Promise<NodeBase> {
  const clock = config.clock ?? systemClock;
  const log = config.logger;
  checkNodeIdentity(config.dataDir, config.cluster, config.id, new Date(clock.wallNow()));
  checkProtocolDir(config.dataDir, protocol);
  // As etcd checks its data, member and WAL directories before replaying them: a node that
  // cannot persist must not start (a read-only mount with existing data: finding F2).
  checkDirWritable(config.dataDir);
  if (existsSync(path.join(config.dataDir, protocol)))
    checkDirWritable(path.join(config.dataDir, protocol));
  const peers = config.peers.map((p) => {
    try {
      return parsePeer(p);
    } catch (err) {
      // The transport's message already names the peer and the expected form.
      throw new CliError(`--peers: ${(err as Error).message.replace(/^SYNOD_ERR_[A-Z_]+: /, '')}`);
    }
  });
  if (peers.some((p) => p.id === config.id))
    throw new CliError(`--peers lists this node (${config.id}) itself`);
  const joinTargets = config.join ? parseJoinTargets(config.join) : undefined;
  if (!config.secret && !isLoopback(config.listen.host)) {
    // The one warning: the transport's own (which names no flag) is logged at debug by
    // peerAdviceLogger.
    log.log(
      'warn',
      `LISTENING ON ${config.listen.host} WITHOUT A CLUSTER SECRET: anyone who can reach this port can join the cluster and change its data — start every node and client with --secret-file FILE (the same file everywhere; see docs/across-laptops.md)`,
      { code: WARN_NO_SECRET },
    );
  }
  const random = randomFromEntropy();
  // While `--join` runs, a refusal ends the join (the next line says so), so the advice
  // must not promise a retry; once joined, the node retries refused links like any member.
  const refusals = new RefusalReport(
    log,
    config.join ? 'a refused handshake ends the join (see the next line)' : RETRYING,
  );
  // Filled in below, once the transport and the member list exist.
  let peerUrl: (peer: string) => string | undefined = () => undefined;
  let lastError: (peer: string) => string | undefined = () => undefined;
  const transport = await WebSocketTransport.create({
    nodeId: config.id,
    cluster: config.cluster,
    listen: config.listen,
    peers: [
      ...peers.map((p) => `${p.id}=${p.url}`),
      // `--join` through a node also listed in `--peers` (a member re-joining): one link.
      ...(joinTargets ?? [])
        .filter((j) => j.id !== undefined && !peers.some((p) => p.id === j.id))
        .map((j) => `${j.id}=${j.url}`),
    ],
    clock,
    random: random.fork(),
    ...(config.secret ? { secret: config.secret } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
    // A misconfigured peer (wrong secret, cluster, version) or an unreachable one: one line
    // per peer saying what to do.
    logger: peerAdviceLogger(refusals.logger, {
      peerUrl: (p) => peerUrl(p),
      lastError: (p) => lastError(p),
    }),
    ...(config.peerDownMs !== undefined ? { queueWhileDownMs: config.peerDownMs } : {}),
  } as ConstructorParameters<typeof WebSocketTransport>[0]);
  transport.links$.subscribe((l) => {
    if (l.state === 'up') refusals.linkUp(l.peer);
  });
  // Operator partitions (dashboard "isolate") cut links here, above the real connections.
  const gate = new LinkGate(transport);
  const samples = new MessageSampler(clock, config.id);
  gate.onSend = (e) => samples.offer(e);
  const system = new ActorSystem({
    nodeId: config.id,
    clock,
    random,
    transport: gate,
    logger: log,
  });
  const url = config.advertise ?? defaultAdvertise(config.listen, config.tls !== undefined);
  const members = new Map<string, string>([
    [config.id, url],
    ...peers.map((p) => [p.id, p.url] as [string, string]),
  ]);
  for (const j of joinTargets ?? []) if (j.id !== undefined) members.set(j.id, j.url);
  peerUrl = (p) => members.get(p);
  lastError = (p) => transport.linkStatus(p)?.reason;
  return {
    clock,
    log,
    system,
    transport,
    url,
    members,
    peers,
    joinTargets,
    gate,
    samples,
    refusals,
    peerLinks: {
      links: () =>
        transport.peers().flatMap((p) => {
          const l = transport.linkStatus(p);
          return l ? [l] : [];
        }),
      addPeer: (id, peerUrl) => transport.addPeer(`${id}=${peerUrl}`),
    },
  };
}

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const base = await openNodeBase(config, 'raft');
  const { clock, log, system, transport, members } = base;
  const startedAt = clock.now();
  let stopping: Promise<void> | undefined;
  let resolveEnded: (e: NodeEnd) => void = () => {};
  const ended = new Promise<NodeEnd>((resolve) => {
    resolveEnded = resolve;
  });
  const closeAll = async () => {
    await system.shutdown().catch(() => undefined);
    await transport.close(500).catch(() => undefined);
  };
  /** The running consensus part (undefined while an operator has it stopped). */
  let part: RaftPart | undefined;
  /** The last one, kept for `raft` and the stopped node's last known state. */
  let last: RaftPart | undefined;

  /**
   * Starts the consensus part: the Raft actor over `<data>/raft` (its log, hard state and
   * snapshots reopened from disk) and the KV service on it. The first start bootstraps
   * (unless joining); a restart rejoins with the log it has, as a restarted process does.
   */
  const startPart = async (): Promise<RaftPart> => {
    const p: RaftPart = {
      raft: undefined as unknown as RaftNode<KvOp, KvResult>,
      sm: undefined,
      stopping: false,
    };
    p.raft = new RaftNode<KvOp, KvResult>({
      storage: async () => {
        const dd = await openDataDir(path.join(config.dataDir, 'raft'), { clock });
        const hardState = lazyCommitHardState(dd.hardState);
        return {
          log: dd.log,
          hardState,
          snapshots: dd.snapshots,
          close: async () => {
            try {
              await hardState.flush();
            } finally {
              await dd.close();
            }
          },
        };
      },
      stateMachine: () => {
        p.sm = new KvStateMachine();
        return p.sm;
      },
      ...(base.joinTargets ? {} : { bootstrap: [config.id, ...base.peers.map((x) => x.id)] }),
      ...(config.heartbeatMs ? { heartbeatMs: config.heartbeatMs } : {}),
      ...(config.electionMs ? { electionMs: config.electionMs } : {}),
      ...(config.snapshotEvery !== undefined ? { snapshotEvery: config.snapshotEvery } : {}),
    });
    const raft = p.raft;
    const raftRef = system.spawn('raft', raft, { supervision: { kind: 'stop' } });
    // Everything the Raft actor says about its end: a `fatal` event (code + cause) before it
    // stops itself, a `failed` one when a handler or preStart threw.
    let cause: { code: string; message: string } | undefined;
    await new Promise<void>((resolve, reject) => {
      const startError = (why: string) =>
        new CliError(
          `the Raft node could not start: ${why}`,
          1,
          /EROFS|EACCES|EPERM|ENOSPC/.test(why)
            ? 'SYNOD_ERR_DATADIR_NOT_WRITABLE'
            : 'SYNOD_ERR_NODE_START',
        );
      let up = false;
      raftRef.events$.subscribe({
        next: (e) => {
          const ev = e as { type: string; error?: string; code?: string };
          if (ev.type === 'fatal' || ev.type === 'failed') {
            cause = {
              code: ev.code ?? 'SYNOD_ERR_RAFT_STOPPED',
              message: String(ev.error ?? 'failed'),
            };
            // A preStart that throws emits `started` and then `failed` (the runtime's
            // lifecycle): `raft.started` tells whether it really runs (finding F2).
            if (!up) reject(startError(cause.message));
          } else if (ev.type === 'started') {
            if (raft.started) {
              up = true;
              resolve();
            }
          } else if (ev.type === 'stopped') {
            if (!up) reject(startError(cause?.message ?? 'stopped'));
            // Stopped by nobody (not `stop()`, not the operator's "stop"): the node ends.
            else if (stopping === undefined && !p.stopping) {
              const c = cause ?? {
                code: 'SYNOD_ERR_RAFT_STOPPED',
                message: 'the Raft actor stopped',
              };
              resolveEnded({
                exitCode: 1,
                code: c.code,
                message: `the Raft node of ${config.id} stopped and cannot serve: ${c.message}`,
              });
            }
          }
        },
      });
    });
    // The KV service proposes through the drain, so a shutdown can finish its writes.
    p.drain = new DrainingLog<KvOp, KvResult>(raft, clock);
    system.spawn(
      'kv',
      new KvService({
        log: p.drain,
        sm: p.sm as KvStateMachine,
        ...(config.defaultRead ? { defaultRead: config.defaultRead } : {}),
      }),
    );
    return p;
  };
  const follow = (p: RaftPart) => {
    const raft = p.raft;
    // Members that leave the configuration are forgotten by the transport (no redialling).
    const following = followMembership({
      raft,
      selfId: config.id,
      transport,
      members,
      log,
      clock,
    });
    // A member removed from the cluster exits (etcd: "the member has been permanently removed").
    following.add(
      watchRemoval({
        raft,
        selfId: config.id,
        links$: transport.links$,
        peers: () => [...new Set([...members.keys(), ...memberIds(raft.status().membership)])],
        probe: async (peer, timeoutMs) => {
          const s = await system.ask(
            `${peer}/admin`,
            { type: 'node.status', about: config.id } as AdminMsg & { type: 'node.status' },
            timeoutMs,
          );
          return { ...s, id: peer };
        },
        clock,
        log,
        onRemoved: (n) => {
          if (stopping !== undefined || p.stopping) return;
          resolveEnded({
            exitCode: 0,
            code: 'SYNOD_ERR_NODE_REMOVED',
            message: `${n.message}. Its data directory ${config.dataDir} is kept; to make it a member again, remove that directory and start it with --join`,
          });
        },
      }),
    );
    p.following = following;
  };
  /** Stops the consensus part; the process, its admin actor and dashboard stay up. */
  const stopPart = async (p: RaftPart) => {
    await drainWrites(p.drain, config);
    p.stopping = true;
    p.following?.unsubscribe();
    p.lastStatus = p.raft.started ? p.raft.status() : undefined;
    await system.stop(`${config.id}/kv`);
    // The actor's postStop settles what is pending, saves the commit index and closes the
    // data directory (fsynced; the directory lock is released).
    await system.stop(`${config.id}/raft`);
  };

  try {
    part = await startPart();
    last = part;
  } catch (err) {
    await closeAll();
    throw err;
  }
  // Operator stop/restart (dashboard, admin actor), one at a time.
  let control: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const next = control.then(f, f);
    control = next.catch(() => undefined);
    return next;
  };
  const consensus: ConsensusControl = {
    running: () => part !== undefined,
    lastStatus: () => last?.lastStatus,
    stop: () =>
      serial(async () => {
        if (stopping) return { ok: false, message: `${config.id} is shutting down` };
        if (!part) return { ok: false, message: `${config.id}'s Raft node is already stopped` };
        const p = part;
        part = undefined;
        await stopPart(p);
        log.log(
          'warn',
          `the operator stopped the Raft node of ${config.id} (the process stays up)`,
        );
        return {
          ok: true,
          message: `stopped ${config.id}'s Raft node and closed its log (term ${p.lastStatus?.term ?? '?'}, last index ${p.lastStatus?.lastIndex ?? '?'}); the process and its admin endpoint stay up`,
        };
      }),
    restart: () =>
      serial(async () => {
        if (stopping) return { ok: false, message: `${config.id} is shutting down` };
        if (part) return { ok: false, message: `${config.id}'s Raft node is already running` };
        try {
          const p = await startPart();
          follow(p);
          part = p;
          last = p;
        } catch (err) {
          // The actor may have stopped half-way: make sure nothing is left at its names.
          await system.stop(`${config.id}/kv`).catch(() => undefined);
          await system.stop(`${config.id}/raft`).catch(() => undefined);
          return {
            ok: false,
            message: `restarting ${config.id} failed: ${(err as Error).message}`,
          };
        }
        const s = part.raft.status();
        log.log('info', `the operator restarted the Raft node of ${config.id}`);
        return {
          ok: true,
          message: `restarted ${config.id}'s Raft node from its data directory (term ${s.term}, last index ${s.lastIndex}); it rejoins the cluster`,
        };
      }),
  };
  const admin = system.spawn(
    'admin',
    new NodeAdmin({
      cluster: config.cluster,
      url: base.url,
      raft: () => part?.raft,
      sm: () => (part ?? last)?.sm,
      consensus,
      samples: base.samples,
      ...base.peerLinks,
      members,
      startedAt,
      gate: base.gate,
      ...(config.adminSecret ? { adminSecret: config.adminSecret } : {}),
    }),
  );
  if (base.joinTargets) {
    log.log(
      'info',
      `asking ${base.joinTargets.map((j) => (j.id !== undefined ? `${j.id} (${j.url})` : j.url)).join(', ')} to add ${config.id} to the cluster`,
    );
    try {
      const r = await joinCluster({
        self: { id: config.id, url: base.url },
        targets: base.joinTargets,
        clock,
        random: randomFromEntropy(),
        logger: log,
        ...(config.joinTimeoutMs !== undefined ? { timeoutMs: config.joinTimeoutMs } : {}),
        discover: (target, timeoutMs) =>
          discoverJoinTarget(target, {
            cluster: config.cluster,
            clock,
            timeoutMs,
            ...(config.tls?.caFile !== undefined ? { caFile: config.tls.caFile } : {}),
          }),
        ask: (target, msg, timeoutMs) => {
          if (!members.has(target.id)) members.set(target.id, target.url);
          if (!transport.peers().includes(target.id))
            transport.addPeer(`${target.id}=${target.url}`);
          return askWatchingLink(
            transport,
            target,
            system.ask(`${target.id}/admin`, msg as AdminMsg & { type: 'node.join' }, timeoutMs),
            clock,
          );
        },
      });
      // The members this node did not know yet; a URL its transport refuses is logged and
      // skipped (the node has joined: failing now would leave a member that never starts).
      const unknown = Object.entries(r.reply.members).filter(([id]) => !members.has(id));
      const refused = learnMemberUrls(Object.fromEntries(unknown), config.id, {
        members,
        addPeer: (id, u) => transport.addPeer(`${id}=${u}`),
      });
      for (const line of refused) log.log('warn', line);
      base.refusals.afterwards = RETRYING;
      log.log(
        'info',
        `${r.reply.message} (through ${r.via.id}${r.attempts > 1 ? `, attempt ${r.attempts} after ${Math.round(r.tookMs)} ms` : ''})`,
        { attempts: r.attempts },
      );
    } catch (err) {
      stopping = closeAll();
      await stopping;
      throw new CliError(
        `joining the cluster failed: ${(err as Error).message}`,
        1,
        'SYNOD_ERR_JOIN',
      );
    }
  }
  follow(part);
  return {
    id: config.id,
    url: base.url,
    system,
    transport,
    get raft() {
      return (part ?? last)?.raft as RaftNode<KvOp, KvResult>;
    },
    consensus,
    adminProof: (action, target) =>
      config.adminSecret === undefined
        ? undefined
        : makeAdminProof(config.adminSecret, config.cluster, action, target, clock.wallNow()),
    ended,
    status: () => admin.ask({ type: 'node.status' }, 5_000),
    stop: () => {
      stopping ??= (async () => {
        await control.catch(() => undefined);
        // Finish what is in flight while everything still runs; as soon as nothing is, hand
        // the leadership over (the others need not wait out an election timeout, and the
        // writes refused here find the new leader while this node finishes); close the log.
        const raft = part?.raft;
        await drainWrites(
          part?.drain,
          config,
          config.handoffMs === 0
            ? undefined
            : async () => {
                await handOffLeadership(raft, {
                  clock,
                  logger: log,
                  linkUp: (peer) => transport.linkStatus(peer)?.state === 'up',
                  ...(config.handoffMs !== undefined ? { maxMs: config.handoffMs } : {}),
                });
              },
        );
        part?.following?.unsubscribe();
        await system.shutdown();
        await transport.close(500);
      })();
      return stopping;
    },
  };
}

/** The restartable consensus part of a Raft node process. */
interface RaftPart {
  raft: RaftNode<KvOp, KvResult>;
  sm: KvStateMachine | undefined;
  following?: Subscription;
  /** The log as the KV service sees it: refuses new writes and waits for in-flight ones on stop. */
  drain?: DrainingLog<KvOp, KvResult>;
  /** Set when an operator stops it (its `stopped` event then does not end the node). */
  stopping: boolean;
  /** Its status when it was stopped. */
  lastStatus?: RaftStatus;
}
