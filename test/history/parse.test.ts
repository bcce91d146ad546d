/**
 * Readers: JSON lines, Jepsen EDN maps, Jepsen log lines; format detection; errors name
 * file:line.
 */
import t from 'tap';
import { readAllEdn, readEdn } from '../../lib/history/edn.js';
import {
  checkHistory,
  detectFormat,
  HistoryError,
  parseEdnHistory,
  parseHistory,
  parseJepsenLog,
  parseJsonl,
} from '../../lib/history/index.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof HistoryError ? `${err.code} ${err.message}` : `other: ${String(err)}`;
  }
  return 'no error';
}

t.test('jsonl: one event a line, blank lines skipped, arrays accepted', async (t) => {
  const text = `{"process":1,"type":"invoke","f":"write","key":"a","value":1,"time":1}

{"process":1,"type":"ok","f":"write","key":"a","value":1,"time":2}
`;
  const p = parseJsonl(text, 'h.jsonl');
  t.equal(p.events.length, 2);
  t.same(p.lines, [1, 3]);
  t.equal(p.events[1]?.time, 2);
  const arr = parseJsonl(
    `[{"process":1,"type":"invoke","f":"read"},{"process":1,"type":"ok","f":"read","value":null}]`,
  );
  t.equal(arr.events.length, 2);
  t.equal(checkHistory(arr.events).result, 'linearizable');
});

t.test('jsonl errors name file:line', async (t) => {
  t.match(
    errorOf(() => parseJsonl('{"process":1,"type":"invoke","f":"read"}\n{oops}\n', 'h.jsonl')),
    /SYNOD_ERR_HISTORY_PARSE h\.jsonl:2: not valid JSON/,
  );
  t.match(
    errorOf(() => parseJsonl('\n\n{"process":1,"type":"begin","f":"read"}', 'h.jsonl')),
    /h\.jsonl:3: "type" must be invoke, ok, fail or info/,
  );
  t.match(
    errorOf(() => parseJsonl('[1,2]', 'x.json')),
    /x\.json:1: expected an object/,
  );
  t.match(
    errorOf(() => parseJsonl('[', 'x.json')),
    /x\.json:1: not valid JSON/,
  );
  t.match(
    errorOf(() => parseJsonl('{"process":null,"type":"ok","f":"read"}')),
    /"process"/,
  );
  t.match(
    errorOf(() => parseJsonl('{"process":1,"type":"ok","f":""}')),
    /"f" must be/,
  );
  t.match(
    errorOf(() => parseJsonl('{"process":1,"type":"ok","f":"read","time":"soon"}')),
    /"time" must be a finite number/,
  );
  // Pairing errors after parsing still name the line.
  const p = parseJsonl(
    '{"process":1,"type":"invoke","f":"read"}\n\n{"process":2,"type":"ok","f":"read"}',
    'h.jsonl',
  );
  t.match(
    errorOf(() => checkHistory(p.events, { file: 'h.jsonl', lines: p.lines })),
    /SYNOD_ERR_HISTORY_INVALID h\.jsonl:3: ok for process 2 that has no outstanding invoke/,
  );
});

t.test('edn reader', async (t) => {
  t.same(readEdn('{:a 1, :b [1 2 "x"], :c nil, :d true, :e :kw, "s" -2.5}'), {
    a: 1,
    b: [1, 2, 'x'],
    c: null,
    d: true,
    e: 'kw',
    s: -2.5,
  });
  t.same(readEdn('(1 #{2} 3N 1/2 \\a "q\\"\\n\\u0041")'), [1, [2], 3, 0.5, 'a', 'q"\nA']);
  t.same(readEdn('#inst "2020"'), { tag: 'inst', value: '2020' });
  t.same(readAllEdn('1 ; comment\n #_ 2 3'), [1, 3]);
  for (const bad of ['{:a', '[1 2', '"abc', '}', '{:a}', '1 2', '', '"\\x"', '1.2.3'])
    t.throws(() => readEdn(bad), `rejects ${JSON.stringify(bad)}`);
});

t.test('edn histories: Jepsen maps, nemesis skipped, :time used', async (t) => {
  const text = `{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
{:type :info, :f :start, :process :nemesis, :value nil}
{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "0", :value nil, :time 50}
{:process 1, :type :ok, :f :get, :key "0", :value "x 0 0 y", :time 60}
`;
  const p = parseEdnHistory(text, 'h.edn');
  t.equal(p.events.length, 4, 'the nemesis event is skipped');
  t.same(p.lines, [1, 3, 4, 5]);
  t.equal(p.events[2]?.time, 50);
  t.equal(checkHistory(p.events, { model: 'kv' }).result, 'linearizable');
  t.match(
    errorOf(() =>
      parseEdnHistory('{:process 0, :type :invoke, :f :get}\n{:process 0 :type', 'h.edn'),
    ),
    /SYNOD_ERR_HISTORY_PARSE h\.edn:2: not a valid EDN map/,
  );
  t.match(
    errorOf(() => parseEdnHistory('[1 2]', 'h.edn')),
    /h\.edn:1: expected an EDN map/,
  );
});

t.test('jepsen log lines', async (t) => {
  const log = [
    'INFO  jepsen.core - Running test',
    'INFO  jepsen.util - 0\t:invoke\t:write\t3',
    'INFO  jepsen.util - 1\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 0\t:ok\t:write\t3',
    'INFO  jepsen.util - 1\t:ok\t:read\t3',
    'INFO  jepsen.util - 2\t:invoke\t:cas\t[3 4]',
    'INFO  jepsen.util - 2\t:fail\t:cas\t[3 4]',
    'INFO  jepsen.util - 3\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 3\t:fail\t:read\t:timed-out',
    'INFO  jepsen.util - 4\t:invoke\t:write\t1',
    'INFO  jepsen.util - 4\t:info\t:write\t:timed-out',
    'INFO  jepsen.util - :nemesis\t:info\t:start\tnil',
  ].join('\n');
  const p = parseJepsenLog(log, 'etcd.log');
  t.equal(p.format, 'jepsen');
  t.equal(p.events.length, 10);
  t.same(p.lines, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  t.same(
    p.events[5],
    { process: 2, type: 'ok', f: 'cas', time: 7, value: false },
    'compare failed',
  );
  t.same(
    p.events[7],
    { process: 3, type: 'info', f: 'read', time: 9, error: 'timed-out' },
    'timed-out read: unknown',
  );
  t.same(p.events[9], { process: 4, type: 'info', f: 'write', time: 11, error: 'timed-out' });
  const v = checkHistory(p.events, { model: 'register' });
  // cas 3→4 "compare failed" while the register holds 3 (nothing else could change it).
  t.equal(v.result, 'violation');
  const weak = parseJepsenLog(log, 'etcd.log', 'not-applied');
  t.same(weak.events[5], { process: 2, type: 'fail', f: 'cas', time: 7 });
  t.equal(checkHistory(weak.events).result, 'linearizable', 'dropping the failed cas');
  t.match(
    errorOf(() => parseJepsenLog('INFO  jepsen.util - 0\t:invoke\t:write\t[1', 'x.log')),
    /SYNOD_ERR_HISTORY_PARSE x\.log:1: cannot read the value/,
  );
});

t.test('format detection', async (t) => {
  t.equal(detectFormat('', 'a.jsonl'), 'jsonl');
  t.equal(detectFormat('', 'a.json'), 'jsonl');
  t.equal(detectFormat('', 'a.edn'), 'edn');
  t.equal(detectFormat('\n{"process":1}'), 'jsonl');
  t.equal(detectFormat('[{"process":1}]'), 'jsonl');
  t.equal(detectFormat('{:process 1}'), 'edn');
  t.equal(detectFormat('INFO  jepsen.util - 0\t:invoke\t:read\tnil'), 'jepsen');
  t.equal(detectFormat('some banner\nINFO  jepsen.util - 0\t:invoke\t:read\tnil'), 'jepsen');
  t.match(
    errorOf(() => detectFormat('hello', 'x.txt')),
    /SYNOD_ERR_HISTORY_FORMAT x\.txt: cannot tell/,
  );
  const p = parseHistory('{:process 0, :type :invoke, :f :read}', {
    format: 'auto',
    file: 'x.txt',
  });
  t.equal(p.format, 'edn');
  t.equal(p.file, 'x.txt');
});
