/**
 * `synod backup full|diff|incr --cluster ws://host:port[,...]`: the agent joins a running
 * `synod node` cluster as a learner over WebSockets, catches up with what the leader had
 * committed, takes the backup, archives the log it received, leaves the configuration and
 * exits. Shared by the CLI, the demo and the tests.
 */

import { ActorSystem } from '../../lib/actor-system.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { discoverNodeId } from '../../lib/node/discover.js';
import type { AdminMsg, NodeStatus } from '../../lib/node/node-admin.js';
import { randomFromEntropy } from '../../lib/random.js';
import { parsePeer } from '../../transports/websocket/options.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import type { AgentStatus, BackupEvent, BackupFailedEvent, BackupSummary } from './agent.js';
import { chunkPool } from './chunk-pool.js';
import { BackupError } from './errors.js';
import { adminMembership, keepFollowing, LiveBackup, leaveStageOf } from './learner.js';
import type { BackupType, Manifest } from './manifest.js';
import { LivePaxosBackup } from './paxos-learner.js';
import type { ProgressFn } from './progress.js';
import type { Repository } from './repository.js';
import { KV_KIND, PAXOS_KV_KIND } from './state-kind.js';

export interface LiveBackupRun {
  /** `id=ws://host:port` or bare `ws://host:port`, comma-separated. */
  readonly cluster: string;
  /** The cluster name nodes were started with (`synod node --cluster`, default synod). */
  readonly clusterName?: string;
  readonly secret?: string;
  /** PEM CA file trusted when dialling `wss://` nodes (a private or self-signed CA). */
  readonly caFile?: string;
  readonly repo: Repository;
  readonly kind: BackupType;
  /** The learner's member id (default `backup`). */
  readonly agentId?: string;
  /** Where the agent listens (default 127.0.0.1, any free port). */
  readonly listen?: { host: string; port: number };
  readonly advertise?: string;
  /** The host the cluster reaches the agent at, with the port the agent bound (when listening on port 0). */
  readonly advertiseHost?: string;
  readonly progress?: ProgressFn;
  readonly log?: (line: string) => void;
  readonly clock?: Clock;
  readonly catchUpTimeoutMs?: number;
  /** The agent's actor-system logger (default: silent). */
  readonly logger?: Logger;
}

export interface LiveBackupResult extends BackupSummary {
  /** The leader's commit index the backup waited for (it holds at least this index). */
  readonly committedAtRequest: number;
  readonly archivedTo: number;
  readonly agentId: string;
  /** The cluster's protocol. */
  readonly protocol: 'raft' | 'paxos';
  /**
   * Multi-Paxos: requests sent, snapshots taken (each a gap in the log archive: the members had
   * compacted the slots the agent needed) and snapshot replies passed over for another member.
   */
  readonly pulled?: {
    readonly requests: number;
    readonly resets: number;
    readonly snapshotsDeclined: number;
  };
  /**
   * Set when the backup was written (its manifest is in the repository and it restores) but
   * the archive flush after it failed: the entries received after `archivedTo` are not
   * archived. The CLI then exits 3.
   */
  readonly archiveError?: ErrorInfo;
  /**
   * Set when the backup was written but the agent could not leave the cluster afterwards: on
   * Raft its learner `agentId` may still be in the configuration, and the leader keeps
   * replicating to it until an operator removes it (`synod member remove --id <agentId>`).
   * The CLI then exits 3.
   */
  readonly leaveError?: ErrorInfo;
}

const quietLogger: Logger = { log: () => {} };

export async function resolveContacts(
  spec: string,
  clusterName: string,
  clock: Clock,
  caFile?: string,
): Promise<{ id: string; url: string }[]> {
  const parts = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) {
    throw new BackupError('SYNOD_ERR_BACKUP_INVALID_ARGUMENT', '--cluster names no node');
  }
  const out: { id: string; url: string }[] = [];
  const errors: string[] = [];
  for (const p of parts) {
    if (p.includes('=')) {
      try {
        out.push(parsePeer(p));
      } catch (err) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
          `bad --cluster entry "${p}": ${(err as Error).message} (expected id=ws://host:port or ws://host:port)`,
        );
      }
    } else {
      if (!/^wss?:\/\//.test(p)) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
          `bad --cluster entry "${p}": expected ws://host:port or id=ws://host:port`,
        );
      }
      try {
        out.push({
          id: await discoverNodeId(p, {
            cluster: clusterName,
            clock,
            ...(caFile !== undefined ? { caFile } : {}),
          }),
          url: p,
        });
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  }
  if (out.length === 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE',
      `no cluster node answered: ${errors.join('; ')}`,
    );
  }
  return out;
}

/** What the CLI drives: a Raft learner (`LiveBackup`) or a Multi-Paxos puller (`LivePaxosBackup`). */
export interface LiveAgentHandle {
  readonly agent: LiveBackup<unknown>['agent'];
  committedIndex(): Promise<number>;
  catchUp(timeoutMs?: number): Promise<AgentStatus>;
  backup(kind: BackupType, timeoutMs?: number): Promise<BackupSummary>;
  flush(timeoutMs?: number): Promise<number>;
  status(): Promise<AgentStatus>;
  leave(opts?: { flush?: boolean }): Promise<void>;
}

/** A learner agent joined to a live cluster, and how to take it out again. */
export interface JoinedAgent {
  readonly live: LiveAgentHandle;
  /** Multi-Paxos only: the puller's counters. */
  readonly pulled?: () => LiveBackupResult['pulled'];
  /** The cluster's consensus protocol (from its nodes' status). */
  readonly protocol: 'raft' | 'paxos';
  readonly agentId: string;
  /** Leaves the configuration; errors propagate. */
  leave(opts?: { flush?: boolean }): Promise<void>;
  /** Leaves the configuration (if still in it), stops the actors, closes the transport. */
  close(): Promise<void>;
}

/** Resolves the contacts, opens a transport and joins the cluster as learner `agentId`. */
async function joinCluster(run: Omit<LiveBackupRun, 'kind'>): Promise<JoinedAgent> {
  const clock = run.clock ?? systemClock;
  const clusterName = run.clusterName ?? 'synod';
  const repo = run.repo;
  if (repo.config.state !== 'kv') {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `repository ${repo.dir} holds '${repo.config.state ?? 'map'}' state, not a KV cluster's: create one with synod backup init --state kv`,
    );
  }
  const clusterId = repo.config.clusterId ?? clusterName;
  const contacts = await resolveContacts(run.cluster, clusterName, clock, run.caFile);
  const agentId = run.agentId ?? 'backup';
  if (contacts.some((c) => c.id === agentId)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `--agent-id ${agentId} is the id of a cluster node: choose another`,
    );
  }
  const random = randomFromEntropy();
  const transport = await WebSocketTransport.create({
    nodeId: agentId,
    cluster: clusterName,
    listen: run.listen ?? { host: '127.0.0.1', port: 0 },
    peers: [],
    clock,
    random: random.fork(),
    ...(run.secret ? { secret: run.secret } : {}),
    ...(run.caFile !== undefined ? { tls: { caFile: run.caFile } } : {}),
    logger: { log: () => {} },
  });
  const system = new ActorSystem({
    nodeId: agentId,
    clock,
    random,
    transport,
    logger: run.logger ?? quietLogger,
  });
  const shutdown = async () => {
    await system.shutdown().catch(() => undefined);
    await transport.close(500).catch(() => undefined);
  };
  const bound = transport.address();
  const url =
    run.advertise ??
    (run.advertiseHost && bound
      ? `ws://${run.advertiseHost}:${bound.port}`
      : (bound?.url as string));
  let live: LiveAgentHandle;
  let protocol: 'raft' | 'paxos' = 'raft';
  try {
    for (const c of contacts) transport.addPeer(`${c.id}=${c.url}`);
    const status = await clusterStatus(system, contacts);
    protocol = status.protocol === 'paxos' ? 'paxos' : 'raft';
    await repo.adoptProtocol(protocol);
  } catch (err) {
    await shutdown();
    throw err;
  }
  if (protocol === 'paxos') {
    const membership = adminMembership(system, contacts);
    try {
      const status = await clusterStatus(system, contacts);
      const members = status.voters.length > 0 ? [...status.voters] : contacts.map((c) => c.id);
      for (const [id, memberUrl] of Object.entries(status.members ?? {})) {
        if (id !== agentId && !contacts.some((c) => c.id === id))
          transport.addPeer(`${id}=${memberUrl}`);
      }
      if (members.includes(agentId)) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
          `--agent-id ${agentId} is the id of a cluster node: choose another`,
        );
      }
      live = await LivePaxosBackup.start({
        system,
        members,
        membership: {
          committedIndex: () => membership.committedIndex(),
          leader: async () => (await clusterStatus(system, contacts)).leader ?? undefined,
        },
        repo,
        clusterId,
        kind: PAXOS_KV_KIND as never,
        ...(run.progress ? { progress: run.progress } : {}),
        ...(run.log ? { log: run.log } : {}),
      });
    } catch (err) {
      await shutdown();
      throw err;
    }
    let closed = false;
    const paxosLive = live as LivePaxosBackup<unknown>;
    return {
      live,
      protocol,
      pulled: () => {
        const v = paxosLive.pullerView();
        return v
          ? { requests: v.requests, resets: v.resets, snapshotsDeclined: v.snapshotsDeclined }
          : undefined;
      },
      agentId,
      leave: async (opts?: { flush?: boolean }) => {
        closed = true;
        await live.leave(opts);
      },
      close: async () => {
        if (!closed) {
          closed = true;
          await live.leave().catch(() => undefined);
        }
        await shutdown();
      },
    };
  }
  try {
    live = (await LiveBackup.start({
      system,
      url,
      addPeer: (spec) => transport.addPeer(spec),
      contacts,
      repo,
      clusterId,
      kind: KV_KIND,
      ...(run.progress ? { progress: run.progress } : {}),
      ...(run.log ? { log: run.log } : {}),
    })) as LiveBackup<unknown>;
  } catch (err) {
    await shutdown();
    throw err;
  }
  let left = false;
  return {
    live,
    protocol,
    agentId,
    leave: async (opts?: { flush?: boolean }) => {
      left = true;
      await live.leave(opts);
    },
    close: async () => {
      if (!left) {
        left = true;
        await live.leave().catch(() => undefined);
      }
      await shutdown();
    },
  };
}

/** The status of the first contact that answers (its protocol, leader, members). */
async function clusterStatus(
  system: ActorSystem,
  contacts: readonly { readonly id: string; readonly url: string }[],
  timeoutMs = 30_000,
): Promise<NodeStatus> {
  const errors: string[] = [];
  for (const c of contacts) {
    try {
      return (await system.ask(
        `${c.id}/admin`,
        { type: 'node.status' } as AdminMsg & { replyTo?: string },
        timeoutMs,
      )) as NodeStatus;
    } catch (err) {
      errors.push(`${c.id}: ${(err as Error).message}`);
    }
  }
  throw new BackupError(
    'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE',
    `asking for the status: no member answered (${errors.join('; ')})`,
  );
}

/**
 * A one-off backup whose repository says the state is smaller than this (`stateBytesEstimate`)
 * hashes and compresses its chunks in its own thread (chunk-pool.ts `useCallingThread`).
 */
export const SMALL_STATE_BYTES = 64 << 20;

/**
 * The state's size as the repository knows it: the newest full backup's bytes plus those of
 * every backup after it (an upper bound for what they changed); undefined without a full.
 */
export function stateBytesEstimate(
  manifests: readonly Pick<Manifest, 'type' | 'bytes'>[],
): number | undefined {
  let last = -1;
  for (let i = 0; i < manifests.length; i++) {
    if ((manifests[i] as Pick<Manifest, 'type'>).type === 'full') last = i;
  }
  if (last < 0) return undefined;
  let bytes = 0;
  for (let i = last; i < manifests.length; i++) bytes += (manifests[i] as Manifest).bytes;
  return bytes;
}

export async function liveBackup(run: LiveBackupRun): Promise<LiveBackupResult> {
  // A small state: no worker threads for its few chunks (the process would spend more CPU
  // starting them than hashing the chunks), which the cluster's writes share the cores with.
  // Without a full backup the state's size is unknown (the cluster may send a large snapshot).
  const estimate = stateBytesEstimate(await run.repo.list());
  if (estimate !== undefined && estimate < SMALL_STATE_BYTES && chunkPool.useCallingThread()) {
    run.log?.(
      `the state is about ${(estimate / 1048576).toFixed(1)} MiB: chunks are hashed and compressed in this thread`,
    );
  }
  const joined = await joinCluster(run);
  try {
    return await backupAndLeave(joined, run);
  } finally {
    await joined.close();
  }
}

/**
 * A joined agent's one backup: catch up with what the leader has committed, back up, flush
 * the archive, leave. A failure before the backup is written is the backup's failure. Once it
 * is written, nothing after it undoes it: a failed archive flush (`archiveError`: the entries
 * received after `archivedTo` were not archived) or a failure to leave the configuration
 * (`leaveError`: a Raft learner may still be in it) is reported beside the backup, never
 * thrown, so a written backup is never reported as failed (the CLI exits 3 and says which).
 */
export async function backupAndLeave(
  joined: Pick<JoinedAgent, 'live' | 'agentId' | 'protocol' | 'pulled' | 'leave'>,
  run: Pick<LiveBackupRun, 'kind' | 'log' | 'catchUpTimeoutMs'>,
): Promise<LiveBackupResult> {
  const { live, agentId } = joined;
  const target = await live.committedIndex();
  run.log?.(`the leader has committed index ${target}; catching up`);
  await live.catchUp(run.catchUpTimeoutMs ?? 300_000);
  const summary = await live.backup(run.kind);
  const after = await flushAndLeave(joined, (line) =>
    run.log?.(`backup ${summary.id} is written, but ${line}`),
  );
  const pulled = joined.pulled?.();
  return {
    ...summary,
    committedAtRequest: target,
    archivedTo: after.archivedTo,
    agentId,
    protocol: joined.protocol,
    ...(pulled ? { pulled } : {}),
    ...(after.archiveError ? { archiveError: after.archiveError } : {}),
    ...(after.leaveError ? { leaveError: after.leaveError } : {}),
  };
}

/** An error as plain data (code and message) for results and JSON output. */
export interface ErrorInfo {
  readonly code?: string;
  readonly message: string;
}

function errorInfo(err: unknown): ErrorInfo {
  const e = err as { code?: unknown; message?: unknown } | null;
  return {
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}

/**
 * Flushes the archive, then leaves; neither failure is thrown. `archivedTo` is the flush's
 * index, or when it failed the highest index the agent reports durably archived (0 when it
 * cannot say).
 */
async function flushAndLeave(
  joined: Pick<JoinedAgent, 'live' | 'leave'>,
  log: (line: string) => void,
): Promise<{ archivedTo: number; archiveError?: ErrorInfo; leaveError?: ErrorInfo }> {
  const { live } = joined;
  let archivedTo: number;
  let archiveError: ErrorInfo | undefined;
  let leaveError: ErrorInfo | undefined;
  try {
    archivedTo = await live.flush();
  } catch (err) {
    archiveError = errorInfo(err);
    archivedTo = await live.status().then(
      (st) => st.archivedTo,
      () => 0,
    );
  }
  try {
    // After a failed flush, leave without another (it would wait out the same timeout).
    await joined.leave(archiveError ? { flush: false } : undefined);
  } catch (err) {
    if (leaveStageOf(err) === 'archive') archiveError ??= errorInfo(err);
    else {
      leaveError = errorInfo(err);
      const also = (err as { archiveError?: unknown }).archiveError;
      if (also !== undefined) archiveError ??= errorInfo(also);
    }
  }
  if (archiveError)
    log(`the log archive after index ${archivedTo} was not written: ${archiveError.message}`);
  if (leaveError) log(`the agent could not leave the cluster: ${leaveError.message}`);
  return {
    archivedTo,
    ...(archiveError ? { archiveError } : {}),
    ...(leaveError ? { leaveError } : {}),
  };
}

/**
 * The warnings for what failed after the agent's backups were written: the archive's last
 * entries, and leaving the cluster. Empty when nothing did.
 */
export function afterBackupWarnings(r: {
  readonly protocol: 'raft' | 'paxos';
  readonly agentId: string;
  readonly archivedTo: number;
  readonly archiveError?: ErrorInfo | undefined;
  readonly leaveError?: ErrorInfo | undefined;
}): string[] {
  const why = (e: ErrorInfo) => `${e.code ? `${e.code}: ` : ''}${e.message}`;
  const out: string[] = [];
  if (r.archiveError) {
    out.push(
      `warning: the log archive could not be written after index ${r.archivedTo} (${why(r.archiveError)}): the entries the agent received after it are not archived, so a point-in-time restore beyond it needs another agent's archive`,
    );
  }
  if (r.leaveError) {
    out.push(
      r.protocol === 'paxos'
        ? `warning: puller ${r.agentId} did not stop cleanly (${why(r.leaveError)}); it holds no place in the cluster`
        : `warning: learner ${r.agentId} may still be in the cluster's configuration (${why(r.leaveError)}): check with \`synod member list --cluster …\`; while it is listed the leader keeps replicating to it. Remove it with \`synod member remove --cluster … --id ${r.agentId} --admin-secret-file F\` (the admin secret the nodes were started with)`,
    );
  }
  return out;
}

export interface LiveAgentRun extends Omit<LiveBackupRun, 'kind'> {
  /** Resolves when the agent should stop (SIGINT/SIGTERM in the CLI). */
  readonly stop: Promise<unknown>;
  /** Called once the agent has caught up, with its status (next scheduled backup, ...). */
  readonly onReady?: (status: AgentStatus) => void;
  /**
   * Called for each backup written or failed while the agent runs, with its window on the
   * wall clock (requested, write started, ended). When set, those backups are not also
   * reported through `log`.
   */
  readonly onBackup?: (event: BackupEvent | BackupFailedEvent) => void;
}

export interface LiveAgentResult {
  readonly agentId: string;
  /** Backups written while the agent ran (scheduled ones), in order. */
  readonly backups: readonly {
    readonly id: string;
    readonly kind: BackupType;
    readonly index: number;
  }[];
  readonly archivedTo: number;
  readonly appliedTo: number;
  /** The final archive flush failed (see `backupAndLeave`). */
  readonly archiveError?: ErrorInfo;
  /** Leaving the configuration failed: the learner may still be in it. */
  readonly leaveError?: ErrorInfo;
  /** The cluster's protocol (a Multi-Paxos agent pulls; it never joins the configuration). */
  readonly protocol: 'raft' | 'paxos';
}

/**
 * The long-running backup agent (`synod backup agent`): joins as a learner and stays, keeps
 * the log archive current (point-in-time restore up to the last few seconds), runs the
 * repository's schedule and retention (`synod backup schedule`), and on `stop` flushes the
 * archive and leaves the configuration.
 */
export async function runLiveAgent(run: LiveAgentRun): Promise<LiveAgentResult> {
  const joined = await joinCluster(run);
  const { live, agentId } = joined;
  const backups: { id: string; kind: BackupType; index: number }[] = [];
  const sub = live.agent.events$.subscribe((e) => {
    const ev = e as unknown as {
      type: string;
      id?: string;
      kind?: BackupType;
      index?: number;
      error?: string;
    };
    if (ev.type === 'backup' && ev.id && ev.kind && ev.index !== undefined) {
      backups.push({ id: ev.id, kind: ev.kind, index: ev.index });
      if (run.onBackup) run.onBackup(e as unknown as BackupEvent);
      else run.log?.(`${ev.kind} backup ${ev.id} written at index ${ev.index}`);
    } else if (ev.type === 'backup-failed' && run.onBackup) {
      run.onBackup(e as unknown as BackupFailedEvent);
    } else if (ev.type.endsWith('failed')) {
      run.log?.(`${ev.type}: ${ev.error ?? ''}`);
    } else if (ev.type === 'stalled' || ev.type === 'resynced') {
      run.log?.(`agent ${ev.type}: ${JSON.stringify(ev)}`);
    }
  });
  try {
    const target = await live.committedIndex();
    run.log?.(`the leader has committed index ${target}; catching up`);
    await live.catchUp(run.catchUpTimeoutMs ?? 300_000);
    // While it runs, check that it still follows live (else its entries are archived as caught
    // up until it does again: a restore to a time among them refuses instead of guessing).
    const following = keepFollowing(
      run.clock ?? systemClock,
      live.agent,
      () => live.committedIndex(),
      run.stop,
      run.log ? { log: run.log } : {},
    );
    run.onReady?.(await live.status());
    await run.stop;
    await following;
    const appliedTo = await live.status().then(
      (st) => st.index,
      () => -1,
    );
    const after = await flushAndLeave(joined, (line) => run.log?.(line));
    return {
      agentId,
      backups,
      archivedTo: after.archivedTo,
      appliedTo,
      protocol: joined.protocol,
      ...(after.archiveError ? { archiveError: after.archiveError } : {}),
      ...(after.leaveError ? { leaveError: after.leaveError } : {}),
    };
  } finally {
    sub.unsubscribe();
    await joined.close();
  }
}
