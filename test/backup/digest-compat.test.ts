/**
 * The state digest, version 2 (digest.ts): a full backup's manifest also carries the SHA-256
 * of its record stream, which a restore of that full checks instead of hashing every record.
 *
 * test/backup/fixtures/digest-v1/{plain,encrypted} were written by the code on main before
 * this change (manifests without `digestVersion`: brotli 1, key boundaries, 4 KiB average
 * chunks), from RepoDriver seed 2026 with WORKLOAD below: a full at 200, an incr at 260, a diff
 * at 320, the log archived 1..360. The encrypted one's key is 32 bytes of 7. Replaying the same
 * seeded workload gives the state digest at every index to compare with.
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import { decodeManifest, encodeManifest, type Manifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'digest-v1');
const WORKLOAD = { keySpace: 120, valueMin: 0, valueMax: 700, pDelete: 0.15, pBatch: 0.1 };
const KEY = Buffer.alloc(32, 7);
const factory = () => new MapState();

const reference = (() => {
  const d = new RepoDriver(undefined as unknown as Repository, 'fixture', 2026, WORKLOAD);
  d.apply(360);
  return d;
})();

function expected(index: number): { digest: string; count: number } {
  return reference.digests.get(index) as { digest: string; count: number };
}

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-digest-'));
t.teardown(() => rm(base, { recursive: true, force: true }));
let dirs = 0;

async function fixture(name: 'plain' | 'encrypted'): Promise<{ dir: string; repo: Repository }> {
  const dir = path.join(base, `${name}-${++dirs}`);
  await cp(path.join(FIXTURES, name), dir, { recursive: true });
  return { dir, repo: await Repository.open(dir, name === 'encrypted' ? { key: KEY } : {}) };
}

async function toDataDir(repo: Repository, id: string) {
  return (
    await restoreDataDirs(
      repo,
      { kind: 'backup', id },
      {
        members: ['n1'],
        clusterId: 'x',
        clusterName: 'x',
        now: 0,
        dest: { dir: path.join(base, `dd-${++dirs}`) },
      },
    )
  ).result;
}

/** Rewrites a manifest with a recomputed checksum (as a bug, not damage, would write it). */
async function rewriteManifest(repo: Repository, id: string, edit: (m: Manifest) => object) {
  const file = path.join(repo.backupsDir, `${id}.manifest`);
  const { manifest } = decodeManifest(repo.keys, await readFile(file), id);
  await writeManifest(repo, edit(manifest) as Manifest);
}

async function writeManifest(repo: Repository, m: Manifest) {
  await writeFile(
    path.join(repo.backupsDir, `${m.id}.manifest`),
    encodeManifest(repo.keys, m).bytes,
  );
}

for (const name of ['plain', 'encrypted'] as const) {
  t.test(
    `${name}: version-1 manifests (written before the change) verify and restore`,
    async (t) => {
      const { repo } = await fixture(name);
      const backups = await repo.list();
      t.same(
        backups.map((m) => `${m.type}@${m.index}`),
        ['full@200', 'incr@260', 'diff@320'],
      );
      t.ok(
        backups.every((m) => m.digestVersion === undefined && m.streamDigest === undefined),
        'the fixture predates the digest version',
      );
      t.same((await verify(repo)).problems, [], 'verify finds nothing wrong');
      for (const m of backups) {
        const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
        t.equal(r.digest, expected(m.index).digest, `${m.type} at ${m.index} restores exactly`);
        t.equal(r.keyCount, expected(m.index).count);
      }
      for (const index of [200, 233, 300, 360]) {
        const r = await restore(repo, { kind: 'index', index }, { factory });
        t.equal(r.digest, expected(index).digest, `index ${index} (backup + archive) restores`);
      }
      const full = backups[0] as Manifest;
      const streamed = await toDataDir(repo, full.id);
      t.equal(streamed.digest, expected(200).digest, 'the full streams into a data directory');
      t.equal(streamed.keyCount, expected(200).count);
    },
  );

  t.test(`${name}: version-2 backups written next to version-1 ones; all restore`, async (t) => {
    const { repo } = await fixture(name);
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.forgetOnFull = false;
    d.apply(360); // the same workload: the state at the archive's tip
    await d.resync();
    const incr = await d.backup('incr'); // on the version-1 diff: a mixed chain
    const full = await d.backup('full');
    t.equal(incr.digestVersion, 2);
    t.equal(incr.streamDigest, undefined, 'an incremental has no stream digest');
    t.equal(full.digestVersion, 2);
    t.match(full.streamDigest, /^[0-9a-f]{64}$/, 'a full carries its stream digest');
    t.equal(full.stateDigest, expected(360).digest, 'and the additive digest, as before');
    t.same(
      (await repo.chain(incr.id)).map((m) => m.type),
      ['full', 'diff', 'incr'],
    );
    for (const m of [incr, full, ...(await repo.list()).slice(0, 3)]) {
      const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
      t.equal(r.digest, expected(m.index).digest, `${m.id} (${m.type} at ${m.index}) restores`);
      t.equal(r.keyCount, expected(m.index).count);
    }
    const streamed = await toDataDir(repo, full.id);
    t.equal(streamed.digest, expected(360).digest, 'the version-2 full streams, checked');
    t.same((await verify(repo)).problems, [], 'verify: mixed digest versions are fine');
  });
}

for (const name of ['plain', 'encrypted'] as const) {
  t.test(`${name}: LZ4 chunks written next to brotli ones; all restore`, async (t) => {
    // The codec is per chunk (chunk-store.ts flag bit 3): a brotli repository switched to LZ4
    // keeps reading its brotli chunks.
    const { dir } = await fixture(name);
    const cfgFile = path.join(dir, 'repo.json');
    const cfg = JSON.parse(await readFile(cfgFile, 'utf8'));
    cfg.compression = { algo: 'lz4', level: 0 };
    await writeFile(cfgFile, JSON.stringify(cfg));
    const repo = await Repository.open(dir, name === 'encrypted' ? { key: KEY } : {});
    const before = new Set(await repo.chunks.list());
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.forgetOnFull = false;
    d.apply(360);
    await d.resync();
    const incr = await d.backup('incr');
    const full = await d.backup('full');
    const added = (await repo.chunks.list()).filter((id) => !before.has(id));
    t.ok(added.length > 0, `${added.length} new chunks`);
    const flags = await Promise.all(
      added.map(async (id) => (await readFile(repo.chunks.pathOf(id)))[5] as number),
    );
    t.ok(
      flags.every((f) => (f & ~2) === 8 || (f & ~2) === 0),
      `new chunks are LZ4 (or raw) (flags ${[...new Set(flags)].join(',')})`,
    );
    t.ok(
      flags.some((f) => (f & ~2) === 8),
      'some are LZ4',
    );
    for (const m of [incr, full, ...(await repo.list()).slice(0, 3)]) {
      const r = await restore(repo, { kind: 'backup', id: m.id }, { factory });
      t.equal(r.digest, expected(m.index).digest, `${m.id} (${m.type} at ${m.index}) restores`);
    }
    t.equal((await toDataDir(repo, full.id)).digest, expected(360).digest, 'streams');
    t.same((await verify(repo)).problems, [], 'verify: brotli and LZ4 chunks side by side');
  });
}

t.test('a version-1 full is still checked by its additive digest', async (t) => {
  // Negative control for the old path: a version-1 manifest whose state digest is not the
  // state's (checksum recomputed) is refused by both restores, as before the change.
  const { repo } = await fixture('plain');
  const full = (await repo.list())[0] as Manifest;
  await rewriteManifest(repo, full.id, (m) => ({ ...m, stateDigest: '0'.repeat(64) }));
  await t.rejects(restore(repo, { kind: 'backup', id: full.id }, { factory }), {
    code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
  });
  await t.rejects(toDataDir(repo, full.id), { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' });
});

t.test('a version-2 full: its stream digest and key count are what is checked', async (t) => {
  const { repo } = await fixture('plain');
  const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
  d.apply(360);
  await d.resync();
  const full = await d.backup('full');
  for (const [what, edit] of [
    ['stream digest', (m: Manifest) => ({ ...m, streamDigest: 'f'.repeat(64) })],
    ['key count', (m: Manifest) => ({ ...m, keyCount: m.keyCount + 1 })],
  ] as const) {
    await rewriteManifest(repo, full.id, edit);
    await t.rejects(
      restore(repo, { kind: 'backup', id: full.id }, { factory }),
      { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' },
      `a wrong ${what}: the in-memory restore refuses`,
    );
    await t.rejects(
      toDataDir(repo, full.id),
      { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' },
      `a wrong ${what}: the streamed restore refuses`,
    );
    await writeManifest(repo, full);
  }
  const r = await restore(repo, { kind: 'backup', id: full.id }, { factory });
  t.equal(r.digest, expected(360).digest, 'negative control: restored as written');
});

t.test(
  'manifests naming an unknown digest version, or missing a stream digest, are refused',
  async (t) => {
    const { repo } = await fixture('plain');
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.apply(360);
    await d.resync();
    const full = await d.backup('full');
    const cases: Array<[string, (m: Manifest) => object, RegExp]> = [
      ['version 3', (m) => ({ ...m, digestVersion: 3 }), /digest version 3 .*newer synod/],
      ['no stream digest', (m) => ({ ...m, streamDigest: undefined }), /malformed/],
      ['a short stream digest', (m) => ({ ...m, streamDigest: 'abc' }), /malformed/],
      [
        'a stream digest without a version',
        (m) => ({ ...m, digestVersion: undefined }),
        /malformed/,
      ],
    ];
    for (const [what, edit, message] of cases) {
      await writeManifest(repo, edit(full) as Manifest);
      await t.rejects(
        repo.get(full.id),
        { code: 'SYNOD_ERR_BACKUP_MANIFEST_CORRUPT', message },
        what,
      );
    }
  },
);

t.test(
  'the stream digest depends on the state only, not on chunk size or boundaries',
  async (t) => {
    const d = new RepoDriver(undefined as unknown as Repository, 'c', 99, WORKLOAD);
    d.apply(400);
    const cap = d.tracked.captureFull();
    // By hand: SHA-256 of the put records in key order (records.ts).
    const h = createHash('sha256');
    for (const [k, v] of cap.records) {
      const kb = Buffer.from(k, 'utf8');
      const hdr = Buffer.alloc(9 + kb.length);
      hdr[0] = 0;
      hdr.writeUInt32BE(kb.length, 1);
      kb.copy(hdr, 5);
      hdr.writeUInt32BE((v as Uint8Array).byteLength, 5 + kb.length);
      h.update(hdr).update(v as Uint8Array);
    }
    const want = h.digest('hex');
    const chunkers = [
      { avgSize: 256, minSize: 64, maxSize: 1024, boundary: 'key' as const },
      { avgSize: 4096, minSize: 1024, maxSize: 16384, boundary: 'gear' as const },
      { avgSize: 1 << 20, minSize: 1 << 18, maxSize: 1 << 22, boundary: 'key' as const },
    ];
    const counts: number[] = [];
    for (const chunker of chunkers) {
      const repo = await Repository.init(path.join(base, `chunker-${++dirs}`), {
        clusterId: 'c',
        chunker,
      });
      const m = await repo.writeBackup({
        type: 'full',
        index: cap.index,
        term: cap.term,
        time: cap.time,
        clusterId: 'c',
        records: cap.records,
        keyCount: cap.keyCount,
        stateDigest: cap.stateDigest,
        now: 1,
      });
      t.equal(m.streamDigest, want, `${JSON.stringify(chunker)}: the SHA-256 of the record stream`);
      counts.push(m.chunks.length);
    }
    t.ok(counts[0] !== counts[2], `the chunk lists differ (${counts.join(', ')} chunks)`);
  },
);
