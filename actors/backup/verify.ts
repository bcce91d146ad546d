/**
 * Verify reads everything and names exactly what is damaged: every manifest (MAC and
 * structure), every chain (parents present and matching), every chunk any backup
 * references (read in full: header, tag, decompression, size, content address; each chunk
 * once), and every archive segment (checksums, ranges), plus gaps in the archive from the
 * oldest backup on. Each problem says which backups (or which archived indices) it breaks.
 */
import { decodeArchivedCommand, LogArchive } from './archive.js';
import { isBackupError } from './errors.js';
import type { Manifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import { decodeRecords } from './records.js';
import type { Repository } from './repository.js';

export type ProblemKind =
  | 'manifest-corrupt'
  | 'chain-broken'
  | 'chunk-missing'
  | 'chunk-corrupt'
  | 'segment-corrupt'
  | 'archive-record-corrupt'
  | 'archive-gap'
  | 'archive-overlap-conflict'
  | 'expire-interrupted';

export interface Problem {
  readonly kind: ProblemKind;
  /** The damaged thing: a backup id, a chunk address, a segment name, or an index range. */
  readonly target: string;
  readonly detail: string;
  /** Backups that can no longer be restored because of it. */
  readonly affects: readonly string[];
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly backups: number;
  readonly chunks: number;
  readonly chunkBytes: number;
  readonly segments: number;
  readonly archivedFrom: number | null;
  readonly archivedTo: number | null;
  /** Chunks no manifest references (left by interrupted backups; harmless, swept by expire). */
  readonly orphanChunks: number;
  /**
   * Archived records by how their time was taken (archive.ts `ArchiveTiming`): observed live,
   * caught up (committed at or before their time), unknown (segment formats 1 and 2). A
   * `restore --to time:` refuses times that the latter two leave ambiguous. Not damage.
   */
  readonly archiveTiming: {
    readonly observed: number;
    readonly caughtUp: number;
    readonly unknown: number;
  };
  readonly problems: readonly Problem[];
}

export async function verify(
  repo: Repository,
  opts: { progress?: ProgressFn } = {},
): Promise<VerifyReport> {
  const problems: Problem[] = [];
  const scanned = await repo.scan();
  if ((await repo.fs.size(repo.journalFile)) !== undefined) {
    problems.push({
      kind: 'expire-interrupted',
      target: 'expire.journal',
      detail: 'an expire was interrupted; the next backup or expire finishes it',
      affects: [],
    });
  }
  const good: Manifest[] = [];
  for (const s of scanned) {
    if (s.error) {
      problems.push({
        kind: 'manifest-corrupt',
        target: s.name,
        detail: s.error.message,
        affects: [s.name],
      });
    } else if (s.manifest) {
      good.push(s.manifest);
    }
  }
  // Chains: a backup whose chain is broken cannot be restored.
  const restorable = new Set<string>();
  for (const m of good) {
    try {
      await repo.chain(m.id, scanned);
      restorable.add(m.id);
    } catch (err) {
      if (!isBackupError(err)) throw err;
      problems.push({ kind: 'chain-broken', target: m.id, detail: err.message, affects: [m.id] });
    }
  }
  // Which backups need which chunk (through their chains).
  const dependents = new Map<string, string[]>();
  const childrenOf = new Map<string, string[]>();
  for (const m of good) {
    if (m.parent) childrenOf.set(m.parent, [...(childrenOf.get(m.parent) ?? []), m.id]);
  }
  const descendants = (id: string): string[] => {
    const out = [id];
    for (let i = 0; i < out.length; i++) out.push(...(childrenOf.get(out[i] as string) ?? []));
    return out;
  };
  const sizes = new Map<string, number>();
  for (const m of good) {
    for (const c of m.chunks) {
      const d = dependents.get(c.id) ?? [];
      d.push(m.id);
      dependents.set(c.id, d);
      sizes.set(c.id, c.size);
    }
  }
  let chunkBytes = 0;
  let done = 0;
  const total = dependents.size;
  for (const [id, owners] of dependents) {
    try {
      const plain = await repo.chunks.get(id, sizes.get(id));
      for (const _ of decodeRecords(plain, id)) {
        // structure check only
      }
      chunkBytes += plain.length;
    } catch (err) {
      if (!isBackupError(err)) throw err;
      const affects = [...new Set(owners.flatMap(descendants))].sort();
      problems.push({
        kind: err.code === 'SYNOD_ERR_BACKUP_CHUNK_MISSING' ? 'chunk-missing' : 'chunk-corrupt',
        target: id,
        detail: err.message,
        affects,
      });
    }
    done++;
    opts.progress?.({ phase: 'verify', bytes: chunkBytes, chunks: done, totalChunks: total });
  }
  const stored = await repo.chunks.list();
  const orphanChunks = stored.filter((id) => !dependents.has(id)).length;
  // Archive.
  const segs = await repo.archive.list();
  const terms = new Map<number, number>();
  const badSegs = new Set<string>();
  const archiveTiming = { observed: 0, caughtUp: 0, unknown: 0 };
  for (const s of segs) {
    try {
      for (const e of await repo.archive.read(s)) {
        if (e.timing === 'observed') archiveTiming.observed++;
        else if (e.timing === 'caught-up') archiveTiming.caughtUp++;
        else archiveTiming.unknown++;
        const t = terms.get(e.index);
        if (t !== undefined && t !== e.term) {
          problems.push({
            kind: 'archive-overlap-conflict',
            target: s.name,
            detail: `index ${e.index} archived twice with terms ${t} and ${e.term}`,
            affects: [],
          });
        }
        terms.set(e.index, e.term);
        // The frame's checksum held, but the command must decode too: a restore replaying
        // this entry would stop here.
        try {
          decodeArchivedCommand(e);
        } catch (err) {
          if (!isBackupError(err)) throw err;
          problems.push({
            kind: 'archive-record-corrupt',
            target: s.name,
            detail: `${err.message} (point-in-time recovery to index ${e.index} or later, from backups before it, fails)`,
            affects: [],
          });
        }
      }
    } catch (err) {
      if (!isBackupError(err)) throw err;
      badSegs.add(s.name);
      problems.push({
        kind: 'segment-corrupt',
        target: s.name,
        detail: `${err.message} (point-in-time recovery into ${s.first}..${s.last} and beyond is lost)`,
        affects: [],
      });
    }
  }
  const goodSegs = segs.filter((s) => !badSegs.has(s.name));
  if (good.length > 0 && goodSegs.length > 0) {
    const from = Math.min(...good.map((m) => m.index));
    const tip = LogArchive.tip(goodSegs);
    for (const g of LogArchive.gaps(goodSegs, from, tip)) {
      if (
        badSegs.size > 0 &&
        segs.some((s) => badSegs.has(s.name) && s.first <= g.to && s.last >= g.from)
      )
        continue;
      // A gap matters only if no backup lies inside or right after it to restart from.
      problems.push({
        kind: 'archive-gap',
        target: `${g.from}..${g.to}`,
        detail: `the log archive has no entries ${g.from}..${g.to}: no point-in-time recovery to indices ${g.from}..${nextBackupAfter(good, g.to) ?? tip} from earlier backups`,
        affects: [],
      });
    }
  }
  return {
    ok: problems.length === 0,
    backups: scanned.length,
    chunks: dependents.size,
    chunkBytes,
    segments: segs.length,
    archivedFrom: segs.length > 0 ? Math.min(...segs.map((s) => s.first)) : null,
    archivedTo: segs.length > 0 ? LogArchive.tip(segs) : null,
    orphanChunks,
    archiveTiming,
    problems,
  };
}

function nextBackupAfter(backups: Manifest[], index: number): number | undefined {
  let best: number | undefined;
  for (const m of backups)
    if (m.index >= index && (best === undefined || m.index < best)) best = m.index;
  return best === undefined ? undefined : best - 1;
}
