/**
 * The full backup's pipeline (session 11): the stream digest hashed on a worker in the order
 * the chunks were cut, chunks written straight into shared slabs that are reused only once no
 * thread reads them, and a worker that fails mid-backup failing the backup with a clear error
 * and no listed backup.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  ChunkPool,
  ChunkSlabs,
  chunkPool,
  MIN_WORKER_BYTES,
} from '../../actors/backup/chunk-pool.js';
import { Chunker, type ChunkerParams } from '../../actors/backup/chunker.js';
import { chunkId, deriveKeys } from '../../actors/backup/crypto.js';
import { decodeRecords, keyByteLength, writeRecord } from '../../actors/backup/records.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { verify } from '../../actors/backup/verify.js';
import { keyName, randomValue } from '../../actors/backup/workload.js';
import { Random } from '../../lib/random.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 1111);

/** Chunk sizes that use the workers (≥ MIN_WORKER_BYTES), small enough for a fast test. */
const CHUNKER: ChunkerParams = {
  avgSize: 65536,
  minSize: 16384,
  maxSize: 262144,
  boundary: 'key',
};

function randomBytes(r: Random, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** A state of `n` keys with values of `min`..`max` bytes (half random), tracked. */
function trackedState(r: Random, n: number, min: number, max: number): TrackedState<unknown> {
  const state = new MapState();
  for (let i = 0; i < n; i++) {
    state.apply({ type: 'put', key: keyName(i), value: randomValue(r, min, max) });
  }
  return new TrackedState(state) as TrackedState<unknown>;
}

t.test(`a worker's stream digest is the hash of the chunks in order (seed ${SEED})`, async (t) => {
  const pool = new ChunkPool(2);
  t.teardown(() => pool.close());
  const keys = deriveKeys(undefined, '');
  for (let round = 0; round < 6; round++) {
    const r = new Random(SEED + round);
    const stream = pool.streamHash();
    const ref = createHash('sha256');
    const jobs: Promise<unknown>[] = [];
    const n = 5 + r.int(40);
    for (let i = 0; i < n; i++) {
      // Big and small chunks, in shared memory or not; the first one decides where the stream
      // runs (round 0: a small first chunk keeps it in this thread).
      const len =
        i === 0 && round === 0
          ? 100
          : r.chance(0.2)
            ? r.int(MIN_WORKER_BYTES)
            : MIN_WORKER_BYTES + r.int(200_000);
      const bytes = randomBytes(r, len);
      const chunk = r.chance(0.5)
        ? Buffer.from(new SharedArrayBuffer(len))
        : Buffer.allocUnsafe(len);
      bytes.copy(chunk);
      ref.update(bytes);
      jobs.push(stream.update(chunk));
      // Other chunks' work on the same workers between the stream's updates (a non-shared
      // chunk is transferred away by this: the stream has already copied it).
      if (r.chance(0.7)) {
        const p = await pool.hashForWrite(keys, chunk);
        t.equal(p.address, chunkId(keys, bytes), 'address of the chunk');
        jobs.push(p.take('lz4', 0).catch(() => p.drop()));
      }
    }
    await Promise.all(jobs);
    t.equal(await stream.hex(), ref.digest('hex'), `round ${round}: ${n} chunks in order`);
  }
  t.equal(await new ChunkPool(2).streamHash().hex(), createHash('sha256').digest('hex'), 'empty');
  t.equal(pool.keptChunks(), 0, 'nothing held in the workers');
});

t.test('a stream whose worker goes away fails with SYNOD_ERR_BACKUP_IO', async (t) => {
  const pool = new ChunkPool(1);
  const r = new Random(SEED + 100);
  const stream = pool.streamHash();
  await stream.update(Buffer.from(randomBytes(r, 100_000)));
  await pool.close();
  await stream.update(Buffer.from(randomBytes(r, 100_000)));
  await t.rejects(stream.hex(), { code: 'SYNOD_ERR_BACKUP_IO', message: /chunk worker failed/ });
  // An update that was under way when the worker went away fails it the same way.
  const again = pool.streamHash();
  const pending = again.update(Buffer.from(randomBytes(r, 300_000)));
  await pool.close();
  await pending;
  await t.rejects(again.hex(), { code: 'SYNOD_ERR_BACKUP_IO' });
  await pool.close();
});

t.test('slabs are reused only when given back', async (t) => {
  const slabs = new ChunkSlabs(1000, 2);
  const a = slabs.take(10);
  const b = slabs.take(1000);
  t.not(a.buffer, b.buffer, 'two slabs in use are two memories');
  t.ok(a.buffer instanceof SharedArrayBuffer, 'shared memory');
  t.equal(slabs.made, 2);
  slabs.give(a.subarray(0, 5));
  slabs.give(a.subarray(0, 7)); // given twice: kept once
  const c = slabs.take(500);
  t.equal(c.buffer, a.buffer, 'a slab given back is taken again');
  const d = slabs.take(500);
  t.not(d.buffer, a.buffer, 'given back once, taken once');
  const big = slabs.take(5000);
  t.equal(big.length, 5000, 'a larger slab for a huge record');
  slabs.give(big);
  slabs.give(Buffer.alloc(1000));
  t.not(slabs.take(1000).buffer, big.buffer, 'neither a larger slab nor ordinary memory is kept');
  t.equal(slabs.made, 5);
});

t.test(
  `the chunker writes the same chunks into slabs as into its own buffer (seed ${SEED})`,
  async (t) => {
    const r = new Random(SEED + 200);
    const records: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < 3000; i++) {
      // A few records larger than the largest chunk (the chunker grows its buffer for them).
      const len = r.chance(0.005) ? 300_000 + r.int(100_000) : r.int(2000);
      records.push([keyName(i), randomValue(r, len, len)]);
    }
    const plain: Buffer[] = [];
    const own = new Chunker(CHUNKER, (c) => plain.push(c));
    for (const [k, v] of records) own.add(k, v);
    own.finish();
    const slabs = new ChunkSlabs(Chunker.bufferSize(CHUNKER));
    const viaSlabs: Buffer[] = [];
    const copies: Buffer[] = [];
    const chunker = new Chunker(
      CHUNKER,
      (c) => {
        viaSlabs.push(c);
        copies.push(Buffer.from(c));
        // Given back at once: the next chunk is written into the same memory.
        slabs.give(c);
      },
      slabs,
    );
    for (const [k, v] of records) chunker.add(k, v);
    chunker.finish();
    t.ok(plain.length > 20, `${plain.length} chunks`);
    t.same(
      copies.map((c) => c.toString('hex')),
      plain.map((c) => c.toString('hex')),
      'the same chunk bytes',
    );
    // Two slabs take turns; a record larger than a slab costs a larger buffer and the slab it
    // replaced.
    const huge = records.filter(([, v]) => v.length > 200_000).length;
    t.ok(huge > 0 && slabs.made <= 2 + 2 * huge, `slabs reused (${slabs.made} made)`);
    t.ok(
      viaSlabs.every((c) => c.buffer instanceof SharedArrayBuffer),
      'every chunk is a view of a slab',
    );
  },
);

t.test(`a full backup through the workers: digest, restore, verify (seed ${SEED})`, async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'synod-stream-pipeline-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  t.ok(chunkPool.size > 0, 'the process pool has workers (SYNOD_BACKUP_WORKERS unset)');
  const tracked = trackedState(new Random(SEED + 300), 3000, 500, 1500);
  for (const algo of ['lz4', 'brotli', 'none'] as const) {
    const repo = await Repository.init(path.join(base, algo), {
      clusterId: 'c',
      chunker: CHUNKER,
      compression: { algo, level: algo === 'brotli' ? 1 : 0 },
    });
    const cap = tracked.captureFull();
    const m = await repo.writeBackup({
      type: 'full',
      index: 1,
      term: 1,
      time: 0,
      clusterId: 'c',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 0,
    });
    t.ok(m.chunks.length > 20, `${algo}: ${m.chunks.length} chunks`);
    // The stream digest is the SHA-256 of the records serialized in key order, whatever the
    // chunking: recomputed here from the chunks read back, in manifest order.
    const whole = createHash('sha256');
    let n = 0;
    for (const c of m.chunks) {
      const plain = await repo.chunks.get(c.id, c.size);
      for (const _ of decodeRecords(plain)) n++;
      whole.update(plain);
    }
    t.equal(n, cap.keyCount, `${algo}: every record in the chunks`);
    t.equal(m.streamDigest, whole.digest('hex'), `${algo}: stream digest of the chunks in order`);
    const res = await restore(
      repo,
      { kind: 'backup', id: m.id },
      { factory: () => new MapState() },
    );
    t.equal(res.digest, cap.stateDigest, `${algo}: restores to the captured state`);
    const report = await verify(repo);
    t.same(report.problems, [], `${algo}: verify finds nothing wrong`);
    // A second full of the same state stores nothing new (the listing says every chunk is
    // there) and has the same stream digest.
    const again = await repo.writeBackup({
      type: 'full',
      index: 2,
      term: 1,
      time: 0,
      clusterId: 'c',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 1,
    });
    t.equal(again.storedBytes, 0, `${algo}: the second full stores no chunk again`);
    t.equal(again.streamDigest, m.streamDigest, `${algo}: same stream digest`);
  }
  t.equal(chunkPool.keptChunks(), 0, 'nothing held in the workers');
});

t.test('a worker that fails mid-backup: a clear error and no listed backup', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'synod-stream-pipeline-fail-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const tracked = trackedState(new Random(SEED + 400), 2000, 500, 1500);
  const repo = await Repository.init(path.join(base, 'repo'), { clusterId: 'c', chunker: CHUNKER });
  const cap = tracked.captureFull();
  const input = {
    type: 'full' as const,
    index: 1,
    term: 1,
    time: 0,
    clusterId: 'c',
    records: cap.records,
    keyCount: cap.keyCount,
    stateDigest: cap.stateDigest,
    now: 0,
  };
  let killed = false;
  await t.rejects(
    repo.writeBackup({
      ...input,
      // Every worker (the stream digest's among them) stops after the first chunk is written.
      progress: () => {
        if (!killed) {
          killed = true;
          void chunkPool.close();
        }
      },
    }),
    { code: 'SYNOD_ERR_BACKUP_IO', message: /chunk worker failed/ },
  );
  t.ok(killed, 'the workers were stopped mid-backup');
  t.same(await repo.list(), [], 'no backup listed');
  // The pool starts new workers: the next backup completes and restores.
  const m = await repo.writeBackup(input);
  t.same(
    (await repo.list()).map((x) => x.id),
    [m.id],
    'the next backup is the only one listed',
  );
  const res = await restore(repo, { kind: 'backup', id: m.id }, { factory: () => new MapState() });
  t.equal(res.digest, cap.stateDigest, 'and restores');
  t.same((await verify(repo)).problems, [], 'verify finds nothing wrong');
});

t.test(
  `record keys: the short-key path writes the same UTF-8 as the encoder (seed ${SEED})`,
  async (t) => {
    const r = new Random(SEED + 500);
    const fixed = [
      '',
      'k00000001',
      'a'.repeat(64),
      'a'.repeat(65),
      `${'a'.repeat(63)}é`,
      'ключ',
      '😀',
      '\u0000kv/1',
      '\u007f',
      '\u0080',
      '\ud800', // a lone surrogate: written as U+FFFD, 3 bytes, by either path
      `x\udc00y`,
    ];
    const randomKey = () => {
      const n = r.int(80);
      let k = '';
      for (let i = 0; i < n; i++) {
        const pick = r.int(10);
        k += String.fromCharCode(
          pick < 7 ? r.int(0x80) : pick < 9 ? 0x80 + r.int(0x800) : 0xd800 + r.int(0x800),
        );
      }
      return k;
    };
    const keys = [...fixed, ...Array.from({ length: 2000 }, randomKey)];
    for (const key of keys) {
      const len = keyByteLength(key);
      t.equal(len, Buffer.byteLength(key, 'utf8'), `length of ${JSON.stringify(key)}`);
      const buf = Buffer.alloc(9 + len + 3);
      const end = writeRecord(buf, 0, key, len, new Uint8Array([1, 2, 3]));
      const want = Buffer.concat([
        Buffer.from([0]),
        Buffer.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]),
        Buffer.from(key, 'utf8'),
        Buffer.from([0, 0, 0, 3, 1, 2, 3]),
      ]);
      if (!buf.subarray(0, end).equals(want)) {
        t.fail(`bytes of ${JSON.stringify(key)}`);
        return;
      }
    }
    t.pass(`${keys.length} keys written as Buffer.from(key, 'utf8') would`);
  },
);
