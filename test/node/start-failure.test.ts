/**
 * Finding F2 in process: a node whose storage cannot be opened must not report "up", and a
 * node whose Raft actor stops for good must say so (`ended`) instead of lingering.
 * The storage faults here need no root: a `raft/LOCK` that is a directory (EISDIR when the
 * Raft actor opens its store) and a `raft` path that is a file (the writability check).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CliError } from '../../cli/args.js';
import { silentLogger } from '../../lib/logger.js';
import { type RunningNode, startNode } from '../../lib/node/synod-node.js';
import { freePort, until } from '../helpers/node-processes.js';

function config(dataDir: string, port: number) {
  return {
    id: 'n1',
    listen: { host: '127.0.0.1', port },
    peers: [],
    dataDir,
    cluster: 'start-failure',
    logger: silentLogger,
    heartbeatMs: 20,
    electionMs: 100,
  };
}

/** True when nothing listens on `port` any more (the failed node closed its transport). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function startedOnce(dataDir: string): Promise<void> {
  const node = await startNode(config(dataDir, await freePort()));
  await until('a leader', async () => ((await node.status()).role === 'leader' ? true : undefined));
  await node.stop();
}

t.test('a Raft store that cannot be opened: startNode rejects and closes everything', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-start-fail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'n1');
  await startedOnce(dataDir);
  // The store's lock file becomes a directory: opening it fails inside the Raft actor.
  rmSync(path.join(dataDir, 'raft', 'LOCK'), { force: true });
  mkdirSync(path.join(dataDir, 'raft', 'LOCK'));
  const port = await freePort();
  let node: RunningNode | undefined;
  const err = await startNode(config(dataDir, port)).then(
    (n) => {
      node = n;
      return undefined;
    },
    (e: unknown) => e,
  );
  t.teardown(() => node?.stop());
  t.ok(err instanceof CliError, `startNode rejects (${String(err)})`);
  t.equal((err as CliError).code, 'SYNOD_ERR_NODE_START', 'with SYNOD_ERR_NODE_START');
  t.match((err as Error).message, /could not start: .*EISDIR/, 'naming the cause');
  t.ok(await portFree(port), 'the transport was closed (nothing keeps the process alive)');
});

t.test('a data directory that cannot be written: refused before anything starts', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-start-ro-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = path.join(dir, 'n1');
  await startedOnce(dataDir);
  rmSync(path.join(dataDir, 'raft'), { recursive: true, force: true });
  writeFileSync(path.join(dataDir, 'raft'), 'not a directory');
  const port = await freePort();
  const err = await startNode(config(dataDir, port)).then(
    (n) => n.stop().then(() => undefined),
    (e: unknown) => e,
  );
  t.ok(err instanceof CliError, 'refused');
  t.equal((err as CliError).code, 'SYNOD_ERR_DATADIR_NOT_WRITABLE', 'with a code of its own');
  t.match((err as Error).message, /cannot write to data directory .*raft \(ENOTDIR/, 'and why');
  t.ok(await portFree(port), 'the transport never listened');
});

t.test('the Raft actor stopping for good ends the node (no zombie)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-start-end-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const node = await startNode(config(path.join(dir, 'n1'), await freePort()));
  t.teardown(() => node.stop());
  await until('a leader', async () => ((await node.status()).role === 'leader' ? true : undefined));
  let ended = false;
  void node.ended.then(() => {
    ended = true;
  });
  // The actor stops without anyone stopping the node (what a fatal storage error does).
  await node.system.stop('n1/raft');
  const end = await node.ended;
  t.ok(ended, 'ended resolved');
  t.equal(end.exitCode, 1, 'exit code 1');
  t.equal(end.code, 'SYNOD_ERR_RAFT_STOPPED', end.message);
  t.match(end.message, /Raft node of n1 stopped/);
});

t.test('stop() does not end the node as a failure', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-start-stop-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const node = await startNode(config(path.join(dir, 'n1'), await freePort()));
  let ended = false;
  void node.ended.then(() => {
    ended = true;
  });
  await node.stop();
  await new Promise((r) => setImmediate(r));
  t.equal(ended, false, 'a requested stop is not an ending');
});
