/**
 * The full backup's write path (session 12): a chunk of a full backup is hashed and
 * compressed in one worker job (`hashForWrite` with `speculate`), and in an unencrypted
 * repository the worker writes the stored bytes into a reused shared buffer after room for
 * the file header, so the file is written from that buffer: no new buffer per chunk in the
 * calling thread's heap (each one counted as external memory there, and in a process holding
 * a large state every ~64 MB of it started a full mark of the heap). The chunk files must be
 * byte for byte what the old path wrote, and everything must still restore and verify.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  ChunkPool,
  type Codec,
  InThread,
  MIN_WORKER_BYTES,
} from '../../actors/backup/chunk-pool.js';
import type { ChunkerParams } from '../../actors/backup/chunker.js';
import { chunkId, deriveKeys } from '../../actors/backup/crypto.js';
import { nodeRepoFs, type RepoFs } from '../../actors/backup/fs.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { verify } from '../../actors/backup/verify.js';
import { keyName, randomValue } from '../../actors/backup/workload.js';
import { Random } from '../../lib/random.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 1212);

const CHUNKER: ChunkerParams = {
  avgSize: 65536,
  minSize: 16384,
  maxSize: 262144,
  boundary: 'key',
};

function bytesOf(r: Random, n: number, randomShare: number): Buffer {
  const b = Buffer.alloc(n, 7);
  const k = Math.floor(n * randomShare);
  for (let i = 0; i < k; i++) b[i] = r.int(256);
  return b;
}

function trackedState(r: Random, n: number): TrackedState<unknown> {
  const state = new MapState();
  for (let i = 0; i < n; i++) {
    state.apply({ type: 'put', key: keyName(i), value: randomValue(r, 500, 1500) });
  }
  return new TrackedState(state) as TrackedState<unknown>;
}

t.test(
  `speculative hash + compress gives the bytes of hash, then compress (seed ${SEED})`,
  async (t) => {
    const pool = new ChunkPool(2);
    t.teardown(() => pool.close());
    const r = new Random(SEED);
    const plainKeys = deriveKeys(undefined, '');
    const encKeys = deriveKeys(Buffer.alloc(32, 5), '0a0b');
    const codecs = ['lz4', 'brotli', 'deflate', 'none'] as const;
    let inOut = 0;
    for (let round = 0; round < 32; round++) {
      const codec = codecs[round % 4] as Codec | 'none';
      const level = codec === 'brotli' || codec === 'deflate' ? 1 : 0;
      const keys = round % 3 === 2 ? encKeys : plainKeys;
      // Below and above MIN_WORKER_BYTES; compressible, or not at all (stored raw).
      const len = r.chance(0.2)
        ? 1 + r.int(MIN_WORKER_BYTES - 1)
        : MIN_WORKER_BYTES + r.int(300_000);
      const plain = bytesOf(r, len, r.chance(0.25) ? 1 : 0.5);
      const want = await InThread.take(plain, codec, level);
      const address = chunkId(keys, plain);
      const shared = r.chance(0.5);
      const input = shared ? Buffer.from(new SharedArrayBuffer(len)) : Buffer.allocUnsafe(len);
      plain.copy(input);
      const withOut = round % 2 === 0;
      const at = 16;
      const out = withOut ? Buffer.from(new SharedArrayBuffer(at + len + r.int(64))) : undefined;
      out?.fill(0xee);
      const p = await pool.hashForWrite(keys, input, {
        codec,
        level,
        ...(out ? { out, at } : {}),
      });
      t.equal(p.address, address, `round ${round}: address (${len} B, ${codec})`);
      const got = await p.take(codec, level);
      t.ok(got.bytes.equals(want.bytes), `round ${round}: the same stored bytes`);
      t.equal(got.codec, want.codec, `round ${round}: the same codec flag`);
      if (out && len >= MIN_WORKER_BYTES) {
        inOut++;
        t.equal(got.bytes.buffer, out.buffer, 'written into the caller’s buffer');
        t.equal(got.bytes.byteOffset, out.byteOffset + at, 'after the room asked for');
        t.ok(
          out.subarray(0, at).every((b) => b === 0xee),
          'the room in front is left alone',
        );
      }
      if (len >= MIN_WORKER_BYTES) {
        await t.rejects(p.take(codec, level), /already taken/, 'taken once');
      }
      p.drop();
    }
    t.ok(inOut >= 8, `${inOut} chunks written into a caller's buffer`);
    t.equal(pool.keptChunks(), 0, 'nothing kept in the workers');

    const plain = bytesOf(r, 100_000, 0.5);
    const p = await pool.hashForWrite(plainKeys, Buffer.from(plain), { codec: 'lz4', level: 0 });
    await t.rejects(p.take('brotli', 1), /compressed as lz4 0, not brotli 1/, 'another codec');
    p.drop();
    const dropped = await pool.hashForWrite(plainKeys, Buffer.from(plain), {
      codec: 'lz4',
      level: 0,
    });
    dropped.drop();
    await t.rejects(dropped.take('lz4', 0), /already taken or dropped/, 'nothing after drop');
    await t.rejects(
      pool.hashForWrite(plainKeys, Buffer.from(plain), {
        codec: 'lz4',
        level: 0,
        out: Buffer.alloc(plain.length + 16),
        at: 16,
      }),
      /out must be shared memory/,
      'an output buffer that is not shared memory is refused',
    );
    await t.rejects(
      pool.hashForWrite(plainKeys, Buffer.from(plain), {
        codec: 'lz4',
        level: 0,
        out: Buffer.from(new SharedArrayBuffer(plain.length)),
        at: 16,
      }),
      /at least at \+ plain.length/,
      'one too small for the room and the chunk is refused',
    );
  },
);

/** Records every chunk file written: whether its bytes were in shared memory, and a copy. */
class RecordingFs implements RepoFs {
  readonly chunkWrites: Array<{
    file: string;
    shared: SharedArrayBuffer | undefined;
    bytes: Buffer;
  }> = [];
  readFile = (f: string) => nodeRepoFs.readFile(f);
  writeFileSync = (f: string, d: Uint8Array) => nodeRepoFs.writeFileSync(f, d);
  async writeFile(file: string, data: Uint8Array): Promise<void> {
    if (file.includes(`${path.sep}chunks${path.sep}`)) {
      this.chunkWrites.push({
        file: file.slice(0, -'.tmp'.length),
        shared: data.buffer instanceof SharedArrayBuffer ? data.buffer : undefined,
        bytes: Buffer.from(data),
      });
    }
    await nodeRepoFs.writeFile(file, data);
  }
  fsyncFile = (f: string) => nodeRepoFs.fsyncFile(f);
  rename = (a: string, b: string) => nodeRepoFs.rename(a, b);
  unlink = (f: string) => nodeRepoFs.unlink(f);
  mkdirp = (d: string) => nodeRepoFs.mkdirp(d);
  fsyncDir = (d: string) => nodeRepoFs.fsyncDir(d);
  readdir = (d: string) => nodeRepoFs.readdir(d);
  size = (f: string) => nodeRepoFs.size(f);
}

t.test(
  `a full backup writes its chunk files from reused shared buffers (seed ${SEED})`,
  async (t) => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'synod-full-write-path-'));
    t.teardown(() => rm(base, { recursive: true, force: true }));
    const tracked = trackedState(new Random(SEED + 1), 4000);
    for (const [name, opts] of [
      ['lz4', { compression: { algo: 'lz4' as const } }],
      ['brotli', { compression: { algo: 'brotli' as const, level: 1 } }],
      ['none', { compression: { algo: 'none' as const } }],
      ['encrypted', { key: Buffer.alloc(32, 9) }],
    ] as const) {
      const dir = path.join(base, name);
      await Repository.init(dir, { clusterId: 'c', chunker: CHUNKER, ...opts });
      const rfs = new RecordingFs();
      const repo = await Repository.open(dir, {
        fs: rfs,
        ...('key' in opts ? { key: opts.key } : {}),
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
      t.ok(m.chunks.length > 20, `${name}: ${m.chunks.length} chunks`);
      t.equal(
        rfs.chunkWrites.length,
        new Set(m.chunks.map((c) => c.id)).size,
        `${name}: one write per new chunk`,
      );
      const big = rfs.chunkWrites.filter((w) => w.bytes.length >= MIN_WORKER_BYTES);
      const buffers = new Set(big.map((w) => w.shared));
      if (name === 'encrypted') {
        // Sealing makes a new buffer anyway: the stored bytes come back as before.
        t.ok(
          big.every((w) => w.shared === undefined),
          'encrypted: sealed bytes are ordinary memory',
        );
      } else {
        t.ok(
          big.every((w) => w.shared !== undefined),
          `${name}: every chunk file written from shared memory`,
        );
        t.ok(
          buffers.size <= 16,
          `${name}: ${big.length} chunk files from ${buffers.size} reused buffers`,
        );
      }
      // Byte for byte what the old path wrote: header, then the codec's output (or the plain
      // chunk when that is not smaller), as InThread computes it; and what is on disk.
      const plainRepo = name !== 'encrypted';
      for (const w of rfs.chunkWrites) {
        const id = path.basename(w.file);
        const onDisk = await readFile(w.file);
        t.ok(onDisk.equals(w.bytes), `${name}: ${id.slice(0, 8)} on disk as written`);
        if (!plainRepo) continue;
        const plain = await repo.chunks.get(id);
        const algo = opts && 'compression' in opts ? opts.compression.algo : 'lz4';
        const level = algo === 'brotli' ? 1 : 0;
        const want = await InThread.take(plain, algo, level);
        const flags = want.codec === 'lz4' ? 8 : want.codec === 'brotli' ? 4 : want.codec ? 1 : 0;
        const header = Buffer.alloc(16);
        header.writeUInt32BE(0x53594e43, 0);
        header[4] = 1;
        header[5] = flags;
        header.writeUInt32BE(plain.length, 8);
        header.writeUInt32BE(want.bytes.length, 12);
        if (!onDisk.equals(Buffer.concat([header, want.bytes]))) {
          t.fail(`${name}: chunk ${id} differs from the old path's bytes`);
          return;
        }
      }
      const res = await restore(
        repo,
        { kind: 'backup', id: m.id },
        { factory: () => new MapState() },
      );
      t.equal(res.digest, cap.stateDigest, `${name}: restores to the captured state`);
      t.same((await verify(repo)).problems, [], `${name}: verify finds nothing wrong`);
      // An incremental after it (no listing: the hash, then the compression) still works.
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
      t.equal(again.storedBytes, 0, `${name}: a second full stores no chunk again`);
    }
  },
);
