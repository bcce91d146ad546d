/**
 * The benchmark helpers: the SVG writers produce well-formed SVG naming every series with its
 * percentiles; the profile summariser attributes self time from samples × time deltas; the
 * flag parser reads `--x=v`, `--x v` and bare flags and refuses bad numbers.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { boolFlag, flag, listFlag, numFlag } from '../../bench/lib/args.js';
import { summarizeProfile } from '../../bench/lib/profile.js';
import { barChartSvg, latencyHistogramSvg } from '../../bench/lib/svg.js';

function balanced(svg: string): boolean {
  // Every opened element is closed (self-closing or with a closing tag), in order.
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) {
      if (stack.pop() !== name) return false;
    } else stack.push(name as string);
  }
  return stack.length === 0;
}

t.test('latency histogram', async (t) => {
  const a = Float64Array.from({ length: 1000 }, (_, i) => 1 + i / 100).sort();
  const b = Float64Array.from({ length: 500 }, (_, i) => 20 + i).sort();
  const svg = latencyHistogramSvg({
    title: 'Latency <C=16> & more',
    series: [
      { name: 'Synod put', latenciesMs: a, color: '#1f77b4' },
      { name: 'etcd put', latenciesMs: b, color: '#d62728', dashed: true },
      { name: 'empty', latenciesMs: [], color: '#000' },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, '<title>Latency &lt;C=16&gt; &amp; more</title>', 'a title for accessibility');
  t.ok(balanced(svg), 'well-formed');
  t.match(svg, 'Latency &lt;C=16&gt; &amp; more', 'title escaped');
  t.match(svg, 'Synod put: n=1000, p50 5.99 ms, p99 10.89 ms');
  t.match(svg, 'etcd put: n=500, p50 269.00 ms');
  t.notMatch(svg, 'empty:', 'an empty series is left out');
  t.notMatch(svg, /NaN|Infinity/);
});

t.test('bar chart', async (t) => {
  const svg = barChartSvg({
    title: 'Throughput',
    unit: 'ops/s',
    groups: ['C=1', 'C=16'],
    series: [
      { name: 'Synod', color: '#00f', values: [100, 2500] },
      { name: 'etcd', color: '#f00', values: [200, Number.NaN] },
    ],
  });
  t.ok(balanced(svg));
  t.match(svg, '>2,500<');
  t.notMatch(svg, /NaN/);
});

t.test('profile summary', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'prof-'));
  const file = path.join(dir, 'x.cpuprofile');
  const frame = (id: number, functionName: string, url = '', lineNumber = 0) => ({
    id,
    callFrame: { functionName, url, lineNumber, scriptId: '0', columnNumber: 0 },
  });
  writeFileSync(
    file,
    JSON.stringify({
      nodes: [
        frame(1, '(root)'),
        frame(2, '(idle)'),
        frame(3, 'pack', 'file:///repo/node_modules/msgpackr/pack.js', 471),
        frame(4, 'handleReady', 'file:///repo/dist/actors/raft/raft-node.js', 432),
      ],
      startTime: 0,
      endTime: 100,
      samples: [2, 3, 3, 4, 2],
      timeDeltas: [0, 10, 30, 20, 20],
    }),
  );
  const s = summarizeProfile(file, '/repo', 10);
  // Self time of sample i is timeDeltas[i + 1] (the last sample takes its own delta).
  t.equal(s.totalMs, 0.1, '100 µs in all');
  t.equal(s.idlePct, 30);
  t.same(s.topFunctions[0], { name: 'pack', where: 'msgpackr/pack.js:472', selfPct: 50 });
  t.same(
    s.topFunctions.find((f) => f.name === 'handleReady')?.where,
    'dist/actors/raft/raft-node.js:433',
  );
  t.same(s.topFiles.find((f) => f.file === 'msgpackr/pack.js')?.selfPct, 50);
});

t.test('flags', async (t) => {
  const argv = ['--duration=2', '--levels', '1,16', '--fast', '--profile=false'];
  t.equal(flag(argv, 'duration'), '2');
  t.equal(numFlag(argv, 'duration', 10), 2);
  t.same(listFlag(argv, 'levels', [1]), [1, 16]);
  t.ok(boolFlag(argv, 'fast'));
  t.notOk(boolFlag(argv, 'profile'));
  t.equal(numFlag(argv, 'runs', 3), 3);
  t.throws(() => numFlag(['--runs=x'], 'runs', 1), /not a non-negative number/);
  t.throws(() => listFlag(['--levels=1,0'], 'levels', [1]), /positive integers/);
});
