/**
 * The backup agent on a Multi-Paxos cluster: a pull-based learner that never joins the
 * configuration (Multi-Paxos membership is static). `PaxosPuller` asks the members' learners
 * (`<node>/paxos/learner`) for the decided slots after the agent's index with the learners' own
 * catch-up request (`mp.catchup {from, fromSlot, toSlot}`, answered with
 * `mp.catchup-reply {entries, snapshot?, decidedUpTo}`, at most 512 slots a reply), and hands
 * them to the `BackupAgent` in slot order: a command slot as an `applied` entry (the agent
 * applies it through the Multi-Paxos session rule, repo.json `protocol: paxos`), a no-op or a
 * malformed command (which every replica skips) as an `applied-index` step, so the archive
 * stays contiguous.
 *
 * Nothing is added to the cluster's quorums; the cluster pays one reply per request. A reply
 * that carries progress is followed at once by the next request; a reply with nothing new is
 * followed after `pollMs`, so a running agent keeps the archive current.
 *
 * Compaction: members snapshot every 1,000 slots and then drop the slots it covers, so a
 * learner asked for slots it no longer holds answers with its snapshot. Taking it means a
 * gap in the log archive (no point-in-time restore inside it), so the puller first asks the
 * other members (learners snapshot at different slots, so another one often still holds them);
 * only when every member answered with a snapshot does the agent take the newest (`reset`).
 *
 * `LivePaxosBackup` wires the puller and the agent in an actor system on the cluster's
 * transport and offers what `LiveBackup` (learner.ts, Raft) offers: `catchUp` to the
 * leader's decided index, `backup`, `flush`, `status`, `leave`.
 */
import type { ActorRef } from '../../lib/actor.js';
import { Actor } from '../../lib/actor.js';
import type { ActorSystem } from '../../lib/actor-system.js';
import { decodeCommand, fromWire, type SlotEntry } from '../paxos/multi-messages.js';
import { type AgentStatus, BackupAgent, type BackupAgentMsg, type BackupSummary } from './agent.js';
import { BackupError } from './errors.js';
import { type ClusterMembership, goLive, leaveFailure, waitFor, waitStarted } from './learner.js';
import type { BackupType } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Repository } from './repository.js';
import type { StateKind } from './state-kind.js';

export interface PaxosPullerOptions {
  /** The backup agent fed with the slots. */
  readonly agent: ActorRef<BackupAgentMsg<unknown>, AgentStatus>;
  /** Learner addresses to pull from (`<node>/paxos/learner`), the preferred one first. */
  readonly learners: readonly string[];
  /** Slots per request (the learners answer at most 512). Default 512. */
  readonly maxEntries?: number;
  /** Wait after a reply with nothing new before asking again (ms). Default 50. */
  readonly pollMs?: number;
  /** A request unanswered this long goes to the next learner (ms). Default 2,000. */
  readonly replyTimeoutMs?: number;
  /** Stop asking while the agent is this many slots behind what was handed to it. Default 8,192. */
  readonly maxAhead?: number;
}

export interface PullerView {
  /** The next slot asked for. */
  readonly next: number;
  /** The highest decided slot a learner reported. */
  readonly decided: number;
  readonly requests: number;
  readonly replies: number;
  /** Snapshots taken (each an archive gap). */
  readonly resets: number;
  /** Snapshot replies passed over because another member might still hold the slots. */
  readonly snapshotsDeclined: number;
  readonly timeouts: number;
  readonly badReplies: number;
  /** The learner asked last. */
  readonly target: string;
}

type PullerMsg =
  | { readonly type: 'mp.catchup-reply'; readonly from: string }
  | { readonly type: 'pull-tick' }
  | { readonly type: 'pull-timeout'; readonly seq: number }
  | { readonly type: 'prefer'; readonly learner: string };

export class PaxosPuller extends Actor<PullerMsg, PullerView> {
  private next = 1;
  private decided = 0;
  private requests = 0;
  private replies = 0;
  private resets = 0;
  private declined = 0;
  private timeouts = 0;
  private badReplies = 0;
  private turn = 0;
  private outstanding: { to: string; seq: number } | undefined;
  private seq = 0;
  /** Learners that answered `next` with a snapshot (reset when `next` moves). */
  private readonly snapshotFrom = new Set<string>();
  private learners: string[];
  private readonly maxEntries: number;
  private readonly pollMs: number;
  private readonly replyTimeoutMs: number;
  private readonly maxAhead: number;

  constructor(private readonly opts: PaxosPullerOptions) {
    super();
    if (opts.learners.length === 0) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        'no Multi-Paxos learner to pull from',
      );
    }
    this.learners = [...opts.learners];
    this.maxEntries = opts.maxEntries ?? 512;
    this.pollMs = opts.pollMs ?? 50;
    this.replyTimeoutMs = opts.replyTimeoutMs ?? 2000;
    this.maxAhead = opts.maxAhead ?? 8192;
  }

  override accepts(msg: unknown): msg is PullerMsg {
    // From other processes only the learners' replies (checked again by fromWire).
    return (
      typeof msg === 'object' &&
      msg !== null &&
      (msg as { type?: unknown }).type === 'mp.catchup-reply'
    );
  }

  override initialState(): PullerView {
    return this.view();
  }

  override preStart(): void {
    this.next = (this.opts.agent.getSnapshot()?.index ?? 0) + 1;
    this.ask();
  }

  receive(msg: PullerMsg): void {
    switch (msg.type) {
      case 'pull-tick':
        if (!this.outstanding) this.ask();
        break;
      case 'pull-timeout':
        if (this.outstanding?.seq !== msg.seq) break;
        this.timeouts++;
        this.ctx.emit({ type: 'pull-timeout', learner: this.outstanding.to });
        this.outstanding = undefined;
        this.turn++;
        this.ask();
        break;
      case 'prefer':
        this.prefer(msg.learner);
        break;
      case 'mp.catchup-reply':
        this.onReply(msg);
        break;
    }
    this.ctx.setState(this.view());
  }

  /** Puts a member's learner first (the leader's holds every chosen slot). */
  private prefer(learner: string): void {
    const i = this.learners.indexOf(learner);
    if (i > 0) {
      this.learners.splice(i, 1);
      this.learners.unshift(learner);
      this.turn = 0;
    }
  }

  private view(): PullerView {
    return {
      next: this.next,
      decided: this.decided,
      requests: this.requests,
      replies: this.replies,
      resets: this.resets,
      snapshotsDeclined: this.declined,
      timeouts: this.timeouts,
      badReplies: this.badReplies,
      target: this.learners[this.turn % this.learners.length] as string,
    };
  }

  private ask(): void {
    if (this.outstanding) return;
    const agentAt = this.opts.agent.getSnapshot()?.index ?? 0;
    if (this.next - 1 - agentAt > this.maxAhead) {
      // The agent is behind what it was handed: let it apply first.
      this.ctx.timers.once('tick', this.pollMs, { type: 'pull-tick' });
      return;
    }
    const to = this.learners[this.turn % this.learners.length] as string;
    const seq = ++this.seq;
    this.outstanding = { to, seq };
    this.requests++;
    this.ctx.send(to, {
      type: 'mp.catchup',
      from: this.ctx.self,
      fromSlot: this.next,
      toSlot: this.next + this.maxEntries - 1,
    });
    this.ctx.timers.once('timeout', this.replyTimeoutMs, { type: 'pull-timeout', seq });
  }

  private onReply(raw: unknown): void {
    const m = fromWire(raw);
    if ('problem' in m || m.type !== 'mp.catchup-reply') {
      this.badReplies++;
      this.ctx.emit({
        type: 'bad-reply',
        problem: 'problem' in m ? m.problem : `unexpected ${m.type}`,
      });
      return;
    }
    const answered = this.outstanding?.to === m.from;
    if (answered) {
      this.outstanding = undefined;
      this.ctx.timers.cancel('timeout');
    }
    this.replies++;
    // `chosenUpTo` / `leader` (newer members): the sender's knowledge of the chosen prefix and
    // of the leader's learner, which holds every chosen slot: ask it next.
    const hint = m as { chosenUpTo?: number; leader?: string };
    const known = Math.max(m.decidedUpTo, hint.chosenUpTo ?? 0);
    if (known > this.decided) this.decided = known;
    if (hint.leader !== undefined && hint.leader !== this.learners[0]) this.prefer(hint.leader);
    const before = this.next;
    if (m.snapshot && m.snapshot.index >= this.next) {
      this.snapshotFrom.add(m.from);
      const untried = this.learners.filter((l) => !this.snapshotFrom.has(l));
      if (untried.length > 0) {
        // Another member may still hold slots `next`.. (a gap in the archive is the last resort).
        this.declined++;
        this.turn = this.learners.indexOf(untried[0] as string);
        if (answered) this.ask();
        return;
      }
      this.resets++;
      this.opts.agent.tell({
        type: 'reset',
        index: m.snapshot.index,
        term: m.snapshot.term,
        image: m.snapshot.data,
      });
      this.ctx.emit({ type: 'reset', from: this.next, to: m.snapshot.index, learner: m.from });
      this.next = m.snapshot.index + 1;
    }
    this.feed(m.entries);
    if (this.next !== before) this.snapshotFrom.clear();
    if (!answered) return; // a late reply to an earlier request: the current one is still out
    if (this.next > before) {
      this.ask(); // progress: at once
    } else {
      // Nothing new from this learner: if another reported more, ask the next one.
      if (m.decidedUpTo < this.decided) this.turn++;
      this.ctx.timers.once('tick', this.pollMs, { type: 'pull-tick' });
    }
  }

  private feed(entries: readonly SlotEntry[]): void {
    const sorted =
      entries.length > 1 &&
      entries.some((e, i) => i > 0 && e.slot < (entries[i - 1] as SlotEntry).slot)
        ? [...entries].sort((a, b) => a.slot - b.slot)
        : entries;
    for (const e of sorted) {
      if (e.slot < this.next) continue;
      if (e.slot > this.next) break; // a hole: ask again from `next`
      const v = e.value;
      if (v.k === 'cmd') {
        const c = decodeCommand(v.d);
        if (typeof c === 'string') {
          // Every replica skips a malformed command the same way.
          this.opts.agent.tell({ type: 'applied-index', index: e.slot, term: v.t });
        } else {
          this.opts.agent.tell({
            type: 'applied',
            entry: { index: e.slot, term: v.t, command: c, result: undefined },
          });
        }
      } else {
        this.opts.agent.tell({ type: 'applied-index', index: e.slot, term: v.t });
      }
      this.next++;
    }
    if (this.next - 1 > this.decided) this.decided = this.next - 1;
  }
}

export interface LivePaxosBackupOptions<Op> {
  /** An actor system on the cluster's transport (the agent's node id must be no member's). */
  readonly system: ActorSystem;
  /** Member node ids (their learners are `<id>/paxos/learner`). */
  readonly members: readonly string[];
  /** The leader's decided index and its node id (`synod node`'s admin actors). */
  readonly membership: Pick<ClusterMembership, 'committedIndex'> & {
    leader?(): Promise<string | undefined>;
  };
  readonly repo: Repository;
  readonly clusterId: string;
  readonly kind: StateKind<Op>;
  readonly progress?: ProgressFn;
  readonly pollMs?: number;
  readonly replyTimeoutMs?: number;
  /** See `FollowOptions.toleranceMs` (learner.ts; default `FOLLOW_TOLERANCE_MS`). */
  readonly followToleranceMs?: number;
  readonly log?: (line: string) => void;
}

export class LivePaxosBackup<Op = unknown> {
  private constructor(
    private readonly opts: LivePaxosBackupOptions<Op>,
    readonly agent: ActorRef<BackupAgentMsg<Op>, AgentStatus>,
    readonly puller: ActorRef<PullerMsg, PullerView>,
  ) {}

  get id(): string {
    return this.opts.system.nodeId;
  }

  /** Spawns the agent (which recovers its state from the repository) and the puller. */
  static async start<Op>(opts: LivePaxosBackupOptions<Op>): Promise<LivePaxosBackup<Op>> {
    const { system } = opts;
    if (opts.repo.config.protocol !== 'paxos') {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        `repository ${opts.repo.dir} is not for a Multi-Paxos cluster (repo.json protocol)`,
      );
    }
    if (opts.members.includes(system.nodeId)) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        `the agent's id ${system.nodeId} is a cluster member's: choose another`,
      );
    }
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
    await waitStarted(agent.events$, 'the backup agent', system.clock);
    let learners = opts.members.map((m) => `${m}/paxos/learner`);
    const leader = await opts.membership.leader?.().catch(() => undefined);
    if (leader && opts.members.includes(leader)) {
      const l = `${leader}/paxos/learner`;
      learners = [l, ...learners.filter((x) => x !== l)];
    }
    const puller = system.spawn(
      'puller',
      new PaxosPuller({
        agent: agent as ActorRef<BackupAgentMsg<unknown>, AgentStatus>,
        learners,
        ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
        ...(opts.replyTimeoutMs !== undefined ? { replyTimeoutMs: opts.replyTimeoutMs } : {}),
      }),
      { supervision: { kind: 'stop' } },
    );
    // Its preStart is synchronous: it has started (or failed) by now.
    if (!puller.isAlive()) {
      await system.stop(agent.address).catch(() => undefined);
      throw new BackupError('SYNOD_ERR_BACKUP_IO', 'the Multi-Paxos puller could not start');
    }
    opts.log?.(
      `pulling decided slots from ${learners.map((l) => l.split('/')[0]).join(', ')} (from slot ${(agent.getSnapshot()?.index ?? 0) + 1})`,
    );
    return new LivePaxosBackup(opts, agent, puller);
  }

  /** The leader's decided (chosen) index now. */
  committedIndex(): Promise<number> {
    return this.opts.membership.committedIndex();
  }

  /**
   * Waits until the agent has applied every slot the leader had decided when this was called
   * (so a backup taken next holds every write acknowledged before it), then tells it `live`
   * once it keeps up (`goLive`, learner.ts).
   */
  async catchUp(timeoutMs = 120_000): Promise<AgentStatus> {
    const target = await this.opts.membership.committedIndex();
    const s = await waitFor(
      this.opts.system.clock,
      this.agent.state$,
      (st) => st.index >= target || st.stalled !== null,
      `the agent to apply up to slot ${target}`,
      timeoutMs,
    );
    if (s.stalled) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_BUSY',
        `the agent stalled at slot ${s.stalled.expected - 1} (a gap in the decided slots)`,
      );
    }
    // Everything so far was caught up (archived as such); from here on it may follow live.
    await goLive(this.opts.system.clock, this.agent, () => this.opts.membership.committedIndex(), {
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

  pullerView(): PullerView | undefined {
    return this.puller.getSnapshot();
  }

  /** Stops pulling, archives what is buffered, stops the agent (nothing to leave: never a member). */
  /** `flush: false` skips the archive flush (see LiveBackup.leave). */
  async leave(opts: { flush?: boolean } = {}): Promise<void> {
    await this.opts.system.stop(this.puller.address).catch(() => undefined);
    let error: unknown;
    if (opts.flush !== false) {
      try {
        await this.flush();
      } catch (err) {
        error = err;
      }
    }
    await this.opts.system.stop(this.agent.address).catch(() => undefined);
    // A puller holds no place in the cluster: only the archive can have failed.
    if (error) throw leaveFailure('archive', error);
  }
}
