/**
 * `synod node --join` as a process, for the outcomes a person sees at the terminal:
 *
 * - Nothing answers at the address: the node retries (one info line per retry) until
 *   `--join-timeout`, then exits 1 with one line saying what it last heard and what to do.
 * - A wrong secret cannot be fixed by waiting: it fails at once (no retry line) with the
 *   handshake line naming --secret-file, exit 1.
 * - A bad `--join-timeout`, `--join` or `--handoff-ms` value is a usage error (exit 2), checked
 *   in this process.
 *
 * The running node is in-process (startNode); each `synod node` is one short process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run as runNode } from '../../cli/commands/node.js';
import { silentLogger } from '../../lib/logger.js';
import { startNode } from '../../lib/node/synod-node.js';
import { captureStderr } from '../helpers/capture-stderr.js';
import { freePort, runSynod, SYNOD_CLI, TEST_SECRET, until } from '../helpers/node-processes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'synod-node-join-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const secretFile = path.join(dir, 'cluster.key');
writeFileSync(secretFile, `${TEST_SECRET}\n`);
const otherSecret = path.join(dir, 'other.key');
writeFileSync(otherSecret, 'another-secret-of-enough-length-456\n');

const joinArgs = async (id: string, join: string, extra: string[] = []) => [
  'node',
  '--id',
  id,
  '--listen',
  `127.0.0.1:${await freePort()}`,
  '--data',
  path.join(dir, id),
  '--join',
  join,
  ...extra,
];

/** The lines a node wrote (text log and the closing `synod:` line). */
const lines = (r: { out: string; err: string }) =>
  `${r.out}\n${r.err}`.split('\n').filter((l) => l.trim() !== '');

t.test('nothing answers: retries until --join-timeout, then one line and exit 1', async (t) => {
  const port = await freePort();
  const r = await runSynod(
    await joinArgs('d', `ws://127.0.0.1:${port}`, [
      '--secret-file',
      secretFile,
      '--join-timeout',
      '1500',
    ]),
    60_000,
  );
  t.equal(r.code, 1, 'exit 1');
  const all = lines(r);
  const retries = all.filter((l) => /^INFO \[d\] join attempt \d+ failed: /.test(l));
  t.ok(retries.length >= 2, `each retry is an info line (${retries.length})`);
  t.match(
    retries[0],
    new RegExp(
      `join attempt 1 failed: ws://127\\.0\\.0\\.1:${port}: nothing listens at ws://127\\.0\\.0\\.1:${port} \\(connection refused\\).*; retrying in \\d+ ms through ws://127\\.0\\.0\\.1:${port}`,
    ),
  );
  const last = all.at(-1) ?? '';
  t.match(
    last,
    /^synod: joining the cluster failed: gave up after \d+ attempts in [12] s \(bound 1500 ms\); last answer: ws:\/\/127\.0\.0\.1:\d+: nothing listens at .* — check that a majority of the cluster is up and has a leader \(synod status --cluster URL\), or allow longer with --join-timeout MS$/,
    'the closing line says what happened and what to do',
  );
  t.notMatch(`${r.out}${r.err}`, /\n\s+at /, 'no stack trace');
});

t.test('a wrong secret fails at once with the handshake line; a right one joins', async (t) => {
  const port = await freePort();
  const node = await startNode({
    id: 'a',
    listen: { host: '127.0.0.1', port },
    peers: [],
    dataDir: path.join(dir, 'a'),
    cluster: 'synod',
    secret: TEST_SECRET,
    logger: silentLogger,
    heartbeatMs: 20,
    electionMs: 100,
  });
  t.teardown(() => node.stop());
  await until('a leader', async () => ((await node.status()).role === 'leader' ? true : undefined));
  const wrong = await runSynod(
    await joinArgs('w', `ws://127.0.0.1:${port}`, ['--secret-file', otherSecret]),
    60_000,
  );
  t.equal(wrong.code, 1, 'exit 1');
  t.notMatch(wrong.out + wrong.err, /join attempt \d+ failed/, 'not retried');
  t.notMatch(
    wrong.out + wrong.err,
    /still retrying/,
    'no line promises a retry that will not come',
  );
  t.match(
    lines(wrong).at(-1),
    /^synod: joining the cluster failed: a \(ws:\/\/127\.0\.0\.1:\d+\/?\) refused this node's handshake: wrong cluster secret \(SYNOD_ERR_AUTH_FAILED: .*\) — check that --secret-file holds the same secret on every node/,
    'one line naming --secret-file',
  );
  t.notOk((await node.status()).learners.includes('w'), 'nothing was changed');

  // The control: the same command with the right secret joins, as a voter.
  const rightPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...SYNOD_CLI,
      'node',
      '--id',
      'r',
      '--listen',
      `127.0.0.1:${rightPort}`,
      '--data',
      path.join(dir, 'r'),
      '--join',
      `ws://127.0.0.1:${port}`,
      '--secret-file',
      secretFile,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => {
    output += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    output += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await until(
    'r to be a voter',
    async () => ((await node.status()).voters.includes('r') ? true : undefined),
    45_000,
  );
  t.pass('the right secret joins');
  await until('r to say it joined', () => (/r joined as a voter/.test(output) ? true : undefined));
  t.match(output, /INFO \[r\] r joined as a voter \(through a\)/, 'it says through which node');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'and stops cleanly on SIGTERM');
});

t.test('bad --join / --join-timeout values are usage errors', async (t) => {
  // In this process: they are refused before anything starts (the processes above show the
  // same lines reach a terminal).
  const nodeCommand = async (args: string[]): Promise<{ code: number; err: string }> => {
    const r = await captureStderr(() => runNode(args.slice(1)));
    return { code: r.value, err: r.err };
  };
  const bad = await nodeCommand(await joinArgs('x', 'ws://127.0.0.1:1', ['--join-timeout', '-5']));
  t.equal(bad.code, 2, 'exit 2');
  t.match(bad.err, /^synod: --join-timeout must be between 0 and 86400000 ms; got -5/m);
  const url = await nodeCommand(await joinArgs('x', 'http://127.0.0.1:1'));
  t.equal(url.code, 2, 'exit 2 for a URL that is not ws://');
  t.match(url.err, /--join: "http:\/\/127\.0\.0\.1:1" must be ws:\/\/host:port/);
  const handoff = await nodeCommand(
    await joinArgs('x', 'ws://127.0.0.1:1', ['--handoff-ms', 'soon']),
  );
  t.equal(handoff.code, 2, 'exit 2 for a --handoff-ms that is not a number');
  t.match(handoff.err, /--handoff-ms .*must be a number/);
});
