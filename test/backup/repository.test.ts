import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { StateDigest } from '../../actors/backup/digest.js';
import { isBackupError } from '../../actors/backup/errors.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { randomOp } from '../../actors/backup/workload.js';
import { Random } from '../../lib/random.js';

const small = { avgSize: 1024, minSize: 256, maxSize: 4096 };

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'synod-backup-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

function digestOf(m: Iterable<[string, Uint8Array]>): string {
  const d = new StateDigest();
  for (const [k, v] of m) d.add(k, v);
  return d.hex();
}

t.test('full, diff and incr backups restore to their exact states', async (t) => {
  const dir = await tmp(t);
  const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  const r = new Random(7);
  const tracked = new TrackedState(new MapState());
  const expected = new Map<string, string>();
  let index = 0;
  let lastFull: import('../../actors/backup/manifest.js').Manifest | undefined;
  let last: typeof lastFull;
  for (let round = 0; round < 8; round++) {
    for (let i = 0; i < 200; i++) {
      index++;
      tracked.apply(randomOp(r), { index, term: 1, time: 1000 + index });
    }
    const type = round % 4 === 0 ? 'full' : round % 2 === 0 ? 'diff' : 'incr';
    const cap =
      type === 'full'
        ? tracked.captureFull()
        : tracked.captureChanges(type === 'diff' ? (lastFull?.index ?? 0) : (last?.index ?? 0));
    const m = await repo.writeBackup({
      type,
      ...(type === 'diff' ? { parent: lastFull } : type === 'incr' ? { parent: last } : {}),
      index: cap.index,
      term: cap.term,
      time: cap.time,
      clusterId: 'c1',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 1_700_000_000_000 + round,
    } as Parameters<Repository['writeBackup']>[0]);
    if (type === 'full') lastFull = m;
    last = m;
    expected.set(m.id, digestOf(tracked.state.entries()));
    t.equal(m.stateDigest, expected.get(m.id), `${m.id} digest recorded`);
  }
  const listed = await repo.list();
  t.equal(listed.length, 8);
  t.same(
    listed.map((m) => m.type),
    ['full', 'incr', 'diff', 'incr', 'full', 'incr', 'diff', 'incr'],
  );
  for (const m of listed) {
    const res = await restore(
      repo,
      { kind: 'backup', id: m.id },
      { factory: () => new MapState() },
    );
    t.equal(
      res.digest,
      expected.get(m.id),
      `restore ${m.id} (${m.type}, chain ${res.chain.length})`,
    );
    t.equal(res.index, m.index);
  }
});

t.test('wrong key and missing key are clear errors', async (t) => {
  const dir = await tmp(t);
  const key = Buffer.alloc(32, 1);
  await Repository.init(dir, { key, chunker: small });
  await t.rejects(Repository.open(dir), { code: 'SYNOD_ERR_BACKUP_KEY_REQUIRED' });
  await t.rejects(Repository.open(dir, { key: Buffer.alloc(32, 2) }), {
    code: 'SYNOD_ERR_BACKUP_WRONG_KEY',
  });
  const ok = await Repository.open(dir, { key });
  t.ok(ok.keys.encrypted);
  const plain = await tmp(t);
  await Repository.init(plain, { chunker: small });
  await t.rejects(Repository.open(plain, { key }), { code: 'SYNOD_ERR_BACKUP_WRONG_KEY' });
  t.ok(
    isBackupError(
      await Repository.open(path.join(plain, 'nope')).catch((e) => e),
      'SYNOD_ERR_BACKUP_REPO_NOT_FOUND',
    ),
  );
});
