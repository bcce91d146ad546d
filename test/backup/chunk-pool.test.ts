/**
 * The chunk pool's workers give the same bytes as the reference implementation in the calling
 * thread (addresses, compressed chunks that decode back, the state-digest hash of every
 * record), refuse what does not decode, and fail cleanly when a worker goes away. Plus the
 * per-chunk codec flag: a chunk whose flags name the wrong codec is corrupt, not misread.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ChunkPool, type Codec, InThread } from '../../actors/backup/chunk-pool.js';
import { chunkId, deriveKeys } from '../../actors/backup/crypto.js';
import { recordHash } from '../../actors/backup/digest.js';
import { RepoDriver } from '../../actors/backup/driver.js';
import { SMALL_STATE_BYTES, stateBytesEstimate } from '../../actors/backup/live-cli.js';
import { writeRecord } from '../../actors/backup/records.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';
import { Random } from '../../lib/random.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 4242);

/** A chunk of `n` random records: unicode keys, empty and large values, some deletes. */
function chunkOf(r: Random, n: number, valueMax: number): Buffer {
  const keys = new Set<string>();
  while (keys.size < n) {
    const pick = r.int(4);
    keys.add(
      pick === 0
        ? `k${r.int(1e9)}`
        : pick === 1
          ? `ключ-${r.int(1e6)}-✓`
          : pick === 2
            ? `\u0000kv/${r.int(1e6)}`
            : `😀${r.int(1e6)}`,
    );
  }
  const parts: Buffer[] = [];
  for (const key of [...keys].sort()) {
    const del = r.chance(0.1);
    const len = r.chance(0.1) ? 0 : r.int(valueMax);
    const v = new Uint8Array(len);
    for (let i = 0; i < len >> 1; i++) v[i] = r.int(256);
    const b = Buffer.alloc(9 + Buffer.byteLength(key) * 1 + len + 16);
    const end = writeRecord(b, 0, key, Buffer.byteLength(key), del ? undefined : v);
    parts.push(b.subarray(0, end));
  }
  return Buffer.concat(parts);
}

function referenceHashes(plain: Buffer): Buffer | undefined {
  return InThread.recordHashes(plain);
}

t.test(`workers and the calling thread agree (seed ${SEED})`, async (t) => {
  const pool = new ChunkPool(2);
  const inline = new ChunkPool(0);
  t.teardown(() => pool.close());
  const r = new Random(SEED);
  const plainKeys = deriveKeys(undefined, '');
  const encKeys = deriveKeys(Buffer.alloc(32, 3), '00ff');
  let viaWorker = 0;
  for (let round = 0; round < 24; round++) {
    // Sizes on both sides of MIN_WORKER_BYTES.
    const plain = chunkOf(r, 5 + r.int(120), round % 3 === 0 ? 50 : 1500);
    const keys = round % 2 === 0 ? plainKeys : encKeys;
    const codec = (['brotli', 'brotli', 'deflate', 'lz4'] as const)[round % 4] as Codec;
    const expectedId = chunkId(keys, plain);
    const expectedHashes = referenceHashes(plain);
    t.ok(expectedHashes, 'the reference parses the chunk');
    if (plain.length >= 16 * 1024) viaWorker++;

    const copy = Buffer.from(plain); // hashForWrite may take `plain`'s memory
    const pending = await pool.hashForWrite(keys, copy);
    t.equal(pending.address, expectedId, `round ${round}: address (${plain.length} B)`);
    const taken = await pending.take(codec, 1);
    t.equal(taken.codec, codec, 'compressed');
    t.ok(taken.bytes.length < plain.length, 'smaller');
    for (const p of [pool, inline]) {
      const d = await p.decode(keys, Buffer.from(taken.bytes), codec, plain.length, true);
      t.ok(d.plain.equals(plain), 'decodes to the chunk');
      t.equal(d.address, expectedId, 'address after decode');
      t.ok(d.recordHashes?.equals(expectedHashes as Buffer), 'record hashes');
    }
    // A chunk stored without compression is hashed the same way, in a worker or not.
    for (const p of [pool, inline]) {
      const d = await p.decode(keys, Buffer.from(plain), 'none', plain.length, true);
      t.ok(d.plain.equals(plain), 'none: the chunk as stored');
      t.equal(d.address, expectedId, 'none: address');
      t.ok(d.recordHashes?.equals(expectedHashes as Buffer), 'none: record hashes');
    }
  }
  t.ok(viaWorker >= 6, `${viaWorker} chunks went through a worker`);

  // The hash of one record equals digest.ts's for the same key and value.
  const one = Buffer.alloc(64);
  const end = writeRecord(one, 0, 'ключ', Buffer.byteLength('ключ'), Buffer.from('value'));
  t.ok(
    InThread.recordHashes(one.subarray(0, end))?.equals(recordHash('ключ', Buffer.from('value'))),
    'reference = recordHash',
  );
});

t.test('what does not decode is refused, in a worker and in the calling thread', async (t) => {
  const pool = new ChunkPool(1);
  t.teardown(() => pool.close());
  const keys = deriveKeys(undefined, '');
  const plain = chunkOf(new Random(SEED + 1), 60, 1500);
  t.ok(plain.length > 32 * 1024, `a ${plain.length}-byte chunk`);
  const z = (await InThread.compress(plain, 'brotli', 1)) as Buffer;
  const dz = (await InThread.compress(plain, 'deflate', 1)) as Buffer;
  const lz = (await InThread.compress(plain, 'lz4', 0)) as Buffer;
  t.equal(lz.readUInt32LE(0), plain.length, 'an LZ4 payload states its plain length first');
  // LZ4 damage: a length prefix that lies (checked before decoding: no allocation of what
  // it claims), and a cut-off block.
  const lzLies = Buffer.from(lz);
  lzLies.writeUInt32LE(0xfffffff0, 0);
  const lzCut = Buffer.from(lz.subarray(0, lz.length >> 1));
  for (const p of [pool, new ChunkPool(0)]) {
    const where = p.size === 0 ? 'calling thread' : 'worker';
    await t.rejects(
      p.decode(keys, Buffer.from(z), 'brotli', plain.length - 1, false),
      { name: 'DecompressError' },
      `${where}: more bytes than the header states are refused`,
    );
    await t.rejects(
      p.decode(keys, Buffer.from(z), 'deflate', plain.length, false),
      { name: 'DecompressError' },
      `${where}: brotli bytes read as deflate are refused`,
    );
    await t.rejects(
      p.decode(keys, Buffer.from(dz), 'brotli', plain.length, false),
      { name: 'DecompressError' },
      `${where}: deflate bytes read as brotli are refused`,
    );
    await t.rejects(
      p.decode(keys, Buffer.from(lzLies), 'lz4', plain.length, false),
      { name: 'DecompressError' },
      `${where}: an LZ4 payload stating another length is refused`,
    );
    await t.rejects(
      p.decode(keys, Buffer.from(lzCut), 'lz4', plain.length, false),
      { name: 'DecompressError' },
      `${where}: a truncated LZ4 payload is refused`,
    );
    await t.rejects(
      p.decode(keys, Buffer.from(z), 'lz4', plain.length, false),
      { name: 'DecompressError' },
      `${where}: brotli bytes read as LZ4 are refused`,
    );
    const back = await p.decode(keys, Buffer.from(lz), 'lz4', plain.length, false);
    t.ok(back.plain.equals(plain), `${where}: negative control, LZ4 decodes`);
    const garbage = Buffer.from(plain); // records that do not parse: no record hashes
    garbage.writeUInt32BE(0xffffff, 1);
    const g = await p.decode(
      keys,
      (await InThread.compress(garbage, 'brotli', 1)) as Buffer,
      'brotli',
      garbage.length,
      true,
    );
    t.equal(g.recordHashes, undefined, `${where}: no record hashes for unparseable records`);
    t.equal(g.address, chunkId(keys, garbage), `${where}: still its address`);
  }
  // Taking a chunk twice is a bug in the caller.
  const pending = await pool.hashForWrite(keys, Buffer.from(plain));
  await pending.take('none', 0);
  await t.rejects(pending.take('brotli', 1), /already taken/);
  pending.drop(); // after take: nothing to do
});

t.test('a worker that goes away fails its jobs with SYNOD_ERR_BACKUP_IO', async (t) => {
  const pool = new ChunkPool(1);
  const keys = deriveKeys(undefined, '');
  const plain = chunkOf(new Random(SEED + 2), 200, 1500);
  const pending = await pool.hashForWrite(keys, Buffer.from(plain));
  await pool.close();
  await t.rejects(pending.take('brotli', 1), { code: 'SYNOD_ERR_BACKUP_IO' });
  // The pool starts a new worker for the next job.
  const again = await pool.hashForWrite(keys, Buffer.from(plain));
  t.equal(again.address, chunkId(keys, plain), 'a new worker answers');
  again.drop();
  await pool.close();
});

t.test('a chunk whose flags name the other codec is corrupt', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'synod-codec-flags-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const repo = await Repository.init(path.join(base, 'repo'), {
    chunker: { avgSize: 32768, minSize: 8192, maxSize: 131072 },
    clusterId: 'c',
    compression: { algo: 'brotli', level: 1 },
  });
  const d = new RepoDriver(repo, 'c', SEED, {
    keySpace: 150,
    valueMin: 100,
    valueMax: 900,
    pDelete: 0.1,
    pBatch: 0,
  });
  d.apply(300);
  const m = await d.backup('full');
  const r0 = await restore(repo, { kind: 'backup', id: m.id }, { factory: () => new MapState() });
  t.equal(r0.digest, m.stateDigest, 'restores before the damage');
  const root = path.join(base, 'repo', 'chunks');
  const dir = (await readdir(root))[0] as string;
  const file = path.join(root, dir, (await readdir(path.join(root, dir)))[0] as string);
  const bytes = await readFile(file);
  t.equal(bytes[5], 4, 'written as brotli (flag 4)');
  for (const [flags, why] of [
    [1, /does not decompress|decoded \d+ bytes, header says/],
    [5, /two codecs/],
    [0x0c, /two codecs/],
    [8, /does not decompress|decoded \d+ bytes, header says/],
    [0x14, /unknown flags/],
  ] as const) {
    const bad = Buffer.from(bytes);
    bad[5] = flags;
    await writeFile(file, bad);
    await t.rejects(
      restore(repo, { kind: 'backup', id: m.id }, { factory: () => new MapState() }),
      { code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT', message: why },
      `flags ${flags} refused`,
    );
  }
});

t.test('a chunk store error after hashing releases the chunk in the worker', async (t) => {
  const { ChunkStore } = await import('../../actors/backup/chunk-store.js');
  const { chunkPool } = await import('../../actors/backup/chunk-pool.js');
  const { nodeRepoFs } = await import('../../actors/backup/fs.js');
  const keys = deriveKeys(undefined, '');
  const failing = {
    ...nodeRepoFs,
    size: async () => {
      throw Object.assign(new Error('EIO: simulated'), { code: 'EIO' });
    },
  };
  const store = new ChunkStore(failing, os.tmpdir(), keys, { algo: 'brotli', level: 1 });
  const before = chunkPool.keptChunks();
  for (let i = 0; i < 5; i++) {
    const plain = chunkOf(new Random(SEED + 10 + i), 80, 1500);
    t.ok(plain.length >= 16 * 1024, 'big enough for a worker');
    await t.rejects(store.put(plain), /EIO/);
  }
  t.equal(chunkPool.keptChunks(), before, 'nothing left held in the workers');
});

t.test('LZ4 without its package is a clear error with a code', async (t) => {
  const { loadLz4 } = await import('../../actors/backup/lz4.js');
  t.throws(
    () =>
      loadLz4(() => {
        throw new Error("Cannot find module 'lz4-napi'\nRequire stack: …");
      }),
    {
      code: 'SYNOD_ERR_BACKUP_CODEC_UNAVAILABLE',
      message: /lz4-napi.*Cannot find module.*install it/,
    },
  );
  const req = createRequire(import.meta.url);
  t.type(loadLz4((id) => req(id)).compressSync, 'function', 'negative control: it loads here');
});

t.test('useCallingThread: a small one-off backup starts no worker', async (t) => {
  const keys = deriveKeys(undefined, '');
  const plain = chunkOf(new Random(SEED + 5), 200, 1500);
  t.ok(plain.length >= 16 * 1024, 'a chunk a worker would take');

  const small = new ChunkPool(2);
  t.teardown(() => small.close());
  t.ok(small.useCallingThread(), 'switches while no worker runs');
  t.equal(small.size, 0);
  const copy = Buffer.from(plain);
  const p = await small.hashForWrite(keys, copy);
  t.equal(copy.buffer.byteLength, copy.length, "the chunk's memory stayed here (no transfer)");
  t.equal(p.address, chunkId(keys, plain), 'same address');
  t.same(
    (await p.take('deflate', 1)).bytes,
    (await InThread.take(plain, 'deflate', 1)).bytes,
    'same stored bytes',
  );

  // Control: the default pool transfers the chunk to a worker.
  const busy = new ChunkPool(1);
  t.teardown(() => busy.close());
  const copy2 = Buffer.from(plain);
  const q = await busy.hashForWrite(keys, copy2);
  t.equal(copy2.buffer.byteLength, 0, 'a worker took the memory');
  q.drop();
  t.notOk(busy.useCallingThread(), 'no switch once a worker runs');
  t.equal(busy.size, 1);

  const saved = process.env.SYNOD_BACKUP_WORKERS;
  process.env.SYNOD_BACKUP_WORKERS = '2';
  t.teardown(() => {
    if (saved === undefined) delete process.env.SYNOD_BACKUP_WORKERS;
    else process.env.SYNOD_BACKUP_WORKERS = saved;
  });
  t.notOk(new ChunkPool(2).useCallingThread(), 'SYNOD_BACKUP_WORKERS set: it decides');
});

t.test('stateBytesEstimate: the newest full and what follows it', async (t) => {
  const m = (type: 'full' | 'diff' | 'incr', bytes: number) => ({ type, bytes });
  t.equal(stateBytesEstimate([]), undefined, 'no backup: unknown');
  t.equal(stateBytesEstimate([m('incr', 5)]), undefined, 'no full: unknown');
  t.equal(
    stateBytesEstimate([m('full', 100), m('incr', 2), m('full', 50), m('diff', 3), m('incr', 1)]),
    54,
  );
  t.ok(SMALL_STATE_BYTES >= 16 << 20, 'a threshold of megabytes');
});
