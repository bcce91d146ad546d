/**
 * openDataDir / openMemoryDataDir: one lock for the directory, the three stores, and the
 * same behaviour on a memory disk.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { openDataDir, openMemoryDataDir } from '../../lib/storage/data-dir.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';

const root = t.testdir();

t.test('file data directory: layout, lock, reopen', async (t) => {
  const dir = path.join(root, 'node1');
  const dd = await openDataDir(dir, { log: { segmentBytes: 4096 } });
  await t.rejects(openDataDir(dir), { code: 'SYNOD_ERR_DATADIR_LOCKED' });
  await dd.log.append([{ index: 1, term: 1, type: 'noop', data: new Uint8Array() }]);
  await dd.hardState.save({ term: 1, vote: 'node1', commit: 1 });
  const w = await dd.snapshots.create({
    index: 1,
    term: 1,
    membership: { voters: ['node1'], learners: [] },
  });
  await w.write(new Uint8Array([42]));
  await w.commit();
  await dd.log.compact(1, 1);
  await dd.close();
  t.same((await fs.readdir(dir)).sort(), ['hardstate', 'log', 'snapshots']);
  const again = await openDataDir(dir);
  t.equal(again.log.firstIndex(), 2);
  t.equal(again.log.term(1), 1);
  t.same(await again.hardState.load(), { term: 1, vote: 'node1', commit: 1 });
  const snap = await again.snapshots.latest();
  t.same([...((await snap?.readAll()) ?? [])], [42]);
  t.equal(again.recovery?.lastIndex, 1);
  await again.close();
});

t.test('memory data directory: same shape, crash loses the unsynced', async (t) => {
  const disk = new MemoryDisk();
  let dd = await openMemoryDataDir(disk);
  await dd.log.append([{ index: 1, term: 1, type: 'normal', data: new Uint8Array([1]) }]);
  await dd.hardState.save({ term: 1, vote: 'a', commit: 0 });
  void dd.log.append([{ index: 2, term: 1, type: 'normal', data: new Uint8Array([2]) }]);
  void dd.hardState.save({ term: 2, vote: 'b', commit: 0 });
  disk.crash();
  dd = await openMemoryDataDir(disk);
  t.equal(dd.log.lastIndex(), 1);
  t.same(await dd.hardState.load(), { term: 1, vote: 'a', commit: 0 });
  await dd.close();
  dd = await openMemoryDataDir(disk);
  t.equal(dd.log.lastIndex(), 1, 'close then reopen');
  await dd.close();
});
