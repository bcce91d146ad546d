/**
 * `synod check`: exit codes 0 / 1 / 3 / 2, model guessing, --json, --html.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run, summary } from '../../cli/commands/check.js';
import { generateHistory } from '../../lib/history/generate.js';
import { Random } from '../../lib/random.js';

const dir = mkdtempSync(path.join(tmpdir(), 'synod-check-'));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}
const jsonl = (events: object[]) => `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;

/** Runs the command capturing what it prints. */
async function check(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    const code = await run(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const good = file(
  'good.jsonl',
  jsonl([
    { process: 1, type: 'invoke', f: 'write', key: 'x', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', key: 'x', value: 1, time: 1 },
    { process: 2, type: 'invoke', f: 'read', key: 'x', time: 2 },
    { process: 2, type: 'ok', f: 'read', key: 'x', value: 1, time: 3 },
  ]),
);
const bad = file(
  'bad.jsonl',
  jsonl([
    { process: 1, type: 'invoke', f: 'write', key: 'x', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', key: 'x', value: 1, time: 1 },
    { process: 1, type: 'invoke', f: 'write', key: 'x', value: 2, time: 2 },
    { process: 1, type: 'ok', f: 'write', key: 'x', value: 2, time: 3 },
    { process: 2, type: 'invoke', f: 'read', key: 'x', time: 4 },
    { process: 2, type: 'ok', f: 'read', key: 'x', value: 1, time: 5 },
    { process: 3, type: 'invoke', f: 'write', key: 'x', value: 9, time: 6 },
  ]),
);

t.test('summary and help', async (t) => {
  t.match(summary, /linearizability/);
  const h = await check('--help');
  t.equal(h.code, 0);
  t.match(h.out, /exit codes: 0 linearizable, 1 violation, 3 unknown/);
});

t.test('exit 0 when linearizable, 1 on a violation', async (t) => {
  const a = await check(good);
  t.equal(a.code, 0);
  t.match(a.out, /^linearizable: 2 operations on 1 key/);
  const b = await check(bad, '--model', 'register');
  t.equal(b.code, 1);
  t.match(b.out, /key "x" \(register\): not linearizable/);
  t.match(b.out, /process 2: read → 1 \[invoked 4, returned 5\] \(line 5\)/);
  const j = await check(bad, '--json');
  t.equal(j.code, 1);
  const parsed = JSON.parse(j.out) as { result: string; violations: Array<{ key: string }> };
  t.equal(parsed.result, 'violation');
  t.equal(parsed.violations[0]?.key, 'x');
});

t.test('exit 3 when the time budget runs out', async (t) => {
  const { events } = generateHistory({ random: new Random(3), clients: 10, operations: 3000 });
  const big = file('big.jsonl', jsonl(events));
  const r = await check(big, '--timeout', '0.000001');
  t.equal(r.code, 3);
  t.match(r.out, /^unknown \(time budget/);
  t.equal((await check(big)).code, 0, 'with the default budget it passes');
});

t.test('exit 2 on usage errors and bad input, naming file:line', async (t) => {
  const none = await check();
  t.equal(none.code, 2);
  t.match(none.err, /no history file given/);
  t.equal((await check(good, '--model', 'queue')).code, 2);
  t.equal((await check(good, '--timeout', '-1')).code, 2);
  t.equal((await check(good, '--timeout')).code, 2);
  t.equal((await check(good, '--format', 'xml')).code, 2);
  t.equal((await check(good, '--frob')).code, 2);
  t.equal((await check(good, good)).code, 2);
  const missing = await check(path.join(dir, 'missing.jsonl'));
  t.equal(missing.code, 2);
  t.match(missing.err, /SYNOD_ERR_HISTORY_PARSE: .*missing\.jsonl: cannot read history/);
  const broken = file(
    'broken.jsonl',
    '{"process":1,"type":"invoke","f":"read"}\n{"process":1,"type":"ok",\n',
  );
  const b = await check(broken);
  t.equal(b.code, 2);
  t.match(b.err, /broken\.jsonl:2: not valid JSON/);
  const unpaired = file('unpaired.jsonl', '{"process":1,"type":"ok","f":"read","value":1}\n');
  const u = await check(unpaired);
  t.equal(u.code, 2);
  t.match(u.err, /unpaired\.jsonl:1: ok for process 1 that has no outstanding invoke/);
  const mixed = file(
    'mixed.jsonl',
    jsonl([
      { process: 1, type: 'invoke', f: 'read' },
      { process: 1, type: 'ok', f: 'read', value: null },
      { process: 1, type: 'invoke', f: 'append', value: 'x' },
    ]),
  );
  const m = await check(mixed);
  t.equal(m.code, 2);
  t.match(m.err, /cannot tell the model/);
  const wrongModel = await check(mixed, '--model=kv');
  t.equal(wrongModel.code, 2);
  t.match(wrongModel.err, /SYNOD_ERR_MODEL_INPUT: .*mixed\.jsonl:1: .*no function "read"/);
});

t.test('model guessed from the operations; formats by extension or content', async (t) => {
  const kv = file(
    'kv.edn',
    '{:process 0, :type :invoke, :f :append, :key "a", :value "x"}\n{:process 0, :type :ok, :f :append, :key "a", :value "x"}\n{:process 1, :type :invoke, :f :get, :key "a", :value nil}\n{:process 1, :type :ok, :f :get, :key "a", :value "x"}\n',
  );
  const r = await check(kv);
  t.equal(r.code, 0);
  t.match(r.out, /model kv/);
  const noExt = file('history', readFileSync(good, 'utf8'));
  t.equal((await check(noExt)).code, 0);
  t.equal((await check(noExt, '--format', 'edn')).code, 2, 'forced wrong format fails to parse');
});

t.test('--html writes one self-contained report', async (t) => {
  const out = path.join(dir, 'report.html');
  const r = await check(bad, '--html', out);
  t.equal(r.code, 1);
  const html = readFileSync(out, 'utf8');
  t.match(html, /^<!doctype html>/);
  t.match(html, /<svg/);
  t.match(html, /process 2/);
  t.match(html, /CANNOT BE PLACED/);
  t.match(html, /never completed/);
  t.notMatch(html, /<script[^>]*src=|<link |@import|url\(/, 'no external resources');
  const ok = path.join(dir, 'ok.html');
  t.equal((await check(good, `--html=${ok}`)).code, 0);
  t.match(readFileSync(ok, 'utf8'), /linearized as #2/);
});
