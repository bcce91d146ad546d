/**
 * Hard state: atomic replacement, coalesced saves, corruption refused with the file named,
 * values with bytes round-trip, the memory variant loses an unsynced save on crash.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { FileHardStateStore } from '../../lib/storage/file-hard-state.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import type { RaftHardState } from '../../lib/storage/types.js';

const root = t.testdir();
let seq = 0;
const fresh = () => path.join(root, `d${seq++}`);

t.test('file: save, load, reopen', async (t) => {
  const dir = fresh();
  let hs = await FileHardStateStore.open<RaftHardState>(dir);
  t.equal(await hs.load(), undefined);
  await hs.save({ term: 3, vote: 'b', commit: 10 });
  t.same(await hs.load(), { term: 3, vote: 'b', commit: 10 });
  await hs.close();
  hs = await FileHardStateStore.open<RaftHardState>(dir);
  t.same(await hs.load(), { term: 3, vote: 'b', commit: 10 });
  await hs.save({ term: 4, vote: null, commit: 12 });
  await hs.close();
  hs = await FileHardStateStore.open<RaftHardState>(dir);
  t.same(await hs.load(), { term: 4, vote: null, commit: 12 });
  await hs.close();
  await t.rejects(hs.load(), { code: 'SYNOD_ERR_STORE_CLOSED' });
  await t.rejects(hs.save({ term: 1, vote: null, commit: 0 }), { code: 'SYNOD_ERR_STORE_CLOSED' });
});

t.test('file: concurrent saves coalesce and the newest wins', async (t) => {
  const dir = fresh();
  const hs = await FileHardStateStore.open<RaftHardState>(dir);
  const ps: Promise<void>[] = [];
  for (let i = 1; i <= 50; i++) ps.push(hs.save({ term: i, vote: null, commit: i }));
  t.same(await hs.load(), { term: 50, vote: null, commit: 50 }, 'load sees the newest accepted');
  await Promise.all(ps);
  t.ok(hs.writes < 50, `${hs.writes} file replacements for 50 saves`);
  await hs.close();
  const again = await FileHardStateStore.open<RaftHardState>(dir);
  t.same(await again.load(), { term: 50, vote: null, commit: 50 });
  await again.close();
});

t.test('file: Paxos-style values with bytes round-trip', async (t) => {
  const dir = fresh();
  type Acceptor = {
    promised: [number, string];
    accepted: Record<string, { b: number; v: Uint8Array }>;
  };
  let hs = await FileHardStateStore.open<Acceptor>(dir, { name: 'acceptor' });
  await hs.save({
    promised: [5, 'n2'],
    accepted: { '7': { b: 5, v: new Uint8Array([1, 2, 255]) } },
  });
  await hs.close();
  hs = await FileHardStateStore.open<Acceptor>(dir, { name: 'acceptor' });
  const v = await hs.load();
  t.same(v?.promised, [5, 'n2']);
  t.same([...(v?.accepted['7']?.v ?? [])], [1, 2, 255]);
  t.ok(v?.accepted['7']?.v instanceof Uint8Array);
  await hs.close();
});

t.test('file: a crash between temp write and rename keeps the old value', async (t) => {
  const dir = fresh();
  const hs = await FileHardStateStore.open<RaftHardState>(dir);
  await hs.save({ term: 2, vote: 'a', commit: 1 });
  await hs.close();
  await fs.writeFile(path.join(dir, 'hardstate.tmp'), 'half a new value');
  const again = await FileHardStateStore.open<RaftHardState>(dir);
  t.same(await again.load(), { term: 2, vote: 'a', commit: 1 });
  t.notOk((await fs.readdir(dir)).includes('hardstate.tmp'), 'stale temp removed');
  await again.close();
});

t.test('file: a corrupted hard state is refused, naming the file', async (t) => {
  const dir = fresh();
  const hs = await FileHardStateStore.open<RaftHardState>(dir);
  await hs.save({ term: 2, vote: 'a', commit: 1 });
  await hs.close();
  const file = path.join(dir, 'hardstate');
  const buf = await fs.readFile(file);
  buf[14] = (buf[14] as number) ^ 1;
  await fs.writeFile(file, buf);
  await t.rejects(FileHardStateStore.open(dir), {
    code: 'SYNOD_ERR_HARDSTATE_CORRUPT',
    details: { file },
    message: /checksum mismatch/,
  });
  await fs.writeFile(file, 'short');
  await t.rejects(FileHardStateStore.open(dir), { code: 'SYNOD_ERR_HARDSTATE_CORRUPT' });
});

t.test('bad inputs', async (t) => {
  const dir = fresh();
  const hs = await FileHardStateStore.open<unknown>(dir);
  await t.rejects(
    hs.save(() => 1),
    { code: 'SYNOD_ERR_INVALID_ARGUMENT' },
  );
  await t.rejects(hs.save({ a: [1, new Map()] }), {
    code: 'SYNOD_ERR_INVALID_ARGUMENT',
    message: /Map \(at state\.a\[1\]\)/,
  });
  await t.rejects(hs.save({ n: 10n }), { code: 'SYNOD_ERR_INVALID_ARGUMENT' });
  await t.rejects(FileHardStateStore.open(fresh(), { name: '../x' }), {
    code: 'SYNOD_ERR_INVALID_ARGUMENT',
  });
  t.equal(await hs.load(), undefined, 'the failed save changed nothing');
  await hs.close();
  const mem = await MemoryHardStateStore.open<unknown>(new MemoryDisk());
  await t.rejects(
    mem.save(() => 1),
    { code: 'SYNOD_ERR_INVALID_ARGUMENT' },
  );
});

t.test('memory: a save is durable only after the sync', async (t) => {
  const disk = new MemoryDisk();
  let hs = await MemoryHardStateStore.open<RaftHardState>(disk);
  await hs.save({ term: 1, vote: 'a', commit: 0 });
  void hs.save({ term: 2, vote: 'b', commit: 0 });
  const seen = hs.load();
  disk.crash();
  t.same(await seen, { term: 2, vote: 'b', commit: 0 }, 'load saw the accepted value');
  await t.rejects(hs.load(), { code: 'SYNOD_ERR_STORE_CLOSED' });
  hs = await MemoryHardStateStore.open<RaftHardState>(disk);
  t.same(await hs.load(), { term: 1, vote: 'a', commit: 0 }, 'the unsynced vote is lost');
  await hs.save({ term: 2, vote: 'c', commit: 0 });
  disk.crash();
  hs = await MemoryHardStateStore.open<RaftHardState>(disk);
  t.same(await hs.load(), { term: 2, vote: 'c', commit: 0 });
  await t.rejects(MemoryHardStateStore.open(disk), { code: 'SYNOD_ERR_DATADIR_LOCKED' });
  await hs.close();
});

t.test('file: several named records share a directory; one owner per record', async (t) => {
  const dir = fresh();
  const a = await FileHardStateStore.open<{ n: number }>(dir, { name: 'acceptor' });
  const b = await FileHardStateStore.open<{ n: number }>(dir, { name: 'proposer' });
  await t.rejects(FileHardStateStore.open(dir, { name: 'acceptor' }), {
    code: 'SYNOD_ERR_DATADIR_LOCKED',
  });
  await a.save({ n: 1 });
  await b.save({ n: 2 });
  await a.close();
  await b.close();
  const a2 = await FileHardStateStore.open<{ n: number }>(dir, { name: 'acceptor' });
  t.same(await a2.load(), { n: 1 });
  await a2.close();
  await t.rejects(FileHardStateStore.open(dir, { name: 'x.LOCK' }), {
    code: 'SYNOD_ERR_INVALID_ARGUMENT',
  });
});
