/**
 * The backup agent on a live cluster: a non-voting member. `LiveBackup.start` spawns, in an
 * actor system on the cluster's transport, a Raft learner (`<agent id>/raft`, in-memory
 * log: the repository's archive is the durable copy) and a `BackupAgent` that follows it,
 * then asks a member's admin actor to add it as a learner (the leader replicates the
 * committed log to it like to any follower; it never votes, so it neither slows commits nor
 * changes quorums). `catchUp` waits until the agent has applied everything the leader had
 * committed when it was called; `backup` captures between two applies; `leave` removes
 * the learner from the configuration and stops the actors.
 *
 * When the leader's log no longer holds the entries the learner needs, it sends a
 * snapshot: the learner's snapshot store hands the image to the agent (`reset`), which
 * takes that state instead of stalling (docs/backup.md, "Joining a compacted cluster").
 *
 * The learner runs a null state machine: the agent keeps the only copy of the state.
 */
import { map, type Observable, type Subscription } from 'rxjs';
import type { ActorEvent, ActorRef } from '../../lib/actor.js';
import type { ActorSystem } from '../../lib/actor-system.js';
import type { Clock } from '../../lib/clock.js';
import { encodeValue } from '../../lib/codec.js';
import type { AdminMsg, NodeStatus } from '../../lib/node/node-admin.js';
import type { StateMachine } from '../../lib/replicated-log.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import type { SnapshotStore, SnapshotWriter } from '../../lib/storage/types.js';
import { RaftNode } from '../raft/raft-node.js';
import { type AgentStatus, BackupAgent, type BackupAgentMsg, type BackupSummary } from './agent.js';
import { BackupError, isBackupError } from './errors.js';
import type { BackupType } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Repository } from './repository.js';
import type { StateKind } from './state-kind.js';

/**
 * Applies nothing: the learner only carries the log to the agent. Its own snapshots exist only
 * so the learner can compact its in-memory log (a long-running agent's log would otherwise
 * grow for ever); their image is `marker`, 16 bytes drawn from the actor system's Random for
 * this learner, so the snapshot tap can tell them from the leader's InstallSnapshot images by
 * content (see `tapSnapshots`).
 */
class NullStateMachine implements StateMachine<unknown, undefined> {
  constructor(readonly marker: Uint8Array) {}
  apply(): undefined {
    return undefined;
  }
  snapshot(): Uint8Array {
    return this.marker;
  }
  restore(): void {}
}

/** The image of a learner's own snapshots: a fixed prefix and 16 random bytes. */
export function learnerMarker(random: { nextUint32(): number }): Buffer {
  const m = Buffer.alloc(32);
  m.write('SYNL', 0, 'latin1');
  for (let i = 0; i < 4; i++) m.writeUInt32BE(random.nextUint32(), 4 + i * 4);
  m.write('own-snapshot', 20, 'latin1');
  return m;
}

/**
 * Passes every snapshot the learner installs from the leader to `onSnapshot` once it is
 * durable. The learner's own snapshots pass untapped: RaftNode stores what the state machine's
 * `snapshot()` returned, wrapped in its session image, so an own snapshot's bytes contain
 * `marker`; a leader's image never does (the marker is random per learner and never leaves
 * it). This depends only on the image's content, not on when RaftNode calls `snapshot()`
 * relative to `create()` (an earlier version counted calls, which an InstallSnapshot stored
 * between the two — RaftNode awaits the log's durability there — would have misread).
 */
export function tapSnapshots(
  inner: SnapshotStore,
  onSnapshot: (index: number, term: number, image: Uint8Array) => void,
  marker: Buffer,
): SnapshotStore {
  return {
    create: async (meta) => {
      const w = await inner.create(meta);
      const parts: Uint8Array[] = [];
      const tapped: SnapshotWriter = {
        write: async (data) => {
          parts.push(data.slice());
          await w.write(data);
        },
        commit: async () => {
          const m = await w.commit();
          const image = Buffer.concat(parts);
          if (!image.includes(marker)) onSnapshot(meta.index, meta.term, image);
          return m;
        },
        abort: () => w.abort(),
      };
      return tapped;
    },
    latest: () => inner.latest(),
    list: () => inner.list(),
    prune: (keep) => inner.prune(keep),
    close: () => inner.close(),
  };
}

/**
 * How the learner enters and leaves the configuration, and what the cluster has committed.
 * `adminMembership` (the default) asks `synod node`'s admin actors over the transport; an
 * embedded cluster can call its leader's RaftNode directly (the demo tour does).
 */
export interface ClusterMembership {
  /** Adds `id` (reachable at `url`) as a learner; resolves with the members' URLs. */
  join(id: string, url: string): Promise<Record<string, string>>;
  /** Removes `id` from the configuration; resolves with a message. */
  leave(id: string): Promise<string>;
  /** The leader's commit index now. */
  committedIndex(): Promise<number>;
  /** The cluster's voters and learners now (lets the learner start from the agent's state). */
  members?(): Promise<{ voters: string[]; learners: string[] }>;
}

export interface LiveBackupOptions<Op> {
  /** An actor system on the cluster's transport; its node id is the agent's member id. */
  readonly system: ActorSystem;
  /** The URL the cluster reaches this process at. */
  readonly url: string;
  /** Adds a peer to the transport (`id=ws://host:port`). */
  readonly addPeer: (spec: string) => void;
  /** Members to ask (id and URL); the first that answers forwards to the leader. */
  readonly contacts: readonly { readonly id: string; readonly url: string }[];
  /** Default: the admin actors of `synod node` (through `contacts`). */
  readonly membership?: ClusterMembership;
  readonly repo: Repository;
  readonly clusterId: string;
  readonly kind: StateKind<Op>;
  readonly progress?: ProgressFn;
  /** Raft timing; must match the cluster's (defaults as `synod node`). */
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  /**
   * The learner compacts its in-memory log every this many applied entries (default 10,000),
   * keeping `learnerKeepEntries` (default 1,000), so a long-running agent's memory stays bounded.
   */
  readonly learnerSnapshotEvery?: number;
  readonly learnerKeepEntries?: number;
  /** Bound on each admin request (default 30 s). */
  readonly requestTimeoutMs?: number;
  /**
   * Start the learner from the agent's own state (default true): when the agent recovered a
   * state at index i, term t from the repository, the learner's log starts with a snapshot at
   * (i, t), so the leader replicates only entries after i — no InstallSnapshot of the whole
   * state and no log from index 1 per backup — as long as its log still holds i + 1.
   */
  readonly seedFromAgent?: boolean;
  /** A seeded learner that takes no entry for this long is restarted unseeded (default 15 s). */
  readonly seedCheckMs?: number;
  /** Tests: the term written into the seed (to simulate one that does not match the leader's). */
  readonly seedTermForTest?: (term: number) => number;
  /** See `FollowOptions.toleranceMs` (default `FOLLOW_TOLERANCE_MS`). */
  readonly followToleranceMs?: number;
  readonly log?: (line: string) => void;
}

export class LiveBackup<Op = unknown> {
  private joined = false;

  private readonly membership: ClusterMembership;

  private constructor(
    private readonly opts: LiveBackupOptions<Op>,
    readonly agent: ActorRef<BackupAgentMsg<Op>, AgentStatus>,
    private raftRef: ActorRef<never, unknown>,
  ) {
    this.membership =
      opts.membership ?? adminMembership(opts.system, opts.contacts, opts.requestTimeoutMs);
  }

  get id(): string {
    return this.opts.system.nodeId;
  }

  private learner: RaftNode<Op, undefined> | undefined;

  /** The learner's in-memory log: its first and last index (what it holds now). */
  learnerLogSpan(): { first: number; last: number } | undefined {
    const log = this.learner?.inspectCore()?.log;
    return log ? { first: log.firstIndex(), last: log.lastIndex() } : undefined;
  }

  /** Spawns the learner and the agent and joins the cluster as a learner. */
  static async start<Op>(opts: LiveBackupOptions<Op>): Promise<LiveBackup<Op>> {
    const { system } = opts;
    for (const c of opts.contacts) opts.addPeer(`${c.id}=${c.url}`);
    const agent = system.spawn(
      'backup',
      new BackupAgent<Op>({
        repo: opts.repo,
        clusterId: opts.clusterId,
        factory: opts.kind.factory,
        fromSnapshotImage: (image) => opts.kind.entriesFromNodeImage(image),
        ...(opts.progress ? { progress: opts.progress } : {}),
      }),
      { supervision: { kind: 'stop' } },
    );
    const clock = system.clock;
    await waitStarted(agent.events$, 'the backup agent', clock);
    const seed =
      opts.seedFromAgent === false
        ? undefined
        : await seedPoint(opts, agent as ActorRef<BackupAgentMsg<Op>, AgentStatus>);
    if (seed) {
      opts.log?.(
        `the learner starts at the agent's index ${seed.index} (term ${seed.term}): the leader sends only later entries`,
      );
    }
    const learner = await spawnLearner(opts, agent, seed);
    const live = new LiveBackup<Op>(opts, agent, learner.ref);
    live.learner = learner.raft;
    live.seed = seed;
    await live.join();
    return live;
  }

  private seed: SeedPoint | undefined;

  /**
   * A seeded learner whose seed does not match the leader's log (the term archived for the
   * seed entry differs from the leader's: repositories written before no-op entries were
   * archived with their own term) can never take an entry. When a seeded learner has applied
   * nothing past its seed while the leader committed beyond it, it is replaced by an unseeded
   * one, which leaves and joins again: the leader then sends the log from the start (or a
   * snapshot), as without seeding.
   */
  private async fallBackUnseeded(): Promise<void> {
    const seed = this.seed;
    if (!seed) return;
    this.seed = undefined;
    this.opts.log?.(
      `the learner made no progress from the agent's index ${seed.index}; starting it from the beginning`,
    );
    await this.opts.system.stop(this.raftRef.address).catch(() => undefined);
    // The leader believes the stuck learner matches up to the seed and would not go below
    // that for a fresh one: leave and join again, so it starts the new learner from scratch.
    if (this.joined) {
      await this.membership.leave(this.id);
      this.joined = false;
    }
    const learner = await spawnLearner(this.opts, this.agent, undefined);
    this.raftRef = learner.ref;
    this.learner = learner.raft;
    await this.join();
  }

  private async join(): Promise<void> {
    const members = await this.membership.join(this.id, this.opts.url);
    for (const [id, url] of Object.entries(members)) {
      if (id !== this.id) this.opts.addPeer(`${id}=${url}`);
    }
    this.joined = true;
    this.opts.log?.(`joined the cluster as learner ${this.id}`);
  }

  /** The leader's commit index now. */
  committedIndex(): Promise<number> {
    return this.membership.committedIndex();
  }

  /**
   * Waits until the agent has applied everything the leader had committed when this was
   * called (so a backup taken next holds every write acknowledged before it), then tells it
   * `live` once it keeps up with the cluster (`goLive`): the entries applied until then are
   * archived as `caught-up`, later ones as `observed`.
   */
  async catchUp(timeoutMs = 120_000): Promise<AgentStatus> {
    const target = await this.membership.committedIndex();
    const clock = this.opts.system.clock;
    const deadline = clock.now() + timeoutMs;
    const seed = this.seed;
    if (seed && target > seed.index) {
      // A seeded learner must move past its seed within seedCheckMs, else it is replaced.
      const moved = await waitFor(
        clock,
        this.agent.state$,
        (st) => st.index > seed.index || st.stalled !== null,
        'the seeded learner to take an entry',
        Math.min(timeoutMs, this.opts.seedCheckMs ?? 15_000),
      ).then(
        () => true,
        (err: unknown) => {
          if (isBackupError(err, 'SYNOD_ERR_BACKUP_TIMEOUT')) return false;
          throw err;
        },
      );
      if (!moved) await this.fallBackUnseeded();
    }
    const s = await waitFor(
      clock,
      this.agent.state$,
      (st) => st.index >= target || st.stalled !== null,
      `the agent to apply up to index ${target}`,
      Math.max(1, deadline - clock.now()),
    );
    if (s.stalled) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_BUSY',
        `the agent stalled at index ${s.stalled.expected - 1} (the learner skipped entries)`,
      );
    }
    // Everything so far was caught up (archived as such); from here on it may follow live.
    await goLive(clock, this.agent, () => this.membership.committedIndex(), {
      ...(this.opts.followToleranceMs !== undefined
        ? { toleranceMs: this.opts.followToleranceMs }
        : {}),
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    return s;
  }

  backup(kind: BackupType, timeoutMs = 24 * 3600_000): Promise<BackupSummary> {
    return this.agent.ask({ type: 'backup', kind } as never, timeoutMs) as Promise<BackupSummary>;
  }

  flush(timeoutMs = 120_000): Promise<number> {
    return this.agent.ask({ type: 'flush' } as never, timeoutMs) as Promise<number>;
  }

  status(): Promise<AgentStatus> {
    return this.agent.ask({ type: 'status' } as never, 10_000) as Promise<AgentStatus>;
  }

  /** Archives what is buffered, leaves the configuration, stops the learner and the agent. */
  /**
   * `flush: false` skips the archive flush (the caller's own flush just failed: a second try
   * would wait out the same timeout).
   */
  async leave(opts: { flush?: boolean } = {}): Promise<void> {
    let archive: unknown;
    let membership: unknown;
    if (opts.flush !== false) {
      try {
        await this.flush();
      } catch (err) {
        archive = err;
      }
    }
    if (this.joined) {
      try {
        const message = await this.membership.leave(this.id);
        this.joined = false;
        this.opts.log?.(`left the cluster (${message})`);
      } catch (err) {
        membership = err;
      }
    }
    await this.opts.system.stop(this.raftRef.address).catch(() => undefined);
    await this.opts.system.stop(this.agent.address).catch(() => undefined);
    if (membership !== undefined) throw leaveFailure('membership', membership, archive);
    if (archive !== undefined) throw leaveFailure('archive', archive);
  }
}

/**
 * Which part of an agent's `leave()` failed, on the error it throws: `archive`, the final flush
 * of the log archive (the agent did leave; entries it received after its last flush were not
 * written), or `membership`, leaving the configuration (a Raft learner may still be in it; the
 * error then also carries `archiveError` when the flush failed too).
 */
export type LeaveStage = 'archive' | 'membership';

export function leaveFailure(stage: LeaveStage, err: unknown, archiveError?: unknown): unknown {
  if (err === null || typeof err !== 'object') return err;
  const e = err as { leaveStage?: LeaveStage; archiveError?: unknown };
  e.leaveStage = stage;
  if (archiveError !== undefined) e.archiveError = archiveError;
  return err;
}

/** The stage a `leave()` error names (an untagged error counts as `membership`). */
export function leaveStageOf(err: unknown): LeaveStage {
  return (err as { leaveStage?: LeaveStage } | null)?.leaveStage === 'archive'
    ? 'archive'
    : 'membership';
}

/**
 * Spawns the learner (`<agent id>/raft`, in-memory log, the null state machine) and feeds the
 * agent from it: commands with their result, and the entries without one (no-op,
 * configuration, skipped) as index steps, so the agent's archive stays contiguous.
 */
async function spawnLearner<Op>(
  opts: LiveBackupOptions<Op>,
  agent: ActorRef<BackupAgentMsg<Op>, AgentStatus>,
  seed: SeedPoint | undefined,
): Promise<{ ref: ActorRef<never, unknown>; raft: RaftNode<Op, undefined> }> {
  const { system } = opts;
  const disk = new MemoryDisk();
  const marker = learnerMarker(system.random);
  let seeded = false;
  const raft = new RaftNode<Op, undefined>({
    storage: async () => {
      const dd = await openMemoryDataDir(disk);
      if (seed && !seeded) {
        seeded = true;
        await writeSeed(dd, seed, marker);
      }
      return {
        ...dd,
        snapshots: tapSnapshots(
          dd.snapshots,
          (index, term, image) => agent.tell({ type: 'reset', index, term, image }),
          marker,
        ),
      };
    },
    stateMachine: () => new NullStateMachine(marker) as unknown as StateMachine<Op, undefined>,
    // The in-memory log is compacted behind empty snapshots: the agent has every entry
    // already (they reach it as they are applied), and a learner serves no one.
    snapshotEvery: opts.learnerSnapshotEvery ?? 10_000,
    keepEntries: opts.learnerKeepEntries ?? 1000,
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.electionMs ? { electionMs: opts.electionMs } : {}),
  });
  const ref = system.spawn('raft', raft, { supervision: { kind: 'stop' } });
  await waitStarted(ref.events$, 'the learner', system.clock);
  const sub = raft.appliedSteps$.subscribe((step) =>
    agent.tell(
      step.entry
        ? { type: 'applied', entry: step.entry }
        : { type: 'applied-index', index: step.index, term: step.term },
    ),
  );
  ref.events$.subscribe({ complete: () => sub.unsubscribe() });
  return { ref: ref as ActorRef<never, unknown>, raft };
}

interface SeedPoint {
  readonly index: number;
  readonly term: number;
  readonly voters: string[];
  readonly learners: string[];
}

/**
 * Where the learner can start: the agent's recovered index and term, with the cluster's
 * membership (the learner itself a learner, so it never campaigns). None when the agent starts
 * empty, or the membership is unknown.
 */
async function seedPoint<Op>(
  opts: LiveBackupOptions<Op>,
  agent: ActorRef<BackupAgentMsg<Op>, AgentStatus>,
): Promise<SeedPoint | undefined> {
  const st = agent.getSnapshot();
  if (!st || st.index <= 0 || st.term <= 0 || st.stalled) return undefined;
  const membership =
    opts.membership ?? adminMembership(opts.system, opts.contacts, opts.requestTimeoutMs);
  if (!membership.members) return undefined;
  const m = await membership.members().catch(() => undefined);
  if (!m || m.voters.length === 0) return undefined;
  const self = opts.system.nodeId;
  return {
    index: st.index,
    term: opts.seedTermForTest ? opts.seedTermForTest(st.term) : st.term,
    voters: m.voters.filter((v) => v !== self),
    learners: [...m.learners.filter((l) => l !== self), self],
  };
}

/** A snapshot of the null state machine at the seed point, the log compacted behind it. */
async function writeSeed(
  dd: Awaited<ReturnType<typeof openMemoryDataDir>>,
  seed: SeedPoint,
  marker: Uint8Array,
): Promise<void> {
  const w = await dd.snapshots.create({
    index: seed.index,
    term: seed.term,
    membership: { voters: seed.voters, learners: seed.learners },
  });
  // RaftNode's SessionStateMachine image around the null state machine's (its marker).
  await w.write(encodeValue({ v: 1, sessions: [], user: marker }));
  await w.commit();
  await dd.log.compact(seed.index, seed.term);
  await dd.hardState.save({ term: seed.term, vote: null, commit: seed.index });
}

/**
 * How close behind the cluster an agent must be to archive entries as `observed` (ms): a round
 * of `followRound` passes when the agent has applied the leader's commit index within this long
 * of asking for it.
 */
export const FOLLOW_TOLERANCE_MS = 2000;

/** A standing agent checks that it still follows the cluster this often (ms). */
export const FOLLOW_CHECK_MS = 5000;

export interface FollowOptions {
  /** Default `FOLLOW_TOLERANCE_MS`. */
  readonly toleranceMs?: number;
  /** `goLive`: rounds before giving up (the agent stays `caught-up`). Default 5. */
  readonly maxRounds?: number;
  /** `keepFollowing`: the pause between two rounds that passed. Default `FOLLOW_CHECK_MS`. */
  readonly checkMs?: number;
  readonly log?: (line: string) => void;
}

type FollowedAgent = Pick<ActorRef<BackupAgentMsg<never>, AgentStatus>, 'state$' | 'tell'>;

/**
 * One round of "does the agent follow the cluster live?": asks the cluster's commit index *c* at
 * *t0* and resolves true when the agent has applied *c* by *t0* + `toleranceMs`, false when it
 * has not (the answer or the applies came later, the ask failed, or the agent stalled). Every
 * entry after *c* was committed after *t0* (the commit index only grows), so once a round passes,
 * an entry the agent applies from then on reaches it within about `toleranceMs` of its commit,
 * as long as it keeps up (which `keepFollowing` checks again).
 */
export function followRound(
  clock: Clock,
  agent: FollowedAgent,
  committedIndex: () => Promise<number>,
  toleranceMs: number,
): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let done = false;
    const t0 = clock.now();
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      timer.cancel();
      resolve(ok);
    };
    const timer = clock.setTimer(toleranceMs, () => finish(false));
    committedIndex()
      .then((c) => {
        if (done) return undefined;
        return waitFor(
          clock,
          agent.state$,
          (st) => st.index >= c || st.stalled !== null,
          `the agent to apply up to index ${c}`,
          Math.max(1, toleranceMs - (clock.now() - t0)),
        );
      })
      .then(
        (st) => {
          if (st) finish(st.stalled === null && clock.now() - t0 <= toleranceMs);
        },
        () => finish(false),
      );
  });
}

/**
 * After a catch-up: runs `followRound` until one passes (at most `maxRounds`), then tells the
 * agent `live` (it archives entries as `observed` from then on) and resolves true. The entries
 * applied meanwhile stay `caught-up`. False when no round passed: the agent keeps archiving
 * entries as `caught-up`, which is conservative (a restore to a time among them refuses).
 */
export async function goLive(
  clock: Clock,
  agent: FollowedAgent,
  committedIndex: () => Promise<number>,
  opts: FollowOptions = {},
): Promise<boolean> {
  const tol = opts.toleranceMs ?? FOLLOW_TOLERANCE_MS;
  const rounds = opts.maxRounds ?? 5;
  for (let i = 0; i < rounds; i++) {
    if (await followRound(clock, agent, committedIndex, tol)) {
      agent.tell({ type: 'live' });
      return true;
    }
  }
  opts.log?.(
    `the agent did not keep within ${tol} ms of the cluster in ${rounds} rounds: its entries stay archived as caught up`,
  );
  return false;
}

/**
 * A standing agent's watch (`synod backup agent`): every `checkMs` a `followRound`; one that
 * fails (the agent fell behind: a disconnection, a slow disk, an election) tells the agent
 * `catching-up` at once, and rounds then run back to back until one passes, which tells it
 * `live` again. Entries applied between a round that passed and the next one are archived as
 * `observed` even if the agent fell behind in between: `observed` means within about
 * `checkMs` + `toleranceMs` of the commit at worst (docs/backup.md). Runs until `stop` settles.
 */
export async function keepFollowing(
  clock: Clock,
  agent: FollowedAgent & Pick<ActorRef<BackupAgentMsg<never>, AgentStatus>, 'getSnapshot'>,
  committedIndex: () => Promise<number>,
  stop: Promise<unknown>,
  opts: FollowOptions = {},
): Promise<void> {
  const tol = opts.toleranceMs ?? FOLLOW_TOLERANCE_MS;
  const checkMs = opts.checkMs ?? FOLLOW_CHECK_MS;
  let stopped = false;
  const stopping = stop.then(
    () => {
      stopped = true;
    },
    () => {
      stopped = true;
    },
  );
  const pause = async (ms: number) => {
    let timer: { cancel(): void } | undefined;
    await Promise.race([
      stopping,
      new Promise<void>((resolve) => (timer = clock.setTimer(ms, resolve))),
    ]);
    timer?.cancel();
  };
  while (!stopped) {
    const ok = await followRound(clock, agent, committedIndex, tol);
    if (stopped) break;
    const live = agent.getSnapshot()?.live === true;
    if (ok && !live) {
      agent.tell({ type: 'live' });
      opts.log?.('the agent follows the cluster live again: entries are archived as observed');
    } else if (!ok && live) {
      agent.tell({
        type: 'catching-up',
        reason: `not within ${tol} ms of the cluster's commit index`,
      });
      opts.log?.(
        `the agent fell more than ${tol} ms behind the cluster: entries are archived as caught up until it keeps up again`,
      );
    }
    await pause(ok ? checkMs : Math.min(checkMs, 250));
  }
}

/** A refusal that a moment later may succeed: the cluster is between two leaders. */
const NO_LEADER = /no leader right now|not the leader|try again in a moment/i;

/**
 * Repeats a membership request while the cluster answers that it has no leader (an election
 * under way), every 250 ms up to `timeoutMs`; returns the last answer.
 */
export async function whileNoLeader<R extends { ok: boolean; message: string }>(
  clock: Clock,
  timeoutMs: number,
  ask: () => Promise<R>,
): Promise<R> {
  const end = clock.now() + timeoutMs;
  for (;;) {
    const r = await ask();
    if (r.ok || !NO_LEADER.test(r.message) || clock.now() >= end) return r;
    await new Promise<void>((resolve) => clock.setTimer(250, resolve));
  }
}

/**
 * The cluster's commit index from a member's status: the member's own when it leads, else its
 * leader's. While the cluster is between two leaders (no leader known, or the one named does
 * not answer), asks again every 250 ms up to `timeoutMs` (found at load 30: an agent starting
 * during an election failed with "the cluster has no leader"). No member answering at all is
 * an error at once, as before.
 */
export async function commitIndexThroughElections(
  clock: Clock,
  timeoutMs: number,
  status: () => Promise<Pick<NodeStatus, 'role' | 'leader' | 'commitIndex'>>,
  leaderStatus: (leader: string) => Promise<Pick<NodeStatus, 'commitIndex'>>,
): Promise<number> {
  const end = clock.now() + timeoutMs;
  for (;;) {
    const s = await status();
    if (s.role === 'leader') return s.commitIndex;
    let why = 'the cluster has no leader';
    if (s.leader) {
      try {
        return (await leaderStatus(s.leader)).commitIndex;
      } catch (err) {
        why = `its leader ${s.leader} does not answer (${(err as Error).message})`;
      }
    }
    if (clock.now() >= end) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE',
        `${why}, still after ${timeoutMs} ms`,
      );
    }
    await new Promise<void>((resolve) => clock.setTimer(250, resolve));
  }
}

/** Membership through `synod node`'s admin actors (lib/node/node-admin.ts). */
export function adminMembership(
  system: ActorSystem,
  contacts: readonly { readonly id: string; readonly url: string }[],
  timeoutMs = 30_000,
): ClusterMembership {
  const ask = async <R>(to: string, msg: AdminMsg): Promise<R> =>
    (await system.ask(`${to}/admin`, msg as AdminMsg & { replyTo?: string }, timeoutMs)) as R;
  const askAny = async <R>(msg: AdminMsg, what: string): Promise<R> => {
    const errors: string[] = [];
    for (const c of contacts) {
      try {
        return await ask<R>(c.id, msg);
      } catch (err) {
        errors.push(`${c.id}: ${(err as Error).message}`);
      }
    }
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE',
      `${what}: no member answered (${errors.join('; ')})`,
    );
  };
  return {
    async join(id, url) {
      const r = await whileNoLeader(system.clock, timeoutMs, () =>
        askAny<{ ok: boolean; message: string; members: Record<string, string> }>(
          { type: 'node.join', id, url, learner: true } as AdminMsg,
          'joining the cluster as a learner',
        ),
      );
      if (!r.ok)
        throw new BackupError('SYNOD_ERR_BACKUP_JOIN', `joining as a learner: ${r.message}`);
      return r.members;
    },
    async leave(id) {
      const r = await whileNoLeader(system.clock, timeoutMs, () =>
        askAny<{ ok: boolean; message: string }>(
          { type: 'node.leave', id } as AdminMsg,
          'leaving the cluster',
        ),
      );
      if (!r.ok) throw new BackupError('SYNOD_ERR_BACKUP_JOIN', `leaving: ${r.message}`);
      return r.message;
    },
    async members() {
      const s = await askAny<NodeStatus>(
        { type: 'node.status' } as AdminMsg,
        'asking for the members',
      );
      return { voters: [...s.voters], learners: [...s.learners] };
    },
    committedIndex() {
      return commitIndexThroughElections(
        system.clock,
        timeoutMs,
        () => askAny<NodeStatus>({ type: 'node.status' } as AdminMsg, 'asking for the status'),
        (leader) => ask<NodeStatus>(leader, { type: 'node.status' } as AdminMsg),
      );
    },
  };
}

export function waitStarted(
  events$: Observable<ActorEvent>,
  what: string,
  clock: Clock,
): Promise<unknown> {
  return waitFor(
    clock,
    events$.pipe(
      map((e) => {
        if (e.type === 'failed' || e.type === 'stopped') {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_IO',
            `${what} could not start: ${String((e as { error?: unknown }).error ?? e.type)}`,
          );
        }
        return e;
      }),
    ),
    (e) => e.type === 'started',
    `${what} to start`,
    120_000,
  );
}

export function waitFor<T>(
  clock: Clock,
  source: Observable<T>,
  done: (v: T) => boolean,
  what: string,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let finished = false;
    const timer = clock.setTimer(timeoutMs, () => {
      if (finished) return;
      finished = true;
      sub?.unsubscribe();
      reject(new BackupError('SYNOD_ERR_BACKUP_TIMEOUT', `timed out waiting for ${what}`));
    });
    let sub: Subscription | undefined;
    sub = source.subscribe({
      next: (v) => {
        if (finished || !done(v)) return;
        finished = true;
        timer.cancel();
        queueMicrotask(() => sub?.unsubscribe());
        resolve(v);
      },
      error: (err: unknown) => {
        if (finished) return;
        finished = true;
        timer.cancel();
        reject(err);
      },
      complete: () => {
        if (finished) return;
        finished = true;
        timer.cancel();
        reject(new BackupError('SYNOD_ERR_BACKUP_IO', `stopped before ${what}`));
      },
    });
    if (finished) sub.unsubscribe();
  });
}
