/**
 * Retention: keep the newest N full backups and the newest M differentials of kept fulls
 * (all of them when M is not given); an incremental is kept exactly when its parent is, so
 * expiring a backup expires everything that depends on it and no kept backup ever loses
 * its chain. Archive segments are kept from the oldest kept backup on (point-in-time
 * recovery from every kept backup stays possible); chunks are kept when any remaining
 * manifest references them, and everything else is swept.
 *
 * Crash safety (mark, then sweep, with a journal):
 *   1. write expire.journal atomically: the backups and segments to remove;
 *   2. delete those manifests (children first) and segments, fsync the directories;
 *   3. sweep: delete every chunk no remaining manifest references, and .tmp leftovers;
 *   4. delete the journal.
 * From step 1 on, listing ignores the journaled backups, so a half-expired backup is never
 * listed; whoever next takes the repository lock finds the journal and finishes steps 2–4,
 * which are idempotent. A repository holding an unreadable manifest is never swept (its
 * chunks are unknown, so nothing can be proved unused).
 */
import path from 'node:path';
import type { SegmentInfo } from './archive.js';
import { BackupError } from './errors.js';
import { atomicWrite } from './fs.js';
import type { Manifest } from './manifest.js';
import type { Repository, ScannedManifest } from './repository.js';

export interface RetentionPolicy {
  /** Full backups to keep (≥ 1). */
  readonly full: number;
  /** Differential backups to keep (of kept fulls); all when undefined. */
  readonly diff?: number;
}

export interface ExpirePlan {
  readonly keep: readonly Manifest[];
  /** Children before parents. */
  readonly expire: readonly Manifest[];
  readonly segments: readonly SegmentInfo[];
}

export interface ExpireReport {
  readonly expired: readonly string[];
  readonly kept: readonly string[];
  readonly segmentsRemoved: number;
  readonly chunksRemoved: number;
  readonly bytesFreed: number;
  readonly warnings: readonly string[];
}

interface Journal {
  readonly backups: string[];
  readonly segments: string[];
}

export function validatePolicy(p: RetentionPolicy): void {
  if (!Number.isSafeInteger(p.full) || p.full < 1) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `retention: keep at least 1 full backup (got ${p.full})`,
    );
  }
  if (p.diff !== undefined && (!Number.isSafeInteger(p.diff) || p.diff < 0)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `retention: diff must be ≥ 0 (got ${p.diff})`,
    );
  }
}

/** Pure: which backups and segments a policy keeps. */
export function planExpire(
  backups: readonly Manifest[],
  segments: readonly SegmentInfo[],
  policy: RetentionPolicy,
): ExpirePlan {
  validatePolicy(policy);
  const bySeq = [...backups].sort((a, b) => a.seq - b.seq);
  const kept = new Set<string>();
  const fulls = bySeq.filter((m) => m.type === 'full');
  for (const f of fulls.slice(-policy.full)) kept.add(f.id);
  const diffs = bySeq.filter((m) => m.type === 'diff' && m.parent !== null && kept.has(m.parent));
  for (const d of policy.diff === undefined
    ? diffs
    : policy.diff === 0
      ? []
      : diffs.slice(-policy.diff))
    kept.add(d.id);
  for (const m of bySeq) {
    if (m.type === 'incr' && m.parent !== null && kept.has(m.parent)) kept.add(m.id);
  }
  const keep = bySeq.filter((m) => kept.has(m.id));
  const expire = bySeq.filter((m) => !kept.has(m.id)).reverse();
  let segs: SegmentInfo[] = [];
  if (keep.length > 0) {
    const oldest = Math.min(...keep.map((m) => m.index));
    segs = segments.filter((s) => s.last <= oldest);
  }
  return { keep, expire, segments: segs };
}

/** Applies a retention policy (see the module comment). */
export async function expire(
  repo: Repository,
  policy: RetentionPolicy,
  opts: { dryRun?: boolean } = {},
): Promise<ExpireReport> {
  validatePolicy(policy);
  return repo.withLock(async () => {
    const scanned = await repo.scan();
    const backups = scanned.flatMap((s) => (s.manifest ? [s.manifest] : []));
    const plan = planExpire(backups, await repo.archive.list(), policy);
    const base = {
      expired: plan.expire.map((m) => m.id),
      kept: plan.keep.map((m) => m.id),
    };
    if (opts.dryRun) {
      return {
        ...base,
        segmentsRemoved: plan.segments.length,
        chunksRemoved: 0,
        bytesFreed: 0,
        warnings: ['dry run: nothing removed'],
      };
    }
    const journal: Journal = { backups: base.expired, segments: plan.segments.map((s) => s.name) };
    await atomicWrite(repo.fs, repo.journalFile, Buffer.from(`${JSON.stringify(journal)}\n`));
    const r = await finish(repo, journal, scanned);
    return { ...base, ...r };
  });
}

/** Finishes an expire whose journal was left by a crash. Called with the lock held. */
export async function resumeExpire(repo: Repository): Promise<void> {
  let journal: Journal;
  try {
    journal = JSON.parse((await repo.fs.readFile(repo.journalFile)).toString('utf8')) as Journal;
  } catch {
    // Written atomically, so unreadable means damaged: drop it; the sweep it would have
    // done is redone by the next expire.
    await repo.fs.unlink(repo.journalFile);
    await repo.fs.fsyncDir(repo.dir);
    return;
  }
  await finish(repo, journal, await repo.scan());
}

async function finish(
  repo: Repository,
  journal: Journal,
  scanned: ScannedManifest[],
): Promise<{
  segmentsRemoved: number;
  chunksRemoved: number;
  bytesFreed: number;
  warnings: string[];
}> {
  const warnings: string[] = [];
  for (const id of journal.backups)
    await repo.fs.unlink(path.join(repo.backupsDir, `${id}.manifest`));
  for (const name of await repo.fs.readdir(repo.backupsDir)) {
    if (name.endsWith('.tmp')) await repo.fs.unlink(path.join(repo.backupsDir, name));
  }
  await repo.fs.fsyncDir(repo.backupsDir);
  for (const name of journal.segments) await repo.fs.unlink(path.join(repo.archive.root, name));
  await repo.archive.removeTemporaries();
  await repo.fs.fsyncDir(repo.archive.root);
  let chunksRemoved = 0;
  let bytesFreed = 0;
  const gone = new Set(journal.backups);
  const damaged = scanned.filter((s) => s.error && !gone.has(s.name));
  if (damaged.length > 0) {
    warnings.push(
      `chunks not swept: unreadable manifest(s) ${damaged.map((d) => d.name).join(', ')} (run verify; remove them to allow the sweep)`,
    );
  } else {
    const referenced = new Set<string>();
    for (const s of scanned) {
      if (!s.manifest || gone.has(s.name)) continue;
      for (const c of s.manifest.chunks) referenced.add(c.id);
    }
    for (const id of await repo.chunks.list()) {
      if (referenced.has(id)) continue;
      bytesFreed += (await repo.fs.size(repo.chunks.pathOf(id))) ?? 0;
      await repo.chunks.remove(id);
      chunksRemoved++;
    }
    await repo.chunks.removeTemporaries();
    await repo.chunks.sync();
  }
  await repo.fs.unlink(repo.journalFile);
  await repo.fs.fsyncDir(repo.dir);
  return { segmentsRemoved: journal.segments.length, chunksRemoved, bytesFreed, warnings };
}
