/**
 * The chaos harness writes each node's output to logs/<id>.log line by line, each line
 * stamped with the CLOCK_MONOTONIC time it was read (test/chaos/harness/cluster.ts): chunks
 * from the pipe are cut into whole lines first.
 */
import t from 'tap';
import { lineSplitter } from './harness/cluster.js';

t.test('chunks become whole lines', async (t) => {
  const lines: string[] = [];
  const s = lineSplitter((l) => lines.push(l));
  s.push(Buffer.from('INFO one\nINFO tw'));
  s.push(Buffer.from('o\n\nINFO three'));
  t.same(lines, ['INFO one', 'INFO two'], 'a line split across chunks is one line; empty ones go');
  s.end();
  t.same(
    lines,
    ['INFO one', 'INFO two', 'INFO three'],
    'the last line without a newline at the end',
  );
});

t.test('a character split across chunks is not broken', async (t) => {
  const lines: string[] = [];
  const s = lineSplitter((l) => lines.push(l));
  const bytes = Buffer.from('WARN 220 → 661 MB\n');
  const cut = bytes.indexOf(0x86); // inside the three bytes of →
  s.push(bytes.subarray(0, cut));
  s.push(bytes.subarray(cut));
  t.same(lines, ['WARN 220 → 661 MB']);
});
