/**
 * A Synod node process on Multi-Paxos (`synod node --protocol paxos`): the same actor system,
 * WebSocket transport, data-directory checks and KV service as the Raft node
 * (lib/node/synod-node.ts), with a Multi-Paxos member (acceptor, proposer and learner actors,
 * actors/paxos) as the replicated log, its state in `<data>/paxos` (acceptor journal and hard
 * state, proposer round, learner snapshots; every write fsynced).
 *
 * The `admin` actor answers `node.status` with the Paxos state (ballot, distinguished
 * proposer, promised ballot, chosen prefix, highest slot, window, compaction floor, snapshot),
 * so `synod status` works unchanged. Membership is static: `--join` is refused before anything
 * starts, and a `node.join` request is answered with `SYNOD_ERR_PAXOS_STATIC_MEMBERSHIP`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KvService } from '../../actors/kv/service.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { formatBallot } from '../../actors/paxos/ballot.js';
import type { MultiAcceptorView } from '../../actors/paxos/multi-acceptor.js';
import type { MultiLeaderView } from '../../actors/paxos/multi-leader.js';
import type { MultiLearnerView } from '../../actors/paxos/multi-learner.js';
import type { MultiPaxosLog } from '../../actors/paxos/multi-paxos-log.js';
import {
  type MultiPaxosNode,
  openFilePaxosStorage,
  startMultiPaxosNode,
} from '../../actors/paxos/multi-paxos-node.js';
import { CliError } from '../../cli/args.js';
import { parsePeer } from '../../transports/websocket/options.js';
import type { WebSocketTransport } from '../../transports/websocket/transport.js';
import { Actor, type ActorRef, type Replies } from '../actor.js';
import type { ActorSystem } from '../actor-system.js';
import { nodeOf } from '../address.js';
import { systemClock } from '../clock.js';
import type { LogTailEntry } from '../dashboard/view.js';
import type { ReplicatedLog } from '../replicated-log.js';
import type { LinkStatus } from '../transport.js';
import { type AdminProof, makeAdminProof } from './admin-auth.js';
import type { LinkGate } from './link-gate.js';
import type { MessageSampler } from './message-samples.js';
import {
  type AdminMsg,
  type ConsensusControl,
  type ControlReply,
  isConsensusControl,
  isCutShape,
  joinRefusal,
  LOG_TAIL,
  learnMemberUrls,
  type NodeStatus,
  operatorProofShape,
  opLabel,
  runConsensusControl,
  runLinkControl,
  sinceOf,
} from './node-admin.js';
import { checkNodeIdentity } from './node-identity.js';
import { paxosAdmission } from './paxos-admission.js';
import { DrainingLog } from './proposal-drain.js';
import {
  actorStarted,
  drainWrites,
  type NodeConfig,
  type NodeEnd,
  openNodeBase,
} from './synod-node.js';

export interface RunningPaxosNode {
  readonly protocol: 'paxos';
  readonly id: string;
  readonly url: string;
  readonly system: ActorSystem;
  readonly transport: WebSocketTransport;
  /** The Multi-Paxos member (the current one; after an operator's stop, the stopped one). */
  readonly paxos: MultiPaxosNode;
  readonly log: MultiPaxosLog<KvOp, KvResult>;
  readonly sm: KvStateMachine;
  /** Operator stop/restart of the Multi-Paxos member and the KV service (see RunningNode). */
  readonly consensus: ConsensusControl;
  adminProof(action: string, target: string): AdminProof | undefined;
  status(): Promise<NodeStatus>;
  /** Stops the KV service, the Paxos actors (closing their stores) and the connections. */
  stop(): Promise<void>;
  /** Resolves when a Multi-Paxos role stopped for good without `stop()` (see RunningNode). */
  ended: Promise<NodeEnd>;
}

/** Multi-Paxos timing of a node process (ms), unless the config sets heartbeat/election. */
export const PAXOS_NODE_DEFAULTS = { heartbeatMs: 50, electionTimeoutMs: 500 } as const;

export async function startPaxosNode(config: NodeConfig): Promise<RunningPaxosNode> {
  if (config.join) {
    throw new CliError(
      'Multi-Paxos membership is static: list every member with --peers on every node (--join works with --protocol raft)',
      2,
      'SYNOD_ERR_PAXOS_STATIC_MEMBERSHIP',
    );
  }
  // The member set is checked before the transport listens (openNodeBase reports bad peers).
  const peerIds = config.peers.map((p) => {
    try {
      return parsePeer(p).id;
    } catch {
      return undefined;
    }
  });
  if (peerIds.every((p) => p !== undefined)) {
    checkNodeIdentity(
      config.dataDir,
      config.cluster,
      config.id,
      new Date((config.clock ?? systemClock).wallNow()),
    );
    if (!existsSync(path.join(config.dataDir, 'raft')))
      checkMembers(path.join(config.dataDir, 'paxos'), [config.id, ...peerIds].sort(), false);
  }
  const { clock, log, system, transport, url, members, peers, gate, samples, peerLinks } =
    await openNodeBase(config, 'paxos');
  const startedAt = clock.now();
  const ids = [config.id, ...peers.map((p) => p.id)].sort();
  // Before any Multi-Paxos actor exists: they hear members only (finding F6).
  gate.admit = paxosAdmission(config.id, ids);
  let stopping: Promise<void> | undefined;
  let resolveEnded: (e: NodeEnd) => void = () => {};
  const ended = new Promise<NodeEnd>((resolve) => {
    resolveEnded = resolve;
  });

  /**
   * Starts the consensus part: the stores in `<data>/paxos` opened, the acceptor, proposer and
   * learner actors (the learner restores its snapshot and replays the acceptor's journal), and
   * the KV service on the log. Run at start and on an operator's restart.
   */
  const startPart = async (): Promise<PaxosPart> => {
    let storage: Awaited<ReturnType<typeof openFilePaxosStorage>>;
    try {
      checkMembers(path.join(config.dataDir, 'paxos'), ids);
      storage = await openFilePaxosStorage(path.join(config.dataDir, 'paxos'));
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(
        `cannot open the Multi-Paxos state in ${config.dataDir}: ${(err as Error).message}`,
        1,
        (err as { code?: string }).code ?? 'SYNOD_ERR_NODE_START',
      );
    }
    const sm = new KvStateMachine();
    const paxos = startMultiPaxosNode({
      system,
      members: ids,
      stateMachine: sm,
      storage,
      heartbeatMs: config.heartbeatMs ?? PAXOS_NODE_DEFAULTS.heartbeatMs,
      electionTimeoutMs: config.electionMs ?? PAXOS_NODE_DEFAULTS.electionTimeoutMs,
      ...(config.snapshotEvery !== undefined ? { snapshotEvery: config.snapshotEvery } : {}),
      supervision: { kind: 'stop' },
    });
    const p: PaxosPart = {
      paxos,
      sm,
      log: paxos.log as unknown as MultiPaxosLog<KvOp, KvResult>,
      stopping: false,
      tail: [],
    };
    // The newest applied slots with their ballot rounds, for the dashboard's log tail.
    p.log.applied$.subscribe({
      next: (e) => {
        p.tail.push({ index: e.index, term: e.term, label: opLabel(e.command?.op) });
        if (p.tail.length > LOG_TAIL) p.tail.shift();
      },
      error: () => {},
    });
    const roles = [paxos.acceptor, paxos.proposer, paxos.learner] as ActorRef<never, unknown>[];
    try {
      await Promise.all(
        roles.map((r) => actorStarted(r, `the Multi-Paxos ${r.address.split('/').pop()}`)),
      );
    } catch (err) {
      p.stopping = true;
      await paxos.stop().catch(() => undefined);
      throw err;
    }
    // After start, a role that fails stops (its state on disk stays consistent): say so
    // loudly, and end the node (synod node exits non-zero) rather than serve nothing — unless
    // an operator stopped it.
    for (const r of roles) {
      let why = 'stopped';
      r.events$.subscribe((e) => {
        const ev = e as { type: string; error?: string };
        if (ev.type === 'failed') {
          why = String(ev.error);
          log.log('error', `Multi-Paxos actor ${r.address} failed and stopped: ${ev.error}`);
        } else if (ev.type === 'stopped' && stopping === undefined && !p.stopping) {
          resolveEnded({
            exitCode: 1,
            code: 'SYNOD_ERR_PAXOS_STOPPED',
            message: `the Multi-Paxos ${r.address.split('/').pop()} of ${config.id} stopped and the node cannot serve: ${why}`,
          });
        }
      });
    }
    // The KV service proposes through the drain, so a shutdown can finish its writes.
    p.drain = new DrainingLog<KvOp, KvResult>(p.log as ReplicatedLog<KvOp, KvResult>, clock);
    system.spawn(
      'kv',
      new KvService({
        log: p.drain,
        sm,
        ...(config.defaultRead ? { defaultRead: config.defaultRead } : {}),
      }),
    );
    return p;
  };
  const stopPart = async (p: PaxosPart) => {
    await drainWrites(p.drain, config);
    p.stopping = true;
    await system.stop(`${config.id}/kv`).catch(() => undefined);
    // Stops the log and the three actors, and closes the journal, hard state and snapshots.
    await p.paxos.stop();
  };

  let part: PaxosPart | undefined;
  try {
    part = await startPart();
  } catch (err) {
    await system.shutdown();
    await transport.close(100);
    throw err;
  }
  let last: PaxosPart = part;
  let control: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const next = control.then(f, f);
    control = next.catch(() => undefined);
    return next;
  };
  const consensus: ConsensusControl = {
    running: () => part !== undefined,
    stop: () =>
      serial(async () => {
        if (stopping) return { ok: false, message: `${config.id} is shutting down` };
        if (!part)
          return { ok: false, message: `${config.id}'s Multi-Paxos member is already stopped` };
        const p = part;
        part = undefined;
        await stopPart(p);
        log.log(
          'warn',
          `the operator stopped the Multi-Paxos member of ${config.id} (the process stays up)`,
        );
        return {
          ok: true,
          message: `stopped ${config.id}'s Multi-Paxos member and closed its stores; the process and its admin endpoint stay up`,
        };
      }),
    restart: () =>
      serial(async () => {
        if (stopping) return { ok: false, message: `${config.id} is shutting down` };
        if (part)
          return { ok: false, message: `${config.id}'s Multi-Paxos member is already running` };
        try {
          part = await startPart();
          last = part;
        } catch (err) {
          await system.stop(`${config.id}/kv`).catch(() => undefined);
          return {
            ok: false,
            message: `restarting ${config.id} failed: ${(err as Error).message}`,
          };
        }
        log.log('info', `the operator restarted the Multi-Paxos member of ${config.id}`);
        return {
          ok: true,
          message: `restarted ${config.id}'s Multi-Paxos member from its data directory; it rejoins the cluster`,
        };
      }),
  };
  const admin = system.spawn(
    'admin',
    new PaxosNodeAdmin({
      cluster: config.cluster,
      url,
      members,
      startedAt,
      ids,
      paxos: () => part?.paxos,
      sm: () => (part ?? last).sm,
      tail: () => (part ?? last).tail,
      consensus,
      samples,
      ...(config.adminSecret ? { adminSecret: config.adminSecret } : {}),
      ...peerLinks,
      gate,
    }),
  );
  return {
    protocol: 'paxos',
    ended,
    id: config.id,
    url,
    system,
    transport,
    get paxos() {
      return (part ?? last).paxos;
    },
    get log() {
      return (part ?? last).log;
    },
    get sm() {
      return (part ?? last).sm;
    },
    consensus,
    adminProof: (action, target) =>
      config.adminSecret === undefined
        ? undefined
        : makeAdminProof(config.adminSecret, config.cluster, action, target, clock.wallNow()),
    status: () => admin.ask({ type: 'node.status' }, 5_000),
    stop: () => {
      stopping ??= (async () => {
        await control.catch(() => undefined);
        // Finish what is in flight while everything still runs, then close the log.
        await drainWrites(part?.drain, config);
        await system.stop(`${config.id}/kv`).catch(() => undefined);
        if (part) await part.paxos.stop();
        await system.shutdown();
        await transport.close(500);
      })();
      return stopping;
    },
  };
}

/** The restartable consensus part of a Multi-Paxos node process. */
interface PaxosPart {
  paxos: MultiPaxosNode;
  sm: KvStateMachine;
  log: MultiPaxosLog<KvOp, KvResult>;
  /** The log as the KV service sees it: refuses new writes and waits for in-flight ones on stop. */
  drain?: DrainingLog<KvOp, KvResult>;
  /** Set when it is being stopped on purpose (its actors' `stopped` events then do not end the node). */
  stopping: boolean;
  /** The newest applied slots (at most LOG_TAIL). */
  tail: LogTailEntry[];
}

/**
 * The member set is fixed when a data directory is first used (`<data>/paxos/members.json`):
 * restarting with other members could pair a new phase-1 quorum with an old phase-2 quorum
 * that it does not intersect, and lose chosen values. So a different set is refused.
 */
function checkMembers(dir: string, ids: readonly string[], record = true): void {
  const file = path.join(dir, 'members.json');
  if (existsSync(file)) {
    let stored: unknown;
    try {
      stored = (JSON.parse(readFileSync(file, 'utf8')) as { members?: unknown }).members;
    } catch {
      throw new CliError(`${file} is unreadable`, 1, 'SYNOD_ERR_DATADIR');
    }
    const same =
      Array.isArray(stored) &&
      stored.length === ids.length &&
      [...stored].sort().every((m, i) => m === ids[i]);
    if (!same)
      throw new CliError(
        `Multi-Paxos membership is static: this data directory belongs to members ${Array.isArray(stored) ? stored.join(', ') : '?'}, not ${ids.join(', ')}; start every node with the same --id/--peers set`,
        1,
        'SYNOD_ERR_PAXOS_MEMBERS_CHANGED',
      );
    return;
  }
  if (!record) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ members: ids }, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

interface PaxosAdminDeps {
  cluster: string;
  url: string;
  members: Map<string, string>;
  startedAt: number;
  /** The static Paxos membership (node ids). */
  ids: readonly string[];
  /** The running member; undefined while an operator has it stopped. */
  paxos: () => MultiPaxosNode | undefined;
  sm: () => KvStateMachine;
  consensus?: ConsensusControl;
  /** The newest applied slots (detailed status). */
  tail?: () => LogTailEntry[];
  samples?: MessageSampler;
  /** The admin secret: `node.stop`/`node.restart` need a proof of it. */
  adminSecret?: string;
  links: () => LinkStatus[];
  addPeer: (id: string, url: string) => void;
  /** Cuts links for operator partitions (dashboard "isolate"). */
  gate: LinkGate;
}

/** The code of a refused `node.join`/`node.remove`. */
const STATIC_MEMBERSHIP = 'SYNOD_ERR_PAXOS_STATIC_MEMBERSHIP';

/** The answer to a proven `node.transfer`. */
const NO_TRANSFER =
  'Multi-Paxos has no leadership transfer: stop the leader and another proposer takes over';

/** The `admin` actor of a Multi-Paxos node: status for `synod status`, member URLs. */
export class PaxosNodeAdmin extends Actor<AdminMsg> {
  constructor(private readonly deps: PaxosAdminDeps) {
    super();
  }

  private seq = 0;
  private session = '';

  override accepts(msg: unknown): msg is AdminMsg {
    if (typeof msg !== 'object' || msg === null) return false;
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case 'node.status':
      case 'node.join':
      case 'node.remove':
        return true;
      case 'node.heal':
        return operatorProofShape(m);
      case 'node.members':
        return typeof m.members === 'object' && m.members !== null;
      case 'node.cut':
        return isCutShape(m);
      case 'node.put':
        return (
          typeof m.key === 'string' &&
          m.key.length > 0 &&
          m.key.length <= 4096 &&
          typeof m.value === 'string' &&
          m.value.length <= 1 << 20
        );
      case 'node.transfer':
        return typeof m.to === 'string' && m.to.length <= 128 && operatorProofShape(m);
      case 'node.stop':
      case 'node.restart':
        return isConsensusControl(m);
      default:
        return false;
    }
  }

  receive(msg: AdminMsg): void {
    switch (msg.type) {
      case 'node.status': {
        const out = this.status();
        if (msg.detail === true) {
          out.logTail = [...(this.deps.tail?.() ?? [])];
          out.messages = this.deps.samples?.since(sinceOf(msg)) ?? [];
        }
        this.ctx.reply(msg, out);
        return;
      }
      case 'node.join':
        this.ctx.reply(
          msg,
          joinRefusal(
            STATIC_MEMBERSHIP,
            'Multi-Paxos membership is static; restart every node with the new member in --peers',
            Object.fromEntries(this.deps.members),
          ),
        );
        return;
      case 'node.remove':
        this.ctx.reply(msg, {
          ok: false,
          message: `${STATIC_MEMBERSHIP}: Multi-Paxos membership is static; restart every node without the member in --peers`,
        });
        return;
      case 'node.members':
        for (const r of learnMemberUrls(msg.members, this.ctx.nodeId, this.deps))
          this.ctx.log.log('warn', r);
        return;
      case 'node.cut':
      case 'node.heal':
      case 'node.transfer':
        this.ctx.reply(msg, runLinkControl(msg, this.deps, this.ctx, NO_TRANSFER));
        return;
      case 'node.put':
        void this.put(msg);
        return;
      case 'node.stop':
      case 'node.restart':
        runConsensusControl(msg, this.deps, this.ctx);
        return;
    }
  }

  /** An operator's write: proposed on the distinguished proposer (forwarded there). */
  private async put(msg: Extract<AdminMsg, { type: 'node.put' }>): Promise<void> {
    const paxos = this.deps.paxos();
    const p = paxos?.proposer.getSnapshot() as MultiLeaderView | undefined;
    try {
      if (!paxos) {
        this.ctx.reply(msg, {
          ok: false,
          message: `SYNOD_ERR_NODE_STOPPED: ${this.ctx.nodeId}'s Multi-Paxos member is stopped (restart it from the dashboard)`,
        });
        return;
      }
      if (p?.role !== 'leader') {
        const leader = p?.leader !== undefined ? nodeOf(p.leader) : undefined;
        if (!leader || leader === this.ctx.nodeId) {
          this.ctx.reply(msg, { ok: false, message: 'no leader right now; try again in a moment' });
          return;
        }
        const r = await this.ctx.ask(
          `${leader}/admin`,
          { type: 'node.put', key: msg.key, value: msg.value } as AdminMsg & Replies<ControlReply>,
          10_000,
        );
        this.ctx.reply(msg, r);
        return;
      }
      this.session ||= `admin-${this.ctx.nodeId}-${this.ctx.random.int(2 ** 31).toString(36)}`;
      const r = await paxos.log.propose({
        clientId: this.session,
        seq: ++this.seq,
        op: { t: 'put', key: msg.key, value: msg.value },
      });
      this.ctx.reply(msg, { ok: true, message: `put ${msg.key} chosen in slot ${r.index}` });
    } catch (err) {
      this.ctx.reply(msg, { ok: false, message: (err as Error).message });
    }
  }

  private status(): NodeStatus {
    const d = this.deps;
    const paxos = d.paxos();
    const sm = d.sm();
    const p = paxos?.proposer.getSnapshot() as MultiLeaderView | undefined;
    const l = paxos?.learner.getSnapshot() as MultiLearnerView | undefined;
    const a = paxos?.acceptor.getSnapshot() as MultiAcceptorView | undefined;
    const leader = p?.leader !== undefined ? nodeOf(p.leader) : null;
    const isLeader = p?.role === 'leader';
    const chosenUpTo = Math.max(
      isLeader ? p.chosenUpTo : 0,
      l?.knownChosenUpTo ?? 0,
      l?.appliedUpTo ?? 0,
    );
    const highestSlot = Math.max(isLeader ? p.nextSlot - 1 : 0, a?.maxAcceptedSlot ?? 0);
    const out: NodeStatus = {
      id: this.ctx.nodeId,
      cluster: d.cluster,
      url: d.url,
      protocol: 'paxos',
      role: paxos ? (p?.role ?? 'starting') : 'stopped',
      // The round of the ballot in force: the leader's own, the one a follower's acceptor
      // promised (the leader's after its phase 1 or keep-alive).
      term: Math.max(p?.ballot.round ?? 0, a?.promised.round ?? 0),
      leader,
      commitIndex: chosenUpTo,
      appliedIndex: l?.appliedUpTo ?? 0,
      lastIndex: highestSlot,
      voters: [...d.ids],
      learners: [],
      revision: sm.revision,
      keys: sm.size,
      links: d.links().map((x) => ({ peer: x.peer, state: x.state })),
      members: Object.fromEntries(d.members),
      cut: d.gate.cut(),
      uptimeMs: Math.round(this.ctx.clock.now() - d.startedAt),
      paxos: {
        ballot: p ? shortBallot(p.ballot) : '0',
        distinguished: leader,
        promised: a ? shortBallot(a.promised) : '0',
        chosenUpTo,
        highestSlot,
        inFlight: isLeader ? p.inFlight : 0,
        queued: isLeader ? p.queued : 0,
        floor: a?.floor ?? 0,
        snapshotIndex: l?.snapshotIndex ?? 0,
        ...(p?.leaseUntil !== undefined ? { leaseUntil: Math.round(p.leaseUntil) } : {}),
      },
    };
    return out;
  }
}

/** `round.node` (the proposer's actor address shortened to its node id). */
function shortBallot(b: { round: number; proposer: string }): string {
  return b.proposer === ''
    ? String(b.round)
    : formatBallot({ round: b.round, proposer: nodeOf(b.proposer) });
}
