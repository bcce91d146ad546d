/**
 * The cluster-wide default read level of `synod node` (`--read-level`, `--max-lag-ms`,
 * `--max-lag-versions`; env SYNOD_READ_LEVEL, SYNOD_MAX_LAG_MS, SYNOD_MAX_LAG_VERSIONS; config
 * keys "read-level", "max-lag-ms", "max-lag-versions"):
 *
 * - parsing from each source, and every malformed value refused with
 *   SYNOD_ERR_KV_INVALID_READ_LEVEL naming where it came from (unit, no process);
 * - `synod node` with a bad level exits 2 with the code before it touches its data directory;
 * - three real `synod node` processes (Raft) over WebSockets, the default set by flag on one, by
 *   environment variable on another and by config file on the third: a remote client that
 *   names no level is served at `eventual` by each node, an explicit `strong` read at `strong`,
 *   `synod kv get` without `--consistency` too, and `kv status` reports the default; after n3
 *   restarts with another default it serves that one and `synod kv status` warns that the
 *   nodes disagree;
 * - three `synod node --protocol paxos` processes with a `bounded` default: served at bounded
 *   when the read names no level, at eventual when it names eventual.
 *
 * Waits are bounded polls (test/helpers/node-processes.ts `until`), never fixed sleeps.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { KvService } from '../../actors/kv/service.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import { CliError, parseArgs } from '../../cli/args.js';
import { readDefaultOf } from '../../cli/commands/node.js';
import type { KvClient } from '../../lib/kv-client/client.js';
import { connect } from '../../lib/kv-client/connect.js';
import { NodeProcesses, SYNOD_CLI, until } from '../helpers/node-processes.js';

const specs = {
  'read-level': { kind: 'string', description: '', default: 'strong' },
  'max-lag-ms': { kind: 'string', description: '' },
  'max-lag-versions': { kind: 'string', description: '' },
} as const;

function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const { options, sources } = parseArgs(argv, specs, env);
  return readDefaultOf(options, sources);
}

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError && err.code === 'SYNOD_ERR_KV_INVALID_READ_LEVEL')
      return err.message;
    throw err;
  }
  return 'accepted';
}

t.test('the default read level from flags, environment and config file', async (t) => {
  t.same(parse([]), { level: 'strong' }, 'default strong');
  t.same(parse(['--read-level', 'eventual']), { level: 'eventual' }, 'flag');
  t.same(parse([], { SYNOD_READ_LEVEL: 'session' }), { level: 'session' }, 'environment');
  t.same(
    parse(['--read-level', 'bounded', '--max-lag-ms', '250', '--max-lag-versions', '3']),
    { level: 'bounded', maxLagMs: 250, maxLagVersions: 3 },
    'bounded with both bounds',
  );
  t.same(
    parse([], { SYNOD_READ_LEVEL: 'bounded', SYNOD_MAX_LAG_VERSIONS: '0' }),
    { level: 'bounded', maxLagVersions: 0 },
    'bounded from the environment',
  );
  const dir = t.testdir({
    'node.json': JSON.stringify({ 'read-level': 'bounded', 'max-lag-ms': 100 }),
  });
  t.same(
    parse(['--config', path.join(dir, 'node.json')]),
    { level: 'bounded', maxLagMs: 100 },
    'config file keys (a JSON number for the bound)',
  );
  const dir2 = t.testdir({ 'eventual.json': JSON.stringify({ 'read-level': 'eventual' }) });
  const file = path.join(dir2, 'eventual.json');
  t.same(parse(['--config', file]), { level: 'eventual' }, 'config file');
  t.same(
    parse(['--config', file], { SYNOD_READ_LEVEL: 'prefix' }),
    { level: 'prefix' },
    'environment beats the config file',
  );
  t.same(
    parse(['--config', file, '--read-level', 'session'], { SYNOD_READ_LEVEL: 'prefix' }),
    { level: 'session' },
    'a flag beats both',
  );
});

t.test(
  'malformed default read levels are refused with SYNOD_ERR_KV_INVALID_READ_LEVEL',
  async (t) => {
    t.match(
      refused(() => parse(['--read-level', 'fast'])),
      /--read-level must be one of strong, bounded/,
    );
    t.match(
      refused(() => parse([], { SYNOD_READ_LEVEL: 'linearizable' })),
      /SYNOD_READ_LEVEL must be one of/,
      'the message names the environment variable',
    );
    t.match(
      refused(() => parse(['--read-level', 'bounded'])),
      /bounded needs --max-lag-ms/,
    );
    t.match(
      refused(() => parse(['--read-level', 'bounded', '--max-lag-ms', 'soon'])),
      /--max-lag-ms must be a number; got "soon"/,
    );
    t.match(
      refused(() => parse(['--read-level', 'bounded', '--max-lag-ms', '-5'])),
      /≥ 0/,
    );
    t.match(
      refused(() => parse(['--read-level', 'bounded', '--max-lag-versions', '1.5'])),
      /--max-lag-versions must be an integer/,
    );
    t.match(
      refused(() => parse(['--max-lag-ms', '100'])),
      /apply only to --read-level bounded \(got strong\)/,
      'a bound without bounded is refused, not ignored',
    );
    const dir = t.testdir({ 'bad.json': JSON.stringify({ 'read-level': 'bounded' }) });
    t.match(
      refused(() => parse(['--config', path.join(dir, 'bad.json')])),
      /config key "read-level" bounded needs/,
      'the message names the config key',
    );
    // The service refuses the same input when embedded without the CLI.
    const sm = new KvStateMachine();
    for (const bad of [
      { level: 'fast' },
      { level: 'bounded' },
      { level: 'eventual', maxLagMs: 5 },
      { level: 'bounded', maxLagMs: Number.NaN },
    ])
      t.throws(
        () => new KvService({ log: {} as never, sm, defaultRead: bad as never }),
        { code: 'SYNOD_ERR_KV_INVALID_READ_LEVEL' },
        `KvService refuses ${JSON.stringify(bad)}`,
      );
  },
);

t.test(
  'synod node with a bad --read-level exits 2 before touching its data directory',
  async (t) => {
    const dir = t.testdir({});
    const data = path.join(dir, 'data');
    const r = spawnSync(
      process.execPath,
      [...SYNOD_CLI, 'node', '--id', 'x', '--data', data, '--read-level', 'fastest'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    t.equal(r.status, 2, 'exit code 2');
    t.match(r.stderr, /SYNOD_ERR_KV_INVALID_READ_LEVEL: --read-level must be one of/);
    t.notOk(existsSync(data), 'no data directory was created');
  },
);

t.test('three processes: flag, environment and config file; remote reads', async (t) => {
  const procs = await NodeProcesses.create(['n1', 'n2', 'n3']);
  t.teardown(() => procs.close());
  const config = path.join(procs.dir, 'n3.json');
  writeFileSync(config, JSON.stringify({ 'read-level': 'eventual' }));
  procs.start('n1', ['--read-level', 'eventual', '--log-level', 'warn']);
  // The helper's processes inherit this process's environment.
  process.env.SYNOD_READ_LEVEL = 'eventual';
  try {
    procs.start('n2', ['--log-level', 'warn']);
  } finally {
    delete process.env.SYNOD_READ_LEVEL;
  }
  procs.start('n3', ['--config', config, '--log-level', 'warn']);
  const urls = [...procs.nodes.values()].map((n) => `${n.id}=${n.url}`);
  let kv: KvClient & { disconnect(): Promise<void> };
  kv = await until(
    'the cluster accepts a write',
    async () => {
      const c = await connect(urls, {
        secret: 'a-test-secret-of-enough-length-123',
        timeoutMs: 3000,
      });
      const w = await c.put('greeting', 'hello');
      if (w.outcome === 'ok') return c;
      await c.disconnect();
      return undefined;
    },
    90_000,
    500,
  );
  t.teardown(() => kv.disconnect());
  for (const id of ['n1', 'n2', 'n3']) {
    // A bounded poll: on a loaded machine one ask can outlast the client's 3 s timeout.
    const st = await until(`${id}'s status`, async () => {
      const s = await kv.status(id);
      return s.outcome === 'ok' ? s : undefined;
    });
    t.same(
      st.outcome === 'ok' && st.value.defaultRead,
      { level: 'eventual' },
      `${id} reports eventual`,
    );
    const r = await until(`${id} has applied the write`, async () => {
      const g = await kv.get('greeting', { node: id });
      return g.outcome === 'ok' && g.value.value === 'hello' ? g : undefined;
    });
    t.equal(r.value.level, 'eventual', `${id}: a read naming no level is served at eventual`);
    t.equal(r.servedBy, id, `${id}: served locally (eventual reads never leave the replica)`);
    const s = await kv.get('greeting', { node: id, level: 'strong' });
    t.equal(
      s.outcome === 'ok' && s.value.level,
      'strong',
      `${id}: an explicit strong read is strong`,
    );
  }
  const cli = spawnSync(
    process.execPath,
    [
      ...SYNOD_CLI,
      'kv',
      'get',
      'greeting',
      '--cluster',
      urls.join(','),
      '--secret-file',
      procs.secretFile,
      '--json',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.equal(cli.status, 0, `synod kv get exits 0 ${cli.stderr}`);
  const out = JSON.parse(cli.stdout) as { value: { value: string; level: string } };
  t.same(
    [out.value.value, out.value.level],
    ['hello', 'eventual'],
    'synod kv get without --consistency: the cluster default',
  );
  const status = () =>
    spawnSync(
      process.execPath,
      [
        ...SYNOD_CLI,
        'kv',
        'status',
        '--cluster',
        urls.join(','),
        '--secret-file',
        procs.secretFile,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
  const agree = status();
  t.notMatch(agree.stderr, /disagree/, 'synod kv status: no warning while the nodes agree');
  // n3 restarts with another default: it serves it, and status warns about the mismatch.
  await procs.kill('n3', 'SIGTERM');
  procs.start('n3', ['--read-level', 'prefix', '--log-level', 'warn']);
  const p3 = await until('n3 serves again', async () => {
    const g = await kv.get('greeting', { node: 'n3' });
    return g.outcome === 'ok' && g.servedBy === 'n3' ? g : undefined;
  });
  t.equal(p3.value.level, 'prefix', 'after a restart with --read-level prefix, n3 serves prefix');
  const disagree = status();
  t.match(
    disagree.stderr,
    /warning: the nodes disagree on the default read level .*n3: \{"level":"prefix"\}/,
    'synod kv status warns when the nodes disagree',
  );
});

t.test('three Multi-Paxos processes: the default applies there too', async (t) => {
  const procs = await NodeProcesses.create(['p1', 'p2', 'p3']);
  t.teardown(() => procs.close());
  procs.startAll(() => [
    '--protocol',
    'paxos',
    '--read-level',
    'bounded',
    '--max-lag-ms',
    '5000',
    '--log-level',
    'warn',
  ]);
  const urls = [...procs.nodes.values()].map((n) => `${n.id}=${n.url}`);
  const kv = await until(
    'the Multi-Paxos cluster accepts a write',
    async () => {
      const c = await connect(urls, {
        secret: 'a-test-secret-of-enough-length-123',
        timeoutMs: 3000,
      });
      const w = await c.put('greeting', 'hello');
      if (w.outcome === 'ok') return c;
      await c.disconnect();
      return undefined;
    },
    90_000,
    500,
  );
  t.teardown(() => kv.disconnect());
  for (const id of ['p1', 'p2', 'p3']) {
    // A bounded poll: on a loaded machine one ask can outlast the client's 3 s timeout.
    const st = await until(`${id}'s status`, async () => {
      const s = await kv.status(id);
      return s.outcome === 'ok' ? s : undefined;
    });
    t.same(
      st.outcome === 'ok' && st.value.defaultRead,
      { level: 'bounded', maxLagMs: 5000 },
      `${id} reports bounded(5000 ms)`,
    );
    const r = await until(`${id} serves the write`, async () => {
      const g = await kv.get('greeting', { node: id });
      return g.outcome === 'ok' && g.value.value === 'hello' ? g : undefined;
    });
    t.equal(r.value.level, 'bounded', `${id}: a read naming no level is served at bounded`);
    const e = await kv.get('greeting', { node: id, level: 'eventual' });
    t.equal(
      e.outcome === 'ok' && e.value.level,
      'eventual',
      `${id}: an explicit eventual read is eventual`,
    );
  }
});
