/**
 * A backup taken from the repository itself, without a running cluster: the state at the
 * archive's tip (latest backup + archived entries) is rebuilt, and a full, differential or
 * incremental backup of it is written against the existing chain. Useful to consolidate a
 * long chain and archive into a fresh full (so older backups and segments can expire), and
 * when the agent is down but its archive is current.
 */
import type { Command } from '../../lib/replicated-log.js';
import { decodeArchivedCommand } from './archive.js';
import { BackupError, isBackupError } from './errors.js';
import type { BackupType, Manifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Repository } from './repository.js';
import { restore } from './restore.js';
import { compareKeys, type KeyedStateFactory } from './state.js';

export interface OfflineBackupResult {
  readonly manifest: Manifest;
  readonly promoted: boolean;
}

export async function offlineBackup<Op>(
  repo: Repository,
  kind: BackupType,
  opts: { factory: KeyedStateFactory<Op>; now: number; progress?: ProgressFn },
): Promise<OfflineBackupResult> {
  const clusterId = repo.config.clusterId;
  if (clusterId === null) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_NOT_FOUND',
      `repository ${repo.dir} has no cluster id yet (nothing was ever backed up or archived)`,
    );
  }
  const cur = await restore(repo, { kind: 'latest' }, { factory: opts.factory });
  const backups = (await repo.list()).filter((m) => m.clusterId === clusterId);
  const lastFull = [...backups].reverse().find((m) => m.type === 'full');
  const lastAny = backups[backups.length - 1];
  let type = kind;
  let parent = type === 'diff' ? lastFull : type === 'incr' ? lastAny : undefined;
  let promoted = false;
  if (type !== 'full' && !parent) {
    type = 'full';
    promoted = true;
    parent = undefined;
  }
  let records: Array<readonly [string, Uint8Array | undefined]>;
  if (type === 'full') {
    records = [...cur.state.entries()].sort((a, b) => compareKeys(a[0], b[0]));
  } else {
    const p = parent as Manifest;
    const keys = new Set<string>();
    try {
      if (cur.state.mayHaveEvicted()) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
          'sessions may have been evicted: compare states',
        );
      }
      for await (const e of repo.archive.entries(p.index, cur.index)) {
        if (e.data.byteLength === 0) continue;
        const cmd = decodeArchivedCommand<Op>(e) as Command<Op>;
        for (const k of cur.state.keysTouchedEarlier(cmd)) keys.add(k);
      }
    } catch (err) {
      if (!isBackupError(err, 'SYNOD_ERR_BACKUP_ARCHIVE_GAP')) throw err;
      keys.clear();
      const old = await restore(repo, { kind: 'backup', id: p.id }, { factory: opts.factory });
      for (const [k, v] of old.state.entries()) {
        const now = cur.state.get(k);
        if (now === undefined || Buffer.compare(Buffer.from(now), Buffer.from(v)) !== 0)
          keys.add(k);
      }
      for (const [k] of cur.state.entries()) if (old.state.get(k) === undefined) keys.add(k);
    }
    records = [...keys].sort(compareKeys).map((k) => [k, cur.state.get(k)] as const);
  }
  const manifest = await repo.writeBackup({
    type,
    ...(parent && type !== 'full' ? { parent } : {}),
    index: cur.index,
    term: cur.term,
    time: cur.time,
    clusterId,
    records,
    keyCount: cur.keyCount,
    stateDigest: cur.digest,
    now: opts.now,
    ...(opts.progress ? { progress: opts.progress } : {}),
  });
  return { manifest, promoted };
}
