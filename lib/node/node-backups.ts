/**
 * The dashboard's backup and restore controls on a real node (`synod node --backup-repo DIR`):
 * a backup runs the backup agent from this process (it joins the cluster as a learner through
 * this node, backs up, leaves: actors/backup/live-cli.ts), one at a time; a restore writes
 * the data directories of a *new* cluster next to the repository (the running cluster is never
 * touched) and says how to start it. The catalog is re-read from the repository.
 */

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { loadKey } from '../../actors/backup/crypto.js';
import { isBackupError } from '../../actors/backup/errors.js';
import { afterBackupWarnings, liveBackup } from '../../actors/backup/live-cli.js';
import type { BackupType } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { catalogOf } from '../../actors/backup/repository-summary.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import type { Clock } from '../clock.js';
import type { ControlResult } from '../dashboard/view.js';

export interface NodeBackupsOptions {
  readonly repoDir: string;
  readonly keyFile?: string;
  /** This node, `id=ws://host:port`: the agent joins through it. */
  readonly contact: string;
  readonly clusterName: string;
  readonly secret?: string;
  /** Where the agent listens (this node's listen host) and the host others reach it at. */
  readonly listenHost: string;
  readonly advertiseHost: string;
  readonly clock: Clock;
  readonly log: (line: string) => void;
}

export interface CatalogEntry {
  id: string;
  type: string;
  index: number;
  time: string;
}

export class NodeBackups {
  private catalogCache: CatalogEntry[] = [];
  private running: string | undefined;
  private last: string | undefined;

  constructor(private readonly o: NodeBackupsOptions) {}

  /** Backups in the repository, oldest first (as last read). */
  catalog(): CatalogEntry[] {
    return this.catalogCache;
  }

  /** Lines for the dashboard: what runs now, how the last one ended. */
  narration(): string[] {
    return [...(this.running ? [this.running] : []), ...(this.last ? [this.last] : [])];
  }

  private key(): Buffer | undefined {
    return loadKey(this.o.keyFile !== undefined ? { keyFile: this.o.keyFile } : {});
  }

  private async open(create: boolean): Promise<Repository | undefined> {
    const key = this.key();
    if (create) {
      const opts = { clusterId: this.o.clusterName, now: this.o.clock.wallNow() };
      return (await Repository.openOrInitKv(this.o.repoDir, key ? { ...opts, key } : opts)).repo;
    }
    try {
      return await Repository.open(this.o.repoDir, key ? { key } : {});
    } catch (err) {
      if (isBackupError(err, 'SYNOD_ERR_BACKUP_REPO_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  /** Re-reads the catalog; a repository that does not exist yet is an empty catalog. */
  async refresh(): Promise<void> {
    const repo = await this.open(false).catch(() => undefined);
    if (!repo) return;
    const list = await repo.list();
    this.catalogCache = catalogOf(list);
  }

  /** Starts a backup (incremental when a full exists, else full); answers at once. */
  backup(kind?: BackupType): ControlResult {
    if (this.running) return { ok: false, message: `a backup is already running: ${this.running}` };
    const type: BackupType =
      kind ?? (this.catalogCache.some((b) => b.type === 'full') ? 'incr' : 'full');
    const started = new Date(this.o.clock.wallNow()).toISOString();
    this.running = `${type} backup running since ${started}`;
    void (async () => {
      try {
        const repo = (await this.open(true)) as Repository;
        const r = await liveBackup({
          cluster: this.o.contact,
          clusterName: this.o.clusterName,
          repo,
          kind: type,
          clock: this.o.clock,
          listen: { host: this.o.listenHost, port: 0 },
          advertiseHost: this.o.advertiseHost,
          agentId: `backup-${randomUUID().slice(0, 8)}`,
          ...(this.o.secret ? { secret: this.o.secret } : {}),
          log: (line) => this.o.log(`backup: ${line}`),
        });
        this.last = [
          `${r.type} backup ${r.id} written at index ${r.index} (${r.keyCount} keys)`,
          ...afterBackupWarnings(r),
        ].join('; ');
      } catch (err) {
        const e = err as { code?: string; message?: string };
        this.last = `backup failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
      } finally {
        this.running = undefined;
        this.o.log(this.last as string);
        await this.refresh().catch(() => undefined);
      }
    })();
    return { ok: true, message: `${type} backup started into ${this.o.repoDir}` };
  }

  /**
   * Restores `backupId` (default: the latest state the repository holds) into the data
   * directories of a new cluster with `members`, next to the repository.
   */
  async restore(backupId: string | undefined, members: readonly string[]): Promise<ControlResult> {
    const repo = await this.open(false);
    if (!repo)
      return {
        ok: false,
        message: `no backup repository in ${this.o.repoDir} yet: take a backup first`,
      };
    const stamp = new Date(this.o.clock.wallNow()).toISOString().replace(/[:.]/g, '-');
    const clusterDir = path.join(`${this.o.repoDir}-restores`, stamp);
    const { result, dirs } = await restoreDataDirs(
      repo,
      backupId ? { kind: 'backup', id: backupId } : { kind: 'latest' },
      {
        members,
        clusterId: randomUUID(),
        clusterName: this.o.clusterName,
        now: this.o.clock.wallNow(),
        clusterDir,
      },
    );
    const message = `restored index ${result.index} (${result.keyCount} keys, digest checked) into ${dirs.join(', ')}: a new cluster; start each member with synod node --id ID --data ${clusterDir}/ID --peers … (the running cluster is untouched)`;
    this.o.log(message);
    return { ok: true, message };
  }
}
