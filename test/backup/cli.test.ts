/**
 * The CLI end to end (in process): init, list, verify, expire, schedule, offline
 * full/diff/incr, and restore into a fresh data directory that lib/storage opens with the
 * restored snapshot; usage errors exit 2, refusals exit 1 with the error code.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeImage } from '../../actors/backup/datadir.js';
import { StateDigest } from '../../actors/backup/digest.js';
import { RepoDriver } from '../../actors/backup/driver.js';
import { Repository } from '../../actors/backup/repository.js';
import { run as backup } from '../../cli/commands/backup.js';
import { run as restoreCmd } from '../../cli/commands/restore.js';
import { openDataDir } from '../../lib/storage/data-dir.js';

async function capture(
  fn: () => Promise<number>,
): Promise<{ code: number; out: string; err: string }> {
  const log = console.log;
  const error = console.error;
  const write = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  console.error = (...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  };
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}

t.test('backup and restore commands', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repoDir = path.join(dir, 'repo');
  const keyFile = path.join(dir, 'key');
  let r = await capture(() =>
    backup([
      'init',
      '--repo',
      repoDir,
      '--encrypt',
      '--new-key-file',
      keyFile,
      '--chunk-size',
      '4096',
      '--cluster-id',
      'c',
      '--state',
      'map',
    ]),
  );
  t.equal(r.code, 0, r.err);
  r = await capture(() => backup(['list', '--repo', repoDir]));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_KEY_REQUIRED/);
  const key = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'hex');
  // Populate: a workload, archived, with one full backup.
  const repo = await Repository.open(repoDir, { key });
  const d = new RepoDriver(repo, 'c', 3);
  d.apply(400);
  await d.flush();
  await d.backup('full');
  d.apply(300);
  await d.flush();
  const k = ['--repo', repoDir, '--key-file', keyFile];
  r = await capture(() => backup(['incr', ...k]));
  t.equal(r.code, 0, r.err);
  t.match(r.out, /incr backup \S+ at index 700/);
  r = await capture(() => backup(['diff', ...k, '--json']));
  t.equal(r.code, 0, r.err);
  t.equal(JSON.parse(r.out).index, 700);
  r = await capture(() => backup(['list', ...k]));
  t.equal(r.code, 0);
  t.match(r.out, /full[\s\S]*incr[\s\S]*diff/);
  t.match(r.out, /log archive: indices 1\.\.700/);
  r = await capture(() => backup(['verify', ...k]));
  t.equal(r.code, 0, r.out);
  t.match(r.out, /verify: OK/);
  r = await capture(() =>
    backup(['schedule', ...k, '--full', '0 2 * * 0', '--incr', '@every 1h', '--keep-full', '2']),
  );
  t.equal(r.code, 0, r.err);
  t.match(r.out, /next:\n {2}\S+ {2}(incr|full)/);
  r = await capture(() => backup(['schedule', ...k, '--full', '61 * * * *']));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_INVALID_ARGUMENT/);
  r = await capture(() => backup(['expire', ...k, '--keep-full', '1', '--dry-run']));
  t.equal(r.code, 0);
  r = await capture(() => backup(['frobnicate', ...k]));
  t.equal(r.code, 2);
  r = await capture(() => backup(['expire', ...k]));
  t.equal(r.code, 2, 'expire without --keep-full is a usage error');

  // Restore to index 550 into a fresh data directory.
  const dest = path.join(dir, 'node1');
  r = await capture(() =>
    restoreCmd([...k, '--to', 'index:550', '--dest', dest, '--members', 'n1,n2,n3', '--json']),
  );
  t.equal(r.code, 0, r.err);
  const res = JSON.parse(r.out);
  t.equal(res.index, 550);
  t.equal(res.stateDigest, d.digests.get(550)?.digest);
  const dd = await openDataDir(dest);
  const snap = await dd.snapshots.latest();
  t.ok(snap, 'the data directory holds a snapshot');
  t.equal(snap?.meta.index, 550);
  t.same(snap?.meta.membership.voters, ['n1', 'n2', 'n3']);
  const image = await snap?.readAll();
  const digest = new StateDigest();
  for (const [kk, v] of decodeImage(image as Uint8Array)) digest.add(kk, v);
  t.equal(digest.hex(), d.digests.get(550)?.digest, 'snapshot image holds the restored state');
  t.equal((await dd.hardState.load())?.commit, 550);
  t.equal(dd.log.firstIndex(), 551);
  await dd.close();
  r = await capture(() => restoreCmd([...k, '--to', 'index:550', '--dest', dest]));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_DEST_NOT_EMPTY/);
  r = await capture(() => restoreCmd([...k, '--to', 'index:99999', '--dry-run']));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_TARGET_UNREACHABLE/);
  r = await capture(() => restoreCmd([...k, '--to', 'yesterday', '--dry-run']));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_INVALID_ARGUMENT/);
  const t300 = new Date(d.time - 400).toISOString();
  r = await capture(() => restoreCmd([...k, '--to', `time:${t300}`, '--dry-run', '--json']));
  t.equal(r.code, 0, r.err);
  t.equal(JSON.parse(r.out).index, 300, 'time target: the last entry committed at or before it');
  const wrongKey = path.join(dir, 'wrong');
  await writeFile(wrongKey, 'ab'.repeat(32));
  r = await capture(() =>
    restoreCmd(['--repo', repoDir, '--key-file', wrongKey, '--to', 'latest', '--dry-run']),
  );
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_WRONG_KEY/);
  r = await capture(() => backup(['expire', ...k, '--keep-full', '1']));
  t.equal(r.code, 0, r.err);
  t.match(r.out, /expired 0 backup/);
});

t.test(
  'backup init --compress: LZ4 by default (its module loads here), levels checked, bad codecs refused',
  async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-compress-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const init = (name: string, ...flags: string[]) =>
      capture(() => backup(['init', '--repo', path.join(dir, name), ...flags]));
    const compression = async (name: string) =>
      (
        JSON.parse(await readFile(path.join(dir, name, 'repo.json'), 'utf8')) as {
          compression: { algo: string; level: number };
        }
      ).compression;
    t.equal((await init('default')).code, 0);
    t.same(await compression('default'), { algo: 'lz4', level: 0 }, 'default lz4');
    t.equal((await init('b', '--compress', 'brotli')).code, 0);
    t.same(await compression('b'), { algo: 'brotli', level: 1 }, 'brotli: quality 1');
    t.equal((await init('b3', '--compress', 'brotli:3')).code, 0);
    t.same(await compression('b3'), { algo: 'brotli', level: 3 });
    t.equal((await init('d6', '--compress', 'deflate:6')).code, 0);
    t.same(await compression('d6'), { algo: 'deflate', level: 6 });
    t.equal((await init('lz4', '--compress', 'lz4')).code, 0);
    t.same(await compression('lz4'), { algo: 'lz4', level: 0 });
    for (const [bad, why] of [
      ['deflate:0', /deflate takes a level 1-9/],
      ['brotli:12', /brotli takes a level 0-11/],
      ['lz4:3', /lz4 takes no level/],
      ['gzip', /must be none, deflate\[:1-9\], brotli\[:0-11\] or lz4/],
    ] as const) {
      const r = await init(`bad-${bad}`, '--compress', bad);
      t.equal(r.code, 2, `${bad}: exit 2`);
      t.match(r.err, why, `${bad}: says why`);
    }
  },
);
