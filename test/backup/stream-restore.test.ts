/**
 * The streamed restore (stream-restore.ts): a full backup of a map repository copied chunk by
 * chunk into node data directories gives byte for byte what the in-memory restore writes; the
 * workers' per-chunk scan agrees with the calling thread's (digest sums, key order with
 * characters outside the BMP, deletes); a restore that fails leaves its destinations as it
 * found them. Damage of every kind on the streamed path is in corruption.test.ts.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ChunkPool, InThread } from '../../actors/backup/chunk-pool.js';
import { deriveKeys } from '../../actors/backup/crypto.js';
import { writeRestoredDataDir } from '../../actors/backup/datadir.js';
import { recordHash, StateDigest } from '../../actors/backup/digest.js';
import { RepoDriver } from '../../actors/backup/driver.js';
import { decodeManifest, encodeManifest } from '../../actors/backup/manifest.js';
import { writeRecord } from '../../actors/backup/records.js';
import { Repository } from '../../actors/backup/repository.js';
import { executeRestore, planRestore, restore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { MapState } from '../../actors/backup/state.js';
import { MAP_KIND } from '../../actors/backup/state-kind.js';
import { streamable } from '../../actors/backup/stream-restore.js';
import { Random } from '../../lib/random.js';
import { openDataDir } from '../../lib/storage/data-dir.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 808);
const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-stream-restore-'));
t.teardown(() => rm(base, { recursive: true, force: true }));

/**
 * Records with keys that sort differently as UTF-8 bytes and as JavaScript strings ("Ａ",
 * U+FF21, sorts after "😀" as a string, before it as bytes), empty values, some deletes.
 */
function records(r: Random, n: number, deletes: boolean): Buffer {
  const keys = new Set<string>();
  const alphabet = ['k', 'ключ', '😀', 'Ａ', '\u0000s/', 'k😀', 'kＡ'];
  while (keys.size < n) keys.add(`${alphabet[r.int(alphabet.length)]}${r.int(1000)}`);
  const parts: Buffer[] = [];
  for (const key of [...keys].sort()) {
    const len = r.chance(0.1) ? 0 : r.int(3000);
    const v = new Uint8Array(len);
    for (let i = 0; i < len >> 1; i++) v[i] = r.int(256);
    const b = Buffer.alloc(9 + Buffer.byteLength(key) + len);
    const end = writeRecord(
      b,
      0,
      key,
      Buffer.byteLength(key),
      deletes && r.chance(0.1) ? undefined : v,
    );
    parts.push(b.subarray(0, end));
  }
  return Buffer.concat(parts);
}

t.test(`the workers' chunk scan agrees with the calling thread's (seed ${SEED})`, async (t) => {
  const pool = new ChunkPool(2);
  t.teardown(() => pool.close());
  const keys = deriveKeys(undefined, '');
  const r = new Random(SEED);
  for (let i = 0; i < 12; i++) {
    const deletes = i % 3 === 0;
    const plain = records(r, 10 + r.int(60), deletes);
    const ref = InThread.fullScan(plain);
    if (!ref) throw new Error('reference scan failed');
    // Expected sum: the state digest of the puts, one by one.
    const want = new StateDigest();
    let puts = 0;
    let dels = 0;
    let off = 0;
    while (off < plain.length) {
      const kLen = plain.readUInt32BE(off + 1);
      const key = plain.toString('utf8', off + 5, off + 5 + kLen);
      if (plain[off] === 1) {
        dels++;
        off += 5 + kLen;
        continue;
      }
      const vLen = plain.readUInt32BE(off + 5 + kLen);
      const v = plain.subarray(off + 9 + kLen, off + 9 + kLen + vLen);
      want.addHashAt(recordHash(key, v), 0);
      puts++;
      off += 9 + kLen + vLen;
    }
    t.equal(ref.sum?.toString('hex'), want.hex(), `chunk ${i}: reference sum = sum of hashes`);
    t.equal(ref.puts, puts);
    t.equal(ref.deletes, dels);
    t.ok(ref.ascending, `chunk ${i}: sorted keys ascend`);
    const w = await pool.decode(keys, Buffer.from(plain), 'none', plain.length, 'full');
    t.same(
      w.fullScan && { ...w.fullScan, sum: w.fullScan.sum?.toString('hex') },
      { ...ref, sum: ref.sum?.toString('hex') },
      `chunk ${i} (${plain.length} B): the worker's scan is the reference's`,
    );
    // Mode 'scan' (a digest-version-2 full): the same checks, no record hash, no sum.
    const { sum: _sum, ...noSum } = ref;
    t.same(InThread.fullScan(plain, false), noSum, `chunk ${i}: the in-thread scan without sums`);
    const ws = await pool.decode(keys, Buffer.from(plain), 'none', plain.length, 'scan');
    t.same(ws.fullScan, noSum, `chunk ${i}: the worker's scan without sums`);
  }
  // Negative controls: out of order (two sorted runs) and a malformed record.
  const a = records(r, 30, false);
  const b = records(r, 30, false);
  const twice = Buffer.concat([a, b]);
  const w = await pool.decode(keys, Buffer.from(twice), 'none', twice.length, 'full');
  t.equal(w.fullScan?.ascending, false, 'two sorted runs do not ascend (worker)');
  t.equal(InThread.fullScan(twice)?.ascending, false, 'two sorted runs do not ascend (reference)');
  // "Ａ1" then "😀1": ascending as bytes, not as strings.
  const pair = Buffer.alloc(64);
  let end = writeRecord(pair, 0, 'Ａ1', Buffer.byteLength('Ａ1'), new Uint8Array(1));
  end = writeRecord(pair, end, '😀1', Buffer.byteLength('😀1'), new Uint8Array(1));
  const wp = await pool.decode(keys, pair.subarray(0, end), 'none', end, 'full');
  t.equal(wp.fullScan?.ascending, false, '"Ａ1" before "😀1" does not ascend as strings');
  const bad = Buffer.from(a);
  bad[0] = 7;
  const wb = await pool.decode(keys, Buffer.from(bad), 'none', bad.length, 'full');
  t.equal(wb.fullScan, undefined, 'an unknown record kind: no scan');
  t.equal(InThread.fullScan(bad), undefined);
});

t.test('streamed into data directories: the bytes the in-memory restore writes', async (t) => {
  const repo = await Repository.init(path.join(base, 'repo'), { chunker: small, clusterId: 'c' });
  const d = new RepoDriver(repo, 'c', SEED);
  d.apply(600);
  await d.flush();
  const full = await d.backup('full');
  d.apply(100);
  await d.flush();
  const incr = await d.backup('incr');
  t.ok(full.chunks.length > 5, `the full has ${full.chunks.length} chunks`);

  const members = ['a', 'b', 'c'];
  const common = { members, clusterId: 'new', clusterName: 'nc', now: 1_800_000_000_000 };
  const streamedDir = path.join(base, 'streamed');
  const streamed = await restoreDataDirs(
    repo,
    { kind: 'backup', id: full.id },
    { ...common, clusterDir: streamedDir },
  );
  t.equal(streamed.result.digest, full.stateDigest);
  t.equal(streamed.result.keyCount, full.keyCount);
  t.equal(streamed.result.chunksRead, full.chunks.length);
  t.same(
    streamed.dirs,
    members.map((m) => path.join(streamedDir, m)),
  );

  // The in-memory path, by hand, for member a.
  const plan = await planRestore(repo, { kind: 'backup', id: full.id });
  t.ok(streamable(repo, plan), 'a full of a map repository streams');
  const res = await executeRestore(repo, plan, { factory: MAP_KIND.factory });
  const memDir = path.join(base, 'in-memory');
  await writeRestoredDataDir(memDir, res, {
    clusterId: 'new',
    members,
    now: common.now,
    encodeImage: (s) => MAP_KIND.nodeImage(s as never, res.index),
    node: { id: 'a', cluster: 'nc' },
    source: {},
  });
  const snap = async (dir: string) => {
    const dd = await openDataDir(path.join(dir, 'raft'));
    try {
      const s = await dd.snapshots.latest();
      return {
        meta: s && { ...s.meta, createdAt: 0 },
        data: s && Buffer.from(await s.readAll()).toString('base64'),
        hard: await dd.hardState.load(),
      };
    } finally {
      await dd.close();
    }
  };
  const want = await snap(memDir);
  t.ok(want.data && want.data.length > 0, 'the in-memory restore wrote a snapshot');
  for (const m of members) {
    const dir = path.join(streamedDir, m);
    t.same(await snap(dir), want, `member ${m}: same snapshot, meta and hard state`);
    const node = JSON.parse(await readFile(path.join(dir, 'node.json'), 'utf8'));
    t.same([node.id, node.cluster], [m, 'nc']);
    const info = JSON.parse(await readFile(path.join(dir, 'restore.json'), 'utf8'));
    t.same(
      [info.index, info.stateDigest, info.keyCount, info.chain, info.members],
      [full.index, full.stateDigest, full.keyCount, [full.id], members],
    );
  }

  // A chain or a replay is not streamed, and still restores (the in-memory path).
  const incrPlan = await planRestore(repo, { kind: 'backup', id: incr.id });
  t.notOk(streamable(repo, incrPlan), 'an incremental does not stream');
  const idxPlan = await planRestore(repo, { kind: 'index', index: full.index + 10 });
  t.notOk(streamable(repo, idxPlan), 'a target past the full (replay) does not stream');
  const viaChain = await restoreDataDirs(
    repo,
    { kind: 'backup', id: incr.id },
    { ...common, dest: { dir: path.join(base, 'chain') } },
  );
  t.equal(viaChain.result.digest, incr.stateDigest);
  // A dry run streams nothing anywhere but checks everything.
  const dry = await restoreDataDirs(repo, { kind: 'backup', id: full.id }, common);
  t.same(dry.dirs, []);
  t.equal(dry.result.digest, full.stateDigest);

  t.test('a failed streamed restore leaves each destination as it found it', async (t) => {
    const absent = path.join(base, 'absent');
    const empty = path.join(base, 'empty');
    await mkdir(empty);
    // Damage the last chunk, so the first ones are already written when it fails.
    const last = full.chunks[full.chunks.length - 1] as { id: string };
    const file = repo.chunks.pathOf(last.id);
    const saved = await readFile(file);
    const b = Buffer.from(saved);
    b[b.length - 3] = (b[b.length - 3] as number) ^ 1;
    await writeFile(file, b);
    t.teardown(() => writeFile(file, saved));
    for (const dir of [absent, empty]) {
      await t.rejects(
        restoreDataDirs(repo, { kind: 'backup', id: full.id }, { ...common, dest: { dir } }),
        { code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT' },
      );
    }
    await t.rejects(readdir(absent), { code: 'ENOENT' }, 'an absent destination stays absent');
    t.same(await readdir(empty), [], 'an empty destination stays empty');
    await t.rejects(
      restoreDataDirs(
        repo,
        { kind: 'backup', id: full.id },
        { ...common, clusterDir: path.join(base, 'cluster-absent') },
      ),
      { code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT' },
    );
    await t.rejects(readdir(path.join(base, 'cluster-absent', 'a')), { code: 'ENOENT' });
    // Negative control: repaired, the same destination takes the restore.
    await writeFile(file, saved);
    const ok = await restoreDataDirs(
      repo,
      { kind: 'backup', id: full.id },
      { ...common, dest: { dir: empty } },
    );
    t.equal(ok.result.digest, full.stateDigest);
  });

  t.test('a stream digest that does not match is refused and nothing is left', async (t) => {
    // A manifest whose stream digest (digest version 2) is not the stream's, checksum
    // recomputed (as a bug, not damage, would write it): the bytes check out chunk by chunk,
    // the whole does not.
    const repo2 = await Repository.init(path.join(base, 'repo2'), {
      chunker: small,
      clusterId: 'c',
    });
    const cap = d.tracked.captureFull();
    const written = await repo2.writeBackup({
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
    t.equal(written.digestVersion, 2, 'new manifests are digest version 2');
    t.match(written.streamDigest, /^[0-9a-f]{64}$/, 'a full carries its stream digest');
    const file = path.join(repo2.backupsDir, `${written.id}.manifest`);
    const { manifest } = decodeManifest(repo2.keys, await readFile(file), written.id);
    const streamDigest = new StateDigest().hex();
    await writeFile(file, encodeManifest(repo2.keys, { ...manifest, streamDigest }).bytes);
    const dir = path.join(base, 'wrong-digest');
    await t.rejects(
      restoreDataDirs(repo2, { kind: 'backup', id: written.id }, { ...common, dest: { dir } }),
      { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' },
    );
    await t.rejects(readdir(dir), { code: 'ENOENT' });
    await t.rejects(
      restoreDataDirs(repo2, { kind: 'backup', id: written.id }, common),
      { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' },
      'a dry run (no snapshot writer to hash for it) checks it too',
    );
    await t.rejects(
      restore(repo2, { kind: 'backup', id: written.id }, { factory: () => new MapState() }),
      { code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH' },
      'the in-memory restore checks it too',
    );
    // Negative control: the manifest as written restores.
    await writeFile(file, encodeManifest(repo2.keys, manifest).bytes);
    const ok = await restoreDataDirs(
      repo2,
      { kind: 'backup', id: written.id },
      { ...common, dest: { dir } },
    );
    t.equal(ok.result.digest, cap.stateDigest);
  });
});
