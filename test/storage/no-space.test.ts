/**
 * A full disk (a small tmpfs; root only) is a refusal, not a failure: the log store and the
 * hard-state store reject the write with SYNOD_ERR_NO_SPACE, keep nothing of it (the
 * logical log goes back, a partial record is cut off the file), stay usable, and accept the
 * same write once space is freed; reopening finds exactly the acknowledged records.
 * A failed sync stays SYNOD_ERR_IO and final (not testable without fault injection).
 * Skips, saying why, when tmpfs cannot be mounted.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import t from 'tap';
import { isStorageError } from '../../lib/storage/errors.js';
import { FileHardStateStore } from '../../lib/storage/file-hard-state.js';
import { FileLogStore } from '../../lib/storage/file-log.js';
import type { LogEntry } from '../../lib/storage/types.js';

function mountReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux tmpfs mounts';
  if (process.getuid?.() !== 0) return 'needs root to mount tmpfs (CI runs as root)';
  const probe = mkdtempSync(path.join(tmpdir(), 'synod-nospace-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return `cannot mount tmpfs: ${(r.stderr || '').trim()}`;
  spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return undefined;
}

const unavailable = mountReason();

/** Mounts a tmpfs of `size` and returns its path (unmounted on teardown). */
function smallDisk(t: Test, size: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-nospace-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  t.teardown(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the file system holding `dir` up to its last byte; returns the filler's path. */
function fill(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = openSync(filler, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    // Fill the last partial block too.
    try {
      for (;;) writeSync(fd, chunk.subarray(0, 1));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    }
  } finally {
    closeSync(fd);
  }
  return filler;
}

function entries(lo: number, hi: number, term: number, size: number): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = lo; i < hi; i++) {
    out.push({ index: i, term, type: 'normal', data: new Uint8Array(size).fill(i & 0xff) });
  }
  return out;
}

async function refusal(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isStorageError(err) ? err.code : String(err);
  }
}

t.test(
  'log store: refused for lack of space, usable again once space returns',
  { skip: unavailable },
  async (t) => {
    const disk = smallDisk(t, '2m');
    const dir = path.join(disk, 'log');
    mkdirSync(dir);
    const log = await FileLogStore.open(dir, { segmentBytes: 256 * 1024 });
    await log.append(entries(1, 11, 1, 1000));
    t.equal(log.lastIndex(), 10, '10 entries acknowledged while there is space');
    const filler = fill(disk);
    // A batch much larger than what could still fit: refused whole.
    const big = entries(11, 61, 1, 4000);
    const code = await refusal(log.append(big));
    t.equal(code, 'SYNOD_ERR_NO_SPACE', 'the append is refused with SYNOD_ERR_NO_SPACE');
    t.equal(log.lastIndex(), 10, 'the refused entries are not in the log');
    // Appends issued while the refused one is queued are refused with it (they chain onto it).
    const a = log.append(entries(11, 31, 1, 4000));
    const b = log.append(entries(31, 32, 1, 10));
    t.equal(await refusal(a), 'SYNOD_ERR_NO_SPACE', 'a second large append is refused');
    t.equal(await refusal(b), 'SYNOD_ERR_NO_SPACE', 'the append queued behind it too');
    t.equal(log.lastIndex(), 10, 'still 10 entries');
    t.same(
      (await log.entries(1, 11)).map((e) => e.index),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      'the acknowledged entries read back',
    );
    rmSync(filler);
    await log.append(big);
    t.equal(log.lastIndex(), 60, 'the same append succeeds once space is freed');
    await log.close();
    const again = await FileLogStore.open(dir, { segmentBytes: 256 * 1024 });
    t.equal(again.recovery.tornTail, undefined, 'no torn tail left behind');
    t.equal(again.lastIndex(), 60, 'reopened: exactly the acknowledged entries');
    const back = await again.entries(1, 61);
    t.ok(
      back.every((e, i) => e.index === i + 1 && e.data[0] === ((i + 1) & 0xff)),
      'with their data',
    );
    await again.close();
  },
);

t.test(
  'log store: a refused batch that crossed into a new segment is rolled back too',
  { skip: unavailable },
  async (t) => {
    const disk = smallDisk(t, '1m');
    const dir = path.join(disk, 'log');
    mkdirSync(dir);
    // Small segments: the refused batch spans several.
    const log = await FileLogStore.open(dir, { segmentBytes: 8 * 1024 });
    await log.append(entries(1, 6, 1, 1000));
    const filler = fill(disk);
    t.equal(await refusal(log.append(entries(6, 200, 1, 3000))), 'SYNOD_ERR_NO_SPACE', 'refused');
    t.equal(log.lastIndex(), 5, 'rolled back to 5');
    rmSync(filler);
    await log.append(entries(6, 12, 2, 100));
    await log.close();
    const again = await FileLogStore.open(dir, { segmentBytes: 8 * 1024 });
    t.equal(again.lastIndex(), 11, 'reopened at 11');
    t.same(
      (await again.entries(1, 12)).map((e) => `${e.index}:${e.term}`),
      ['1:1', '2:1', '3:1', '4:1', '5:1', '6:2', '7:2', '8:2', '9:2', '10:2', '11:2'],
      'no entry of the refused batch survives, even where the later records are shorter',
    );
    await again.close();
  },
);

t.test(
  'hard state: a refused save keeps the old record and the store usable',
  { skip: unavailable },
  async (t) => {
    const disk = smallDisk(t, '1m');
    const hs = await FileHardStateStore.open<{ term: number; pad: string }>(disk);
    await hs.save({ term: 1, pad: '' });
    const filler = fill(disk);
    const code = await refusal(hs.save({ term: 2, pad: 'x'.repeat(200_000) }));
    t.equal(code, 'SYNOD_ERR_NO_SPACE', 'refused with SYNOD_ERR_NO_SPACE');
    rmSync(filler);
    await hs.save({ term: 3, pad: 'y' });
    await hs.close();
    const again = await FileHardStateStore.open<{ term: number; pad: string }>(disk);
    t.same(
      await again.load(),
      { term: 3, pad: 'y' },
      'the save after space returned is what reopens',
    );
    await again.close();
  },
);
