/**
 * SIGKILL at random points of backups and expires, in a real child process (the simulated
 * crash at every step is in crash.test.ts). Each round, on a fresh repository, a child loops
 * "apply, backup (full, incr, diff, incr), and after every full but the first an expire
 * keeping one full", and is killed a seeded random delay after it announces the expire or
 * backup the round aims at. Afterwards: no backup that was not finished is listed (every
 * listed backup restores to the digest the child's state had at its index), the backups of
 * the newest finished full are all listed, verify finds nothing but orphans (and the
 * interrupted-expire journal), a sweep removes those, and verify is then clean. Across the
 * rounds some kill must have landed mid-operation (a journal, temporaries or orphan chunks
 * left behind; more rounds run until two have), so the test is not vacuous.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { expire } from '../../actors/backup/retention.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';
import { Random } from '../../lib/random.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 1005);
const ROUNDS = Number(process.env.SYNOD_SIGKILL_ROUNDS ?? 6);
const MAX_ROUNDS = 2 * ROUNDS + 2;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const mod = (f: string) => pathToFileURL(path.join(root, 'actors/backup', f)).href;

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-sigkill-expire-'));
t.teardown(() => rm(base, { recursive: true, force: true }));

function childScript(repoDir: string, seed: number): string {
  return `
    import { Repository } from '${mod('repository.ts')}';
    import { RepoDriver } from '${mod('driver.ts')}';
    import { expire } from '${mod('retention.ts')}';
    const repo = await Repository.open(${JSON.stringify(repoDir)});
    const d = new RepoDriver(repo, 'c', ${seed}, { keySpace: 5000, valueMin: 50, valueMax: 400, pDelete: 0.1, pBatch: 0.1 });
    const kinds = ['full', 'incr', 'diff', 'incr'];
    const out = (...a) => process.stdout.write(a.join(' ') + '\\n');
    let expires = 0;
    for (let i = 0; i < 40; i++) {
      d.apply(1500);
      await d.flush();
      out('start', i, d.index, d.digests.get(d.index).digest);
      const m = await d.backup(kinds[i % 4]);
      out('done', i, m.id, m.type);
      if (i % 4 === 0 && i > 0) {
        out('expire', ++expires);
        const r = await expire(repo, { full: 1 });
        out('expired', expires, r.expired.join(',') || '-');
      }
    }
    out('end');
  `;
}

/** Files under `dir` whose name ends in `.tmp`. */
async function temporaries(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && e.name.endsWith('.tmp')) n++;
  return n;
}

const exists = (f: string) =>
  stat(f).then(
    () => true,
    () => false,
  );

const random = new Random(SEED);
let midOperation = 0;

// ROUNDS rounds, then more (up to MAX_ROUNDS) until two kills have landed mid-operation: where
// a kill lands depends on the machine's load, and a round that kills between two operations
// proves little.
let round = 0;
for (; round < ROUNDS || (midOperation < 2 && round < MAX_ROUNDS); round++) {
  const mode = round % 2 === 0 ? 'expire' : 'backup';
  // The expire after the 2nd or 3rd full (0-120 ms later), or the start of backup 2..9 (0-60 ms).
  const target = mode === 'expire' ? 1 + random.int(2) : 2 + random.int(8);
  const delay = random.int(mode === 'expire' ? 121 : 61);
  await t.test(
    `round ${round} (seed ${SEED}): SIGKILL ${delay} ms into ${mode} ${target}`,
    async (t) => {
      const repoDir = path.join(base, `r${round}`);
      await Repository.init(repoDir, {
        chunker: { avgSize: 2048, minSize: 512, maxSize: 8192 },
        clusterId: 'c',
      });
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', childScript(repoDir, SEED + round)],
        { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const digestAt = new Map<number, string>();
      const done: { id: string; type: string }[] = [];
      const expired = new Set<string>();
      let killed = false;
      let finishedTarget = false;
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (chunk: Buffer) => {
          buf += chunk.toString();
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const [what, a, b, c] = buf.slice(0, nl).split(' ');
            buf = buf.slice(nl + 1);
            if (what === 'start') digestAt.set(Number(b), c as string);
            if (what === 'done') done.push({ id: b as string, type: c as string });
            if (what === 'expired' && b !== '-')
              for (const id of (b as string).split(',')) expired.add(id);
            if (
              killed &&
              ((what === 'done' && mode === 'backup') || (what === 'expired' && mode === 'expire'))
            )
              finishedTarget = true;
            if (
              !killed &&
              what === (mode === 'expire' ? 'expire' : 'start') &&
              Number(a) === target
            ) {
              killed = true;
              setTimeout(() => child.kill('SIGKILL'), delay);
            }
          }
        });
        child.on('exit', () => resolve());
        child.on('error', reject);
      });
      t.ok(killed, 'the child reached the operation and was killed');
      t.equal(child.signalCode, 'SIGKILL', 'it died of the SIGKILL');

      // What the kill left, before anything recovers it.
      const journal = await exists(path.join(repoDir, 'expire.journal'));
      const tmps = await temporaries(repoDir);
      const repo = await Repository.open(repoDir);
      const before = await verify(repo);
      t.same(
        before.problems.filter((p) => p.kind !== 'expire-interrupted'),
        [],
        'verify finds no damage, only what an interrupted operation leaves',
      );
      t.equal(
        before.problems.some((p) => p.kind === 'expire-interrupted'),
        journal,
        'verify reports the journal exactly when one is there',
      );
      const left = journal || tmps > 0 || before.orphanChunks > 0;
      if (left) midOperation++;
      t.comment(
        `left behind: journal ${journal}, ${tmps} temporaries, ${before.orphanChunks} orphan chunks` +
          `${finishedTarget ? ' (the operation finished before the kill)' : ''}`,
      );

      const listed = await repo.list();
      t.ok(listed.length > 0, `${listed.length} backups listed`);
      for (const m of listed) t.notOk(expired.has(m.id), `${m.id} was not reported expired`);
      const lastFull = done.map((d) => d.type).lastIndexOf('full');
      for (const d of done.slice(lastFull))
        t.ok(
          listed.some((m) => m.id === d.id),
          `${d.id} (${d.type}, of the newest finished full) is listed`,
        );

      // The sweep: an expire that keeps everything finishes a journal and removes the orphans.
      const swept = await expire(repo, { full: 1000 });
      t.same(swept.expired, [], 'the sweep expires no backup');
      const after = await verify(repo);
      t.same(after.problems, [], 'verify is clean after the sweep');
      t.equal(after.orphanChunks, 0, 'no orphan chunk after the sweep');
      t.equal(await temporaries(repoDir), 0, 'no temporary after the sweep');
      t.same(
        (await repo.list()).map((m) => m.id),
        listed.map((m) => m.id),
        'the sweep keeps every listed backup',
      );
      for (const m of listed) {
        const res = await restore(
          repo,
          { kind: 'backup', id: m.id },
          { factory: () => new MapState() },
        );
        t.equal(
          res.digest,
          digestAt.get(m.index),
          `${m.id} (${m.type}) restores to the child's state at ${m.index}`,
        );
      }
      await rm(repoDir, { recursive: true, force: true });
    },
  );
}

t.test('some kills landed in the middle of an operation', async (t) => {
  t.ok(
    midOperation > 0,
    `${midOperation} of ${round} rounds left a journal, temporaries or orphans`,
  );
});
