/**
 * The data directory lock: one opener at a time, a stale lock of a dead process is taken
 * over, a lock of a live process is respected, a second process is refused.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { FileLogStore } from '../../lib/storage/file-log.js';
import { acquireDirLock } from '../../lib/storage/fs-util.js';

const root = t.testdir();
let seq = 0;
const fresh = () => path.join(root, `d${seq++}`);

t.test('a second open in the same process is refused until the first closes', async (t) => {
  const dir = fresh();
  const a = await FileLogStore.open(dir);
  await t.rejects(FileLogStore.open(dir), {
    code: 'SYNOD_ERR_DATADIR_LOCKED',
    message: /already open in this process/,
  });
  await a.close();
  const b = await FileLogStore.open(dir);
  await b.close();
  t.notOk((await fs.readdir(dir)).includes('LOCK'), 'the lock file is removed on close');
});

t.test('a stale lock of a dead process is taken over', async (t) => {
  const dir = fresh();
  await fs.mkdir(dir, { recursive: true });
  const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
  await fs.writeFile(path.join(dir, 'LOCK'), JSON.stringify({ pid: dead, host: os.hostname() }));
  const log = await FileLogStore.open(dir);
  const content = JSON.parse(await fs.readFile(path.join(dir, 'LOCK'), 'utf8'));
  t.equal(content.pid, process.pid, 'the lock now names us');
  await log.close();
});

t.test('an empty lock file (holder died while creating it) is stale', async (t) => {
  const dir = fresh();
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'LOCK'), '');
  const lock = await acquireDirLock(dir);
  await lock.release();
  t.pass();
});

t.test('a lock of a live process, another host, or unknown content is respected', async (t) => {
  const dir = fresh();
  await fs.mkdir(dir, { recursive: true });
  const lockFile = path.join(dir, 'LOCK');
  await fs.writeFile(lockFile, JSON.stringify({ pid: process.ppid, host: os.hostname() }));
  await t.rejects(acquireDirLock(dir), {
    code: 'SYNOD_ERR_DATADIR_LOCKED',
    message: new RegExp(`live process ${process.ppid}`),
  });
  await fs.writeFile(lockFile, JSON.stringify({ pid: 1, host: 'elsewhere.example' }));
  await t.rejects(acquireDirLock(dir), { code: 'SYNOD_ERR_DATADIR_LOCKED', message: /host/ });
  await fs.writeFile(lockFile, 'not json');
  await t.rejects(acquireDirLock(dir), {
    code: 'SYNOD_ERR_DATADIR_LOCKED',
    message: /not recognised/,
  });
});

t.test('two processes cannot open the same data directory', async (t) => {
  const dir = fresh();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import('${path.resolve('lib/storage/file-log.ts')}').then(async (m) => {
         await m.FileLogStore.open(${JSON.stringify(dir)});
         process.stdout.write('open\\n');
         setInterval(() => {}, 1000);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('open') && resolve());
    child.on('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
  await t.rejects(FileLogStore.open(dir), {
    code: 'SYNOD_ERR_DATADIR_LOCKED',
    message: new RegExp(`live process ${child.pid}`),
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const log = await FileLogStore.open(dir);
  t.ok(log, 'after the holder is killed its lock is stale and taken over');
  await log.close();
});
