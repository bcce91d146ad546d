/**
 * The LogStore contract, run against both implementations (file and memory): the same
 * inputs give the same results and the same error codes, and a reopen gives back exactly
 * what was acknowledged. A fast-check model test drives random operation sequences.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { isStorageError } from '../../lib/storage/errors.js';
import { FileLogStore } from '../../lib/storage/file-log.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';
import type { LogEntry, LogStore } from '../../lib/storage/types.js';

interface Impl {
  name: string;
  /** A fresh, empty backing store; returns an opener that reopens it (like a restart). */
  fresh(): Promise<() => Promise<LogStore>>;
}

const root = t.testdir();
let dirSeq = 0;
const impls: Impl[] = [
  {
    name: 'file',
    async fresh() {
      const dir = path.join(root, `log-${dirSeq++}`);
      return () => FileLogStore.open(dir, { segmentBytes: 512 });
    },
  },
  {
    name: 'memory',
    async fresh() {
      const disk = new MemoryDisk();
      return () => MemoryLogStore.open(disk);
    },
  },
];

function entry(index: number, term: number, text = `e${index}t${term}`): LogEntry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function range(lo: number, hi: number, term: number): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = lo; i < hi; i++) out.push(entry(i, term));
  return out;
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    if (typeof p === 'function') await p();
    else await p;
    return 'ok';
  } catch (err) {
    return isStorageError(err) ? err.code : `non-storage error: ${String(err)}`;
  }
}

function text(e: LogEntry): string {
  return new TextDecoder().decode(e.data);
}

for (const impl of impls) {
  t.test(`${impl.name}: basic append, read, term, reopen`, async (t) => {
    const open = await impl.fresh();
    let log = await open();
    t.equal(log.firstIndex(), 1);
    t.equal(log.lastIndex(), 0);
    t.equal(log.term(0), 0, 'term of the (empty) compaction point is 0');
    t.equal(log.term(1), undefined);
    await log.append(range(1, 40, 1));
    await log.append([{ index: 40, term: 2, type: 'config', data: new Uint8Array([1, 2, 3]) }]);
    t.equal(log.lastIndex(), 40);
    t.equal(log.term(39), 1);
    t.equal(log.term(40), 2);
    const all = await log.entries(1, 41);
    t.equal(all.length, 40);
    t.same(
      all.map((e) => e.index),
      range(1, 41, 0).map((e) => e.index),
    );
    t.equal(text(all[4] as LogEntry), 'e5t1');
    t.equal((all[39] as LogEntry).type, 'config');
    t.same([...(all[39] as LogEntry).data], [1, 2, 3]);
    await log.close();
    log = await open();
    t.equal(log.firstIndex(), 1);
    t.equal(log.lastIndex(), 40);
    t.equal(log.term(40), 2);
    const again = await log.entries(10, 12);
    t.same(again.map(text), ['e10t1', 'e11t1']);
    await log.close();
  });

  t.test(`${impl.name}: maxBytes limits a read but returns at least one entry`, async (t) => {
    const open = await impl.fresh();
    const log = await open();
    await log.append(range(1, 11, 1)); // each entry has 5 or 6 data bytes
    t.equal((await log.entries(1, 11, 0)).length, 1, 'at least one entry');
    t.equal((await log.entries(1, 11, 10)).length, 2, 'e1t1 + e2t1 = 8 bytes, a third exceeds 10');
    t.equal((await log.entries(1, 11)).length, 10);
    t.same(await log.entries(5, 5), []);
    await log.close();
  });

  t.test(`${impl.name}: conflicting append truncates the suffix`, async (t) => {
    const open = await impl.fresh();
    let log = await open();
    await log.append(range(1, 30, 1));
    await log.append(range(20, 25, 2));
    t.equal(log.lastIndex(), 24);
    t.equal(log.term(19), 1);
    t.equal(log.term(20), 2);
    await log.close();
    log = await open();
    t.equal(log.lastIndex(), 24);
    t.same((await log.entries(18, 25)).map(text), [
      'e18t1',
      'e19t1',
      'e20t2',
      'e21t2',
      'e22t2',
      'e23t2',
      'e24t2',
    ]);
    await log.truncateSuffix(10);
    t.equal(log.lastIndex(), 9);
    await log.truncateSuffix(50); // nothing to remove
    t.equal(log.lastIndex(), 9);
    await log.append(range(10, 12, 3));
    await log.close();
    log = await open();
    t.equal(log.lastIndex(), 11);
    t.equal(log.term(10), 3);
    t.equal(log.term(9), 1);
    await log.close();
  });

  t.test(`${impl.name}: compaction keeps reads above the snapshot index`, async (t) => {
    const open = await impl.fresh();
    let log = await open();
    await log.append(range(1, 101, 1));
    await log.compact(60, 1);
    t.equal(log.firstIndex(), 61);
    t.equal(log.lastIndex(), 100);
    t.equal(log.term(60), 1);
    t.equal(log.term(59), undefined);
    t.equal(await codeOf(log.entries(55, 70)), 'SYNOD_ERR_LOG_COMPACTED');
    t.same((await log.entries(61, 63)).map(text), ['e61t1', 'e62t1']);
    await log.close();
    log = await open();
    t.equal(log.firstIndex(), 61, 'compaction point survives a restart');
    t.equal(log.lastIndex(), 100);
    t.equal(log.term(60), 1);
    t.same((await log.entries(99, 101)).map(text), ['e99t1', 'e100t1']);
    await log.compact(30, 1); // older point: no-op
    t.equal(log.firstIndex(), 61);
    await log.append(range(101, 103, 2));
    await log.close();
    log = await open();
    t.equal(log.lastIndex(), 102);
    t.same((await log.entries(61, 62)).map(text), ['e61t1']);
    await log.close();
  });

  t.test(`${impl.name}: compaction beyond the log or with another term discards it`, async (t) => {
    const open = await impl.fresh();
    let log = await open();
    await log.append(range(1, 21, 1));
    await log.compact(50, 3);
    t.equal(log.firstIndex(), 51);
    t.equal(log.lastIndex(), 50);
    t.equal(log.term(50), 3);
    await log.append(range(51, 53, 3));
    await log.close();
    log = await open();
    t.equal(log.firstIndex(), 51);
    t.equal(log.lastIndex(), 52);
    await log.compact(52, 4); // entry 52 has term 3: the log conflicts with the snapshot
    t.equal(log.lastIndex(), 52);
    t.equal(log.firstIndex(), 53);
    t.equal(log.term(52), 4);
    await log.close();
    log = await open();
    t.equal(log.firstIndex(), 53);
    t.equal(log.term(52), 4);
    await log.close();
  });

  t.test(`${impl.name}: bad inputs are rejected with clear codes and change nothing`, async (t) => {
    const open = await impl.fresh();
    const log = await open();
    await log.append(range(1, 11, 2));
    await log.compact(3, 2);
    const cases: [string, () => Promise<unknown>, string][] = [
      [
        'non-consecutive batch',
        () => log.append([entry(11, 2), entry(13, 2)]),
        'SYNOD_ERR_LOG_NOT_CONSECUTIVE',
      ],
      ['gap after the last index', () => log.append([entry(12, 2)]), 'SYNOD_ERR_LOG_GAP'],
      ['append below the first index', () => log.append([entry(2, 2)]), 'SYNOD_ERR_LOG_COMPACTED'],
      [
        'append at the compaction point',
        () => log.append([entry(3, 2)]),
        'SYNOD_ERR_LOG_COMPACTED',
      ],
      ['index 0', () => log.append([entry(0, 2)]), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['fractional index', () => log.append([entry(1.5, 2)]), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['negative term', () => log.append([entry(11, -1)]), 'SYNOD_ERR_INVALID_ARGUMENT'],
      [
        'unknown type',
        () => log.append([{ ...entry(11, 2), type: 'bogus' as 'normal' }]),
        'SYNOD_ERR_INVALID_ARGUMENT',
      ],
      [
        'data not bytes',
        () => log.append([{ ...entry(11, 2), data: 'x' as unknown as Uint8Array }]),
        'SYNOD_ERR_INVALID_ARGUMENT',
      ],
      [
        'not an array',
        () => log.append('x' as unknown as LogEntry[]),
        'SYNOD_ERR_INVALID_ARGUMENT',
      ],
      ['read below first', () => log.entries(1, 5), 'SYNOD_ERR_LOG_COMPACTED'],
      ['read beyond last', () => log.entries(5, 12), 'SYNOD_ERR_LOG_OUT_OF_RANGE'],
      ['read hi < lo', () => log.entries(6, 5), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['read NaN', () => log.entries(Number.NaN, 5), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['negative maxBytes', () => log.entries(5, 6, -1), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['truncate into the snapshot', () => log.truncateSuffix(3), 'SYNOD_ERR_LOG_COMPACTED'],
      ['truncate from 0', () => log.truncateSuffix(0), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['compact to -1', () => log.compact(-1, 1), 'SYNOD_ERR_INVALID_ARGUMENT'],
      ['compact with a fractional term', () => log.compact(5, 0.5), 'SYNOD_ERR_INVALID_ARGUMENT'],
    ];
    for (const [what, fn, code] of cases) t.equal(await codeOf(fn), code, what);
    t.equal(log.firstIndex(), 4, 'nothing changed');
    t.equal(log.lastIndex(), 10);
    t.equal((await log.entries(4, 11)).length, 7);
    t.equal(await codeOf(log.append([])), 'ok', 'an empty batch is a no-op');
    await log.close();
    t.equal(await codeOf(log.append([entry(11, 2)])), 'SYNOD_ERR_STORE_CLOSED');
    t.equal(await codeOf(log.entries(4, 5)), 'SYNOD_ERR_STORE_CLOSED');
  });

  t.test(`${impl.name}: entries larger than maxEntryBytes are refused`, async (t) => {
    const disk = new MemoryDisk();
    const log =
      impl.name === 'file'
        ? await FileLogStore.open(path.join(root, `big-${dirSeq++}`), { maxEntryBytes: 100 })
        : await MemoryLogStore.open(disk, { maxEntryBytes: 100 });
    t.equal(
      await codeOf(log.append([{ index: 1, term: 1, type: 'normal', data: new Uint8Array(101) }])),
      'SYNOD_ERR_LOG_ENTRY_TOO_LARGE',
    );
    await log.append([{ index: 1, term: 1, type: 'normal', data: new Uint8Array(100) }]);
    t.equal(log.lastIndex(), 1);
    await log.close();
  });

  t.test(`${impl.name}: concurrent appends without awaiting each other`, async (t) => {
    const open = await impl.fresh();
    let log = await open();
    const ps: Promise<void>[] = [];
    for (let i = 1; i <= 300; i++) ps.push(log.append([entry(i, 1)]));
    t.equal(log.lastIndex(), 300, 'accepted writes are visible at once');
    const early = await log.entries(1, 301);
    t.equal(early.length, 300, 'and readable before they are durable');
    await Promise.all(ps);
    await log.close();
    log = await open();
    t.equal(log.lastIndex(), 300);
    await log.close();
  });

  t.test(`${impl.name}: model test (random operation sequences, reopen)`, async (t) => {
    const cmd = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          op: fc.constant('append' as const),
          n: fc.integer({ min: 1, max: 12 }),
          back: fc.integer({ min: 0, max: 6 }),
          term: fc.integer({ min: 0, max: 3 }),
          size: fc.integer({ min: 0, max: 200 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('truncate' as const),
          back: fc.integer({ min: 0, max: 10 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('compact' as const),
          back: fc.integer({ min: -3, max: 15 }),
          wrongTerm: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('read' as const),
          a: fc.nat(),
          b: fc.nat(),
          maxBytes: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }),
        }),
      },
    );
    const runs = Number(process.env.SYNOD_MODEL_RUNS ?? 25);
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 40 }), async (cmds) => {
        const open = await impl.fresh();
        let log = await open();
        // The model: compaction point + entries.
        let ci = 0;
        let ct = 0;
        let model: LogEntry[] = [];
        let term = 1;
        const last = () => ci + model.length;
        const check = async () => {
          if (log.firstIndex() !== ci + 1)
            throw new Error(`firstIndex ${log.firstIndex()} ≠ ${ci + 1}`);
          if (log.lastIndex() !== last())
            throw new Error(`lastIndex ${log.lastIndex()} ≠ ${last()}`);
          if (log.term(ci) !== ct) throw new Error(`term(${ci}) ${log.term(ci)} ≠ ${ct}`);
          const got = await log.entries(ci + 1, last() + 1);
          if (got.length !== model.length) throw new Error('length mismatch');
          for (let i = 0; i < got.length; i++) {
            const a = got[i] as LogEntry;
            const b = model[i] as LogEntry;
            if (a.index !== b.index || a.term !== b.term || a.type !== b.type) {
              throw new Error(`entry ${b.index} differs`);
            }
            if (Buffer.compare(Buffer.from(a.data), Buffer.from(b.data)) !== 0) {
              throw new Error(`entry ${b.index} data differs`);
            }
          }
        };
        try {
          for (const c of cmds) {
            if (c.op === 'append') {
              term += c.term === 0 ? 0 : 1;
              const from = Math.max(ci + 1, last() + 1 - c.back);
              const batch: LogEntry[] = [];
              for (let i = 0; i < c.n; i++) {
                const data = new Uint8Array(c.size).fill((from + i) & 0xff);
                batch.push({ index: from + i, term, type: i % 5 === 4 ? 'noop' : 'normal', data });
              }
              await log.append(batch);
              model = model.slice(0, from - ci - 1).concat(batch);
            } else if (c.op === 'truncate') {
              const from = Math.max(ci + 1, last() + 1 - c.back);
              await log.truncateSuffix(from);
              model = model.slice(0, from - ci - 1);
            } else if (c.op === 'compact') {
              const upTo = Math.max(0, last() - c.back);
              if (upTo < ci) continue;
              const held = upTo === ci ? ct : model[upTo - ci - 1]?.term;
              const cterm = c.wrongTerm ? 99 : (held ?? term);
              await log.compact(upTo, cterm);
              if (upTo === ci && cterm === ct) {
                // no-op
              } else if (upTo > ci && upTo <= last() && held === cterm) {
                model = model.slice(upTo - ci);
                ci = upTo;
                ct = cterm;
              } else {
                model = [];
                ci = upTo;
                ct = cterm;
              }
            } else if (c.op === 'reopen') {
              await log.close();
              log = await open();
            } else {
              if (model.length === 0) continue;
              const lo = ci + 1 + (c.a % model.length);
              const hi = lo + (c.b % (last() + 2 - lo));
              const got = await log.entries(lo, hi, c.maxBytes);
              const want = model.slice(lo - ci - 1, hi - ci - 1);
              if (hi > lo && got.length === 0) throw new Error('empty read');
              if (got.length > want.length) throw new Error('read too long');
              let bytes = 0;
              for (let i = 0; i < got.length; i++) {
                if ((got[i] as LogEntry).index !== (want[i] as LogEntry).index) {
                  throw new Error('read returned the wrong entry');
                }
                bytes += (got[i] as LogEntry).data.byteLength;
              }
              if (c.maxBytes !== undefined && got.length > 1 && bytes > c.maxBytes) {
                throw new Error('maxBytes exceeded');
              }
              if (c.maxBytes === undefined && got.length !== want.length) {
                throw new Error('short read');
              }
            }
            await check();
          }
          await log.close();
          log = await open();
          await check();
        } finally {
          await log.close();
        }
      }),
      { numRuns: runs, seed: Number(process.env.SYNOD_SEED ?? 4242) },
    );
    t.pass(`${runs} random sequences matched the model`);
  });
}

t.test('file: group commit shares one fdatasync between concurrent appends', async (t) => {
  const dir = path.join(root, 'gc');
  const log = await FileLogStore.open(dir);
  const before = log.syncCount;
  const ps: Promise<void>[] = [];
  for (let i = 1; i <= 200; i++) ps.push(log.append([entry(i, 1)]));
  await Promise.all(ps);
  t.ok(log.syncCount - before <= 2, `200 appends took ${log.syncCount - before} syncs`);
  await log.close();
  t.ok((await fs.readdir(dir)).length > 0);
});
