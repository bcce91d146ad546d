/**
 * Repositories written before the codec became a per-chunk choice still restore, and keep
 * working when new chunks are written with brotli next to their deflate ones.
 *
 * test/backup/fixtures/deflate-v1/{plain,encrypted} were written by the code on main before
 * this change (deflate level 1, the gear chunker, repo.json without `boundary`), from
 * RepoDriver seed 2026 with WORKLOAD below: a full at 200, an incr at 260, a diff at 320, the
 * log archived 1..360. The encrypted one's key is 32 bytes of 7. Replaying the same seeded
 * workload here gives the state digest at every index to compare with.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import { hideNativeLz4ForTests } from '../../actors/backup/lz4.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'deflate-v1');
const WORKLOAD = { keySpace: 120, valueMin: 0, valueMax: 700, pDelete: 0.15, pBatch: 0.1 };
const KEY = Buffer.alloc(32, 7);
const factory = () => new MapState();

/** The digest the cluster had at every index 0..360 (a driver that never writes). */
const reference = (() => {
  const d = new RepoDriver(undefined as unknown as Repository, 'fixture', 2026, WORKLOAD);
  d.apply(360);
  return d;
})();

function expected(index: number): { digest: string; count: number } {
  return reference.digests.get(index) as { digest: string; count: number };
}

/** The codec flags byte of every chunk file (byte 5 of the header). */
async function chunkFlags(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = path.join(dir, 'chunks');
  for (const d of await readdir(root)) {
    for (const f of await readdir(path.join(root, d))) {
      out.set(f, (await readFile(path.join(root, d, f)))[5] as number);
    }
  }
  return out;
}

for (const name of ['plain', 'encrypted'] as const) {
  const key = name === 'encrypted' ? KEY : undefined;
  const opts = key ? { key } : {};

  t.test(`${name}: a deflate repository from before the change restores`, async (t) => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'synod-codec-'));
    t.teardown(() => rm(base, { recursive: true, force: true }));
    const dir = path.join(base, 'repo');
    await cp(path.join(FIXTURES, name), dir, { recursive: true });
    const repo = await Repository.open(dir, opts);
    t.equal(repo.config.compression.algo, 'deflate', 'the fixture is a deflate repository');
    t.equal(repo.config.chunker.boundary, undefined, 'written before the key rule existed');
    const flags = await chunkFlags(dir);
    t.ok(
      [...flags.values()].every((f) => (f & ~2) === 1),
      `every chunk is deflated (flags ${[...new Set(flags.values())].join(',')})`,
    );

    const report = await verify(repo);
    t.same(report.problems, [], 'verify finds nothing wrong');
    const backups = await repo.list();
    t.same(
      backups.map((m) => `${m.type}@${m.index}`),
      ['full@200', 'incr@260', 'diff@320'],
    );
    for (const m of backups) {
      const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
      t.equal(r.digest, expected(m.index).digest, `${m.type} at ${m.index} restores exactly`);
      t.equal(r.keyCount, expected(m.index).count);
    }
    for (const index of [200, 233, 300, 360]) {
      const r = await restore(repo, { kind: 'index', index }, { factory });
      t.equal(r.digest, expected(index).digest, `index ${index} (backup + archive) restores`);
    }
    // The streamed restore (stream-restore.ts, session 8) reads the same old repository: its
    // full backup's deflated chunks go straight into a data directory, digest-checked.
    const full = backups[0] as (typeof backups)[number];
    const streamed = await restoreDataDirs(
      repo,
      { kind: 'backup', id: full.id },
      {
        members: ['n1'],
        clusterId: 'x',
        clusterName: 'x',
        now: 0,
        dest: { dir: path.join(base, 'dd') },
      },
    );
    t.equal(streamed.result.digest, expected(200).digest, 'the full streams into a data directory');
    t.equal(streamed.result.keyCount, expected(200).count);
    if (key) {
      await t.rejects(
        Repository.open(dir, { key: Buffer.alloc(32, 8) }),
        { code: 'SYNOD_ERR_BACKUP_WRONG_KEY' },
        'a wrong key is refused',
      );
    }
  });

  t.test(`${name}: brotli chunks written next to deflate ones; both restore`, async (t) => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'synod-codec-'));
    t.teardown(() => rm(base, { recursive: true, force: true }));
    const dir = path.join(base, 'repo');
    await cp(path.join(FIXTURES, name), dir, { recursive: true });
    const before = await chunkFlags(dir);
    // Switch the repository's writer to the new defaults.
    const cfgFile = path.join(dir, 'repo.json');
    const cfg = JSON.parse(await readFile(cfgFile, 'utf8'));
    cfg.compression = { algo: 'brotli', level: 1 };
    cfg.chunker.boundary = 'key';
    await writeFile(cfgFile, JSON.stringify(cfg));
    const repo = await Repository.open(dir, opts);
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.forgetOnFull = false;
    d.apply(360); // the same workload: the state at the archive's tip
    await d.resync();
    const incr = await d.backup('incr'); // on the deflate diff: a mixed chain
    const full = await d.backup('full');
    const after = await chunkFlags(dir);
    const added = [...after].filter(([id]) => !before.has(id));
    t.ok(added.length > 0, `${added.length} new chunks`);
    t.ok(
      added.every(([, f]) => (f & ~2) === 4),
      `every new chunk is brotli (flags ${[...new Set(added.map(([, f]) => f))].join(',')})`,
    );
    t.same(
      (await repo.chain(incr.id)).map((m) => m.type),
      ['full', 'diff', 'incr'],
      'the incr sits on the deflate full and diff',
    );
    for (const m of [incr, full, ...(await repo.list()).slice(0, 3)]) {
      const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
      t.equal(r.digest, expected(m.index).digest, `${m.id} (${m.type} at ${m.index}) restores`);
    }
    t.same((await verify(repo)).problems, [], 'verify: mixed codecs are fine');
  });
}

t.test('repo.json naming an unknown codec or boundary is a format error', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'synod-codec-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  type Cfg = { compression: unknown; chunker: { boundary?: string } };
  const edits: Array<[string, (c: Cfg) => void]> = [
    ['codec', (c) => (c.compression = { algo: 'zstd', level: 1 })],
    ['level', (c) => (c.compression = { algo: 'brotli', level: 12 })],
    ['boundary', (c) => (c.chunker.boundary = 'fastcdc')],
  ];
  for (const [what, edit] of edits) {
    const dir = path.join(base, what);
    await cp(path.join(FIXTURES, 'plain'), dir, { recursive: true });
    const cfg = JSON.parse(await readFile(path.join(dir, 'repo.json'), 'utf8'));
    edit(cfg);
    await writeFile(path.join(dir, 'repo.json'), JSON.stringify(cfg));
    await t.rejects(
      Repository.open(dir),
      { code: 'SYNOD_ERR_BACKUP_REPO_FORMAT' },
      `unknown ${what} refused`,
    );
  }
  await t.rejects(
    Repository.init(path.join(base, 'new'), { compression: { algo: 'lzma' as 'none' } }),
    { code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT' },
    'init refuses an unknown codec',
  );
  const fresh = await Repository.init(path.join(base, 'fresh'));
  t.same(fresh.config.compression, { algo: 'lz4', level: 0 }, 'new repositories: LZ4 (loads here)');
  hideNativeLz4ForTests(true);
  try {
    const plain = await Repository.init(path.join(base, 'no-lz4'));
    t.same(plain.config.compression, { algo: 'brotli', level: 1 }, 'without lz4-napi: brotli 1');
  } finally {
    hideNativeLz4ForTests(false);
  }
  t.equal(fresh.config.chunker.boundary, 'key', 'new repositories: key boundaries');
  const deflate = await Repository.init(path.join(base, 'deflate'), {
    compression: { algo: 'deflate' },
  });
  t.same(deflate.config.compression, { algo: 'deflate', level: 1 }, 'deflate alone: level 1');
});
