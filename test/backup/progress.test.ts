/**
 * The CLI's progress printer (progress.ts), with a fake stream and a fake clock: on a TTY one
 * line rewritten in place (bytes, chunks, rate, time left); otherwise plain log lines at most
 * one per interval; and in both modes the output ends with the final state of the operation,
 * even when its last update fell inside a throttled interval.
 */
import t from 'tap';
import { type Progress, progressPrinter } from '../../actors/backup/progress.js';

const MiB = 1048576;
const ESC = String.fromCharCode(27);
const CLEAR = `\r${ESC}[2K`;

function fake(isTTY: boolean) {
  let ms = 0;
  const writes: string[] = [];
  const out = { isTTY, write: (s: string) => writes.push(s) };
  return { out, writes, now: () => ms, advance: (d: number) => (ms += d) };
}

/** 100 MiB in 400 chunks at 10 MiB/s, one update every 50 ms: the last one at 100 %. */
function run(f: ReturnType<typeof fake>, everyMs = 2000): void {
  const p = progressPrinter(f.out, f.now, everyMs);
  for (let i = 1; i <= 200; i++) {
    f.advance(50);
    const u: Progress = {
      phase: 'backup',
      bytes: i * 0.5 * MiB,
      totalBytes: 100 * MiB,
      chunks: i * 2,
      totalChunks: 400,
    };
    p.update(u);
  }
  p.done();
}

t.test(
  'on a TTY, one line rewritten in place with bytes, chunks, rate and time left',
  async (t) => {
    const f = fake(true);
    run(f);
    const lines = f.writes.filter((w) => w !== '\n');
    t.ok(lines.length >= 50, `rewrites the line often (${lines.length})`);
    t.ok(lines.length <= 101, 'at most one rewrite per 100 ms');
    for (const w of lines) {
      t.ok(w.startsWith(CLEAR), 'each write returns and clears the line');
      t.notOk(w.slice(CLEAR.length).includes('\n'), 'and writes one line');
    }
    const mid = lines.find((w) => w.includes('50.5 MiB of 100.0 MiB'));
    t.ok(mid, 'a line at half way');
    t.match(mid, /202\/400 chunks/);
    t.match(mid, /10\.0 MiB\/s/, 'rate from the clock');
    t.match(mid, /5s left/, 'time left from the rate');
    t.equal(f.writes.at(-1), '\n', 'done() ends the line');
    const last = f.writes.at(-2) ?? '';
    t.match(last, /100\.0 MiB of 100\.0 MiB, 400\/400 chunks/, 'the last line shows 100 %');
    t.notMatch(last, /left/, 'no time left at the end');
  },
);

t.test('otherwise plain lines, at most one per interval, ending at 100 %', async (t) => {
  const f = fake(false);
  run(f, 2000);
  t.ok(f.writes.length >= 4, `prints lines (${f.writes.length})`);
  for (const w of f.writes) {
    t.ok(w.startsWith('backup: ') && w.endsWith('\n'), 'one plain line per write');
    t.notOk(/[\r\n]/.test(w.slice(0, -1)) || w.includes(ESC), 'no control characters');
  }
  // 10 s of updates at one line per 2 s, plus the final line.
  t.ok(f.writes.length <= 6, `at most one line per 2 s plus the final one (${f.writes.length})`);
  t.match(f.writes.at(-1), /100\.0 MiB of 100\.0 MiB, 400\/400 chunks/, 'ends at 100 %');
});

t.test('a final line is not repeated when the last update was already printed', async (t) => {
  const f = fake(false);
  const p = progressPrinter(f.out, f.now, 2000);
  f.advance(5000);
  p.update({ phase: 'restore', bytes: MiB, totalBytes: MiB, chunks: 1, totalChunks: 1 });
  p.done();
  p.done();
  t.equal(f.writes.length, 1, 'one line');
  t.match(f.writes[0], /^restore: 1\.0 MiB of 1\.0 MiB, 1\/1 chunks/);
});

t.test('done() with no update prints nothing', async (t) => {
  for (const tty of [true, false]) {
    const f = fake(tty);
    progressPrinter(f.out, f.now).done();
    t.same(f.writes, [], `isTTY ${tty}`);
  }
});

t.test('replay counts entries, without a rate', async (t) => {
  const f = fake(false);
  const p = progressPrinter(f.out, f.now, 1000);
  f.advance(2000);
  p.update({ phase: 'replay', bytes: 40, totalBytes: 100, chunks: 0 });
  p.done();
  t.match(f.writes[0], /^replay: 40 entries of 100, 0 chunks/);
  t.notMatch(f.writes[0], /\/s/);
});
