/**
 * Crash at every step of a backup and of an expire (a file system that fails at step k,
 * leaving a torn file at that step), and a SIGKILLed child process in the middle of
 * backups: no partial backup is ever listed, and every listed backup still restores to the
 * exact state of its index.
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import { FaultyRepoFs, InjectedCrash } from '../../actors/backup/faulty-fs.js';
import { nodeRepoFs } from '../../actors/backup/fs.js';
import type { Manifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { expire } from '../../actors/backup/retention.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const small = { avgSize: 4096, minSize: 1024, maxSize: 16384 };
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'synod-crash-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** Restores every listed backup; returns them and the ones whose digest is wrong. */
async function restoreAll(
  repo: Repository,
  digests: Map<number, { digest: string }>,
): Promise<{ listed: Manifest[]; wrong: string[] }> {
  const listed = await repo.list();
  const wrong: string[] = [];
  for (const m of listed) {
    const res = await restore(
      repo,
      { kind: 'backup', id: m.id },
      { factory: () => new MapState() },
    );
    if (res.digest !== digests.get(m.index)?.digest) wrong.push(m.id);
  }
  return { listed, wrong };
}

t.test(
  'a crash at every step of a backup leaves earlier backups intact and lists no partial one',
  async (t) => {
    const base = await tmp(t);
    const repo0 = await Repository.init(path.join(base, 'repo'), {
      chunker: small,
      clusterId: 'c',
    });
    const d = new RepoDriver(repo0, 'c', 11);
    d.forgetOnFull = false; // the driver is rolled back to the base repository after each try
    d.apply(300);
    await d.backup('full');
    d.apply(100);
    await d.backup('incr');
    await d.flush();
    d.apply(150);
    const before = (await repo0.list()).map((m) => m.id);
    for (const kind of ['full', 'diff', 'incr'] as const) {
      // Count the steps of this backup on a copy.
      const probeDir = path.join(base, `probe-${kind}`);
      await cp(path.join(base, 'repo'), probeDir, { recursive: true });
      const probeFs = new FaultyRepoFs(nodeRepoFs, Number.POSITIVE_INFINITY);
      d.repo = await Repository.open(probeDir, { fs: probeFs });
      const saved = { lastFull: d.lastFull, lastAny: d.lastAny };
      await d.backup(kind);
      Object.assign(d, saved);
      const steps = probeFs.steps;
      t.ok(steps > 5, `${kind}: ${steps} steps`);
      for (let k = 1; k <= steps; k++) {
        const dir = path.join(base, `${kind}-${k}`);
        await cp(path.join(base, 'repo'), dir, { recursive: true });
        d.repo = await Repository.open(dir, { fs: new FaultyRepoFs(nodeRepoFs, k) });
        const err = await d.backup(kind).catch((e: unknown) => e);
        t.ok(err instanceof InjectedCrash, `${kind} step ${k}/${steps} crashed`);
        Object.assign(d, saved);
        const after = await Repository.open(dir);
        const { listed, wrong } = await restoreAll(after, d.digests);
        t.same(wrong, [], `${kind} crash at ${k}: every listed backup restores`);
        const ids = listed.map((m) => m.id);
        // Either not listed at all, or (crash after the manifest's rename) complete.
        t.ok(
          ids.length === before.length || (ids.length === before.length + 1 && k >= steps - 1),
          `${kind} crash at ${k}: ${ids.length - before.length} new backup(s) listed`,
        );
        t.same(ids.slice(0, before.length), before);
        const v = await verify(after);
        t.same(v.problems, [], `${kind} crash at ${k}: verify finds no damage`);
        // The repository takes the next backup normally.
        d.repo = after;
        await d.backup(kind);
        Object.assign(d, saved);
        await rm(dir, { recursive: true, force: true });
      }
    }
  },
);

t.test('a crash at every step of an expire never loses a kept backup', async (t) => {
  const base = await tmp(t);
  const repo0 = await Repository.init(path.join(base, 'repo'), { chunker: small, clusterId: 'c' });
  const d = new RepoDriver(repo0, 'c', 12);
  const plan = ['full', 'incr', 'diff', 'full', 'incr', 'full', 'incr'] as const;
  for (const kind of plan) {
    d.apply(60);
    await d.flush();
    await d.backup(kind);
  }
  d.apply(50);
  await d.flush();
  const policy = { full: 1, diff: 0 };
  // What a completed expire keeps, and how many steps it takes.
  const probeDir = path.join(base, 'probe');
  await cp(path.join(base, 'repo'), probeDir, { recursive: true });
  const probeFs = new FaultyRepoFs(nodeRepoFs, Number.POSITIVE_INFINITY);
  const full = await expire(await Repository.open(probeDir, { fs: probeFs }), policy);
  const keep = full.kept;
  t.ok(
    full.expired.length >= 3 && full.chunksRemoved > 0,
    `a full expire removes ${full.expired.length} backups, ${full.chunksRemoved} chunks`,
  );
  const steps = probeFs.steps;
  const crashAt = async (k: number) => {
    const dir = path.join(base, `e-${k}`);
    await cp(path.join(base, 'repo'), dir, { recursive: true });
    const err = await expire(
      await Repository.open(dir, { fs: new FaultyRepoFs(nodeRepoFs, k) }),
      policy,
    ).catch((e: unknown) => e);
    t.ok(err instanceof InjectedCrash, `expire step ${k}/${steps} crashed`);
    const after = await Repository.open(dir);
    const { listed, wrong } = await restoreAll(after, d.digests);
    t.same(wrong, [], `expire crash at ${k}: every listed backup restores`);
    for (const id of keep)
      t.ok(
        listed.some((m) => m.id === id),
        `expire crash at ${k}: kept ${id} still listed`,
      );
    // PITR from the oldest kept backup to the archive's tip still works.
    const tip = await restore(after, { kind: 'latest' }, { factory: () => new MapState() });
    t.equal(tip.digest, d.digests.get(d.index)?.digest, `expire crash at ${k}: latest restores`);
    // The next holder of the lock finishes the expire.
    await expire(after, policy);
    t.same(
      (await after.list()).map((m) => m.id),
      keep,
      `expire crash at ${k}: finished by the next expire`,
    );
    const v = await verify(after);
    t.same(v.problems, [], `expire crash at ${k}: verify clean`);
    t.equal(v.orphanChunks, 0);
    await rm(dir, { recursive: true, force: true });
  };
  // Each step is tried on its own copy of the repository: four at a time (their file-system
  // waits overlap; the checks are the same as one after another).
  let next = 1;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next <= steps) await crashAt(next++);
    }),
  );
});

t.test('SIGKILL in the middle of backups: listed backups restore, nothing partial', async (t) => {
  const dir = await tmp(t);
  const repoDir = path.join(dir, 'repo');
  await Repository.init(repoDir, {
    chunker: { avgSize: 4096, minSize: 1024, maxSize: 16384 },
    clusterId: 'c',
  });
  const mod = (f: string) => pathToFileURL(path.join(root, 'actors/backup', f)).href;
  const script = `
    import { Repository } from '${mod('repository.ts')}';
    import { RepoDriver } from '${mod('driver.ts')}';
    const repo = await Repository.open(${JSON.stringify(repoDir)});
    const d = new RepoDriver(repo, 'c', 99, { keySpace: 20000, valueMin: 50, valueMax: 400, pDelete: 0.1, pBatch: 0.1 });
    const kinds = ['full', 'incr', 'diff', 'incr'];
    for (let i = 0; ; i++) {
      d.apply(2000);
      await d.flush();
      process.stdout.write('start ' + i + '\\n');
      const m = await d.backup(kinds[i % 4]);
      process.stdout.write('done ' + m.id + ' ' + m.index + ' ' + d.digests.get(m.index).digest + '\\n');
    }
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const done = new Map<string, string>();
  let killedDuring = -1;
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [what, a, , digest] = line.split(' ');
        if (what === 'done') done.set(a as string, digest as string);
        if (what === 'start' && Number(a) === 5 && killedDuring < 0) {
          killedDuring = 5;
          child.kill('SIGKILL'); // while backup 5 is being written
        }
        nl = buf.indexOf('\n');
      }
    });
    child.on('exit', () => resolve());
    child.on('error', reject);
  });
  t.equal(killedDuring, 5, 'killed during the 6th backup');
  const repo = await Repository.open(repoDir);
  const listed = await repo.list();
  t.ok(listed.length >= 5, `${listed.length} backups listed`);
  for (const m of listed) {
    const res = await restore(
      repo,
      { kind: 'backup', id: m.id },
      { factory: () => new MapState() },
    );
    if (done.has(m.id))
      t.equal(res.digest, done.get(m.id), `${m.id} restores to the digest the child reported`);
    else
      t.equal(
        res.digest,
        m.stateDigest,
        `${m.id} (completed as the child died) restores and checks`,
      );
  }
  for (const id of done.keys())
    t.ok(
      listed.some((m) => m.id === id),
      `${id} reported done and listed`,
    );
  const v = await verify(repo);
  t.same(v.problems, [], 'verify finds no damage after SIGKILL');
  await expire(repo, { full: 1 });
  t.equal((await verify(repo)).orphanChunks, 0, 'expire sweeps what the killed backup left');
});
