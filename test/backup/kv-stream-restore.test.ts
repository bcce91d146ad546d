/**
 * The streamed restore of a `kv` repository (stream-restore.ts + kv-image-stream.ts): a full
 * backup of the agent's KV state (Raft client sessions, KV sessions with results, revisions,
 * keys and values around every msgpack header size, characters outside ASCII) written into
 * node data directories record by record gives byte for byte the snapshot, meta, hard state
 * and restore.json the in-memory path (state machine rebuilt, `kvNodeImage`) writes, for a
 * digest version 2 manifest and a version 1 one, and from an encrypted repository; a dry run
 * checks the same; a restore that
 * fails on a damaged chunk leaves its destination as it found it (no spool); a value that is
 * not a KV value and a reserved key the KV state does not know are refused with the
 * destination left absent; the msgpack headers the stream writes are the codec's.
 * That a streamed kv data directory starts a working node: live-cluster.test.ts (its
 * `restore --to <full> --dest` is streamed). SYNOD_SEED=n reproduces a run.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { StateDigest } from '../../actors/backup/digest.js';
import { arrayHeader, binHeader, strHeader } from '../../actors/backup/kv-image-stream.js';
import { KV_REV_KEY, KvKeyedState } from '../../actors/backup/kv-state.js';
import { decodeManifest, encodeManifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { planRestore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { SessionState } from '../../actors/backup/sessions.js';
import { streamable } from '../../actors/backup/stream-restore.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp } from '../../actors/kv/types.js';
import { SessionStateMachine } from '../../actors/raft/session-state-machine.js';
import { encodeValue } from '../../lib/codec.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
import { openDataDir } from '../../lib/storage/data-dir.js';

const seed = Number(process.env.SYNOD_SEED ?? Math.floor(Math.random() * 2 ** 31));
const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-kv-stream-restore-'));
t.teardown(() => rm(base, { recursive: true, force: true }));

t.test('the headers the stream writes are the codec’s', async (t) => {
  for (const n of [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000]) {
    const arr = Buffer.from(encodeValue(new Array(n).fill(0)));
    t.same(arrayHeader(n), arr.subarray(0, arr.length - n), `array of ${n}`);
    const bin = Buffer.from(encodeValue(new Uint8Array(n)));
    t.same(binHeader(n), bin.subarray(0, bin.length - n), `bin of ${n}`);
    const str = Buffer.from(encodeValue('é'.repeat(n >> 1) + 'a'.repeat(n & 1)));
    t.same(strHeader(n), str.subarray(0, str.length - n), `str of ${n} bytes`);
  }
});

/** Keys and values around every msgpack header size, multi-byte and astral characters. */
function oddString(r: Random, i: number): string {
  const lengths = [0, 1, 30, 31, 32, 33, 127, 255, 256, 257, 1000, 65535, 65536, 70000];
  const len = lengths[i % lengths.length] as number;
  const alphabet = ['a', 'é', '€', '😀', '\u0000', 'Ａ'];
  let s = '';
  while (s.length < len) s += alphabet[r.between(0, alphabet.length - 1)];
  return s; // whole characters (a cut surrogate pair would not survive any encoding)
}

/** The agent's state after a KV workload with sessions, acks, cas, deletes and retries. */
function agentState(r: Random): TrackedState<Command<KvOp>> {
  const tracked = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  const clients = Array.from({ length: 7 }, (_, i) => ({ id: `c${i}`, seq: 0 }));
  const applied: Command<KvOp>[] = [];
  let index = 0;
  for (let i = 0; i < 400; i++) {
    let cmd: Command<KvOp>;
    if (applied.length > 0 && r.next() < 0.05) {
      cmd = applied[
        r.between(Math.max(0, applied.length - 10), applied.length - 1)
      ] as Command<KvOp>;
    } else {
      const c = clients[r.between(0, clients.length - 1)] as { id: string; seq: number };
      c.seq++;
      const s = { c: c.id, q: c.seq, a: Math.max(0, c.seq - 1 - r.between(0, 3)) };
      const key =
        r.next() < 0.3
          ? `${[...oddString(r, i)].slice(0, 2000).join('')}${i}`
          : `key-${r.between(0, 60)}${r.next() < 0.05 ? '\u0000odd' : ''}`;
      const roll = r.next();
      let op: KvOp;
      if (roll < 0.7) op = { t: 'put', key, value: oddString(r, r.between(0, 100)), s };
      else if (roll < 0.8) op = { t: 'del', key, s };
      else if (roll < 0.9) op = { t: 'cas', key, if: { value: null }, value: `new${i}`, s };
      else op = { t: 'cas', key, if: { modRev: r.between(0, i) }, value: null, s };
      cmd = { clientId: c.id, seq: c.seq, op };
    }
    applied.push(cmd);
    tracked.apply(cmd, { index: ++index, term: 2, time: 1_700_000_000_000 + index });
  }
  return tracked;
}

async function fullBackup(repo: Repository, tracked: TrackedState<Command<KvOp>>) {
  const cap = tracked.captureFull();
  return repo.writeBackup({
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
}

/** A data directory's snapshot (data, meta without its time), hard state and restore.json. */
async function snap(dir: string) {
  const dd = await openDataDir(path.join(dir, 'raft'));
  try {
    const s = await dd.snapshots.latest();
    const info = JSON.parse(await readFile(path.join(dir, 'restore.json'), 'utf8'));
    return {
      meta: s && { ...s.meta, createdAt: 0 },
      data: s && Buffer.from(await s.readAll()),
      hard: await dd.hardState.load(),
      info,
      files: (await readdir(dir)).sort(),
    };
  } finally {
    await dd.close();
  }
}

const members = ['a', 'b', 'c'];
const common = { members, clusterId: 'new', clusterName: 'nc', now: 1_800_000_000_000 };

t.test(
  `streamed kv data directories are the in-memory path's, byte for byte (seed ${seed})`,
  async (t) => {
    const r = new Random(seed);
    const tracked = agentState(r);
    const repo = await Repository.init(path.join(base, 'repo'), {
      state: 'kv',
      chunker: small,
      clusterId: 'c',
    });
    const full = await fullBackup(repo, tracked);
    t.ok(full.chunks.length > 5, `the full has ${full.chunks.length} chunks`);
    const target = { kind: 'backup', id: full.id } as const;
    t.ok(streamable(repo, await planRestore(repo, target)), 'a full of a kv repository streams');

    const memDir = path.join(base, 'in-memory');
    await restoreDataDirs(repo, target, {
      ...common,
      dest: { dir: memDir, node: 'a' },
      stream: false,
    });
    const want = await snap(memDir);
    t.ok(want.data && want.data.length > 70_000, 'the in-memory restore wrote a snapshot');

    const streamedDir = path.join(base, 'streamed');
    const streamed = await restoreDataDirs(repo, target, { ...common, clusterDir: streamedDir });
    t.equal(streamed.result.digest, full.stateDigest);
    t.equal(streamed.result.keyCount, full.keyCount);
    for (const m of members) {
      const got = await snap(path.join(streamedDir, m));
      t.same(got.meta, want.meta, `member ${m}: same snapshot meta`);
      t.ok(got.data?.equals(want.data as Buffer), `member ${m}: same snapshot bytes`);
      t.same(got.hard, want.hard, `member ${m}: same hard state`);
      t.same(
        { ...got.info, restoredAt: 0 },
        { ...want.info, restoredAt: 0 },
        `member ${m}: same restore.json`,
      );
      t.same(got.files, ['node.json', 'raft', 'restore.json'], 'no spool left behind');
    }

    // The node's own stack restores the image to the agent's state.
    const kv = new KvStateMachine();
    const node = new SessionStateMachine(kv);
    node.restore(want.data as Buffer);
    const agentKv = (tracked.state as SessionState<KvOp>).inner as KvKeyedState;
    t.same(
      kv.range({ start: '' }).kvs,
      agentKv.machine.range({ start: '' }).kvs,
      'a node restoring the streamed image holds every key of the backup',
    );

    const dry = await restoreDataDirs(repo, target, common);
    t.same(dry.dirs, []);
    t.equal(dry.result.digest, full.stateDigest, 'a dry run streams and checks');

    t.test(
      'a failed kv restore leaves each destination as it found it, spool included',
      async (t) => {
        const absent = path.join(base, 'kv-absent');
        const empty = path.join(base, 'kv-empty');
        await mkdir(empty);
        // Damage the last chunk: the first ones are spooled already when it fails.
        const last = full.chunks[full.chunks.length - 1] as { id: string };
        const file = repo.chunks.pathOf(last.id);
        const saved = await readFile(file);
        const b = Buffer.from(saved);
        b[b.length - 3] = (b[b.length - 3] as number) ^ 1;
        await writeFile(file, b);
        t.teardown(() => writeFile(file, saved));
        for (const dir of [absent, empty]) {
          await t.rejects(restoreDataDirs(repo, target, { ...common, dest: { dir, node: 'a' } }), {
            code: 'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
          });
        }
        await t.rejects(readdir(absent), { code: 'ENOENT' }, 'an absent destination stays absent');
        t.same(await readdir(empty), [], 'an empty destination stays empty (no spool)');
        // Negative control: repaired, the same destination takes the restore.
        await writeFile(file, saved);
        const ok = await restoreDataDirs(repo, target, {
          ...common,
          dest: { dir: empty, node: 'a' },
        });
        t.equal(ok.result.digest, full.stateDigest);
        t.ok((await snap(empty)).data?.equals(want.data as Buffer), 'and writes the same bytes');
      },
    );

    t.test('an encrypted kv repository streams the same bytes', async (t) => {
      const enc = await Repository.init(path.join(base, 'repo-encrypted'), {
        state: 'kv',
        chunker: small,
        clusterId: 'c',
        key: Buffer.alloc(32, 7),
      });
      const m = await fullBackup(enc, tracked);
      t.equal(m.stateDigest, full.stateDigest, 'the same state');
      const dir = path.join(base, 'encrypted');
      const res = await restoreDataDirs(
        enc,
        { kind: 'backup', id: m.id },
        { ...common, dest: { dir, node: 'a' } },
      );
      t.equal(res.result.digest, full.stateDigest);
      t.ok((await snap(dir)).data?.equals(want.data as Buffer), 'same snapshot bytes');
    });

    t.test('a digest version 1 manifest (record sums) streams the same bytes', async (t) => {
      const file = path.join(repo.backupsDir, `${full.id}.manifest`);
      const saved = await readFile(file);
      t.teardown(() => writeFile(file, saved));
      const { manifest } = decodeManifest(repo.keys, saved, full.id);
      await writeFile(
        file,
        encodeManifest(repo.keys, {
          ...manifest,
          digestVersion: undefined,
          streamDigest: undefined,
        }).bytes,
      );
      const dir = path.join(base, 'v1');
      const res = await restoreDataDirs(repo, target, { ...common, dest: { dir, node: 'a' } });
      t.equal(res.result.digest, full.stateDigest);
      const got = await snap(dir);
      t.ok(got.data?.equals(want.data as Buffer), 'same snapshot bytes');
      // Negative control: a wrong state digest in a version 1 manifest is refused.
      await writeFile(
        file,
        encodeManifest(repo.keys, {
          ...manifest,
          digestVersion: undefined,
          streamDigest: undefined,
          stateDigest: new StateDigest().hex(),
        }).bytes,
      );
      const bad = path.join(base, 'v1-bad');
      await t.rejects(restoreDataDirs(repo, target, { ...common, dest: { dir: bad, node: 'a' } }), {
        code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
      });
      await t.rejects(readdir(bad), { code: 'ENOENT' }, 'nothing left');
    });
  },
);

t.test('an image larger than the spool read ring streams the same bytes', async (t) => {
  // The spool is read back into a ring of four 1 MiB buffers handed to the snapshot writers
  // without a copy: a 7 MiB image reuses each buffer, and a buffer refilled before its
  // writes settled would change the snapshot (three members write every piece).
  const r = new Random(seed + 1);
  const tracked = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  for (let i = 0; i < 7000; i++) {
    const value = Array.from({ length: 1000 }, () => String.fromCharCode(r.between(33, 126)));
    tracked.apply(
      {
        clientId: `c${i % 3}`,
        seq: Math.floor(i / 3) + 1,
        op: { t: 'put', key: `big-${i.toString().padStart(5, '0')}`, value: value.join('') },
      },
      { index: i + 1, term: 3, time: 1_700_000_000_000 + i },
    );
  }
  const repo = await Repository.init(path.join(base, 'repo-big'), { state: 'kv', clusterId: 'c' });
  const full = await fullBackup(repo, tracked);
  const target = { kind: 'backup', id: full.id } as const;
  const memDir = path.join(base, 'big-in-memory');
  await restoreDataDirs(repo, target, {
    ...common,
    dest: { dir: memDir, node: 'a' },
    stream: false,
  });
  const want = await snap(memDir);
  t.ok(want.data && want.data.length > 7 * 1048576, `the image is ${want.data?.length} bytes`);
  const dir = path.join(base, 'big-streamed');
  const res = await restoreDataDirs(repo, target, { ...common, clusterDir: dir });
  t.equal(res.result.digest, full.stateDigest);
  for (const m of members) {
    t.ok(
      (await snap(path.join(dir, m))).data?.equals(want.data as Buffer),
      `member ${m}: same bytes`,
    );
  }
});

t.test('records the KV state cannot hold are refused, nothing left', async (t) => {
  const rev = Buffer.alloc(8);
  rev.writeBigUInt64BE(3n);
  const good = Buffer.from(encodeValue(['v', 1, 1, 1]));
  const cases: Array<[string, Array<[string, Uint8Array]>, string]> = [
    [
      'a value that is not a KV value',
      [
        [KV_REV_KEY, rev],
        ['ka', good],
        ['kb', Buffer.from(encodeValue('not a tuple'))],
      ],
      'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
    ],
    [
      'a value that is not msgpack',
      [
        ['ka', good],
        ['kb', Buffer.from([0xc1])],
      ],
      'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
    ],
    [
      'a reserved key of another state machine',
      [
        ['\u0000other/x', good],
        ['ka', good],
      ],
      'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
    ],
  ];
  for (const [name, records, code] of cases) {
    const repo = await Repository.init(path.join(base, `bad-${name.replace(/\W+/g, '-')}`), {
      state: 'kv',
      chunker: small,
      clusterId: 'c',
    });
    const d = new StateDigest();
    for (const [k, v] of records) d.add(k, v);
    const m = await repo.writeBackup({
      type: 'full',
      index: 5,
      term: 1,
      time: 0,
      clusterId: 'c',
      records,
      keyCount: records.length,
      stateDigest: d.hex(),
      now: 1,
    });
    const dir = path.join(base, 'bad-dest');
    await t.rejects(
      restoreDataDirs(repo, { kind: 'backup', id: m.id }, { ...common, dest: { dir, node: 'a' } }),
      { code },
      `${name}: refused`,
    );
    await t.rejects(readdir(dir), { code: 'ENOENT' }, `${name}: nothing left`);
  }
});
