/**
 * HistoryRecorder: events in the Jepsen convention, times from the injected clock, sinks
 * (memory, callback, stream, file), misuse errors.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import {
  checkHistory,
  HistoryError,
  HistoryRecorder,
  parseJsonl,
} from '../../lib/history/index.js';

/** A clock the test moves by hand. */
function manualClock(start = 0) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

t.test('records invoke/ok/fail/info with clock times', async (t) => {
  const clock = manualClock(100);
  const rec = new HistoryRecorder({ clock });
  const w = rec.invoke(1, 'write', 'x', 5);
  clock.advance(2);
  w.ok();
  const r = rec.invoke(2, 'read', 'x');
  clock.advance(1.5);
  r.ok(5);
  const f = rec.invoke(3, 'write', 'x', 6);
  f.fail('not-leader');
  const i = rec.invoke(4, 'cas', 'x', [5, 7]);
  clock.advance(10);
  i.info('timeout');
  t.same(rec.events, [
    { process: 1, type: 'invoke', f: 'write', key: 'x', value: 5, time: 100 },
    { process: 1, type: 'ok', f: 'write', key: 'x', value: 5, time: 102 },
    { process: 2, type: 'invoke', f: 'read', key: 'x', time: 102 },
    { process: 2, type: 'ok', f: 'read', key: 'x', value: 5, time: 103.5 },
    { process: 3, type: 'invoke', f: 'write', key: 'x', value: 6, time: 103.5 },
    { process: 3, type: 'fail', f: 'write', key: 'x', time: 103.5, error: 'not-leader' },
    { process: 4, type: 'invoke', f: 'cas', key: 'x', value: [5, 7], time: 103.5 },
    { process: 4, type: 'info', f: 'cas', key: 'x', time: 113.5, error: 'timeout' },
  ]);
  t.equal(rec.size, 8);
  t.equal(rec.pending, 0);
  t.equal(w.done, true);
  t.equal(rec.check().result, 'linearizable');
  t.equal(
    checkHistory(parseJsonl(rec.toJsonl()).events).result,
    'linearizable',
    'JSONL round trip',
  );
});

t.test(
  'a read of an absent value is ok(null); ok() with no value repeats the invoke',
  async (t) => {
    const rec = new HistoryRecorder({ clock: manualClock() });
    rec.invoke(1, 'read', 'k').ok(null);
    rec.invoke(1, 'write', 'k', { a: [1] }).ok();
    const ev = rec.events;
    t.equal(ev[1]?.value, null);
    t.same(ev[3]?.value, { a: [1] });
  },
);

t.test('an operation never completed stays unknown', async (t) => {
  const clock = manualClock();
  const rec = new HistoryRecorder({ clock });
  rec.invoke(1, 'write', 'k', 1); // the client crashed
  clock.advance(1);
  const r = rec.invoke(2, 'read', 'k');
  clock.advance(1);
  r.ok(1);
  t.equal(rec.pending, 1);
  t.equal(rec.check().result, 'linearizable', 'the write may have happened');
  clock.advance(1);
  const r2 = rec.invoke(2, 'read', 'k');
  r2.ok(null);
  t.equal(rec.check().result, 'violation', 'but not been undone');
});

t.test('misuse: double completion, busy process, closed recorder', async (t) => {
  const rec = new HistoryRecorder({ clock: manualClock() });
  const op = rec.invoke(1, 'write', 'k', 1);
  t.throws(() => rec.invoke(1, 'read', 'k'), { code: 'SYNOD_ERR_HISTORY_INVALID' });
  op.ok();
  t.throws(() => op.ok(), { code: 'SYNOD_ERR_HISTORY_COMPLETED' });
  t.throws(() => op.info(), { code: 'SYNOD_ERR_HISTORY_COMPLETED' });
  t.throws(() => rec.invoke(1, ''), { code: 'SYNOD_ERR_HISTORY_INVALID' });
  t.throws(() => rec.invoke({} as unknown as number, 'read'), {
    code: 'SYNOD_ERR_HISTORY_INVALID',
  });
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  t.throws(() => rec.invoke(2, 'write', 'k', cyc), { code: 'SYNOD_ERR_HISTORY_INVALID' });
  await rec.close();
  t.throws(() => rec.invoke(3, 'read', 'k'), { code: 'SYNOD_ERR_HISTORY_CLOSED' });
  t.throws(() => new HistoryRecorder({} as never), HistoryError);
});

t.test('time never goes backwards even if the clock does', async (t) => {
  const clock = manualClock(50);
  const rec = new HistoryRecorder({ clock });
  rec.invoke(1, 'read').ok(null);
  clock.advance(-10);
  rec.invoke(1, 'read').ok(null);
  t.same(
    rec.events.map((e) => e.time),
    [50, 50, 50, 50],
  );
});

t.test('sinks: callback, stream, file; keep: false', async (t) => {
  const lines: string[] = [];
  const a = new HistoryRecorder({ clock: manualClock(), sink: (l) => lines.push(l), keep: false });
  a.invoke(1, 'write', 'k', 1).ok();
  t.equal(lines.length, 2);
  t.ok(lines.every((l) => l.endsWith('\n')));
  t.same(JSON.parse(lines[0] as string), {
    process: 1,
    type: 'invoke',
    f: 'write',
    key: 'k',
    value: 1,
    time: 0,
  });
  t.same(a.events, [], 'nothing kept');
  t.throws(() => a.check(), { code: 'SYNOD_ERR_HISTORY_INVALID' });

  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  const b = new HistoryRecorder({ clock: manualClock(), sink: stream });
  b.invoke('c1', 'read', 'k').ok(null);
  await b.close();
  t.equal(chunks.join('').trim().split('\n').length, 2);
  await b.close(); // idempotent

  const dir = mkdtempSync(path.join(tmpdir(), 'synod-history-'));
  const file = path.join(dir, 'h.jsonl');
  const c = HistoryRecorder.toFile(file, { clock: manualClock() });
  c.invoke(1, 'write', 'k', 1).ok();
  c.invoke(2, 'read', 'k');
  // Written synchronously: visible before close (survives a crash of the recorder).
  const before = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(before.length, 3);
  await c.close();
  const parsed = parseJsonl(readFileSync(file, 'utf8'), file);
  t.equal(parsed.events.length, 3);
  t.equal(checkHistory(parsed.events).result, 'linearizable');
  t.throws(
    () =>
      HistoryRecorder.toFile(path.join(dir, 'no', 'such', 'dir.jsonl'), { clock: manualClock() }),
    {
      code: 'SYNOD_ERR_HISTORY_INVALID',
    },
  );
});
