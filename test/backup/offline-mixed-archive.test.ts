/**
 * offlineBackup (incr and diff) over a repository whose archive mixes format-1 segments (the
 * digest-v1 fixtures) and format-2 ones written after: the incremental or differential is
 * taken and restores to the driver's reference state, plain and encrypted (review of the
 * archive format 2, session 13).
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import { offlineBackup } from '../../actors/backup/offline.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'digest-v1');
const WORKLOAD = { keySpace: 120, valueMin: 0, valueMax: 700, pDelete: 0.15, pBatch: 0.1 };
const KEY = Buffer.alloc(32, 7);
const factory = () => new MapState();
const base = await mkdtemp(path.join(os.tmpdir(), 'offline-mixed-archive-'));
t.teardown(() => rm(base, { recursive: true, force: true }));

for (const name of ['plain', 'encrypted'] as const)
  for (const kind of ['incr', 'diff'] as const)
    t.test(`${name} ${kind}: offline backup over v1 + v2 segments`, async (t) => {
      const dir = path.join(base, `${name}-${kind}`);
      await cp(path.join(FIXTURES, name), dir, { recursive: true });
      const repo = await Repository.open(dir, name === 'encrypted' ? { key: KEY } : {});
      const before = await repo.list();
      t.comment(`backups: ${before.map((m) => `${m.type}@${m.index}`).join(' ')}`);
      const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
      d.apply(360);
      d.buffer = [];
      d.apply(60);
      await d.flush();
      const res = await offlineBackup(repo, kind, { factory, now: Date.now() });
      t.comment(JSON.stringify({ ...res, manifest: undefined }));
      const r = await restore(repo, { kind: 'latest' }, { factory });
      const want = d.digests.get(420) as { digest: string; count: number };
      t.same(
        { index: r.index, digest: r.digest, count: r.keyCount },
        { index: 420, digest: want.digest, count: want.count },
      );
      const after = await repo.list();
      const last = after[after.length - 1];
      t.equal(last?.index, 420, `a new ${last?.type} at 420`);
    });
