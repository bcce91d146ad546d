/**
 * The backup agent: an actor that follows a cluster's committed log as a learner would
 * (through a ReplicatedLog's `applied$` stream: a learner node's, or the Raft learner API
 * when it provides one), keeps its own copy of the state machine, archives every committed
 * entry (index, term, commit time) in the repository's log archive, and takes full,
 * differential and incremental backups at whatever index it has applied when asked — a
 * consistent image captured between two applies, written while entries keep being
 * applied and archived. It also runs the repository's backup schedule and retention.
 *
 * Ordering and durability: entries are applied strictly in index order; a duplicate is
 * ignored and a gap stops the agent (`stalled`) rather than letting it back up a state
 * that misses entries. Archived entries are buffered and written as one segment when the
 * buffer is full, every `flushMs`, on `flush` and on stop; a failed write keeps them
 * buffered and is retried. Repository writes (segments, backups, expire) run one at a time.
 * On start the agent rebuilds its state from the repository (latest backup + archive), so
 * it resumes where it stopped and its next differential/incremental is still exact.
 *
 * Commit times: an archived record's time is when the agent applied the entry, at or after its
 * commit. Only the agent's driver knows whether that is close: the agent starts **catching up**
 * (records archived as `caught-up`: committed at or before their time) and archives records as
 * `observed` only after a `live` message (the driver saw it reach, within its follow tolerance,
 * an index the leader had just committed: learner.ts `goLive`, `keepFollowing`), until
 * `catching-up`.
 */
import type { Subscription } from 'rxjs';
import { Actor, type Replies } from '../../lib/actor.js';
import type { TimerHandle } from '../../lib/clock.js';
import type { AppliedEntry, Command, ReplicatedLog } from '../../lib/replicated-log.js';
import {
  type ArchivedEntry,
  decodeArchivedCommand,
  encodeArchivedCommand,
  LogArchive,
} from './archive.js';
import { StateDigest } from './digest.js';
import { BackupError, isBackupError } from './errors.js';
import type { BackupType, Manifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { ChunkLayout, LayoutOptions, Repository } from './repository.js';
import { restore } from './restore.js';
import { type ExpireReport, expire, type RetentionPolicy } from './retention.js';
import {
  type CompiledSchedule,
  compileSchedule,
  loadSchedule,
  nextDue,
  type SchedulePolicy,
} from './schedule.js';
import { type SessionRule, sessionRuleFor } from './sessions.js';
import type { KeyedStateFactory } from './state.js';
import { TrackedState } from './tracker.js';

export interface ArchiveOptions {
  /** Flush a segment once this many entries are buffered. */
  readonly maxEntries: number;
  /** ... or this many bytes of commands. */
  readonly maxBytes: number;
  /** ... or this often (ms); 0 disables the timer. */
  readonly flushMs: number;
}

export const DEFAULT_ARCHIVE: ArchiveOptions = {
  maxEntries: 4096,
  maxBytes: 4 << 20,
  flushMs: 1000,
};

export interface BackupAgentOptions<Op> {
  readonly repo: Repository;
  readonly clusterId: string;
  readonly factory: KeyedStateFactory<Op>;
  /** The committed log to follow; without it, entries arrive as `applied` messages. */
  readonly source?: ReplicatedLog<Op>;
  readonly archive?: Partial<ArchiveOptions>;
  /** Overrides the repository's schedule.json. */
  readonly schedule?: SchedulePolicy;
  /** Progress of backups the agent writes. */
  readonly progress?: ProgressFn;
  /**
   * Reads a node snapshot image into the agent's entries (state-kind.ts): lets the agent
   * resynchronise when its source installs a snapshot (`reset`) instead of stalling.
   */
  readonly fromSnapshotImage?: (image: Uint8Array) => Iterable<readonly [string, Uint8Array]>;
  /**
   * Archive records as `observed` from the start (default false: `caught-up` until a `live`
   * message). Only for a source whose entries are known to reach the agent as they commit.
   */
  readonly liveFromStart?: boolean;
  /**
   * Plain bytes of its last full backup's chunks the agent keeps in memory, at most, so that
   * the next full backup reuses those whose keys did not change (repository.ts `ChunkReuse`)
   * instead of serializing, hashing, compressing and writing them again. 0: no reuse.
   * Default DEFAULT_REUSE_BYTES, or `SYNOD_BACKUP_REUSE_MB` (MiB) when set.
   */
  readonly reuseBytes?: number;
}

/** The agent's default `reuseBytes`: 256 MiB (a state of up to about that size is covered). */
export const DEFAULT_REUSE_BYTES = 256 << 20;
/** The share of a full backup's bytes reused below which it counts as a miss (see `reuseMisses`). */
const REUSE_PAYS = 1 / 8;
/** After a miss, one full in this many keeps the bytes of its new chunks. */
const KEEP_EVERY_MISSED = 4;

/**
 * A capture longer than this (wall ms) switches the agent to archiving entries as
 * `caught-up`: entries that arrived while it blocked are stamped that much late.
 */
export const CAPTURE_LAG_MS = 1000;

export interface BackupSummary {
  readonly id: string;
  readonly type: BackupType;
  readonly parent: string | null;
  readonly index: number;
  readonly term: number;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly chunks: number;
  readonly records: number;
  readonly keyCount: number;
  /** A diff or incr asked for with no full backup present was taken as a full. */
  readonly promoted: boolean;
}

/**
 * When a backup ran, on the clock's wall time (ms since the epoch; `SystemClock`: Date.now),
 * carried by the agent's `backup` and `backup-failed` events:
 * `{type: 'backup', id, kind, index, requestedAt, startedAt, endedAt}` and
 * `{type: 'backup-failed', kind, error, requestedAt, startedAt, endedAt}`.
 */
export interface BackupWindow {
  /** Asked for (by the schedule or a `backup` message), before the state was captured. */
  readonly requestedAt: number;
  /** Its write began (after the repository writes queued before it: segments, an expire). */
  readonly startedAt: number;
  /** Its manifest was written (or it failed). */
  readonly endedAt: number;
}

/** The agent's `backup` event (`events$`). */
export interface BackupEvent extends BackupWindow {
  readonly type: 'backup';
  readonly id: string;
  readonly kind: BackupType;
  readonly index: number;
  /** Plain bytes of the backup, and of those the chunks reused from the last full backup. */
  readonly bytes?: number;
  readonly reusedBytes?: number;
}

/** The agent's `backup-failed` event: a backup that was asked for and did not complete. */
export interface BackupFailedEvent extends BackupWindow {
  readonly type: 'backup-failed';
  readonly kind: BackupType;
  readonly error: string;
}

export interface AgentStatus {
  readonly index: number;
  readonly term: number;
  /**
   * Keys and state digest of the state at `digestIndex`. The agent folds applied entries into
   * its digest lazily (tracker.ts): the status it publishes after every apply (`state$`) carries
   * the last settled digest, so `digestIndex` may be behind `index`; the `status` request's
   * reply is settled first (`digestIndex === index`).
   */
  readonly keyCount: number;
  readonly stateDigest: string;
  readonly digestIndex: number;
  /** Highest index durably archived. */
  readonly archivedTo: number;
  readonly buffered: number;
  readonly lastBackup: string | null;
  readonly lastFull: string | null;
  /** Set when an entry arrived out of order and the agent stopped applying. */
  readonly stalled: { readonly expected: number; readonly got: number } | null;
  readonly nextScheduled: { readonly time: number; readonly type: BackupType } | null;
  /**
   * Whether the agent follows the cluster live (entries archived as `observed`) or catches up
   * (archived as `caught-up`); see the module comment.
   */
  readonly live: boolean;
}

export type BackupAgentMsg<Op = unknown> =
  | { readonly type: 'applied'; readonly entry: AppliedEntry<Op>; readonly time?: number }
  /** The source's applied index: a step without an `applied` entry is an entry without a command. */
  | {
      readonly type: 'applied-index';
      readonly index: number;
      /** The entry's term, when the source knows it (else the last command's is assumed). */
      readonly term?: number;
      readonly time?: number;
    }
  /**
   * The source installed a snapshot at `index` (the log before it is gone): the agent takes
   * the snapshot's state if it is ahead, archives nothing for the skipped entries.
   */
  | {
      readonly type: 'reset';
      readonly index: number;
      readonly term: number;
      readonly image: Uint8Array;
      readonly time?: number;
    }
  | ({ readonly type: 'backup'; readonly kind: BackupType } & Replies<BackupSummary>)
  | ({ readonly type: 'flush' } & Replies<number>)
  | ({
      readonly type: 'expire';
      readonly policy: RetentionPolicy;
      readonly dryRun?: boolean;
    } & Replies<ExpireReport>)
  | ({ readonly type: 'status' } & Replies<AgentStatus>)
  | ({ readonly type: 'reload-schedule' } & Replies<AgentStatus>)
  /**
   * The driver saw the agent keep up with the cluster: entries applied from now on are archived
   * as `observed` (see the module comment).
   */
  | { readonly type: 'live' }
  /** The driver saw the agent fall behind: entries are archived as `caught-up` again. */
  | { readonly type: 'catching-up'; readonly reason?: string }
  | { readonly type: 'archive-tick' }
  /** Publishes the status queued by a burst of applied entries (see `publishSoon`). */
  | { readonly type: 'publish' }
  | { readonly type: 'schedule-tick'; readonly due: BackupType };

/** A backup captured (its index known) and queued or written; the parent of later ones. */
interface PendingBackup {
  readonly index: number;
  readonly type: BackupType;
  readonly manifest: Promise<Manifest>;
  /** Set once its write failed; later captures skip it. */
  failed: boolean;
  /** The latest full / any backup before this one (to fall back to when it fails). */
  readonly prevFull: PendingBackup | null;
  readonly prevAny: PendingBackup | null;
  id: string | null;
}

function settled(
  m: Manifest,
  prevFull: PendingBackup | null,
  prevAny: PendingBackup | null,
): PendingBackup {
  return {
    index: m.index,
    type: m.type,
    manifest: Promise.resolve(m),
    failed: false,
    prevFull,
    prevAny,
    id: m.id,
  };
}

function live(p: PendingBackup | null, full: boolean): PendingBackup | null {
  let cur = p;
  while (cur?.failed) cur = full ? cur.prevFull : cur.prevAny;
  return cur;
}

export class BackupAgent<Op = unknown> extends Actor<BackupAgentMsg<Op>, AgentStatus> {
  private tracked: TrackedState<Command<Op>>;
  private readonly archiveOpts: ArchiveOptions;
  private buffer: ArchivedEntry[] = [];
  private bufferBytes = 0;
  private flushQueued: Promise<void> | undefined;
  private archivedTo = 0;
  private lastFull: PendingBackup | null = null;
  private lastAny: PendingBackup | null = null;
  private stalled: AgentStatus['stalled'] = null;
  private io: Promise<unknown> = Promise.resolve();
  private sub: Subscription | undefined;
  private schedule: CompiledSchedule | undefined;
  private next: AgentStatus['nextScheduled'] = null;
  private scheduleTimer: TimerHandle | undefined;
  private publishQueued = false;
  /** How the records archived now are timed (see the module comment). */
  private timing: 'observed' | 'caught-up';
  /** The newest full backup's chunks (captured at `index`), for the next full to reuse. */
  private layout: { readonly index: number; readonly layout: ChunkLayout } | undefined;
  /** Full backups in a row that reused less than REUSE_PAYS of their bytes (or could not try). */
  private reuseMisses = 0;

  constructor(private readonly opts: BackupAgentOptions<Op>) {
    super();
    this.tracked = new TrackedState<Command<Op>>(
      sessionRuleFor(opts.repo.config.protocol, opts.factory()),
    );
    this.archiveOpts = { ...DEFAULT_ARCHIVE, ...opts.archive };
    this.timing = opts.liveFromStart ? 'observed' : 'caught-up';
  }

  override initialState(): AgentStatus {
    return {
      index: 0,
      term: 0,
      keyCount: 0,
      stateDigest: '',
      digestIndex: 0,
      archivedTo: 0,
      buffered: 0,
      lastBackup: null,
      lastFull: null,
      stalled: null,
      nextScheduled: null,
      live: this.opts.liveFromStart === true,
    };
  }

  override async preStart(): Promise<void> {
    const { repo } = this.opts;
    await this.recoverState();
    let full: Manifest | null = null;
    for (const m of await repo.list()) {
      if (m.clusterId !== this.opts.clusterId) continue;
      this.lastAny = settled(m, this.lastFull, this.lastAny);
      if (m.type === 'full') {
        this.lastFull = this.lastAny;
        full = m;
      }
    }
    // Every later diff/incr is relative to the newest full or something newer: learn the
    // keys changed since that full now, so that captures stay synchronous.
    if (full && full.index < this.tracked.trackedSince) await this.catchUpChanges(full);
    const policy = this.opts.schedule ?? (await loadSchedule(repo.fs, repo.dir));
    this.schedule = policy ? compileSchedule(policy) : undefined;
    this.armSchedule();
    if (this.archiveOpts.flushMs > 0) {
      this.ctx.timers.repeat('archive', this.archiveOpts.flushMs, { type: 'archive-tick' });
    }
    if (this.opts.source) {
      const self = this.ctx.self;
      const system = this.ctx.system;
      const time = () => this.ctx.clock.wallNow();
      this.sub = this.opts.source.applied$.subscribe((entry) => {
        system.send(self, { type: 'applied', entry, time: time() });
      });
      this.sub.add(
        this.opts.source.appliedIndex$.subscribe((index) => {
          system.send(self, { type: 'applied-index', index, time: time() });
        }),
      );
    }
    this.publish();
  }

  override async postStop(): Promise<void> {
    this.sub?.unsubscribe();
    this.scheduleTimer?.cancel();
    await this.flush().catch(() => undefined);
    await this.io.catch(() => undefined);
  }

  /** Rebuilds the state from the repository: the latest backup plus the archive after it. */
  private async recoverState(): Promise<void> {
    const { repo } = this.opts;
    const segs = await repo.archive.list();
    this.archivedTo = LogArchive.tip(segs);
    const backups = await repo.list();
    if (backups.length === 0 && (segs.length === 0 || (segs[0] as { first: number }).first !== 1)) {
      return;
    }
    const res = await restore(repo, { kind: 'latest' }, { factory: this.opts.factory });
    this.tracked = new TrackedState(res.state, StateDigest.fromHex(res.digest, res.keyCount));
    this.tracked.reset(res.index, res.term, res.time);
    if (res.index < this.archivedTo) this.archivedTo = res.index; // a gap stopped the replay
  }

  /**
   * Makes the tracker know every key changed since `parent` although tracking began later
   * (after a restart): from the archive when it covers the interval, else by comparing the
   * parent's restored state with the current one.
   */
  private async catchUpChanges(parent: Manifest): Promise<void> {
    const { repo } = this.opts;
    const since = this.tracked.trackedSince;
    const keys = new Set<string>();
    const ss = this.tracked.state as SessionRule<Op>;
    try {
      if (ss.mayHaveEvicted()) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
          'sessions may have been evicted: compare states',
        );
      }
      for await (const e of repo.archive.entries(parent.index, since)) {
        if (e.data.byteLength === 0) continue;
        const cmd = decodeArchivedCommand<Op>(e) as Command<Op>;
        for (const k of ss.keysTouchedEarlier(cmd)) keys.add(k);
      }
    } catch (err) {
      if (!isBackupError(err, 'SYNOD_ERR_BACKUP_ARCHIVE_GAP')) throw err;
      keys.clear();
      const old = await restore(
        repo,
        { kind: 'backup', id: parent.id },
        { factory: this.opts.factory },
      );
      const now = this.tracked.state;
      for (const [k, v] of old.state.entries()) {
        const cur = now.get(k);
        if (cur === undefined || Buffer.compare(Buffer.from(cur), Buffer.from(v)) !== 0)
          keys.add(k);
      }
      for (const [k] of now.entries()) if (old.state.get(k) === undefined) keys.add(k);
    }
    this.tracked.noteChanged(keys, since);
    this.tracked.trackedSince = parent.index;
  }

  /** Entries applied from now on are archived as `caught-up` (their times upper bounds). */
  private catchingUp(reason: string | undefined): void {
    if (this.timing === 'caught-up') return;
    this.timing = 'caught-up';
    this.ctx.emit({
      type: 'catching-up',
      index: this.tracked.index,
      ...(reason ? { reason } : {}),
    });
    this.publish();
  }

  receive(msg: BackupAgentMsg<Op>): void {
    switch (msg.type) {
      case 'applied':
        this.onApplied(msg.entry, msg.time ?? this.ctx.clock.wallNow());
        break;
      case 'applied-index':
        this.onAppliedIndex(msg.index, msg.time ?? this.ctx.clock.wallNow(), msg.term);
        break;
      case 'reset':
        this.onReset(msg.index, msg.term, msg.image, msg.time ?? this.ctx.clock.wallNow());
        break;
      case 'live':
        if (this.timing !== 'observed') {
          this.timing = 'observed';
          this.ctx.emit({ type: 'live', index: this.tracked.index });
          this.publish();
        }
        break;
      case 'catching-up':
        this.catchingUp(msg.reason);
        break;
      case 'archive-tick':
        void this.flush().catch(() => undefined);
        break;
      case 'publish':
        this.publishQueued = false;
        this.publish();
        break;
      case 'flush':
        this.flush().then(
          () => this.ctx.reply(msg, this.archivedTo),
          (err: unknown) => this.ctx.replyError(msg, toReplyError(err)),
        );
        break;
      case 'backup':
        this.takeBackup(msg.kind).then(
          (s) => this.ctx.reply(msg, s),
          (err: unknown) => this.ctx.replyError(msg, toReplyError(err)),
        );
        break;
      case 'expire':
        this.enqueue(() =>
          expire(this.opts.repo, msg.policy, msg.dryRun ? { dryRun: true } : {}),
        ).then(
          (r) => this.ctx.reply(msg, r),
          (err: unknown) => this.ctx.replyError(msg, toReplyError(err)),
        );
        break;
      case 'status':
        this.ctx.reply(msg, this.status(true));
        break;
      case 'reload-schedule':
        loadSchedule(this.opts.repo.fs, this.opts.repo.dir).then(
          (p) => {
            this.schedule = p ? compileSchedule(p) : undefined;
            this.armSchedule();
            this.ctx.reply(msg, this.status(true));
          },
          (err: unknown) => this.ctx.replyError(msg, toReplyError(err)),
        );
        break;
      case 'schedule-tick':
        void this.runScheduled(msg.due);
        break;
    }
  }

  /**
   * Raft applies no-op and configuration entries without publishing them on `applied$`; the
   * applied index still steps over them. Such a step is archived as an entry without a
   * command (so the archive stays contiguous); a jump (a snapshot installed on the source)
   * means commands were missed, and stalls the agent.
   */
  private onAppliedIndex(index: number, time: number, term?: number): void {
    if (this.stalled || index <= this.tracked.index) return;
    if (index > this.tracked.index + 1) {
      this.stall(this.tracked.index + 1, index);
      return;
    }
    const meta = { index, term: term ?? this.tracked.term, time };
    this.tracked.skip(meta);
    this.buffer.push({ ...meta, data: new Uint8Array(0), timing: this.timing });
    this.publishSoon();
  }

  /**
   * The source installed a snapshot. Behind or at the agent's index it changes nothing
   * (the entries after it are ignored as duplicates up to the agent's index). Ahead of it,
   * the agent takes the snapshot's state: what is buffered is archived as its own segment,
   * the archive has a gap up to `index` (no point-in-time restore inside it), and the next
   * diff/incr learns the keys changed since its parent by comparing states.
   */
  private onReset(index: number, term: number, image: Uint8Array, time: number): void {
    if (index <= this.tracked.index) {
      this.ctx.emit({ type: 'reset-ignored', index, at: this.tracked.index });
      return;
    }
    const from = this.tracked.index;
    if (!this.opts.fromSnapshotImage) {
      this.stall(from + 1, index);
      return;
    }
    let state: SessionRule<Op>;
    try {
      state = sessionRuleFor(this.opts.repo.config.protocol, this.opts.factory());
      state.load(this.opts.fromSnapshotImage(image));
    } catch (err) {
      this.ctx.log.log('error', 'backup agent: the snapshot the source installed is unreadable', {
        error: (err as Error).message,
      });
      this.stall(from + 1, index);
      return;
    }
    const taken = this.buffer;
    this.buffer = [];
    this.bufferBytes = 0;
    if (taken.length > 0) {
      void this.enqueue(() => this.writeSegment(taken)).catch(() => undefined);
    }
    this.tracked = new TrackedState<Command<Op>>(state);
    this.tracked.reset(index, term, time);
    this.layout = undefined;
    this.stalled = null;
    // A snapshot comes to a learner that fell behind the cluster's compaction: what follows is
    // a catch-up until the driver sees it keep up again.
    this.timing = 'caught-up';
    this.ctx.emit({ type: 'resynced', from, to: index });
    this.ctx.log.log(
      'warn',
      'backup agent: took a snapshot of the cluster; the log archive has no entries in between',
      { from: from + 1, to: index },
    );
    this.publish();
  }

  private async writeSegment(taken: ArchivedEntry[]): Promise<void> {
    try {
      await this.opts.repo.withLock(() => this.opts.repo.archive.write(taken));
      this.archivedTo = Math.max(this.archivedTo, (taken[taken.length - 1] as ArchivedEntry).index);
      this.ctx.emit({
        type: 'archived',
        from: (taken[0] as ArchivedEntry).index,
        to: (taken[taken.length - 1] as ArchivedEntry).index,
      });
    } catch (err) {
      this.ctx.emit({ type: 'archive-failed', error: (err as Error).message });
      throw err;
    } finally {
      this.publish();
    }
  }

  private stall(expected: number, got: number): void {
    this.stalled = { expected, got };
    this.ctx.emit({ type: 'stalled', expected, got });
    this.ctx.log.log(
      'error',
      'backup agent: committed log has a gap; not applying further entries',
      {
        expected,
        got,
      },
    );
    this.publish();
  }

  private onApplied(entry: AppliedEntry<Op>, time: number): void {
    if (this.stalled) return;
    const expected = this.tracked.index + 1;
    if (entry.index < expected) return; // already applied (replayed on restart, or a duplicate)
    if (entry.index > expected) {
      this.stall(expected, entry.index);
      return;
    }
    this.tracked.apply(entry.command, { index: entry.index, term: entry.term, time });
    // The bytes the log holds (a Raft learner's entry), else encoded once here.
    const data = entry.data ?? encodeArchivedCommand(entry.command);
    this.buffer.push({ index: entry.index, term: entry.term, time, data, timing: this.timing });
    this.bufferBytes += data.byteLength;
    if (
      this.buffer.length >= this.archiveOpts.maxEntries ||
      this.bufferBytes >= this.archiveOpts.maxBytes
    ) {
      void this.flush().catch(() => undefined);
    }
    this.publishSoon();
  }

  /**
   * Queues a flush: when it runs it writes everything buffered by then as one segment. A
   * flush queued but not started yet is shared. A failed write puts the entries back.
   */
  private flush(): Promise<void> {
    if (this.flushQueued) return this.flushQueued;
    const job = this.enqueue(async () => {
      this.flushQueued = undefined;
      if (this.buffer.length === 0) return;
      const taken = this.buffer;
      const takenBytes = this.bufferBytes;
      this.buffer = [];
      this.bufferBytes = 0;
      try {
        await this.opts.repo.withLock(() => this.opts.repo.archive.write(taken));
        this.archivedTo = (taken[taken.length - 1] as ArchivedEntry).index;
        this.ctx.emit({
          type: 'archived',
          from: (taken[0] as ArchivedEntry).index,
          to: this.archivedTo,
        });
      } catch (err) {
        this.buffer = taken.concat(this.buffer);
        this.bufferBytes += takenBytes;
        this.ctx.emit({ type: 'archive-failed', error: (err as Error).message });
        throw err;
      } finally {
        this.publish();
      }
    });
    this.flushQueued = job;
    return job;
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.io.then(job, job);
    this.io = run.catch(() => undefined);
    return run;
  }

  /**
   * Captures the backup now, between two applies (so it is exactly the state at the index
   * applied when the request is handled), and queues its write.
   */
  private takeBackup(kind: BackupType): Promise<BackupSummary> {
    if (kind !== 'full' && !this.stalled) {
      const full = live(this.lastFull, true);
      const parent = kind === 'diff' ? full : live(this.lastAny, false);
      if (full && parent && parent.index < this.tracked.trackedSince) {
        // Tracking began after the parent (the agent resynchronised from a snapshot): learn
        // the keys changed in between first (a superset is fine), then capture.
        return full.manifest.then(async (m) => {
          if (m.index < this.tracked.trackedSince) await this.catchUpChanges(m);
          return this.takeBackup(kind);
        });
      }
    }
    if (this.stalled) {
      return Promise.reject(
        new BackupError(
          'SYNOD_ERR_BACKUP_BUSY',
          `the agent is stalled at index ${this.stalled.expected - 1} (gap in the committed log)`,
        ),
      );
    }
    const prevFull = live(this.lastFull, true);
    const prevAny = live(this.lastAny, false);
    let type = kind;
    const parent = type === 'diff' ? prevFull : type === 'incr' ? prevAny : null;
    let promoted = false;
    if (type !== 'full' && !parent) {
      type = 'full';
      promoted = true;
    }
    // The backup's window on the wall clock (the `backup` event's fields): from before the
    // capture, through the queued write's start, to the manifest written.
    const clock = this.ctx.clock;
    const requestedAt = clock.wallNow();
    let startedAt = requestedAt;
    const cap =
      type === 'full'
        ? this.tracked.captureFull()
        : this.tracked.captureChanges((parent as PendingBackup).index);
    // The capture is synchronous: while it ran, nothing was received, so the entries that
    // arrived meanwhile get a time later than their commit by up to its length. A capture
    // longer than CAPTURE_LAG_MS makes them `caught-up`, until the driver's next round sees
    // the agent keep up again (learner.ts `keepFollowing`).
    const capturedFor = clock.wallNow() - requestedAt;
    if (capturedFor > CAPTURE_LAG_MS) {
      this.catchingUp(`the ${type} backup's capture took ${Math.round(capturedFor)} ms`);
    }
    const layout = type === 'full' ? this.layoutOptions(cap.index) : undefined;
    let reusedBytes = 0;
    const { repo } = this.opts;
    const manifest = this.enqueue(async () => {
      startedAt = clock.wallNow();
      let parentManifest: Manifest | undefined;
      if (type !== 'full') {
        try {
          parentManifest = await (parent as PendingBackup).manifest;
        } catch (err) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_CHAIN_BROKEN',
            `the ${type} backup's parent failed to write: ${(err as Error).message}`,
          );
        }
      }
      return repo.writeBackup({
        type,
        ...(parentManifest ? { parent: parentManifest } : {}),
        index: cap.index,
        term: cap.term,
        time: cap.time,
        clusterId: this.opts.clusterId,
        records: cap.records,
        keyCount: cap.keyCount,
        stateDigest: cap.stateDigest,
        now: this.ctx.clock.wallNow(),
        totalBytes: cap.bytes,
        ...(this.opts.progress ? { progress: this.opts.progress } : {}),
        ...(layout
          ? {
              layout: {
                ...layout,
                laidOut: (l: ChunkLayout) => {
                  reusedBytes = l.reusedBytes;
                  layout.laidOut(l);
                },
              },
            }
          : {}),
      });
    });
    const mine: PendingBackup = {
      index: cap.index,
      type,
      manifest,
      failed: false,
      prevFull,
      prevAny,
      id: null,
    };
    manifest.catch(() => undefined);
    this.lastAny = mine;
    if (type === 'full') this.lastFull = mine;
    return manifest.then(
      (m) => {
        mine.id = m.id;
        // No later diff/incr has a parent older than the newest full.
        if (m.type === 'full' && live(this.lastFull, true) === mine)
          this.tracked.forgetUpTo(m.index);
        const window: BackupWindow = { requestedAt, startedAt, endedAt: clock.wallNow() };
        this.ctx.emit({
          type: 'backup',
          id: m.id,
          kind: m.type,
          index: m.index,
          bytes: m.bytes,
          reusedBytes,
          ...window,
        });
        this.publish();
        return {
          id: m.id,
          type: m.type,
          parent: m.parent,
          index: m.index,
          term: m.term,
          bytes: m.bytes,
          storedBytes: m.storedBytes,
          chunks: m.chunks.length,
          records: m.records,
          keyCount: m.keyCount,
          promoted,
        };
      },
      (err: unknown) => {
        mine.failed = true;
        const window: BackupWindow = { requestedAt, startedAt, endedAt: clock.wallNow() };
        this.ctx.emit({
          type: 'backup-failed',
          kind: type,
          error: (err as Error).message,
          ...window,
        });
        this.publish();
        throw err;
      },
    );
  }

  /**
   * A full backup captured now at `index`: keeps its chunks' layout for the next one, and
   * reuses the newest full's where no key changed since it was captured (the tracker knows
   * every key changed after it, or says it does not).
   */
  private layoutOptions(index: number): LayoutOptions | undefined {
    const env = Number(process.env.SYNOD_BACKUP_REUSE_MB);
    const keepBytes =
      this.opts.reuseBytes ??
      (process.env.SYNOD_BACKUP_REUSE_MB && env >= 0 ? env * 2 ** 20 : DEFAULT_REUSE_BYTES);
    if (!(keepBytes > 0)) return undefined;
    const prev = this.layout;
    const changed = prev ? this.tracked.keysChangedAfter(prev.index) : undefined;
    // Keeping the chunks' bytes costs a copy of every new chunk; when writes are spread over
    // the whole key space, no chunk survives to the next full. After a full that reused less
    // than REUSE_PAYS of its bytes, only every KEEP_EVERY_MISSED-th full keeps new bytes (the
    // chunks it does reuse stay kept), so such a workload pays the copy on one full in four.
    const keepNew = this.reuseMisses % KEEP_EVERY_MISSED === 0;
    const tried = prev !== undefined;
    return {
      keepBytes,
      keepNew,
      ...(prev && changed ? { reuse: { layout: prev.layout, changed } } : {}),
      laidOut: (layout) => {
        if (tried) {
          const bytes = layout.chunks.reduce((sum, c) => sum + c.size, 0);
          this.reuseMisses = layout.reusedBytes >= REUSE_PAYS * bytes ? 0 : this.reuseMisses + 1;
        }
        if (!this.layout || this.layout.index <= index) this.layout = { index, layout };
      },
    };
  }

  private armSchedule(): void {
    this.scheduleTimer?.cancel();
    this.scheduleTimer = undefined;
    this.next = null;
    if (!this.schedule) return;
    const now = this.ctx.clock.wallNow();
    const due = nextDue(this.schedule, now);
    this.next = due;
    const self = this.ctx.self;
    const system = this.ctx.system;
    this.scheduleTimer = this.ctx.clock.setTimer(due.time - now, () => {
      system.send(self, { type: 'schedule-tick', due: due.type });
    });
  }

  private async runScheduled(due: BackupType): Promise<void> {
    try {
      const s = await this.takeBackup(due);
      this.ctx.log.log('info', 'scheduled backup written', {
        id: s.id,
        type: s.type,
        index: s.index,
      });
      const retention = this.schedule?.policy.retention;
      if (retention) await this.enqueue(() => expire(this.opts.repo, retention));
    } catch (err) {
      this.ctx.emit({ type: 'scheduled-backup-failed', error: (err as Error).message });
      this.ctx.log.log('error', 'scheduled backup failed', { error: (err as Error).message });
    } finally {
      this.armSchedule();
      this.publish();
    }
  }

  /** `settle`: the digest at `index` (else the last settled one; see AgentStatus). */
  private status(settle = false): AgentStatus {
    const any = live(this.lastAny, false);
    const full = live(this.lastFull, true);
    if (settle) this.tracked.settle();
    const d = this.tracked.settled();
    return {
      index: this.tracked.index,
      term: this.tracked.term,
      keyCount: d.keyCount,
      stateDigest: d.digest,
      digestIndex: d.index,
      archivedTo: this.archivedTo,
      buffered: this.buffer.length,
      lastBackup: any?.id ?? null,
      lastFull: full?.id ?? null,
      stalled: this.stalled,
      nextScheduled: this.next,
      live: this.timing === 'observed',
    };
  }

  private publish(): void {
    this.ctx.setState(this.status());
  }

  /**
   * Publishes the status once the messages already in the mailbox are handled: one status
   * per burst of applied entries (a learner applies hundreds per turn while it catches up)
   * instead of one object and one `state$` emission per entry, which cost the agent about
   * 4 % of its catch-up CPU (benchmarks/backup.md, session 12). `status` asks still read the
   * agent's position fresh; `state$` lags by at most the rest of the burst.
   */
  private publishSoon(): void {
    if (this.publishQueued) return;
    this.publishQueued = true;
    this.ctx.system.send(this.ctx.self, { type: 'publish' });
  }
}

function toReplyError(err: unknown): { code: string; message: string } {
  if (isBackupError(err)) return { code: err.code, message: err.message };
  return { code: 'SYNOD_ERR_BACKUP_IO', message: (err as Error)?.message ?? String(err) };
}
