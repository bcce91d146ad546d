/**
 * `synod backup … --cluster` refusals, in process: nothing listening at the address, a
 * malformed --cluster, a repository of another state machine, a usage error. Each is one
 * line with a stable code (or the usage) and a non-zero exit code; nothing is written.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run as backup } from '../../cli/commands/backup.js';

async function capture(
  fn: () => Promise<number>,
): Promise<{ code: number; out: string; err: string }> {
  const log = console.log;
  const error = console.error;
  let out = '';
  let err = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  console.error = (...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  };
  try {
    return { code: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

t.test('live backup refusals', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-live-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await closedPort();
  const repo = path.join(dir, 'repo');
  let r = await capture(() =>
    backup(['full', '--cluster', `ws://127.0.0.1:${port}`, '--repo', repo]),
  );
  t.equal(r.code, 1, 'unreachable cluster: exit 1');
  t.match(r.err, /SYNOD_ERR_BACKUP_CLUSTER_UNREACHABLE: .*connection refused/);
  t.notOk(existsSync(repo), 'the repository it created for the failed backup is gone again');
  t.match(r.err, /removed the backup repository created for it/, 'and it says so');

  // A directory the user made beforehand keeps what it held; an existing repository is
  // never removed, even one without backups.
  const own = path.join(dir, 'own');
  await mkdir(own);
  await writeFile(path.join(own, 'notes.txt'), 'mine');
  r = await capture(() => backup(['incr', '--cluster', `ws://127.0.0.1:${port}`, '--repo', own]));
  t.equal(r.code, 1, 'unreachable cluster again');
  t.same(await readdir(own), ['notes.txt'], 'only the repository files were removed');
  const kept = path.join(dir, 'kept');
  t.equal((await capture(() => backup(['init', '--repo', kept]))).code, 0, 'init');
  r = await capture(() => backup(['full', '--cluster', `ws://127.0.0.1:${port}`, '--repo', kept]));
  t.equal(r.code, 1, 'unreachable cluster, repository made by init');
  t.ok(existsSync(path.join(kept, 'repo.json')), 'a repository it did not create is kept');

  r = await capture(() => backup(['full', '--cluster', 'not-a-url', '--repo', repo]));
  t.equal(r.code, 1);
  t.match(r.err, /SYNOD_ERR_BACKUP_INVALID_ARGUMENT: bad --cluster entry "not-a-url"/);

  const mapRepo = path.join(dir, 'map');
  r = await capture(() => backup(['init', '--repo', mapRepo, '--state', 'map']));
  t.equal(r.code, 0, r.err);
  r = await capture(() =>
    backup(['incr', '--cluster', `a=ws://127.0.0.1:${port}`, '--repo', mapRepo]),
  );
  t.equal(r.code, 1);
  t.match(r.err, /holds 'map' state, not a KV cluster's/);
  t.same(await readdir(path.join(mapRepo, 'backups')), [], 'nothing was written');

  r = await capture(() => backup(['init', '--repo', path.join(dir, 'x'), '--state', 'sql']));
  t.equal(r.code, 2, 'a bad --state is a usage error');
  r = await capture(() =>
    backup(['full', '--cluster', `ws://127.0.0.1:${port}`, '--listen', 'nope', '--repo', repo]),
  );
  t.not(r.code, 0, 'a bad --listen is refused');
});
