/**
 * FileLogStore recovery: a torn tail is truncated, corruption anywhere else is refused with
 * the file and offset, `repair: true` truncates after the last good record and says what it
 * dropped, interrupted compactions are completed, missing segments are detected.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { isStorageError, StorageError } from '../../lib/storage/errors.js';
import {
  encodeCompactPoint,
  FileLogStore,
  FRAME_OVERHEAD,
  SEGMENT_HEADER_BYTES,
  segmentName,
} from '../../lib/storage/file-log.js';
import type { LogEntry } from '../../lib/storage/types.js';

const root = t.testdir();
let seq = 0;
const freshDir = () => path.join(root, `d${seq++}`);

function entries(lo: number, hi: number, term = 1, size = 40): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = lo; i < hi; i++) {
    out.push({ index: i, term, type: 'normal', data: new Uint8Array(size).fill(i & 0xff) });
  }
  return out;
}

/** A log of `n` entries (40 data bytes each, 66 bytes a frame) in 512-byte segments. */
async function build(n: number): Promise<{ dir: string; segs: string[] }> {
  const dir = freshDir();
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  for (let i = 1; i <= n; i += 5) await log.append(entries(i, Math.min(n + 1, i + 5)));
  await log.close();
  const segs = (await fs.readdir(dir)).filter((f) => f.endsWith('.log')).sort();
  return { dir, segs };
}

async function openError(dir: string): Promise<StorageError> {
  try {
    const log = await FileLogStore.open(dir, { segmentBytes: 512 });
    await log.close();
  } catch (err) {
    if (err instanceof StorageError) return err;
    throw err;
  }
  throw new Error('open unexpectedly succeeded');
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, offset);
  b[0] = (b[0] as number) ^ 0x5a;
  await fh.write(b, 0, 1, offset);
  await fh.close();
}

t.test('segments roll at the configured size', async (t) => {
  const { segs } = await build(40);
  // 512-byte segments hold 8 frames of 66 bytes after the 20-byte header (the 8th crosses).
  t.ok(segs.length >= 4, `${segs.length} segments`);
  t.equal(segs[0], segmentName(1));
});

t.test('a torn final record is truncated and reported', async (t) => {
  const { dir, segs } = await build(20);
  const last = path.join(dir, segs[segs.length - 1] as string);
  const before = (await fs.stat(last)).size;
  // Half a frame: the length says 58 bytes of payload, only 20 follow.
  const partial = Buffer.alloc(28);
  partial.writeUInt32LE(58, 0);
  await fs.appendFile(last, partial);
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(log.lastIndex(), 20, 'every complete record kept');
  t.match(log.recovery.tornTail, { file: last, offset: before, droppedBytes: 28 });
  t.equal((await fs.stat(last)).size, before, 'file truncated back');
  await log.append(entries(21, 23));
  t.equal((await log.entries(19, 23)).length, 4);
  await log.close();
});

t.test('a final record with a bad checksum (full length, garbage) is a torn tail', async (t) => {
  const { dir, segs } = await build(20);
  const last = path.join(dir, segs[segs.length - 1] as string);
  const size = (await fs.stat(last)).size;
  await flipByte(last, size - 3);
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(log.lastIndex(), 19, 'the torn record 20 is dropped');
  t.equal(log.recovery.tornTail?.offset, size - FRAME_OVERHEAD - 40);
  t.equal(log.recovery.tornTail?.reason, 'checksum mismatch');
  await log.close();
});

t.test('a segment whose header never reached the disk is recreated', async (t) => {
  const { dir } = await build(10);
  const extra = path.join(dir, segmentName(11));
  await fs.rm(extra, { force: true });
  await fs.writeFile(extra, Buffer.from('SYNOD'));
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(log.lastIndex(), 10);
  await log.append(entries(11, 13));
  await log.close();
  const again = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(again.lastIndex(), 12);
  await again.close();
});

t.test('corruption in the middle of a segment is refused with file and offset', async (t) => {
  const { dir, segs } = await build(40);
  const victim = path.join(dir, segs[1] as string);
  // The third record of the second segment: header + 2 frames in.
  const offset = SEGMENT_HEADER_BYTES + 2 * (FRAME_OVERHEAD + 40);
  await flipByte(victim, offset + FRAME_OVERHEAD + 5);
  const err = await openError(dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.equal(err.file, victim);
  t.equal(err.offset, offset);
  t.match(err.message, victim);
  t.match(err.message, `offset ${offset}`);
  // Nothing was changed by the refused open.
  t.equal((await fs.readdir(dir)).filter((f) => f.endsWith('.log')).length, segs.length);
});

t.test('corruption in the last segment followed by good records is refused too', async (t) => {
  const { dir, segs } = await build(40);
  const last = path.join(dir, segs[segs.length - 1] as string);
  const offset = SEGMENT_HEADER_BYTES;
  await flipByte(last, offset + 12);
  const err = await openError(dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.equal(err.file, last);
  t.equal(err.offset, offset);
});

t.test('a record with a valid checksum but the wrong index is refused', async (t) => {
  const a = await build(10);
  const b = await build(10);
  // Splice segment 1 of log B in place of log A's second segment name: wrong base.
  const segA1 = path.join(a.dir, a.segs[1] as string);
  const fromB = await fs.readFile(path.join(b.dir, b.segs[0] as string));
  await fs.writeFile(segA1, fromB);
  const err = await openError(a.dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.equal(err.file, segA1);
  t.equal(err.offset, 0, 'its header names another base index');
});

t.test('repair: true truncates after the last good record and reports it', async (t) => {
  const { dir, segs } = await build(40);
  const victim = path.join(dir, segs[1] as string);
  const offset = SEGMENT_HEADER_BYTES + 2 * (FRAME_OVERHEAD + 40);
  await flipByte(victim, offset + FRAME_OVERHEAD + 5);
  const firstOfVictim = Number((segs[1] as string).slice(0, 20));
  const log = await FileLogStore.open(dir, { segmentBytes: 512, repair: true });
  const rep = log.recovery.repair;
  t.ok(rep, 'repair reported');
  t.equal(rep?.file, victim);
  t.equal(rep?.offset, offset);
  t.equal(rep?.lastIndexKept, firstOfVictim + 1);
  t.equal(rep?.droppedSegments.length, segs.length - 2);
  t.ok((rep?.droppedBytes ?? 0) > 0);
  t.equal(log.lastIndex(), firstOfVictim + 1);
  const all = await log.entries(1, log.lastIndex() + 1);
  t.equal(all.length, firstOfVictim + 1);
  await log.append(entries(firstOfVictim + 2, firstOfVictim + 4, 2));
  await log.close();
  const again = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(again.lastIndex(), firstOfVictim + 3);
  t.equal(again.recovery.repair, undefined);
  await again.close();
});

t.test('a missing middle segment is refused', async (t) => {
  const { dir, segs } = await build(40);
  await fs.rm(path.join(dir, segs[1] as string));
  const err = await openError(dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.equal(err.file, path.join(dir, segs[2] as string));
  t.match(err.message, /previous one ends at/);
});

t.test('a missing first segment (after the compaction point) is refused', async (t) => {
  const { dir, segs } = await build(40);
  await fs.rm(path.join(dir, segs[0] as string));
  const err = await openError(dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.match(err.message, /segments are missing/);
});

t.test('a damaged compaction record is refused', async (t) => {
  const { dir } = await build(10);
  await fs.writeFile(path.join(dir, 'COMPACT'), Buffer.from('garbage'));
  const err = await openError(dir);
  t.equal(err.code, 'SYNOD_ERR_LOG_CORRUPT');
  t.equal(err.file, path.join(dir, 'COMPACT'));
});

t.test('an interrupted prefix compaction is completed on open', async (t) => {
  const { dir, segs } = await build(40);
  // Crash after the compaction point was written, before segments were deleted.
  await fs.writeFile(path.join(dir, 'COMPACT'), encodeCompactPoint(25, 1));
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(log.firstIndex(), 26);
  t.equal(log.lastIndex(), 40);
  t.ok(log.recovery.removedSegments.length > 0, 'wholly compacted segments removed');
  const left = (await fs.readdir(dir)).filter((f) => f.endsWith('.log'));
  t.ok(left.length < segs.length);
  t.equal((await log.entries(26, 41)).length, 15);
  await log.close();
});

t.test('an interrupted discard-all compaction (term conflict) is completed on open', async (t) => {
  const { dir } = await build(40);
  await fs.writeFile(path.join(dir, 'COMPACT'), encodeCompactPoint(25, 7));
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(log.firstIndex(), 26);
  t.equal(log.lastIndex(), 25, 'entries after the conflicting entry 25 are gone');
  t.equal(log.term(25), 7);
  await log.append(entries(26, 28, 7));
  await log.close();
  const again = await FileLogStore.open(dir, { segmentBytes: 512 });
  t.equal(again.lastIndex(), 27);
  t.equal(again.term(26), 7);
  await again.close();
});

t.test('compaction deletes whole segments and survives restarts', async (t) => {
  const { dir, segs } = await build(60);
  const log = await FileLogStore.open(dir, { segmentBytes: 512 });
  await log.compact(30, 1);
  const left = (await fs.readdir(dir)).filter((f) => f.endsWith('.log')).sort();
  t.ok(left.length < segs.length, `${segs.length} → ${left.length} segments`);
  t.ok(Number((left[0] as string).slice(0, 20)) <= 31, 'the segment holding 31 is kept');
  await log.close();
  for (let round = 0; round < 3; round++) {
    const again = await FileLogStore.open(dir, { segmentBytes: 512 });
    t.equal(again.firstIndex(), 31);
    const got = await again.entries(31, 61);
    t.equal(got.length, 30);
    t.same(
      got.map((e) => e.data[0]),
      entries(31, 61).map((e) => e.data[0]),
    );
    await again.close();
  }
});

t.test('a record corrupted after open is reported by the read with file and offset', async (t) => {
  const { dir, segs } = await build(20);
  const log = await FileLogStore.open(dir, { segmentBytes: 512, cacheBytes: 0 });
  const victim = path.join(dir, segs[0] as string);
  await flipByte(victim, SEGMENT_HEADER_BYTES + FRAME_OVERHEAD + 3);
  try {
    await log.entries(1, 3);
    t.fail('read should fail');
  } catch (err) {
    t.ok(isStorageError(err, 'SYNOD_ERR_LOG_CORRUPT'));
    t.equal((err as StorageError).file, victim);
    t.equal((err as StorageError).offset, SEGMENT_HEADER_BYTES);
  }
  await log.close();
});

t.test(
  'a read in flight sees the log as of its call, across truncation and compaction',
  async (t) => {
    const { dir } = await build(60);
    const log = await FileLogStore.open(dir, { segmentBytes: 512, cacheBytes: 0 });
    const before = log.entries(1, 61);
    const trunc = log.truncateSuffix(20);
    const rewrite = log.append(entries(20, 25, 2, 10));
    const compact = log.compact(10, 1);
    const got = await before;
    t.equal(got.length, 60, 'the read planned before the truncation returns the old entries');
    t.same(
      got.map((e) => [e.index, e.term, e.data.length]),
      entries(1, 61).map((e) => [e.index, e.term, e.data.length]),
    );
    await Promise.all([trunc, rewrite, compact]);
    const after = await log.entries(11, 25);
    t.same(
      after.map((e) => [e.index, e.term]),
      [...entries(11, 20).map((e) => [e.index, 1]), ...entries(20, 25).map((e) => [e.index, 2])],
    );
    await log.close();
    const again = await FileLogStore.open(dir, { segmentBytes: 512 });
    t.equal(again.firstIndex(), 11);
    t.equal(again.lastIndex(), 24);
    t.equal(again.term(24), 2);
    await again.close();
  },
);
