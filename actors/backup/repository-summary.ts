/**
 * What an operator wants to know about a backup repository at a glance, for `synod status
 * --backup-repo`: how many backups, the newest of each type, how far the newest restorable
 * point is behind the cluster (in log entries and in time), the log archive's range, and any
 * damaged manifest. Reads manifests only (no chunk is read); `synod backup verify` reads
 * everything.
 */
import type { BackupType, Manifest } from './manifest.js';
import type { Repository } from './repository.js';

export interface BackupPoint {
  readonly id: string;
  readonly type: BackupType;
  readonly index: number;
  readonly term: number;
  /** When the agent applied the entry at `index`, at or after its commit (ms since the epoch; docs/backup.md "Commit times and `--to time:`"). */
  readonly time: number;
  readonly keys: number;
}

export interface RepositorySummary {
  readonly repo: string;
  readonly clusterId: string | null;
  readonly encrypted: boolean;
  readonly backups: number;
  readonly latest: BackupPoint | null;
  readonly latestByType: Partial<Record<BackupType, BackupPoint>>;
  /** The log archive's indices (point-in-time restore reaches up to `to`), or null. */
  readonly archive: {
    readonly from: number;
    readonly to: number;
    readonly segments: number;
  } | null;
  /** The furthest index a restore can reach: the newest backup or the archive's end. */
  readonly restorableTo: number;
  /** Manifests that could not be read, by name, with the error code. */
  readonly damaged: readonly { readonly name: string; readonly code: string }[];
}

function point(m: Manifest): BackupPoint {
  return { id: m.id, type: m.type, index: m.index, term: m.term, time: m.time, keys: m.keyCount };
}

export async function summarizeRepository(repo: Repository): Promise<RepositorySummary> {
  const scanned = await repo.scan();
  const manifests = scanned.flatMap((s) => (s.manifest ? [s.manifest] : []));
  const latestByType: Partial<Record<BackupType, BackupPoint>> = {};
  let latest: Manifest | null = null;
  for (const m of manifests) {
    const prev = latestByType[m.type];
    if (!prev || m.index >= prev.index) latestByType[m.type] = point(m);
    if (!latest || m.index >= latest.index) latest = m;
  }
  const segs = await repo.archive.list();
  const archive =
    segs.length > 0
      ? {
          from: Math.min(...segs.map((s) => s.first)),
          to: Math.max(...segs.map((s) => s.last)),
          segments: segs.length,
        }
      : null;
  return {
    repo: repo.dir,
    clusterId: repo.config.clusterId,
    encrypted: repo.config.encryption !== null,
    backups: manifests.length,
    latest: latest ? point(latest) : null,
    latestByType,
    archive,
    restorableTo: Math.max(latest?.index ?? 0, archive && latest ? archive.to : 0),
    damaged: scanned.flatMap((s) =>
      s.error ? [{ name: s.name, code: s.error.code ?? 'SYNOD_ERR_BACKUP' }] : [],
    ),
  };
}

/** The dashboard's catalog entries (`ClusterView.backups`) of `manifests`, in their order. */
export function catalogOf(
  manifests: readonly Manifest[],
): { id: string; type: string; index: number; time: string }[] {
  return manifests.map((m) => ({
    id: m.id,
    type: m.type,
    index: m.index,
    time: new Date(m.time).toISOString(),
  }));
}
