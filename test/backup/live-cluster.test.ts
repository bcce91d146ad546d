/**
 * Backup and restore of a real cluster, end to end with processes: three `synod node`
 * processes on loopback; a client writes keys; `synod backup full --cluster ws://…` joins
 * as a learner, backs up and leaves while a writer keeps writing; more writes and deletes;
 * `synod backup incr --cluster …`; the learner is gone from the configuration afterwards.
 * Then `synod restore --cluster-dir` writes a whole new three-node cluster at the latest
 * backup, and `synod restore --dest --node` a one-node cluster at the full backup; new
 * `synod node` processes start on those directories and serve exactly the keys the source
 * cluster had at each point (every key compared, deleted keys absent).
 * Waits are bounded polls of observable state, never fixed sleeps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import {
  NodeProcesses,
  runSynod,
  TEST_SECRET as SECRET,
  until,
} from '../helpers/node-processes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'synod-live-backup-'));
/** Every cluster of this test has the same secret (TEST_SECRET); the first one's file. */
let secretFile = '';
const clusters: NodeProcesses[] = [];

/** Runs the CLI without blocking the event loop (a writer runs meanwhile). */
async function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runSynod(args, 240_000);
  return { code: r.code ?? -1, stdout: r.out, stderr: r.err };
}

async function status(cluster: string[]): Promise<NodeStatus[]> {
  const r = await synod([
    'status',
    '--cluster',
    cluster.join(','),
    '--secret-file',
    secretFile,
    '--json',
    '--timeout-ms',
    '1500',
  ]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { nodes: NodeStatus[] }).nodes.filter(
    (n) => n.role !== undefined,
  );
}

/** Starts `ids` as a cluster (peers of each other) on `dataDirs`; returns their specs. */
async function startCluster(ids: string[], dataDir: (id: string) => string): Promise<string[]> {
  const nodes = await NodeProcesses.create(ids, { dataDir });
  clusters.push(nodes);
  if (secretFile === '') secretFile = nodes.secretFile;
  nodes.startAll();
  const all = ids.map((id) => `${id}=${nodes.node(id).url}`);
  await until(
    `a leader among ${ids.join(',')}`,
    async () => {
      const s = await status(all);
      return s.length === ids.length && s.some((n) => n.role === 'leader') ? s : undefined;
    },
    90_000,
  );
  return all;
}

async function allKeys(client: RemoteKvClient): Promise<Record<string, string>> {
  for (let attempt = 0; ; attempt++) {
    const r = await client.range('', undefined, { timeoutMs: 5000 } as never);
    if (r.outcome === 'ok') return Object.fromEntries(r.value.kvs.map((kv) => [kv.key, kv.value]));
    if (attempt > 20) throw new Error(`range failed: ${JSON.stringify(r.error)}`);
  }
}

async function mustPut(client: RemoteKvClient, k: string, v: string): Promise<void> {
  const r = await client.put(k, v, { timeoutMs: 10_000 });
  if (r.outcome !== 'ok') throw new Error(`put ${k} failed: ${JSON.stringify(r.error)}`);
}

t.teardown(async () => {
  await Promise.all(clusters.map((c) => c.close()));
  rmSync(dir, { recursive: true, force: true });
});

t.test(
  'back up a live 3-process cluster as a learner and restore it into new clusters',
  async (t) => {
    const source = await startCluster(['a', 'b', 'c'], (id) => path.join(dir, 'src', id));
    const client = await connect(source, { secret: SECRET });
    t.teardown(() => client.disconnect());
    const expected: Record<string, string> = {};
    for (let i = 0; i < 60; i++) {
      const k = `key/${String(i).padStart(3, '0')}`;
      const v = `first-${i}`;
      await mustPut(client, k, v);
      expected[k] = v;
    }
    await mustPut(client, '\u0000odd key', 'with a NUL');
    expected['\u0000odd key'] = 'with a NUL';

    const repo = path.join(dir, 'repo');
    const bare = (source[0] as string).split('=')[1] as string;
    // A writer keeps writing while the full backup runs; every write must succeed.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await mustPut(client, `during/${written}`, `w${written}`);
        expected[`during/${written}`] = `w${written}`;
        written++;
      }
    })();
    const full = await synod([
      'backup',
      'full',
      '--cluster',
      bare,
      '--secret-file',
      secretFile,
      '--repo',
      repo,
      '--json',
    ]);
    writing = false;
    await writer;
    t.equal(full.code, 0, `synod backup full --cluster exits 0 (stderr: ${full.stderr})`);
    const fullRes = JSON.parse(full.stdout) as {
      id: string;
      type: string;
      index: number;
      committedAtRequest: number;
      keyCount: number;
    };
    t.equal(fullRes.type, 'full');
    t.ok(
      fullRes.index >= fullRes.committedAtRequest,
      `backup at index ${fullRes.index} holds everything committed when asked (${fullRes.committedAtRequest})`,
    );
    t.ok(written > 0, `${written} writes went on during the backup`);
    t.match(full.stderr, /joined the cluster as learner backup/);
    t.match(full.stderr, /left the cluster/);

    // The state at the full backup: read it from the cluster at exactly that index is not
    // possible afterwards, so compare the restore with the keys known to be written before
    // it and check the rest by revision below.
    const afterLeave = await until(
      'the learner to be removed',
      async () => {
        const l = (await status(source)).find((n) => n.role === 'leader');
        return l && !l.learners.includes('backup') && !l.voters.includes('backup') ? l : undefined;
      },
      90_000,
    );
    t.same(afterLeave.voters.sort(), ['a', 'b', 'c'], 'voters unchanged; learner gone');

    // Change the data: overwrite some keys, delete some, add some.
    for (let i = 0; i < 60; i += 3) {
      const k = `key/${String(i).padStart(3, '0')}`;
      if (i % 2 === 0) {
        const r = await client.delete(k, { timeoutMs: 10_000 });
        t.equal(r.outcome, 'ok');
        delete expected[k];
      } else {
        await mustPut(client, k, `second-${i}`);
        expected[k] = `second-${i}`;
      }
    }
    for (let i = 0; i < 10; i++) {
      await mustPut(client, `new/${i}`, `n${i}`);
      expected[`new/${i}`] = `n${i}`;
    }
    const sourceNow = await allKeys(client);
    t.same(sourceNow, expected, 'the source cluster holds what the test wrote');
    // A time after these changes were committed and before the next backup run (#10 B7).
    const betweenRuns = new Date().toISOString();

    const incr = await synod([
      'backup',
      'incr',
      '--cluster',
      source.join(','),
      '--secret-file',
      secretFile,
      '--repo',
      repo,
      '--json',
    ]);
    t.equal(incr.code, 0, `incr exits 0 (stderr: ${incr.stderr})`);
    const incrRes = JSON.parse(incr.stdout) as { type: string; parent: string; records: number };
    t.equal(incrRes.type, 'incr');
    t.equal(incrRes.parent, fullRes.id, 'the incr builds on the full');

    const list = await synod(['backup', 'list', '--repo', repo, '--json']);
    t.equal(list.code, 0);
    t.equal((JSON.parse(list.stdout) as { backups: unknown[] }).backups.length, 2);
    const verify = await synod(['backup', 'verify', '--repo', repo]);
    t.equal(verify.code, 0, verify.stdout);

    // The incr run caught up the changes above and stamped them with its own time: a restore
    // to a time between the two runs cannot know which of them the cluster had then, and
    // refuses (before format 3 it silently restored the full's state).
    const between = await synod([
      'restore',
      '--repo',
      repo,
      '--to',
      `time:${betweenRuns}`,
      '--dry-run',
    ]);
    t.equal(between.code, 1, `a time between two one-off runs is refused (${between.stdout})`);
    t.match(between.stderr, /SYNOD_ERR_BACKUP_TIME_AMBIGUOUS/);
    t.match(between.stderr, /archived by an agent catching up/);
    const earlier = await synod([
      'restore',
      '--repo',
      repo,
      '--to',
      `time:${betweenRuns}`,
      '--if-ambiguous',
      'earlier',
      '--dry-run',
      '--json',
    ]);
    t.equal(earlier.code, 0, earlier.stderr);
    t.ok(
      (JSON.parse(earlier.stdout) as { index: number }).index >= fullRes.index,
      'with --if-ambiguous earlier: the last index known committed by then',
    );
    t.match(earlier.stderr, /warning: .*ambiguous/);

    // synod status shows the repository's backups next to the cluster, and how far behind.
    const statusArgs = ['status', '--cluster', source.join(','), '--secret-file', secretFile];
    const withBackups = await synod([...statusArgs, '--backup-repo', repo, '--json']);
    t.equal(withBackups.code, 0, `status --backup-repo exits 0 (stderr: ${withBackups.stderr})`);
    const sb = (
      JSON.parse(withBackups.stdout) as {
        backups: {
          backups: number;
          latest: { type: string; index: number };
          latestByType: { full?: { id: string } };
          restorableTo: number;
          behindBy: number | null;
          damaged: unknown[];
        };
      }
    ).backups;
    t.equal(sb.backups, 2, 'status counts both backups');
    t.equal(sb.latest.type, 'incr', 'the newest is the incr');
    t.equal(sb.latestByType.full?.id, fullRes.id, 'the newest full is the one taken');
    t.ok(sb.restorableTo >= sb.latest.index, 'restorable at least to the newest backup');
    t.ok(sb.behindBy !== null && sb.behindBy >= 0, `behind the leader by ${sb.behindBy} entries`);
    t.same(sb.damaged, [], 'nothing damaged');
    const table = await synod([...statusArgs, '--backup-repo', repo]);
    t.match(table.stdout, /backups in .*: 2/, 'the table names the repository and the count');
    t.match(table.stdout, new RegExp(`newest full\\s+${fullRes.id}`), 'and the newest full');
    const noRepo = await synod([...statusArgs, '--backup-repo', path.join(dir, 'no-such-repo')]);
    t.equal(noRepo.code, 1, 'a missing repository is an error (exit 1)');
    t.match(noRepo.stdout, /leader/, 'the cluster table is still printed');
    t.match(
      noRepo.stderr,
      /^synod: backups: SYNOD_ERR_BACKUP/m,
      `one line: ${noRepo.stderr.trim()}`,
    );

    // Restore the latest state into a whole new 3-node cluster.
    const newDir = path.join(dir, 'restored');
    const rl = await synod([
      'restore',
      '--repo',
      repo,
      '--to',
      'latest',
      '--cluster-dir',
      newDir,
      '--members',
      'x,y,z',
      '--json',
    ]);
    t.equal(rl.code, 0, rl.stderr);
    const restored = await startCluster(['x', 'y', 'z'], (id) => path.join(newDir, id));
    const c2 = await connect(restored, { secret: SECRET });
    t.teardown(() => c2.disconnect());
    t.same(
      await allKeys(c2),
      expected,
      'the restored cluster serves every key of the latest backup',
    );
    const w = await c2.put('after-restore', 'yes', { timeoutMs: 10_000 });
    t.equal(w.outcome, 'ok', 'the restored cluster takes writes');

    // Restore the full backup into a one-node cluster and compare with the restore's own
    // key count (the state at the full's index is the keys written before + during it).
    const oneDir = path.join(dir, 'one');
    const r1 = await synod([
      'restore',
      '--repo',
      repo,
      '--to',
      fullRes.id,
      '--dest',
      oneDir,
      '--node',
      'solo',
      '--members',
      'solo',
      '--json',
    ]);
    t.equal(r1.code, 0, r1.stderr);
    const one = await startCluster(['solo'], () => oneDir);
    const c3 = await connect(one, { secret: SECRET });
    t.teardown(() => c3.disconnect());
    const atFull = await allKeys(c3);
    for (let i = 0; i < 60; i++) {
      const k = `key/${String(i).padStart(3, '0')}`;
      t.equal(atFull[k], `first-${i}`, `${k} has its value at the full backup`);
    }
    t.equal(atFull['\u0000odd key'], 'with a NUL');
    t.notOk(
      Object.keys(atFull).some((k) => k.startsWith('new/')),
      'no key written after it',
    );
    const during = Object.keys(atFull).filter((k) => k.startsWith('during/'));
    t.ok(
      during.every((k) => atFull[k] === expected[k]),
      `the ${during.length} writes made during the backup that it holds have their values`,
    );
    const n = during.length;
    t.ok(
      during.every((k) => Number(k.split('/')[1]) < n),
      'the writes during the backup it holds are a prefix of the writer’s (a consistent cut)',
    );
  },
);
