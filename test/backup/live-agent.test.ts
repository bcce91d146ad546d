// `synod backup agent`: the long-running backup agent joins a 3-process cluster as a learner
// and stays, takes the backups its schedule asks for while writes go on, keeps the log
// archive current, and on SIGTERM flushes the archive, leaves the configuration and exits 0.
// Waits are on the agent's own output lines and on `synod status`, each with a deadline.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { connect } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { NodeProcesses, SYNOD_CLI, TEST_SECRET, until } from '../helpers/node-processes.js';

const synodSync = (args: string[]) =>
  spawnSync(process.execPath, [...SYNOD_CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

t.test('synod backup agent: scheduled backups while writing, archive, clean leave', async (t) => {
  const nodes = await NodeProcesses.create(['a', 'b', 'c']);
  let agent: ChildProcess | undefined;
  t.teardown(async () => {
    agent?.kill('SIGKILL');
    await nodes.close();
  });
  nodes.startAll();
  const cluster = nodes.peerList();
  const status = (): NodeStatus[] => {
    const r = synodSync([
      'status',
      '--cluster',
      cluster,
      '--secret-file',
      nodes.secretFile,
      '--json',
    ]);
    if (r.status !== 0) return [];
    return (JSON.parse(r.stdout) as { nodes: NodeStatus[] }).nodes.filter(
      (n) => n.role !== undefined,
    );
  };
  await until('a leader', () => status().find((n) => n.role === 'leader'), 120_000);

  const repo = path.join(nodes.dir, 'repo');
  t.equal(synodSync(['backup', 'init', '--repo', repo]).status, 0, 'init');
  const sched = synodSync([
    'backup',
    'schedule',
    '--repo',
    repo,
    '--full',
    '@every 1d',
    '--incr',
    '@every 2s',
  ]);
  t.equal(sched.status, 0, `schedule: ${sched.stderr}`);

  const client = await connect(cluster.split(','), { secret: TEST_SECRET });
  t.teardown(() => client.disconnect());
  const put = async (k: string, v: string) => {
    const r = await client.put(k, v, { timeoutMs: 20_000 });
    t.equal(r.outcome, 'ok', `put ${k}`);
  };
  for (let i = 0; i < 20; i++) await put(`before/${i}`, `v${i}`);

  agent = spawn(
    process.execPath,
    [
      ...SYNOD_CLI,
      'backup',
      'agent',
      '--cluster',
      cluster,
      '--secret-file',
      nodes.secretFile,
      '--repo',
      repo,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  agent.stdout?.on('data', (d) => {
    out += d;
  });
  agent.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    agent?.on('exit', (code) => resolve(code)),
  );
  await until(
    'the agent to catch up',
    () => (/caught up at index \d+/.test(out) ? true : undefined),
    120_000,
  );
  t.match(out, /next scheduled: (incr|full) at /, 'it says when the next backup is due');
  const joined = await until('the agent to be a learner', () =>
    status().find((n) => n.role === 'leader' && n.learners.includes('backup')),
  );
  t.ok(joined.learners.includes('backup'), 'the leader lists learner "backup"');
  t.notOk(joined.voters.includes('backup'), 'never a voter');

  // Writes go on; the schedule (every 2 s) takes backups meanwhile.
  for (let i = 0; i < 20; i++) await put(`during/${i}`, `w${i}`);
  await until(
    'two scheduled backups',
    () => ((out.match(/backup \S+ written at index \d+/g) ?? []).length >= 2 ? true : undefined),
    120_000,
  );
  const lastCommit = (status().find((n) => n.role === 'leader') as NodeStatus).commitIndex;

  agent.kill('SIGTERM');
  t.equal(await exited, 0, `the agent exits 0 on SIGTERM:\n${out}`);
  t.match(out, /SIGTERM: flushing the log archive and leaving the cluster/);
  const stopped = /stopped: (\d+) backup\(s\) taken, log archived to index (\d+)/.exec(out);
  t.ok(stopped, 'it reports what it did');
  t.ok(Number(stopped?.[1]) >= 2, `${stopped?.[1]} backups taken`);
  t.ok(
    Number(stopped?.[2]) >= lastCommit - 1,
    `archive reaches the writes (${stopped?.[2]} vs commit ${lastCommit})`,
  );
  const after = await until('the learner to be gone', () =>
    status().find((n) => n.role === 'leader' && !n.learners.includes('backup')),
  );
  t.same([...after.voters].sort(), ['a', 'b', 'c'], 'voters unchanged');

  const list = JSON.parse(synodSync(['backup', 'list', '--repo', repo, '--json']).stdout) as {
    backups: { type: string; index: number }[];
    archive: { to: number } | null;
  };
  t.ok(list.backups.length >= 2, `${list.backups.length} backups listed`);
  t.equal(list.backups[0]?.type, 'full', 'the first scheduled backup was promoted to a full');
  t.ok(
    (list.archive?.to ?? 0) >= Number(stopped?.[2]),
    'the archive on disk reaches the flushed index',
  );
  t.equal(synodSync(['backup', 'verify', '--repo', repo]).status, 0, 'verify passes');
});
