/**
 * MemoryDisk crash semantics: unsynced writes are lost on crash, synced ones survive, a
 * torn crash keeps a prefix, stores opened before a crash are dead, syncs are shared.
 */
import t from 'tap';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { Random } from '../../lib/random.js';
import { isStorageError } from '../../lib/storage/errors.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';
import type { LogEntry } from '../../lib/storage/types.js';

/** A minimal manual clock: time moves only in `advance`. */
class ManualClock implements Clock {
  private t = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  wallNow(): number {
    return 1_700_000_000_000 + this.t;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => (timer.live = false) };
  }
  setInterval(): TimerHandle {
    throw new Error('not used');
  }
  schedule(fn: () => void): void {
    this.setTimer(0, fn);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.t = due.at;
      due.fn();
    }
    this.timers = this.timers.filter((x) => x.live);
    this.t = end;
  }
}

function e(index: number, term = 1): LogEntry {
  return { index, term, type: 'normal', data: new Uint8Array([index & 0xff]) };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

t.test(
  'without a clock, a write is durable after a microtask; a crash before loses it',
  async (t) => {
    const disk = new MemoryDisk();
    let log = await MemoryLogStore.open(disk);
    const p = log.append([e(1), e(2)]);
    t.equal(log.lastIndex(), 2, 'visible at once');
    t.equal(disk.unsynced, 1);
    const report = disk.crash();
    t.same(report, { lost: 1, kept: 0, torn: false });
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    await flush();
    t.notOk(settled, "the crashed write's promise never settles (its process is gone)");
    log = await MemoryLogStore.open(disk);
    t.equal(log.lastIndex(), 0, 'the unsynced append is lost');
    await log.append([e(1), e(2)]);
    disk.crash();
    log = await MemoryLogStore.open(disk);
    t.equal(log.lastIndex(), 2, 'the synced append survives');
    await log.close();
  },
);

t.test('with a clock, syncs take syncDelayMs and are shared by concurrent writes', async (t) => {
  const clock = new ManualClock();
  const disk = new MemoryDisk({ clock, syncDelayMs: 5 });
  let log = await MemoryLogStore.open(disk);
  let done = 0;
  for (let i = 1; i <= 10; i++) void log.append([e(i)]).then(() => done++);
  clock.advance(4);
  await flush();
  t.equal(done, 0, 'not durable before the sync');
  t.equal(disk.syncs, 0);
  clock.advance(1);
  await flush();
  t.equal(done, 10, 'all acknowledged by one sync');
  t.equal(disk.syncs, 1);
  void log.append([e(11)]);
  void log.truncateSuffix(5);
  clock.advance(3);
  disk.crash();
  log = await MemoryLogStore.open(disk);
  t.equal(log.lastIndex(), 10, 'unsynced append and truncation both lost');
  const p = log.truncateSuffix(5);
  clock.advance(5);
  await p;
  disk.crash();
  log = await MemoryLogStore.open(disk);
  t.equal(log.lastIndex(), 4, 'synced truncation survives');
});

t.test('a ranged sync delay draws from the seeded random', async (t) => {
  t.throws(() => new MemoryDisk({ syncDelayMs: { min: 1, max: 3 } }), {
    code: 'SYNOD_ERR_INVALID_ARGUMENT',
  });
  const clock = new ManualClock();
  const disk = new MemoryDisk({ clock, syncDelayMs: { min: 2, max: 4 }, random: new Random(1) });
  const log = await MemoryLogStore.open(disk);
  let done = false;
  void log.append([e(1)]).then(() => (done = true));
  clock.advance(1);
  await flush();
  t.notOk(done);
  clock.advance(3);
  await flush();
  t.ok(done);
});

t.test('a torn crash keeps a prefix of the unsynced writes, the last one torn', async (t) => {
  const seed = Number(process.env.SYNOD_SEED ?? 7);
  const random = new Random(seed);
  let sawTorn = false;
  let sawPartialBatch = false;
  let sawLoss = false;
  for (let round = 0; round < 200; round++) {
    const disk = new MemoryDisk();
    let log = await MemoryLogStore.open(disk);
    await log.append([e(1), e(2), e(3)]); // synced
    void log.append([e(4), e(5)]);
    void log.append([e(6), e(7), e(8), e(9)]);
    const rep = disk.crash({ tearLastUnsynced: true, random });
    sawTorn ||= rep.torn;
    log = await MemoryLogStore.open(disk);
    const last = log.lastIndex();
    t.ok(last >= 3, `seed ${seed} round ${round}: synced entries survive (last ${last})`);
    if (last < 9) sawLoss = true;
    if (last === 4 || (last > 5 && last < 9)) sawPartialBatch = true;
    const got = await log.entries(1, last + 1);
    t.same(
      got.map((x) => x.index),
      Array.from({ length: last }, (_, i) => i + 1),
      'what survives is a prefix',
    );
  }
  t.ok(sawTorn, 'some crash tore a write');
  t.ok(sawPartialBatch, 'some crash kept part of a batch');
  t.ok(sawLoss, 'some crash lost writes');
  t.throws(() => new MemoryDisk().crash({ tearLastUnsynced: true }), {
    code: 'SYNOD_ERR_INVALID_ARGUMENT',
  });
});

t.test('stores opened before a crash are dead; one store per name', async (t) => {
  const disk = new MemoryDisk();
  const log = await MemoryLogStore.open(disk);
  await t.rejects(MemoryLogStore.open(disk), { code: 'SYNOD_ERR_DATADIR_LOCKED' });
  const other = await MemoryLogStore.open(disk, { name: 'other' });
  await other.append([e(1)]);
  disk.crash();
  const codes: string[] = [];
  for (const op of [
    () => log.append([e(1)]),
    () => log.entries(1, 1),
    () => log.truncateSuffix(1),
    () => log.compact(0, 0),
  ]) {
    try {
      await op();
      codes.push('ok');
    } catch (err) {
      codes.push(isStorageError(err) ? err.code : 'other');
    }
  }
  t.same(codes, Array(4).fill('SYNOD_ERR_STORE_CLOSED'));
  await log.close(); // closing a dead store is harmless
  const again = await MemoryLogStore.open(disk);
  t.equal(again.lastIndex(), 0);
  const other2 = await MemoryLogStore.open(disk, { name: 'other' });
  t.equal(other2.lastIndex(), 1, 'logs on one disk are independent');
  await again.close();
  const third = await MemoryLogStore.open(disk);
  t.equal(third.lastIndex(), 0, 'reopen after close');
});

t.test('entries handed to append are copied: later mutation changes nothing', async (t) => {
  const disk = new MemoryDisk();
  const log = await MemoryLogStore.open(disk);
  const x = e(1);
  await log.append([x]);
  x.data[0] = 99;
  t.equal(((await log.entries(1, 2))[0] as LogEntry).data[0], 1);
});
