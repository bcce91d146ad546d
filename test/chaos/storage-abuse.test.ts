/**
 * Storage abuse on a real `synod node` process (root only: it mounts tmpfs file systems):
 * - a full disk: writes fail with a clear error while the disk is full, the Raft node keeps
 *   running and resumes by itself once space is freed (finding F3), nothing acknowledged is
 *   lost, and a restart afterwards reports no corruption and serves every acknowledged value;
 * - a read-only data directory (a read-only mount, since root ignores file modes): the node
 *   refuses to start with a clear one-line error and a non-zero exit code, both with existing
 *   data and with none (finding F2);
 * - a file system that turns read-only under a running node (ext4 errors=remount-ro after
 *   a file-system error): the Raft actor stops for good on EROFS, and the process exits
 *   non-zero with the cause instead of lingering (F2).
 * Skips, saying why, when not root or when tmpfs cannot be mounted.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../helpers/node-processes.js';
import { monotonicNow } from './harness/clock.js';
import { ChaosCluster, LoopbackNet } from './harness/cluster.js';

const SECRET = 'storage-abuse-secret-of-enough-length-1';

function mountReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux tmpfs mounts';
  if (process.getuid?.() !== 0) return 'needs root to mount tmpfs (CI runs as root)';
  const probe = mkdtempSync(path.join(tmpdir(), 'synod-mount-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return `cannot mount tmpfs: ${(r.stderr || '').trim()}`;
  spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unavailable = mountReason();

async function singleNode(dir: string, dataDir: string) {
  const secretFile = path.join(dir, 'cluster.key');
  writeFileSync(secretFile, `${SECRET}\n`);
  const cluster = new ChaosCluster({
    net: new LoopbackNet(['n1'], [await freePort()]),
    dir,
    secretFile,
    secret: SECRET,
    protocol: 'raft',
    dataDirs: { n1: dataDir },
  });
  return cluster;
}

async function waitLeader(c: ChaosCluster, ms = 90_000): Promise<void> {
  const end = monotonicNow() + ms;
  for (;;) {
    const p = c.procs.get('n1');
    if (p?.state === 'down') throw new Error(`n1 exited: ${p.tail.join(' | ')}`);
    const l = await c.leader();
    if (l) return;
    if (monotonicNow() > end) throw new Error('n1 did not become leader');
    await sleep(300);
  }
}

t.test(
  'a full disk: clear errors, nothing acknowledged lost, no corruption',
  { skip: unavailable },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'synod-full-disk-'));
    const mnt = path.join(dir, 'disk');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    t.equal(m.status, 0, `mounted a 24 MiB tmpfs at ${mnt}`);
    t.teardown(() => {
      spawnSync('umount', ['-l', mnt]);
    });
    const c = await singleNode(dir, path.join(mnt, 'n1'));
    t.teardown(() => c.killAllNow());
    c.start('n1');
    await waitLeader(c);
    const kv = await c.kvClient({ timeoutMs: 3000, attemptTimeoutMs: 1000 });
    const acked = new Map<string, string>();
    const value = (i: number) => `${i}.`.padEnd(1024, 'x');
    let i = 0;
    for (; i < 50; i++) {
      const r = await kv.put(`k${i}`, value(i));
      if (r.outcome === 'ok') acked.set(`k${i}`, value(i));
    }
    t.equal(acked.size, 50, 'writes succeed while there is space');
    // Fill the disk.
    const filler = path.join(mnt, 'filler');
    const fd = openSync(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024);
    let filled = 0;
    try {
      for (;;) filled += writeSync(fd, chunk);
    } catch (err) {
      t.equal(
        (err as NodeJS.ErrnoException).code,
        'ENOSPC',
        `disk filled (${filled} bytes of filler)`,
      );
    } finally {
      closeSync(fd);
    }
    const failures: string[] = [];
    let okWhileFull = 0;
    for (let n = 0; n < 40 && failures.length < 8; n++, i++) {
      const r = await kv.put(`k${i}`, value(i));
      if (r.outcome === 'ok') {
        acked.set(`k${i}`, value(i));
        okWhileFull++;
      } else failures.push(`${r.outcome}: ${r.error.code}: ${r.error.message}`);
    }
    t.comment(
      `while full: ${okWhileFull} ok (page-cache slack), ${failures.length} refused: ${failures.slice(0, 3).join(' / ')}`,
    );
    t.ok(failures.length > 0, 'writes fail once the disk is full');
    const logText = c.procs.get('n1')?.tail.join('\n') ?? '';
    t.match(logText, /ENOSPC|no space|SYNOD_ERR/i, 'the node logs a clear error naming the cause');
    t.ok(
      failures.some((f) => /SYNOD_ERR_STORAGE_FULL|no space|ENOSPC/i.test(f)),
      'a refused write says the storage is full',
    );
    const role = (await c.status('n1'))?.role;
    t.ok(
      role !== undefined,
      `the Raft node is still running while the disk is full (role ${role})`,
    );
    // Free the space: the node resumes by itself (finding F3), no restart.
    rmSync(filler);
    const resumeBy = monotonicNow() + 60_000;
    let resumed = false;
    for (let n = 0; monotonicNow() < resumeBy; n++) {
      const r = await kv.put(`resume${n}`, 'ok');
      if (r.outcome === 'ok') {
        acked.set(`resume${n}`, 'ok');
        resumed = true;
        break;
      }
      await sleep(200);
    }
    t.ok(resumed, 'writes succeed again once space is freed, without a restart');
    const readBack = await kv.get('k0', { level: 'strong' });
    t.equal(
      readBack.outcome === 'ok' ? readBack.value.value : readBack.outcome,
      value(0),
      'and strong reads are served',
    );
    // Restart the node: it must start (no corruption) and serve every ack.
    await kv.close();
    await c.kill('n1');
    c.start('n1');
    await waitLeader(c);
    const kv2 = await c.kvClient({ timeoutMs: 5000 });
    const missing: string[] = [];
    for (const [k, v] of acked) {
      const r = await kv2.get(k, { level: 'strong' });
      if (r.outcome !== 'ok' || r.value.value !== v)
        missing.push(
          `${k}: ${r.outcome === 'ok' ? String(r.value.value).slice(0, 12) : r.error.code}`,
        );
    }
    t.same(
      missing,
      [],
      `every acknowledged write (${acked.size}) survives the full disk and a restart`,
    );
    const after = await kv2.put('after', 'ok');
    t.equal(after.outcome, 'ok', 'writes work again once space is freed');
    await kv2.close();
    c.killAllNow();
    await c.closeProbe();
  },
);

t.test(
  'a read-only data directory: the node refuses to start, clearly',
  { skip: unavailable },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'synod-ro-'));
    const mnt = path.join(dir, 'disk');
    mkdirSync(mnt);
    t.equal(
      spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]).status,
      0,
      'mounted',
    );
    t.teardown(() => {
      spawnSync('umount', ['-l', mnt]);
    });
    const c = await singleNode(dir, path.join(mnt, 'n1'));
    t.teardown(() => c.killAllNow());
    c.start('n1');
    await waitLeader(c);
    const kv = await c.kvClient({ timeoutMs: 3000 });
    t.equal((await kv.put('k', 'v')).outcome, 'ok', 'a write with a writable data dir');
    await kv.close();
    await c.stop('n1');
    t.equal(
      spawnSync('mount', ['-o', 'remount,ro', mnt]).status,
      0,
      'data dir remounted read-only',
    );
    const exitOf = async (dataDir?: string) => {
      const p = c.start('n1', dataDir ? { dataDir } : {});
      const child = p.child;
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          void c.kill('n1').then(() => resolve(null));
        }, 20_000);
        child?.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      return { code, text: p.tail.join('\n') };
    };
    const withData = await exitOf();
    t.comment(
      `with data: exit ${withData.code}: ${withData.text.split('\n').slice(-2).join(' | ')}`,
    );
    t.ok(
      withData.code !== null && withData.code !== 0,
      'refuses to start on read-only data (non-zero exit, not a hang)',
    );
    t.match(
      withData.text,
      /SYNOD_ERR_DATADIR_NOT_WRITABLE.*EROFS|EROFS.*read-only file system/,
      'with a clear error naming the cause (finding F2)',
    );
    const fresh = await exitOf(path.join(mnt, 'fresh'));
    t.comment(`fresh: exit ${fresh.code}: ${fresh.text.split('\n').slice(-2).join(' | ')}`);
    t.ok(
      fresh.code !== null && fresh.code !== 0,
      'refuses to start with a new data dir on a read-only mount',
    );
    t.match(fresh.text, /read-only|EROFS|SYNOD_ERR/i, 'with a clear error');
    await c.closeProbe();
  },
);

/** Why an ext4 file system on a loop device cannot be used here, or undefined. */
function ext4Reason(): string | undefined {
  if (unavailable) return unavailable;
  const probe = mkdtempSync(path.join(tmpdir(), 'synod-ext4-probe-'));
  try {
    const img = path.join(probe, 'img');
    writeFileSync(img, '');
    spawnSync('truncate', ['-s', '8M', img]);
    const mk = spawnSync('mkfs.ext4', ['-q', '-F', img], { encoding: 'utf8' });
    if (mk.status !== 0) return `no mkfs.ext4: ${(mk.stderr || mk.error?.message || '').trim()}`;
    mkdirSync(path.join(probe, 'm'));
    const m = spawnSync('mount', ['-o', 'loop', img, path.join(probe, 'm')], { encoding: 'utf8' });
    if (m.status !== 0) return `cannot mount a loop device: ${(m.stderr || '').trim()}`;
    spawnSync('umount', [path.join(probe, 'm')]);
    return undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

t.test(
  'the file system turns read-only under a running node: it exits non-zero, saying why',
  { skip: ext4Reason() },
  async (t) => {
    // ext4 on a loop device, mounted errors=remount-ro (ext4's usual policy): a file-system
    // error (here triggered through /sys/fs/ext4/<dev>/trigger_fs_error, as a failing disk
    // would) turns it read-only at once, also for files already open. (A `mount -o
    // remount,ro` is refused with EBUSY while the node holds files open for writing.)
    const dir = mkdtempSync(path.join(tmpdir(), 'synod-ro-live-'));
    const img = path.join(dir, 'disk.img');
    const mnt = path.join(dir, 'disk');
    mkdirSync(mnt);
    writeFileSync(img, '');
    spawnSync('truncate', ['-s', '64M', img]);
    t.equal(spawnSync('mkfs.ext4', ['-q', '-F', img]).status, 0, 'made an ext4 image');
    t.equal(
      spawnSync('mount', ['-o', 'loop,errors=remount-ro', img, mnt]).status,
      0,
      'mounted it (loop, errors=remount-ro)',
    );
    t.teardown(() => {
      spawnSync('umount', ['-l', mnt]);
      rmSync(dir, { recursive: true, force: true });
    });
    const dev = path.basename(
      spawnSync('findmnt', ['-n', '-o', 'SOURCE', mnt], { encoding: 'utf8' }).stdout.trim(),
    );
    const c = await singleNode(dir, path.join(mnt, 'n1'));
    t.teardown(() => c.killAllNow());
    const p = c.start('n1');
    await waitLeader(c);
    const kv = await c.kvClient({ timeoutMs: 3000, attemptTimeoutMs: 1000 });
    t.equal((await kv.put('k', 'v')).outcome, 'ok', 'a write while writable');
    const child = p.child;
    const exited = new Promise<number | null>((resolve) => {
      if (!child || child.exitCode !== null) resolve(child?.exitCode ?? null);
      child?.once('exit', (code) => resolve(code));
    });
    writeFileSync(`/sys/fs/ext4/${dev}/trigger_fs_error`, 'synod storage-abuse test\n');
    t.not(spawnSync('touch', [path.join(mnt, 'probe')]).status, 0, 'the file system is read-only');
    // The next write needs the disk: the Raft actor fails on EROFS and stops for good.
    const outcomes: string[] = [];
    let code: number | null | undefined;
    void exited.then((x) => {
      code = x;
    });
    for (let i = 0; i < 40 && code === undefined; i++) {
      const r = await kv.put(`k${i}`, 'v');
      outcomes.push(r.outcome === 'ok' ? 'ok' : `${r.outcome} ${r.error.code}`);
    }
    const bounded = await Promise.race([
      exited,
      new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000)),
    ]);
    t.comment(`writes after the error: ${outcomes.join(', ')}`);
    const text = p.tail.join('\n');
    t.comment(`last lines: ${text.split('\n').slice(-3).join(' | ')}`);
    t.ok(
      typeof bounded === 'number' && bounded !== 0,
      `the process exits non-zero instead of lingering (exit ${String(bounded)})`,
    );
    t.match(text, /EROFS|read-only file system/, 'and its last words name the cause');
    t.match(text, /exits: the Raft node of n1 stopped/, 'saying the node cannot serve');
    t.notOk(
      outcomes.slice(1).includes('ok'),
      'no write is acknowledged after the first one that failed',
    );
    await kv.close();
    await c.closeProbe();
  },
);
