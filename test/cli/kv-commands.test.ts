/**
 * `synod kv del`, `synod kv scan` and `synod kv watch` as a person runs them: real `synod`
 * processes against one real `synod node` (a one-node Raft cluster: these check the commands'
 * output, exit codes and argument handling, not replication, which test/cli/node-cluster and
 * test/kv/remote cover). Also `synod kv` with the wrong secret: one line saying what to fix,
 * exit 1, without waiting out the deadline (it printed two lines, the last blaming an ask
 * timeout, and called a write that was never sent "indeterminate").
 *
 * CI budget: one node for every case; the data each case reads is written beforehand by an
 * in-process client, and every command process of all cases starts at once (each `synod`
 * process costs a second or more of CPU to start). Waits are bounded polls.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { run as runKv } from '../../cli/commands/kv.js';
import { connect } from '../../lib/kv-client/connect.js';
import { captureStderr } from '../helpers/capture-stderr.js';
import {
  NodeProcesses,
  runSynod,
  SYNOD_CLI,
  TEST_SECRET,
  until,
} from '../helpers/node-processes.js';

const procs = await NodeProcesses.create(['a']);
t.teardown(() => procs.close());
procs.start('a');
const url = procs.node('a').url;
const cluster = ['--cluster', url, '--secret-file', procs.secretFile];
const wrongSecret = path.join(procs.dir, 'wrong.key');
writeFileSync(wrongSecret, 'another-secret-of-enough-length-456\n');

/**
 * More usage errors, in this process (they never reach a node; one of each command's runs as a
 * process above): `synod kv ARGS` → exit code and what it wrote to stderr.
 */
async function kvInProcess(...args: string[]): Promise<{ code: number; err: string[] }> {
  const r = await captureStderr(() => runKv([...args, ...cluster]));
  return { code: r.value, err: r.err.split('\n').filter((l) => l.trim() !== '') };
}

/** `synod kv ARGS --cluster … --secret-file …`, with stdout and stderr split into lines. */
async function kv(...args: string[]) {
  const r = await runSynod(['kv', ...args, ...cluster], 120_000);
  const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');
  return { code: r.code, out: lines(r.out), err: lines(r.err), raw: r };
}

const client = await until(
  'the node serves writes',
  async () => {
    const c = await connect([url], { secret: TEST_SECRET, timeoutMs: 2000 }).catch(() => undefined);
    if (!c) return undefined;
    if ((await c.put('ready', 'yes')).outcome === 'ok') return c;
    await c.disconnect();
    return undefined;
  },
  120_000,
  300,
);
t.teardown(() => client.disconnect());
const put = async (k: string, v: string): Promise<number> => {
  const r = await client.put(k, v);
  if (r.outcome !== 'ok') throw new Error(`put ${k}: ${r.error.code}`);
  return r.value.rev;
};
await put('d/1', 'one');
for (const [k, v] of [
  ['s/a', '1'],
  ['s/b', 'two words'],
  ['s/c', '3'],
  ['t/x', 'other'],
] as const)
  await put(k, v);
const wRev = await put('w/k', 'v1');

// Every command process at once (the live watch is started in its own test below).
const runs = {
  del: {
    gone: kv('del', 'd/1'),
    absent: kv('del', 'd/never-written'),
    json: kv('del', 'd/never-written-either', '--json'),
    two: kv('del', 'd/1', 'd/2'),
  },
  scan: {
    all: kv('scan', 's/'),
    limited: kv('scan', 's/', '--limit', '2'),
    range: kv('scan', '--start', 's/b', '--end', 's/c'),
    empty: kv('scan', 'nothing-here/'),
    json: kv('scan', 's/', '--json'),
    badLimit: kv('scan', 's/', '--limit', '-1'),
  },
  watch: {
    // From a revision: history and live events alike (the writes below race with it).
    key: kv('watch', 'w/k', '--from-rev', String(wRev), '--count', '3'),
    prefix: kv('watch', 'w/', '--prefix', '--from-rev', String(wRev), '--count', '4'),
    noKey: kv('watch'),
  },
  wrong: {
    put: runSynod(['kv', 'put', 'secret/k', 'v', '--cluster', url, '--secret-file', wrongSecret]),
    getJson: runSynod([
      'kv',
      'get',
      'secret/k',
      '--json',
      '--cluster',
      url,
      '--secret-file',
      wrongSecret,
    ]),
    watch: runSynod(['kv', 'watch', 'secret/k', '--cluster', url, '--secret-file', wrongSecret]),
    name: kv('get', 'secret/k', '--cluster-name', 'another-cluster'),
  },
};
const wRev2 = await put('w/k', 'v2');
const wDel = await client.delete('w/k');
await put('w/other', 'o');

t.test('kv del: a key that exists, a key that does not, JSON, bad arguments', async (t) => {
  const gone = await runs.del.gone;
  const absent = await runs.del.absent;
  const json = await runs.del.json;
  const none = await kvInProcess('del');
  const two = await runs.del.two;
  t.equal(gone.code, 0, 'del of an existing key: exit 0');
  t.match(gone.out, [/^deleted, revision \d+$/], 'del: "deleted, revision N"');
  t.same(gone.err, [], 'del: nothing on stderr');
  t.equal(absent.code, 0, 'del of a key that does not exist: exit 0 (as etcd: 0 deleted)');
  t.match(absent.out, [/^\(absent\), revision \d+$/], 'says the key was absent');
  t.equal(json.code, 0);
  t.match(
    JSON.parse(json.out[0] ?? '{}'),
    { outcome: 'ok', value: { t: 'del', deleted: false, prev: null, rev: Number }, servedBy: 'a' },
    'del --json: the full response',
  );
  t.equal(none.code, 2, 'del without a key: usage error, exit 2');
  t.match(none.err[0], /^synod kv: kv del needs KEY$/);
  t.equal(two.code, 2, 'del with two keys: exit 2 (the second is not silently ignored)');
  t.match(two.err[0], /^synod kv: kv del takes KEY; got 2: "d\/1" "d\/2"/);
  const after = await client.get('d/1');
  t.match(after, { outcome: 'ok', value: { value: null } }, 'the deleted key reads as absent');
});

t.test(
  'kv scan: lines, the summary, --limit, a range, an empty prefix, bad arguments',
  async (t) => {
    const all = await runs.scan.all;
    const limited = await runs.scan.limited;
    const range = await runs.scan.range;
    const empty = await runs.scan.empty;
    const json = await runs.scan.json;
    const badLimit = await runs.scan.badLimit;
    const extra = await kvInProcess('scan', 's/', 't/');
    t.equal(all.code, 0);
    t.match(
      all.out,
      ['s/a\t1', 's/b\ttwo words', 's/c\t3', /^\(3 of 3; revision \d+\)$/],
      'one "key<TAB>value" line per key in order, then "(N of M; revision R)"',
    );
    t.equal(all.out.length, 4, 'nothing else on stdout');
    t.equal(limited.code, 0);
    t.match(
      limited.out,
      ['s/a\t1', 's/b\ttwo words', /^\(2 of 3, more; revision \d+\)$/],
      '--limit 2: two lines and "more"',
    );
    t.match(
      range.out,
      ['s/b\ttwo words', /^\(1 of 1; revision \d+\)$/],
      '--start/--end: the range [start, end)',
    );
    t.equal(empty.code, 0, 'a prefix with no keys is not an error');
    t.match(empty.out, [/^\(0 of 0; revision \d+\)$/]);
    const j = JSON.parse(json.out[0] ?? '{}') as {
      value: { kvs: { key: string }[]; count: number };
    };
    t.same(
      j.value.kvs.map((x) => x.key),
      ['s/a', 's/b', 's/c'],
      '--json: the key-value records',
    );
    t.equal(j.value.count, 3);
    t.equal(badLimit.code, 2, '--limit -1: exit 2');
    t.match(badLimit.err[0], /--limit must be a number ≥ 0, got "-1"/);
    t.equal(extra.code, 2, 'two prefixes: exit 2');
    t.match(extra.err[0], /kv scan takes PREFIX \(optional\); got 2/);
  },
);

t.test('kv watch: history and live events, --prefix, bad arguments', async (t) => {
  const w = await runs.watch.key;
  t.equal(w.code, 0, 'watch --count 3 exits 0 after three events');
  const events = w.out.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(
    events,
    [
      { rev: wRev, type: 'put', key: 'w/k', value: 'v1', prev: null },
      { rev: wRev2, type: 'put', key: 'w/k', value: 'v2', prev: { value: 'v1' } },
      {
        rev: wDel.outcome === 'ok' ? wDel.value.rev : -1,
        type: 'delete',
        key: 'w/k',
        value: null,
        kv: null,
        prev: { value: 'v2' },
      },
    ],
    'one JSON object per line: revision, type, key, value, the previous record',
  );
  t.equal(events.length, 3, 'and nothing more');
  const p = await runs.watch.prefix;
  t.equal(p.code, 0);
  t.same(
    p.out.map((l) => (JSON.parse(l) as { key: string }).key),
    ['w/k', 'w/k', 'w/k', 'w/other'],
    '--prefix sees every key under the prefix',
  );
  const noKey = await runs.watch.noKey;
  const badCount = await kvInProcess('watch', 'w/k', '--count', '0');
  const badRev = await kvInProcess('watch', 'w/k', '--from-rev', 'soon');
  t.equal(noKey.code, 2, 'watch without a key: exit 2');
  t.match(noKey.err[0], /kv watch needs KEY/);
  t.equal(badCount.code, 2, '--count 0: exit 2');
  t.match(badCount.err[0], /--count must be a number ≥ 1/);
  t.equal(badRev.code, 2, '--from-rev soon: exit 2');
  t.match(badRev.err[0], /--from-rev must be a number/);
});

t.test('kv watch without --count runs until Ctrl-C, then exits 0', async (t) => {
  const child = spawn(process.execPath, [...SYNOD_CLI, 'kv', 'watch', 'w/live', ...cluster], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  // Writes until the watch has printed one (its subscription is up once it prints).
  let n = 0;
  await until(
    'the watch prints a live event',
    async () => {
      await put('w/live', `x${++n}`);
      return out.includes('"key":"w/live"') ? true : undefined;
    },
    60_000,
    300,
  );
  child.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C ends a watch with exit 0');
  t.match(JSON.parse(out.split('\n')[0] ?? '{}'), { type: 'put', key: 'w/live' });
});

t.test('the wrong secret: one line saying what to fix, exit 1, nothing sent', async (t) => {
  const put_ = await runs.wrong.put;
  const watch = await runs.wrong.watch;
  const getJson = await runs.wrong.getJson;
  for (const [name, r] of [
    ['put', put_],
    ['watch', watch],
  ] as const) {
    t.equal(r.code, 1, `${name}: exit 1`);
    const lines = r.err.split('\n').filter((l) => l.trim() !== '');
    t.equal(lines.length, 1, `${name}: one line on stderr (was two)`);
    t.match(
      lines[0],
      /^synod kv: failed \(not applied\): node a refused this client's handshake: wrong cluster secret \(SYNOD_ERR_AUTH_FAILED\) — pass the secret file the nodes were started with: --secret-file FILE \(or SYNOD_SECRET_FILE\).*; nothing was sent$/,
      `${name}: what is wrong and what to do`,
    );
    t.notMatch(r.err, /ASK_TIMEOUT|indeterminate/, `${name}: no timeout blamed`);
  }
  t.equal(getJson.code, 1);
  t.match(
    JSON.parse(getJson.out.trim() || '{}'),
    {
      outcome: 'failed',
      error: { code: 'SYNOD_ERR_AUTH_FAILED', message: /wrong cluster secret/ },
    },
    '--json: one failed response naming the code',
  );
  t.equal(getJson.err.trim(), '', '--json: nothing on stderr');
  const name = await runs.wrong.name;
  t.equal(name.code, 1, 'another --cluster-name: exit 1');
  t.equal(name.err.length, 1, 'one line');
  t.match(
    name.err[0],
    /SYNOD_ERR_WRONG_CLUSTER.*: pass the nodes' cluster name with --cluster-name \(or SYNOD_CLUSTER_NAME\)$/,
    'says which flag to fix',
  );
  t.match(
    await client.get('secret/k'),
    { outcome: 'ok', value: { value: null } },
    'nothing was written',
  );
});
