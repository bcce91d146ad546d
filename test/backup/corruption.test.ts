/**
 * Damage of every kind is named by verify and refused by restore: flipped bits, truncated,
 * deleted and swapped chunks, a tampered manifest, a missing parent, a gap in the log
 * archive, a corrupt segment; with encryption, a wrong key. Negative control: the same
 * checks on an undamaged repository report nothing.
 */
import { cp, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import type { Manifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };

interface Fixture {
  base: string;
  key: Buffer | undefined;
  backups: Manifest[];
  tip: number;
}

async function makeFixture(key?: Buffer): Promise<Fixture> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'synod-corrupt-'));
  const repo = await Repository.init(path.join(base, 'repo'), {
    chunker: small,
    clusterId: 'c',
    ...(key ? { key } : {}),
  });
  const d = new RepoDriver(repo, 'c', 5);
  for (const kind of ['full', 'incr', 'diff', 'incr'] as const) {
    for (let i = 0; i < 3; i++) {
      d.apply(100);
      await d.flush();
    }
    await d.backup(kind);
  }
  d.apply(100);
  await d.flush();
  return { base, key, backups: await repo.list(), tip: d.index };
}

const fixtures: Fixture[] = [];
t.teardown(async () => {
  for (const f of fixtures) await rm(f.base, { recursive: true, force: true });
});

async function copy(f: Fixture, name: string): Promise<Repository> {
  const dir = path.join(f.base, name);
  await cp(path.join(f.base, 'repo'), dir, { recursive: true });
  return Repository.open(dir, f.key ? { key: f.key } : {});
}

const factory = () => new MapState();

/**
 * Restores backup `id` into a fresh data directory (a full of this map repository is streamed
 * chunk by chunk: stream-restore.ts); returns the directory.
 */
async function toDataDir(repo: Repository, id: string): Promise<{ dir: string; digest: string }> {
  const dir = path.join(repo.dir, '..', `restored-${path.basename(repo.dir)}-${id}`);
  const r = await restoreDataDirs(
    repo,
    { kind: 'backup', id },
    { members: ['n1'], clusterId: 'x', clusterName: 'x', now: 0, dest: { dir } },
  );
  return { dir, digest: r.result.digest };
}

/** The streamed restore of `id` fails with `code` and leaves no directory behind. */
async function streamRefuses(
  t: Test,
  repo: Repository,
  id: string,
  want: { code: string; message?: RegExp },
): Promise<void> {
  const dir = path.join(repo.dir, '..', `restored-${path.basename(repo.dir)}-${id}`);
  await t.rejects(toDataDir(repo, id), want, `streamed into a data directory: ${want.code}`);
  await t.rejects(readdir(dir), { code: 'ENOENT' }, 'and the destination is not left behind');
}

for (const encrypted of [false, true]) {
  t.test(`${encrypted ? 'encrypted' : 'plain'} repository`, async (t) => {
    const f = await makeFixture(encrypted ? Buffer.alloc(32, 9) : undefined);
    fixtures.push(f);
    const full = f.backups[0] as Manifest;
    const lastIncr = f.backups[3] as Manifest;
    const chunkOf = (m: Manifest, i = 0) => (m.chunks[i] as { id: string }).id;

    t.test('negative control: an undamaged copy verifies and restores', async (t) => {
      const repo = await copy(f, 'clean');
      const v = await verify(repo);
      t.same(v.problems, []);
      t.ok(v.ok);
      for (const m of f.backups) {
        const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
        t.equal(r.digest, m.stateDigest);
      }
      t.equal((await restore(repo, { kind: 'index', index: f.tip }, { factory })).index, f.tip);
      t.equal((await toDataDir(repo, full.id)).digest, full.stateDigest, 'streamed restore');
    });

    const chunkCases: Array<[string, string, (file: string, repo: Repository) => Promise<void>]> = [
      [
        'flipped bit',
        'chunk-corrupt',
        async (file) => {
          const b = await readFile(file);
          b[b.length >> 1] = (b[b.length >> 1] as number) ^ 0x10;
          await writeFile(file, b);
        },
      ],
      ['truncated', 'chunk-corrupt', (file) => truncate(file, 20)],
      ['deleted', 'chunk-missing', (file) => unlink(file)],
      [
        'swapped with another chunk',
        'chunk-corrupt',
        async (file, repo) => {
          const other = repo.chunks.pathOf(chunkOf(full, 1));
          await writeFile(file, await readFile(other));
        },
      ],
    ];
    for (const [name, kind, damage] of chunkCases) {
      t.test(`chunk ${name}`, async (t) => {
        const repo = await copy(f, `chunk-${name.replace(/ /g, '-')}`);
        const victim = chunkOf(full, 0);
        await damage(repo.chunks.pathOf(victim), repo);
        const v = await verify(repo);
        t.notOk(v.ok);
        const p = v.problems.find((x) => x.target === victim);
        t.equal(p?.kind, kind, `verify names chunk ${victim.slice(0, 12)} as ${kind}`);
        t.ok(
          p?.affects.includes(full.id) && p?.affects.includes(lastIncr.id),
          'and the backups it breaks (the full and its dependents)',
        );
        await t.rejects(restore(repo, { kind: 'backup', id: lastIncr.id }, { factory }), {
          code:
            kind === 'chunk-missing'
              ? 'SYNOD_ERR_BACKUP_CHUNK_MISSING'
              : 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
        });
        await t.rejects(restore(repo, { kind: 'latest' }, { factory }));
        await streamRefuses(t, repo, full.id, {
          code:
            kind === 'chunk-missing'
              ? 'SYNOD_ERR_BACKUP_CHUNK_MISSING'
              : 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
        });
      });
    }

    t.test('tampered manifest', async (t) => {
      const repo = await copy(f, 'manifest');
      const file = path.join(repo.backupsDir, `${full.id}.manifest`);
      const text = (await readFile(file, 'utf8')).replace(
        `"keyCount":${full.keyCount}`,
        `"keyCount":${full.keyCount + 1}`,
      );
      await writeFile(file, text);
      const v = await verify(repo);
      t.ok(
        v.problems.some((p) => p.kind === 'manifest-corrupt' && p.target === full.id),
        'manifest named',
      );
      t.ok(
        v.problems.some((p) => p.kind === 'chain-broken' && p.target === lastIncr.id),
        'dependents named as broken chains',
      );
      await t.rejects(restore(repo, { kind: 'backup', id: full.id }, { factory }), {
        code: 'SYNOD_ERR_BACKUP_MANIFEST_CORRUPT',
      });
      await t.rejects(restore(repo, { kind: 'backup', id: lastIncr.id }, { factory }), {
        code: 'SYNOD_ERR_BACKUP_CHAIN_BROKEN',
      });
    });

    t.test(
      'a manifest whose chunk list was rewritten consistently is still caught (digest)',
      async (t) => {
        if (encrypted) {
          t.pass('with encryption the MAC cannot be recomputed without the key');
          return;
        }
        // Simulate a bug that drops a chunk from a manifest but recomputes its checksum.
        const repo = await copy(f, 'digest');
        const { decodeManifest, encodeManifest } = await import('../../actors/backup/manifest.js');
        const file = path.join(repo.backupsDir, `${full.id}.manifest`);
        const { manifest } = decodeManifest(repo.keys, await readFile(file), full.id);
        const bad = { ...manifest, chunks: manifest.chunks.slice(1) };
        await writeFile(file, encodeManifest(repo.keys, bad).bytes);
        await t.rejects(restore(repo, { kind: 'backup', id: full.id }, { factory }), {
          code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
        });
        await streamRefuses(t, repo, full.id, { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' });
      },
    );

    t.test(
      "a full backup's chunks listed out of order (same keys, same digest) are refused",
      async (t) => {
        if (encrypted) {
          t.pass('with encryption the MAC cannot be recomputed without the key');
          return;
        }
        // The digest does not depend on order: the restore checks that a full's keys ascend.
        const repo = await copy(f, 'order');
        const { decodeManifest, encodeManifest } = await import('../../actors/backup/manifest.js');
        const file = path.join(repo.backupsDir, `${full.id}.manifest`);
        const { manifest } = decodeManifest(repo.keys, await readFile(file), full.id);
        t.ok(manifest.chunks.length >= 2, `the full has ${manifest.chunks.length} chunks`);
        const bad = { ...manifest, chunks: [...manifest.chunks].reverse() };
        await writeFile(file, encodeManifest(repo.keys, bad).bytes);
        await t.rejects(restore(repo, { kind: 'backup', id: full.id }, { factory }), {
          code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
          message: /does not come after/,
        });
        await streamRefuses(t, repo, full.id, {
          code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
          message: /do not ascend/,
        });
      },
    );

    t.test('gap in the log archive', async (t) => {
      const repo = await copy(f, 'gap');
      const segs = await repo.archive.list();
      // remove a segment after the last backup
      const victim =
        segs.find((s) => s.first > lastIncr.index) ??
        (segs[segs.length - 1] as (typeof segs)[number]);
      // and one inside the chain's span
      const inner = segs.find(
        (s) => s.first > full.index && s.last < lastIncr.index,
      ) as (typeof segs)[number];
      await unlink(victim.file);
      await unlink(inner.file);
      const v = await verify(repo);
      const gaps = v.problems.filter((p) => p.kind === 'archive-gap').map((p) => p.target);
      t.ok(
        gaps.includes(`${inner.first}..${inner.last}`),
        `verify names gap ${inner.first}..${inner.last}`,
      );
      await t.rejects(restore(repo, { kind: 'index', index: inner.last }, { factory }), {
        code: 'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
      });
      await t.rejects(restore(repo, { kind: 'index', index: f.tip }, { factory }), {
        code:
          victim.last === f.tip
            ? 'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE'
            : 'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
      });
      // Backups themselves still restore.
      const r = await restore(repo, { kind: 'backup', id: lastIncr.id }, { factory });
      t.equal(r.digest, lastIncr.stateDigest);
    });

    t.test('corrupt archive segment', async (t) => {
      const repo = await copy(f, 'segment');
      const segs = await repo.archive.list();
      const victim = segs[segs.length - 1] as (typeof segs)[number];
      const b = await readFile(victim.file);
      b[40] = (b[40] as number) ^ 1;
      await writeFile(victim.file, b);
      const v = await verify(repo);
      t.ok(
        v.problems.some((p) => p.kind === 'segment-corrupt' && p.target === victim.name),
        'segment named',
      );
      await t.rejects(restore(repo, { kind: 'index', index: f.tip }, { factory }), {
        code: 'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT',
      });
    });

    if (encrypted) {
      t.test('wrong key', async (t) => {
        const dir = path.join(f.base, 'repo');
        await t.rejects(Repository.open(dir, { key: Buffer.alloc(32, 8) }), {
          code: 'SYNOD_ERR_BACKUP_WRONG_KEY',
        });
        await t.rejects(Repository.open(dir), { code: 'SYNOD_ERR_BACKUP_KEY_REQUIRED' });
        // Chunks and segments hold no plaintext.
        const chunkFiles = await readdir(path.join(dir, 'chunks'));
        t.ok(chunkFiles.length > 0);
        const any = path.join(dir, 'chunks', chunkFiles[0] as string);
        const one = (await readdir(any))[0] as string;
        const raw = await readFile(path.join(any, one));
        t.notOk(raw.includes(Buffer.from('k0000')), 'no key names in an encrypted chunk');
      });
    }
  });
}
