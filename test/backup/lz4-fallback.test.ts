/**
 * LZ4 is the default codec where its native module loads (lz4.ts); a repository written with
 * it must stay readable, and writable, on a machine without that module: the JavaScript block
 * decoder reads LZ4 chunks, and new chunks are stored with brotli 1 (recorded per chunk).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import {
  hideNativeLz4ForTests,
  Lz4FormatError,
  lz4,
  lz4Available,
  lz4DecodeBlock,
} from '../../actors/backup/lz4.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const WORKLOAD = { keySpace: 300, valueMin: 0, valueMax: 3000, pDelete: 0.1, pBatch: 0.1 };

/** Inputs that reach every path of the decoder: long literals and matches, overlaps, empty. */
function samples(): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(70_000, 9)];
  out.push(randomBytes(100_000)); // stored as literals only
  for (let i = 0; i < 60; i++) {
    const parts: Buffer[] = [];
    for (let j = 0; j < 1 + (i % 15); j++) {
      parts.push(randomBytes((i * 37 + j * 13) % 700));
      parts.push(Buffer.alloc((i * 11 + j * 101) % 1200, j));
      parts.push(Buffer.from(`{"user":${j},"name":"n${i}","tags":["a","bc"]}`.repeat(1 + (j % 7))));
      parts.push(Buffer.from('abcabcabcab'.repeat(j % 4)));
    }
    out.push(Buffer.concat(parts));
  }
  return out;
}

t.test('the JavaScript decoder reads what lz4-napi writes, byte for byte', async (t) => {
  t.ok(lz4Available(), 'the native module loads on this machine (the reference)');
  const native = lz4();
  for (const plain of samples()) {
    const z = native.compressSync(plain);
    const got = lz4DecodeBlock(z);
    if (!Buffer.from(got).equals(plain)) {
      t.fail(`differs for ${plain.length} bytes`);
      return;
    }
  }
  t.pass('every sample decodes exactly');
});

t.test('damaged LZ4 input is an Lz4FormatError or wrong bytes, never a crash', async (t) => {
  const native = lz4();
  const all = samples().filter((s) => s.length > 100);
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const plain = all[i % all.length] as Buffer;
    const z = Buffer.from(native.compressSync(plain));
    const p = 4 + ((i * 7919) % (z.length - 4));
    z[p] = (z[p] as number) ^ (1 << (i % 8));
    const input = i % 3 === 0 ? z.subarray(0, z.length - 1 - (i % 5)) : z;
    try {
      lz4DecodeBlock(input);
    } catch (err) {
      if (!(err instanceof Lz4FormatError)) {
        t.fail(`not an Lz4FormatError: ${(err as Error).message}`);
        return;
      }
      refused++;
    }
  }
  // (Input that still parses decodes to wrong bytes: the chunk's content address catches it.)
  t.ok(refused > 500, `${refused} of 2000 damaged inputs refused by the decoder itself`);
  t.throws(() => lz4DecodeBlock(Buffer.from([5, 0, 0, 0])), /truncated \(token\)/, 'truncated');
  t.throws(
    () => lz4DecodeBlock(Buffer.from([8, 0, 0, 0, 0x14, 0x61, 9, 0])),
    /match offset 9 at output 1/,
    'a match before the start of the output',
  );
});

async function chunkFlags(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = path.join(dir, 'chunks');
  for (const d of await readdir(root)) {
    for (const f of await readdir(path.join(root, d))) {
      out.set(f, (await readFile(path.join(root, d, f)))[5] as number);
    }
  }
  return out;
}

t.test(
  'an LZ4 repository on a machine without lz4-napi: restores, verifies, backs up',
  async (t) => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'synod-lz4-'));
    t.teardown(async () => {
      hideNativeLz4ForTests(false);
      await rm(base, { recursive: true, force: true });
    });
    const dir = path.join(base, 'repo');
    const repo = await Repository.init(dir, { clusterId: 'c' });
    t.equal(repo.config.compression.algo, 'lz4', 'the default here');
    const d = new RepoDriver(repo, 'c', 7, WORKLOAD);
    d.apply(400);
    const full = await d.backup('full');
    d.apply(100);
    const incr = await d.backup('incr');
    await d.flush();
    const before = await chunkFlags(dir);
    t.ok(
      [...before.values()].some((f) => f === 8),
      'some chunks are LZ4 (the others were stored raw)',
    );

    hideNativeLz4ForTests(true);
    t.notOk(lz4Available(), 'the module is hidden');
    const again = await Repository.open(dir);
    t.same((await verify(again)).problems, [], 'verify reads every LZ4 chunk');
    for (const m of [full, incr]) {
      const r = await restore(
        again,
        { kind: 'backup', id: m.id },
        { factory: () => new MapState() },
      );
      t.equal(r.digest, d.digests.get(m.index)?.digest, `${m.type} restores exactly`);
    }
    const streamed = await restoreDataDirs(
      again,
      { kind: 'backup', id: full.id },
      {
        members: ['n1'],
        clusterId: 'x',
        clusterName: 'x',
        now: 0,
        dest: { dir: path.join(base, 'dd') },
      },
    );
    t.equal(streamed.result.digest, d.digests.get(full.index)?.digest, 'the full streams');

    // Writing: new chunks fall back to brotli 1, and everything still restores.
    d.repo = again;
    d.apply(150);
    const full2 = await d.backup('full');
    const added = [...(await chunkFlags(dir))].filter(([id]) => !before.has(id));
    t.ok(added.length > 0, `${added.length} new chunks`);
    t.ok(
      added.every(([, f]) => f === 4 || f === 0),
      `new chunks are brotli or raw (flags ${[...new Set(added.map(([, f]) => f))].join(',')})`,
    );
    const r2 = await restore(
      again,
      { kind: 'backup', id: full2.id },
      { factory: () => new MapState() },
    );
    t.equal(r2.digest, d.digests.get(full2.index)?.digest, 'the mixed repository restores');

    hideNativeLz4ForTests(false);
    const back = await Repository.open(dir);
    const r3 = await restore(
      back,
      { kind: 'backup', id: full2.id },
      { factory: () => new MapState() },
    );
    t.equal(r3.digest, d.digests.get(full2.index)?.digest, 'and with the module back');
  },
);
