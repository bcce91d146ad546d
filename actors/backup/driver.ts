/**
 * The agent's repository logic without the actor: applies a seeded workload to a tracked
 * state, archives the entries and takes backups, remembering the state digest at every
 * index. Tests (crash injection, corruption, retention properties) and the benchmark drive
 * repositories with it; the agent does the same through its mailbox.
 */
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
import { type ArchivedEntry, encodeArchivedCommand } from './archive.js';
import type { BackupType, Manifest } from './manifest.js';
import type { Repository } from './repository.js';
import { SessionState } from './sessions.js';
import { type MapOp, MapState } from './state.js';
import { TrackedState } from './tracker.js';
import { command, DEFAULT_WORKLOAD, randomOp, type WorkloadOptions } from './workload.js';

export class RepoDriver {
  readonly tracked = new TrackedState<Command<MapOp>>(new SessionState(new MapState()));
  readonly random: Random;
  /** State digest and key count after every index. */
  readonly digests = new Map<number, { digest: string; count: number }>();
  buffer: ArchivedEntry[] = [];
  lastFull: Manifest | undefined;
  lastAny: Manifest | undefined;
  time = 1_800_000_000_000;
  /**
   * Forget tracked changes older than a new full (as the agent does). Tests that roll the
   * driver back to an earlier repository copy turn this off.
   */
  forgetOnFull = true;

  constructor(
    public repo: Repository,
    readonly clusterId: string,
    seed: number,
    readonly workload: WorkloadOptions = DEFAULT_WORKLOAD,
  ) {
    this.random = new Random(seed);
    this.digests.set(0, { digest: this.tracked.digestHex, count: 0 });
  }

  get index(): number {
    return this.tracked.index;
  }

  /** Applies `n` random commands (1 ms of commit time apart). */
  apply(n: number): void {
    for (let i = 0; i < n; i++) this.applyOp(randomOp(this.random, this.workload));
  }

  applyOp(op: MapOp): void {
    const index = this.tracked.index + 1;
    this.time += 1;
    this.tracked.apply(command(op, index), { index, term: 1 + (index >> 10), time: this.time });
    this.buffer.push({
      index,
      term: 1 + (index >> 10),
      time: this.time,
      data: encodeArchivedCommand(command(op, index)),
      // The driver's times are its entries' commit times.
      timing: 'observed',
    });
    this.digests.set(index, { digest: this.tracked.digestHex, count: this.tracked.keyCount });
  }

  /** Archives the buffered entries as one segment. */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const taken = this.buffer;
    await this.repo.withLock(() => this.repo.archive.write(taken));
    this.buffer = [];
  }

  async backup(kind: BackupType): Promise<Manifest> {
    let type = kind;
    const parent = type === 'diff' ? this.lastFull : type === 'incr' ? this.lastAny : undefined;
    if (!parent) type = 'full';
    const cap =
      type === 'full'
        ? this.tracked.captureFull()
        : this.tracked.captureChanges((parent as Manifest).index);
    const m = await this.repo.writeBackup({
      type,
      ...(parent && type !== 'full' ? { parent } : {}),
      index: cap.index,
      term: cap.term,
      time: cap.time,
      clusterId: this.clusterId,
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: this.time,
    });
    this.lastAny = m;
    if (m.type === 'full') {
      this.lastFull = m;
      if (this.forgetOnFull) this.tracked.forgetUpTo(m.index);
    }
    return m;
  }

  /** Re-reads the newest backups from the repository (after expires or crashes). */
  async resync(): Promise<void> {
    const all = (await this.repo.list()).filter((m) => m.clusterId === this.clusterId);
    this.lastAny = all[all.length - 1];
    this.lastFull = [...all].reverse().find((m) => m.type === 'full');
  }
}
