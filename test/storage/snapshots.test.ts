/**
 * Snapshots (file and memory): streamed write, atomic publish, checksum verified on load,
 * a corrupted latest snapshot is skipped for the previous one, prune, writer misuse.
 */

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { FileSnapshotStore, SNAPSHOT_TRAILER_BYTES } from '../../lib/storage/file-snapshots.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { corruptMemorySnapshot, MemorySnapshotStore } from '../../lib/storage/memory-snapshots.js';
import type { SnapshotStore } from '../../lib/storage/types.js';

const root = t.testdir();
let seq = 0;
const membership = { voters: ['a', 'b', 'c'], learners: [] };

interface Impl {
  name: string;
  fresh(): { open: () => Promise<SnapshotStore>; corrupt: (index: number) => Promise<void> };
}

const impls: Impl[] = [
  {
    name: 'file',
    fresh() {
      const dir = path.join(root, `s${seq++}`);
      return {
        open: () => FileSnapshotStore.open(dir),
        corrupt: async (index) => {
          const f = (await fs.readdir(dir)).find((n) =>
            n.startsWith(String(index).padStart(20, '0')),
          );
          const file = path.join(dir, f as string);
          const buf = await fs.readFile(file);
          const at = buf.length - SNAPSHOT_TRAILER_BYTES - 10;
          buf[at] = (buf[at] as number) ^ 0xff;
          await fs.writeFile(file, buf);
        },
      };
    },
  },
  {
    name: 'memory',
    fresh() {
      const disk = new MemoryDisk();
      return {
        open: () => MemorySnapshotStore.open(disk),
        corrupt: async (index) => {
          if (!corruptMemorySnapshot(disk, index)) throw new Error('no such snapshot');
        },
      };
    },
  },
];

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

async function put(store: SnapshotStore, index: number, data: Uint8Array) {
  const w = await store.create({ index, term: 2, membership });
  for (let i = 0; i < data.length; i += 1000) await w.write(data.subarray(i, i + 1000));
  return w.commit();
}

for (const impl of impls) {
  t.test(`${impl.name}: write as a stream, read back verified, survive reopen`, async (t) => {
    const { open } = impl.fresh();
    let store = await open();
    t.equal(await store.latest(), undefined);
    const data = bytes(5500, 1);
    const meta = await put(store, 10, data);
    t.equal(meta.index, 10);
    t.equal(meta.term, 2);
    t.equal(meta.size, 5500);
    t.equal(meta.checksum, createHash('sha256').update(data).digest('hex'));
    t.same(meta.membership, membership);
    await store.close();
    store = await open();
    const r = await store.latest();
    t.same(r?.meta, meta);
    t.same(Buffer.from((await r?.readAll()) as Uint8Array), Buffer.from(data));
    const parts: Uint8Array[] = [];
    for await (const c of r?.read() ?? []) parts.push(c);
    t.same(Buffer.concat(parts), Buffer.from(data));
    await store.close();
  });

  t.test(`${impl.name}: a corrupted latest snapshot is skipped for the previous`, async (t) => {
    const { open, corrupt } = impl.fresh();
    const store = await open();
    await put(store, 10, bytes(3000, 1));
    await put(store, 20, bytes(3000, 2));
    t.equal((await store.latest())?.meta.index, 20);
    await corrupt(20);
    const r = await store.latest();
    t.equal(r?.meta.index, 10, 'previous snapshot used');
    t.same(Buffer.from((await r?.readAll()) as Uint8Array), Buffer.from(bytes(3000, 1)));
    const skipped = (store as { skipped?: unknown[] }).skipped ?? [];
    t.equal(skipped.length, 1, 'the corrupted one is reported');
    await corrupt(10);
    t.equal(await store.latest(), undefined, 'none verifies: none returned');
    await store.close();
  });

  t.test(
    `${impl.name}: reading a snapshot corrupted after latest() fails at the end`,
    async (t) => {
      const { open, corrupt } = impl.fresh();
      const store = await open();
      await put(store, 10, bytes(3000, 1));
      const r = await store.latest();
      await corrupt(10);
      await t.rejects(r?.readAll() as Promise<unknown>, { code: 'SYNOD_ERR_SNAPSHOT_CORRUPT' });
      await store.close();
    },
  );

  t.test(`${impl.name}: list and prune`, async (t) => {
    const { open } = impl.fresh();
    const store = await open();
    for (const i of [5, 15, 10, 20]) await put(store, i, bytes(100, i));
    t.same(
      (await store.list()).map((m) => m.index),
      [20, 15, 10, 5],
      'newest first',
    );
    await store.prune(2);
    t.same(
      (await store.list()).map((m) => m.index),
      [20, 15],
    );
    await store.prune(0);
    t.same(await store.list(), []);
    await store.close();
  });

  t.test(`${impl.name}: writer misuse and bad metadata are refused`, async (t) => {
    const { open } = impl.fresh();
    const store = await open();
    await t.rejects(store.create({ index: -1, term: 1, membership }), {
      code: 'SYNOD_ERR_INVALID_ARGUMENT',
    });
    await t.rejects(
      store.create({
        index: 1,
        term: 1,
        membership: { voters: 'a' } as unknown as typeof membership,
      }),
      { code: 'SYNOD_ERR_INVALID_ARGUMENT' },
    );
    const w = await store.create({ index: 1, term: 1, membership });
    await t.rejects(w.write('x' as unknown as Uint8Array), { code: 'SYNOD_ERR_INVALID_ARGUMENT' });
    await w.write(new Uint8Array([1]));
    await w.commit();
    await t.rejects(w.write(new Uint8Array([1])), { code: 'SYNOD_ERR_SNAPSHOT_STATE' });
    await t.rejects(w.commit(), { code: 'SYNOD_ERR_SNAPSHOT_STATE' });
    const w2 = await store.create({ index: 2, term: 1, membership });
    await w2.write(new Uint8Array([2]));
    await w2.abort();
    t.same(
      (await store.list()).map((m) => m.index),
      [1],
      'an aborted snapshot is not published',
    );
    await store.close();
    await t.rejects(store.list(), { code: 'SYNOD_ERR_STORE_CLOSED' });
  });
}

t.test('file: an incomplete snapshot (no trailer) and temp files are ignored', async (t) => {
  const dir = path.join(root, `s${seq++}`);
  let store = await FileSnapshotStore.open(dir);
  await put(store, 10, bytes(1000, 1));
  const w = await store.create({ index: 30, term: 2, membership });
  await w.write(bytes(1000, 3)); // never committed: a crash mid-write
  const names = await fs.readdir(dir);
  t.ok(
    names.some((n) => n.includes('.tmp')),
    'temp file while writing',
  );
  // A published file cut short (e.g. copied in by hand, or disk damage).
  const good = path.join(dir, names.find((n) => n.endsWith('.snap')) as string);
  const buf = await fs.readFile(good);
  await fs.writeFile(
    path.join(dir, `${'20'.padStart(20, '0')}-${'2'.padStart(20, '0')}.snap`),
    buf.subarray(0, buf.length - 50),
  );
  store = await FileSnapshotStore.open(dir, { lock: false });
  t.notOk(
    (await fs.readdir(dir)).some((n) => n.includes('.tmp')),
    'temp files removed on open',
  );
  const seen: string[] = [];
  const r = await (
    await FileSnapshotStore.open(dir, { lock: false, onCorrupt: (i) => seen.push(i.file) })
  ).latest();
  t.equal(r?.meta.index, 10);
  t.equal(seen.length, 1, 'the damaged file is reported');
  t.same(
    (await store.list()).map((m) => m.index),
    [10],
  );
  await store.prune(5);
  t.ok(
    (await fs.readdir(dir)).some((n) => n.endsWith('.corrupt')),
    'damaged file quarantined',
  );
});

t.test('memory: an unsynced commit is lost by a crash', async (t) => {
  const disk = new MemoryDisk();
  let store = await MemorySnapshotStore.open(disk);
  await put(store, 10, bytes(100, 1));
  const w = await store.create({ index: 20, term: 2, membership });
  await w.write(bytes(100, 2));
  void w.commit();
  const listed = store.list();
  disk.crash();
  t.equal((await listed).length, 2, 'visible before the sync');
  store = await MemorySnapshotStore.open(disk);
  t.same(
    (await store.list()).map((m) => m.index),
    [10],
  );
});

t.test('file: prune re-verifies a snapshot it wrote once the file has changed', async (t) => {
  const dir = path.join(root, `s${seq++}`);
  const store = await FileSnapshotStore.open(dir);
  await put(store, 10, bytes(1000, 1));
  await put(store, 20, bytes(1000, 2));
  await store.prune(1);
  t.same(
    (await store.list()).map((m) => m.index),
    [20],
    'its own newest snapshot is kept without reading it back',
  );
  await put(store, 30, bytes(1000, 3));
  // Damage the newest after it was published: same size, one data byte flipped. File
  // timestamps are coarse (a clock tick), so move the mtime on as any later change would.
  const file = path.join(
    dir,
    (await fs.readdir(dir)).find((n) => n.startsWith(String(30).padStart(20, '0'))) as string,
  );
  const buf = await fs.readFile(file);
  const at = buf.length - SNAPSHOT_TRAILER_BYTES - 10;
  buf[at] = (buf[at] as number) ^ 0xff;
  await fs.writeFile(file, buf);
  const later = new Date(Date.now() + 5000);
  await fs.utimes(file, later, later);
  await store.prune(1);
  t.same(
    (await store.list()).map((m) => m.index),
    [20],
    'the changed file failed its digest and the previous snapshot was kept',
  );
  t.ok(
    (await fs.readdir(dir)).some((n) => n.endsWith('.corrupt')),
    'damaged file quarantined',
  );
  await store.close();
});

/** The fixture's data: 40 KiB of deterministic bytes (as written by the generator). */
function fixtureData(): Buffer {
  const data = Buffer.alloc(40 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
  return data;
}

const FIXTURE_V1 = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'snapshot-v1',
  `${'7'.padStart(20, '0')}-${'2'.padStart(20, '0')}.snap`,
);

/** Flips one byte of a snapshot file at `at` (negative: from the end). */
async function flip(file: string, at: number): Promise<void> {
  const buf = await fs.readFile(file);
  const i = at < 0 ? buf.length + at : at;
  buf[i] = (buf[i] as number) ^ 0x01;
  await fs.writeFile(file, buf);
}

t.test('file: a snapshot written before the trailer version 2 still reads', async (t) => {
  // test/storage/fixtures/snapshot-v1 was written by the code before this change (trailer
  // SYNODSE1: the file checksum hashes header, data and trailer).
  const raw = await fs.readFile(FIXTURE_V1);
  t.equal(raw.subarray(raw.length - 80, raw.length - 72).toString(), 'SYNODSE1', 'a v1 trailer');
  for (const [what, at] of [
    ['intact', undefined],
    ['data', 12 + 100 + 500],
    ['file checksum', -1],
  ] as const) {
    const dir = path.join(root, `s${seq++}`);
    await fs.mkdir(dir);
    const file = path.join(dir, path.basename(FIXTURE_V1));
    await fs.copyFile(FIXTURE_V1, file);
    if (at !== undefined) await flip(file, at);
    const seen: string[] = [];
    const store = await FileSnapshotStore.open(dir, { onCorrupt: (i) => seen.push(i.reason) });
    const r = await store.latest();
    if (what === 'intact') {
      t.same(r?.meta.index, 7);
      t.same(r?.meta.membership, { voters: ['a', 'b', 'c'], learners: ['d'] });
      t.ok(Buffer.from((await r?.readAll()) as Uint8Array).equals(fixtureData()), 'same data');
      t.equal(
        r?.meta.checksum,
        createHash('sha256').update(fixtureData()).digest('hex'),
        'data checksum',
      );
    } else {
      t.equal(r, undefined, `v1, damaged ${what}: refused`);
      t.equal(seen.length, 1, `v1, damaged ${what}: reported (${seen[0]})`);
    }
    await store.close();
  }
});

t.test(
  'file: trailer version 2 hashes the data once and still catches damage anywhere',
  async (t) => {
    const data = fixtureData();
    const cases: Array<[string, (headerLen: number) => number]> = [
      ['header magic', () => 2],
      ['metadata', () => 20],
      ['data', (h) => h + 4000],
      ['trailer data size', () => -70],
      ['trailer data checksum', () => -40],
      ['trailer file checksum', () => -1],
    ];
    for (const [what, where] of [['intact', () => 0] as const, ...cases]) {
      const dir = path.join(root, `s${seq++}`);
      let store = await FileSnapshotStore.open(dir);
      const w = await store.create({ index: 7, term: 2, membership });
      await w.write(data.subarray(0, 5000));
      await w.write(data.subarray(5000));
      const meta = await w.commit();
      await store.close();
      const file = path.join(dir, `${'7'.padStart(20, '0')}-${'2'.padStart(20, '0')}.snap`);
      const raw = await fs.readFile(file);
      t.equal(raw.subarray(raw.length - 80, raw.length - 72).toString(), 'SYNODSE2');
      const headerLen = raw.length - data.length - SNAPSHOT_TRAILER_BYTES;
      if (what !== 'intact') await flip(file, where(headerLen));
      const seen: string[] = [];
      store = await FileSnapshotStore.open(dir, { onCorrupt: (i) => seen.push(i.reason) });
      const r = await store.latest();
      if (what === 'intact') {
        t.ok(Buffer.from((await r?.readAll()) as Uint8Array).equals(data), 'reads back');
        t.equal(r?.meta.checksum, meta.checksum);
      } else {
        t.equal(r, undefined, `damaged ${what}: refused`);
        t.equal(seen.length, 1, `damaged ${what}: reported (${seen[0]})`);
      }
      await store.close();
    }
  },
);
