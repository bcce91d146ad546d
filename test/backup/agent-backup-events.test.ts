/**
 * The agent's `backup` and `backup-failed` events carry the backup's window on the wall clock
 * (requestedAt, before the capture; startedAt, when its queued write began; endedAt, when the
 * manifest was written or the write failed), and `synod backup agent` prints them (text, and
 * `--json` fields): a benchmark or a monitor tells from them which writes ran during a backup.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { BackupEvent, BackupFailedEvent } from '../../actors/backup/agent.js';
import { FaultyRepoFs } from '../../actors/backup/faulty-fs.js';
import { nodeRepoFs } from '../../actors/backup/fs.js';
import { Repository } from '../../actors/backup/repository.js';
import { agentBackupLine } from '../../cli/commands/backup.js';
import { applyPuts, startMapAgent } from '../helpers/backup-agent.js';

const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };

async function startAgent(t: { teardown(fn: () => unknown): void }, repo: Repository) {
  const { agent } = await startMapAgent(t, repo, {
    seed: 7,
    archive: { maxEntries: 1_000_000, maxBytes: 1 << 30, flushMs: 0 },
  });
  const events: (BackupEvent | BackupFailedEvent)[] = [];
  agent.events$.subscribe((e) => {
    if (e.type === 'backup' || e.type === 'backup-failed')
      events.push(e as unknown as BackupEvent | BackupFailedEvent);
  });
  applyPuts(
    agent,
    1,
    3000,
    (i) => `k${i % 1500}`,
    (i) => Buffer.alloc(500, i),
  );
  await agent.ask({ type: 'status' });
  return { agent, events };
}

t.test('backup events carry requested, started and ended times', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-agent-events-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  const { agent, events } = await startAgent(t, repo);
  const before = Date.now();
  // Two backups asked for at once: the second is captured now, written after the first.
  const [a, b] = await Promise.all([
    agent.ask({ type: 'backup', kind: 'full' }, 30_000),
    agent.ask({ type: 'backup', kind: 'full' }, 30_000),
  ]);
  const after = Date.now();
  t.equal(events.length, 2, 'one event per backup');
  const [e1, e2] = events as [BackupEvent, BackupEvent];
  t.same(
    [e1.type, e1.id, e1.kind, e1.index, e2.id],
    ['backup', (a as { id: string }).id, 'full', 3000, (b as { id: string }).id],
    'the event names the backup',
  );
  for (const e of [e1, e2]) {
    t.ok(
      before <= e.requestedAt && e.requestedAt <= e.startedAt && e.startedAt <= e.endedAt,
      `requested ≤ started ≤ ended (${e.requestedAt}, ${e.startedAt}, ${e.endedAt})`,
    );
    t.ok(e.endedAt <= after, 'ended before the reply arrived');
  }
  t.ok(e2.requestedAt <= e1.endedAt, 'the second was requested before the first ended');
  t.ok(e2.startedAt >= e1.endedAt, "the second's write started only after the first's ended");
});

t.test('a failed backup reports its window too', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-agent-events-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  // The first mutating file-system step (the backup's first chunk) fails.
  const repo = await Repository.open(dir, { fs: new FaultyRepoFs(nodeRepoFs, 1) });
  const { agent, events } = await startAgent(t, repo);
  const before = Date.now();
  await t.rejects(agent.ask({ type: 'backup', kind: 'full' }, 30_000));
  const failed = events.find((e) => e.type === 'backup-failed') as BackupFailedEvent;
  t.ok(failed, 'a backup-failed event');
  t.equal(failed.kind, 'full');
  t.match(failed.error, /injected crash/);
  t.ok(before <= failed.requestedAt && failed.requestedAt <= failed.endedAt, 'with its window');
  t.notOk(
    events.some((e) => e.type === 'backup'),
    'and no backup event',
  );
});

t.test('synod backup agent prints the window (text and --json)', async (t) => {
  const ev: BackupEvent = {
    type: 'backup',
    id: '20261128-200102-000003F',
    kind: 'full',
    index: 4711,
    requestedAt: Date.UTC(2026, 10, 28, 20, 1, 2, 345),
    startedAt: Date.UTC(2026, 10, 28, 20, 1, 2, 350),
    endedAt: Date.UTC(2026, 10, 28, 20, 1, 4, 655),
  };
  const now = '2026-11-28T20:01:04.660Z';
  t.equal(
    agentBackupLine(ev, false, now),
    '2026-11-28T20:01:04.660Z full backup 20261128-200102-000003F written at index 4711 in 2.31 s (requested 2026-11-28T20:01:02.345Z, written 2026-11-28T20:01:02.350Z – 2026-11-28T20:01:04.655Z)',
  );
  t.same(JSON.parse(agentBackupLine(ev, true, now)), {
    time: now,
    msg: 'full backup 20261128-200102-000003F written at index 4711 in 2.31 s',
    event: 'backup',
    id: ev.id,
    kind: 'full',
    index: 4711,
    requestedAt: '2026-11-28T20:01:02.345Z',
    startedAt: '2026-11-28T20:01:02.350Z',
    endedAt: '2026-11-28T20:01:04.655Z',
    seconds: 2.31,
  });
  const failed: BackupFailedEvent = {
    type: 'backup-failed',
    kind: 'incr',
    error: 'disk full',
    requestedAt: ev.requestedAt,
    startedAt: ev.startedAt,
    endedAt: ev.startedAt + 500,
  };
  const j = JSON.parse(agentBackupLine(failed, true, now)) as Record<string, unknown>;
  t.same(
    [j.event, j.kind, j.error, j.msg, j.endedAt, j.id],
    [
      'backup-failed',
      'incr',
      'disk full',
      'incr backup failed after 0.51 s: disk full',
      '2026-11-28T20:01:02.850Z',
      undefined,
    ],
  );
});
