/**
 * Restore to a time (#10 B7). An archived record's time is when the agent applied the entry; a
 * one-off `synod backup --cluster` (or an agent after a restart) catches up entries committed
 * long before and stamps them with the catch-up time. Archive format 3 says per record whether
 * its time was observed live or caught up, and `--to time:T` refuses a T that caught-up entries
 * (or entries of archive formats 1 and 2, which do not say, or missing ones) leave ambiguous.
 *
 * The agent is driven as a one-off agent would be: it starts catching up, is told `live` once it
 * keeps up (learner.ts `goLive`), and stops; a second run catches up what was committed
 * meanwhile. Times are given with the entries, so the test states the cluster's history exactly.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BehaviorSubject } from 'rxjs';
import type { Test } from 'tap';
import t from 'tap';
import type { AgentStatus } from '../../actors/backup/agent.js';
import { ARCHIVE_FORMAT, type ArchivedEntry } from '../../actors/backup/archive.js';
import { RepoDriver } from '../../actors/backup/driver.js';
import { startEmbeddedBackup } from '../../actors/backup/embedded.js';
import { followRound, goLive, keepFollowing } from '../../actors/backup/learner.js';
import { Repository } from '../../actors/backup/repository.js';
import { AMBIGUITY_SCAN_SEGMENTS, restore } from '../../actors/backup/restore.js';
import { MapState } from '../../actors/backup/state.js';
import { KV_KIND } from '../../actors/backup/state-kind.js';
import { verify } from '../../actors/backup/verify.js';
import { command, randomOp } from '../../actors/backup/workload.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { run as backupCmd } from '../../cli/commands/backup.js';
import { run as restoreCmd } from '../../cli/commands/restore.js';
import { LocalCluster } from '../../lib/cluster/local-cluster.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { startMapAgent } from '../helpers/backup-agent.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const WORKLOAD = { keySpace: 120, valueMin: 0, valueMax: 700, pDelete: 0.15, pBatch: 0.1 };
const KEY = Buffer.alloc(32, 7);
const factory = () => new MapState();
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const iso = (ms: number) => new Date(T0 + ms).toISOString();

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-restore-time-'));
t.teardown(() => rm(base, { recursive: true, force: true }));
let dirs = 0;

async function capture(
  fn: () => Promise<number>,
): Promise<{ code: number; out: string; err: string }> {
  const log = console.log;
  const error = console.error;
  const write = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  console.error = (...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  };
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}

/**
 * The cluster's history: 310 commands. Run 1 (a one-off backup at 10 s) catches up 1..100
 * (committed over the 10 s before), then follows 101..110 live (10.001–10.010 s) and takes a
 * full backup at 110. The cluster commits 111..300 at 20.000–20.189 s, seen by no agent. Run 2 (a
 * one-off at 50 s) catches up 111..300, stamped 50 s, follows 301..310 live (50.001–50.010 s)
 * and takes an incremental backup at 310.
 */
async function oneOffHistory(t: Test) {
  const dir = path.join(base, `oneoff-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'c1' });
  const random = new Random(14);
  const cmds = Array.from({ length: 310 }, (_, i) => command(randomOp(random, WORKLOAD), i + 1));
  const apply = (
    agent: Awaited<ReturnType<typeof startMapAgent>>['agent'],
    from: number,
    to: number,
    time: (i: number) => number,
  ) => {
    for (let i = from; i <= to; i++) {
      agent.tell({
        type: 'applied',
        entry: { index: i, term: 1, command: cmds[i - 1] as (typeof cmds)[number], result: 0 },
        time: T0 + time(i),
      });
    }
  };
  const run = async (
    seed: number,
    caughtUp: [number, number],
    live: [number, number],
    at: number,
    kind: 'full' | 'incr',
  ) => {
    const { system, agent } = await startMapAgent(t, repo, { seed, archive: { flushMs: 0 } });
    t.equal(((await agent.ask({ type: 'status' })) as AgentStatus).live, false, 'starts caught up');
    apply(agent, caughtUp[0], caughtUp[1], () => at);
    agent.tell({ type: 'live' });
    apply(agent, live[0], live[1], (i) => at + (i - live[0] + 1));
    const st = (await agent.ask({ type: 'status' })) as AgentStatus;
    t.equal(st.live, true, 'live after the catch-up');
    await agent.ask({ type: 'backup', kind });
    await agent.ask({ type: 'flush' });
    await system.shutdown();
  };
  await run(1, [1, 100], [101, 110], 10_000, 'full');
  await run(2, [111, 300], [301, 310], 50_000, 'incr');
  return { dir, repo };
}

t.test('a one-off catch-up: times inside it refuse, the others restore exactly', async (t) => {
  const { dir, repo } = await oneOffHistory(t);
  // The archive records how each time was taken.
  const timing = new Map<number, string>();
  for (const s of await repo.archive.list()) {
    for (const e of await repo.archive.read(s)) timing.set(e.index, e.timing as string);
  }
  t.same(
    [timing.get(1), timing.get(100), timing.get(101), timing.get(110), timing.get(111)],
    ['caught-up', 'caught-up', 'observed', 'observed', 'caught-up'],
  );
  t.same(
    [timing.get(300), timing.get(301), timing.get(310)],
    ['caught-up', 'observed', 'observed'],
  );

  const byIndex = async (index: number) =>
    (await restore(repo, { kind: 'index', index }, { factory })).digest;
  const at = async (ms: number) => restore(repo, { kind: 'time', time: T0 + ms }, { factory });

  // Between the two runs (the cluster was at 110..300 then): refused, naming the range.
  // (10.010 s: entry 111 may have been committed in the same millisecond as 110.)
  for (const ms of [10_010, 10_011, 20_100, 49_999]) {
    await t.rejects(
      at(ms),
      {
        code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS',
        message: new RegExp(
          `time ${iso(ms)} is ambiguous: .*one of indices 110\\.\\.300.*190 were archived by an agent catching up.*at ${iso(50_000)}.*committed after ${iso(10_010)} \\(index 110, observed live\\).*--to index:N.*--if-ambiguous earlier`,
        ),
        details: { known: 110, upTo: 300, caughtUp: 190, after: T0 + 10_010, before: T0 + 50_000 },
      },
      `${iso(ms)} is inside run 2's catch-up: refused`,
    );
  }
  // Inside run 1's catch-up, before its catch-up time: nothing is known committed by then.
  await t.rejects(at(9_000), { code: 'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE' });

  // At or after a catch-up's time: every caught-up entry was committed by then; the next entry
  // was observed live after it, so the index is exact.
  for (const [ms, index] of [
    [10_000, 100],
    [50_000, 300],
    [50_000.5, 300],
  ] as const) {
    const r = await at(ms);
    t.equal(r.index, index, `${iso(ms)} → index ${index}`);
    t.equal(r.digest, await byIndex(index), 'the state at that index');
    t.same(r.warnings, []);
  }
  // In the live-followed stretches: exact.
  for (const [ms, index] of [
    [10_001, 101],
    [10_005, 105],
    [10_009.5, 109],
    [50_004, 304],
  ] as const) {
    const r = await at(ms);
    t.equal(r.index, index, `${iso(ms)} (live) → index ${index}`);
    t.equal(r.digest, await byIndex(index));
  }
  // After the archive's end: its end, with a warning (nothing later was archived).
  const end = await at(60_000);
  t.equal(end.index, 310);
  t.match(end.warnings, [/after the last entry the repository holds \(index 310/]);
  // Asked for explicitly: the last index known committed by T, with a warning.
  const earlier = await restore(
    repo,
    { kind: 'time', time: T0 + 20_100, ifAmbiguous: 'earlier' },
    { factory },
  );
  t.equal(earlier.index, 110);
  t.equal(earlier.digest, await byIndex(110));
  t.match(earlier.warnings, [/ambiguous.*Restoring index 110 \(--if-ambiguous earlier\)/]);
  const v = await verify(repo);
  t.ok(v.ok, 'verify reads format 3');
  t.same(v.archiveTiming, { observed: 20, caughtUp: 290, unknown: 0 }, 'and counts the timings');

  // The CLI: exit 1 with the code and what to do; --if-ambiguous earlier restores 110.
  const k = ['--repo', dir, '--dry-run'];
  let r = await capture(() => backupCmd(['verify', '--repo', dir]));
  t.equal(r.code, 0, 'caught-up entries are not damage');
  t.match(r.out, /archive entry times: 20 observed live, 290 caught up/);
  r = await capture(() => restoreCmd([...k, '--to', `time:${iso(20_100)}`]));
  t.equal(r.code, 1, 'refused');
  t.match(r.err, /SYNOD_ERR_BACKUP_TIME_AMBIGUOUS/);
  t.match(r.err, /one of indices 110\.\.300/);
  t.match(r.err, /--if-ambiguous earlier to restore index 110/);
  r = await capture(() =>
    restoreCmd([...k, '--to', `time:${iso(20_100)}`, '--if-ambiguous', 'earlier', '--json']),
  );
  t.equal(r.code, 0, r.err);
  t.equal(JSON.parse(r.out).index, 110);
  t.match(r.err, /warning: .*ambiguous/);
  r = await capture(() => restoreCmd([...k, '--to', `time:${iso(50_004)}`, '--json']));
  t.equal(r.code, 0, r.err);
  t.equal(JSON.parse(r.out).index, 304);
  r = await capture(() => restoreCmd([...k, '--to', `time:${iso(20_100)}`, '--if-ambiguous', 'x']));
  t.equal(r.code, 2, 'a bad --if-ambiguous is a usage error');
  r = await capture(() => restoreCmd([...k, '--to', 'index:5', '--if-ambiguous', 'earlier']));
  t.equal(r.code, 2, '--if-ambiguous without a time target is a usage error');
});

t.test('a gap in the archive makes the times over it ambiguous', async (t) => {
  const dir = path.join(base, `gap-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'c1' });
  const d = new RepoDriver(repo, 'c1', 3, WORKLOAD);
  d.apply(50);
  await d.backup('full');
  await d.flush();
  d.apply(30);
  d.buffer = []; // 51..80 never archived (as after a snapshot reset), a backup at 80
  await d.backup('full');
  d.apply(20);
  await d.flush();
  const at = (i: number) => restore(repo, { kind: 'time', time: d.time - 100 + i }, { factory });
  // Driver times: entry i at 1_800_000_000_000 + i; d.time is entry 100's.
  t.equal((await at(40)).index, 40, 'before the gap: exact');
  await t.rejects(at(60), {
    code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS',
    message: /one of indices 50\.\.80.*30 are missing from the archive/,
  });
  t.equal((await at(90)).index, 90, 'after the gap: exact');
});

for (const name of ['plain', 'encrypted'] as const) {
  t.test(`${name}: format 2 archives (times of unknown precision)`, async (t) => {
    const dir = path.join(base, `v2-${name}-${++dirs}`);
    await cp(path.join(FIXTURES, 'archive-v2', name), dir, { recursive: true });
    const repo = await Repository.open(dir, name === 'encrypted' ? { key: KEY } : {});
    // The fixture's workload again: entry i was committed at 1_800_000_000_000 + i.
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.apply(360);
    d.buffer = [];
    const at = (i: number, ifAmbiguous?: 'earlier') =>
      restore(
        repo,
        { kind: 'time', time: 1_800_000_000_000 + i, ...(ifAmbiguous ? { ifAmbiguous } : {}) },
        { factory },
      );
    const segs = await repo.archive.list();
    const first = await repo.archive.read(segs[0] as (typeof segs)[number]);
    t.same([first[0]?.format, first[0]?.timing], [2, 'unknown'], 'format 2: timing unknown');
    // Index targets and verify are unchanged.
    for (const index of [100, 250, 360]) {
      const r = await restore(repo, { kind: 'index', index }, { factory });
      t.equal(r.digest, d.digests.get(index)?.digest, `index:${index}`);
    }
    t.ok((await verify(repo)).ok, 'verify');
    // A time between two entries of unknown precision: refused, saying why.
    for (const i of [50, 100, 200]) {
      await t.rejects(at(i), {
        code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS',
        message: new RegExp(
          `one of indices ${i}\\.\\.360 \\(or later: the archive ends there\\).*${360 - i} are in archive segments of format 1 or 2`,
        ),
      });
      const r = await at(i, 'earlier');
      t.equal(r.index, i, `--if-ambiguous earlier → ${i}`);
      t.equal(r.digest, d.digests.get(i)?.digest);
    }
    // At the archive's end nothing after is in question (a warning says nothing later is known).
    const r = await at(360);
    t.equal(r.index, 360);
    t.match(r.warnings, [/after the last entry the repository holds/]);

    // The current code continues the archive in format 3 (the driver's times are observed).
    d.apply(60);
    await d.flush();
    const segs3 = await repo.archive.list();
    const last = await repo.archive.read(segs3[segs3.length - 1] as (typeof segs3)[number]);
    t.same([last[0]?.format, last[0]?.timing], [ARCHIVE_FORMAT, 'observed']);
    t.equal((await at(390)).index, 390, 'inside the format 3 stretch: exact');
    t.equal((await at(360.5)).index, 360, 'the first observed entry bounds the last old one');
    await t.rejects(at(300), { code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS', message: /300\.\.360\b/ });
    const v = await verify(repo);
    t.ok(v.ok, 'verify reads both formats');
    t.same(v.archiveTiming, { observed: 60, caughtUp: 0, unknown: 360 });
  });
}

t.test('format 1 archives (digest-v1 fixture): the same as format 2', async (t) => {
  const dir = path.join(base, `v1-${++dirs}`);
  await cp(path.join(FIXTURES, 'digest-v1', 'plain'), dir, { recursive: true });
  const repo = await Repository.open(dir);
  const time = 1_800_000_000_000;
  await t.rejects(restore(repo, { kind: 'time', time: time + 200 }, { factory }), {
    code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS',
    message: /format 1 or 2/,
  });
  const r = await restore(
    repo,
    { kind: 'time', time: time + 200, ifAmbiguous: 'earlier' },
    { factory },
  );
  t.equal(r.index, 200);
  t.equal(r.digest, (await restore(repo, { kind: 'index', index: 200 }, { factory })).digest);
});

t.test('format 3 records keep their timing; an unknown timing byte is damage', async (t) => {
  const dir = path.join(base, `timing-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'x' });
  const e = (index: number, timing?: ArchivedEntry['timing']): ArchivedEntry => ({
    index,
    term: 1,
    time: index,
    data: new Uint8Array(0),
    ...(timing ? { timing } : {}),
  });
  const seg = await repo.withLock(() =>
    repo.archive.write([e(1, 'observed'), e(2, 'caught-up'), e(3, 'unknown'), e(4)]),
  );
  t.same(
    (await repo.archive.read(seg)).map((r) => r.timing),
    ['observed', 'caught-up', 'unknown', 'unknown'],
    'absent is written as unknown',
  );
});

t.test('followRound, goLive and keepFollowing on a virtual clock', async (t) => {
  const clock = new VirtualClock();
  const status = (index: number, live: boolean): AgentStatus =>
    ({ index, stalled: null, live }) as unknown as AgentStatus;
  const state$ = new BehaviorSubject<AgentStatus>(status(0, false));
  const told: string[] = [];
  const agent = {
    state$,
    getSnapshot: () => state$.value,
    tell: (m: { type: string }) => {
      told.push(m.type);
      state$.next(status(state$.value.index, m.type === 'live'));
      return true;
    },
  };
  let commit = 100;
  let answerAfter = 10;
  const committedIndex = () =>
    new Promise<number>((resolve) => clock.setTimer(answerAfter, () => resolve(commit)));
  const apply = (index: number, after: number) =>
    clock.setTimer(after, () => state$.next(status(index, state$.value.live)));
  /** Runs the virtual clock until `p` settles. */
  const drive = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    const out = p.finally(() => {
      done = true;
    });
    for (let i = 0; i < 100_000 && !done; i++) {
      await new Promise((r) => setImmediate(r));
      if (!done) clock.step();
    }
    return out;
  };

  // The agent reaches the commit index 500 ms after the ask: a pass at 2,000 ms tolerance.
  apply(100, 500);
  t.equal(await drive(followRound(clock, agent, committedIndex, 2000)), true);
  // It needs 3 s: a fail (at the tolerance, not when it finally gets there).
  commit = 200;
  apply(200, 3000);
  const t0 = clock.now();
  t.equal(await drive(followRound(clock, agent, committedIndex, 2000)), false);
  t.ok(clock.now() - t0 <= 2000, 'decided at the tolerance');
  // An answer that comes too late fails too.
  answerAfter = 2500;
  t.equal(await drive(followRound(clock, agent, committedIndex, 2000)), false);
  answerAfter = 10;
  await drive(new Promise<void>((r) => clock.setTimer(5000, r)));

  // goLive: the first round passes (the agent is at 200): `live`.
  t.equal(await drive(goLive(clock, agent, committedIndex, { toleranceMs: 2000 })), true);
  t.same(told, ['live']);
  // Never keeping up: no `live` after maxRounds.
  told.length = 0;
  state$.next(status(200, false));
  commit = 10_000;
  t.equal(
    await drive(goLive(clock, agent, committedIndex, { toleranceMs: 2000, maxRounds: 3 })),
    false,
  );
  t.same(told, [], 'stays caught up');

  // keepFollowing: live while it keeps up, `catching-up` as soon as a round fails, `live`
  // again once one passes.
  state$.next(status(10_000, true));
  let stop!: () => void;
  const stopped = new Promise<void>((r) => {
    stop = r;
  });
  const watch = keepFollowing(clock, agent, committedIndex, stopped, {
    toleranceMs: 2000,
    checkMs: 5000,
  });
  await drive(new Promise<void>((r) => clock.setTimer(12_000, r)));
  t.same(told, [], 'keeps up: nothing told');
  commit = 20_000; // the agent falls behind
  await drive(new Promise<void>((r) => clock.setTimer(8000, r)));
  t.same(told, ['catching-up'], 'told at the first failed round');
  state$.next(status(20_000, false)); // it caught up
  await drive(new Promise<void>((r) => clock.setTimer(3000, r)));
  t.same(told, ['catching-up', 'live'], 'live again');
  stop();
  await drive(watch);
});

t.test('a Raft learner agent archives its catch-up as caught up, then follows live', async (t) => {
  const dir = path.join(base, `embedded-${++dirs}`);
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    seed: 14,
    stateMachine: () => new KvStateMachine(),
  });
  t.teardown(() => cluster.shutdown());
  await cluster.start();
  await cluster.waitForLeader(10_000);
  for (let i = 0; i < 60; i++)
    await cluster.propose({ t: 'put', key: `k${i % 20}`, value: `a${i}` });
  const repo = await Repository.init(dir, { state: 'kv', clusterId: 'c' });
  const committed = cluster.raft(cluster.leader() as string)?.status().commit as number;
  // A generous tolerance: this asserts the flags, not the machine's speed.
  const agent = await startEmbeddedBackup(cluster, repo, { followToleranceMs: 30_000 });
  t.equal(agent.live.agent.getSnapshot()?.live, false, 'it starts catching up');
  await agent.live.catchUp(30_000);
  t.equal((await agent.live.status()).live, true, 'live once it kept up');
  const liveFrom = (await agent.live.status()).index;
  for (let i = 0; i < 20; i++) await cluster.propose({ t: 'put', key: `k${i}`, value: `b${i}` });
  await agent.live.catchUp(30_000);
  await agent.live.leave();
  await agent.stop();
  const records: ArchivedEntry[] = [];
  for (const s of await repo.archive.list()) records.push(...(await repo.archive.read(s)));
  t.ok(
    records.filter((r) => r.index <= committed).every((r) => r.timing === 'caught-up'),
    `entries 1..${committed} (committed before it joined) are caught up`,
  );
  const after = records.filter((r) => r.index > liveFrom);
  t.ok(after.length >= 20, 'the later writes are archived');
  t.ok(
    after.every((r) => r.timing === 'observed'),
    'entries applied after it went live are observed',
  );
  // A time among the observed entries resolves exactly, without a warning.
  const mid = after[Math.floor(after.length / 2)] as ArchivedEntry;
  const want = Math.max(...records.filter((r) => r.time <= mid.time).map((r) => r.index));
  const r = await restore(repo, { kind: 'time', time: mid.time }, { factory: KV_KIND.factory });
  t.equal(r.index, want);
  t.same(r.warnings, []);
});

t.test('an ambiguous run is read at most AMBIGUITY_SCAN_SEGMENTS segments far', async (t) => {
  const dir = path.join(base, `scan-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'x' });
  // 20 segments of 5 caught-up entries without a command; entry i stamped at i × 10 ms.
  for (let s = 0; s < 20; s++) {
    const seg: ArchivedEntry[] = [];
    for (let i = s * 5 + 1; i <= s * 5 + 5; i++) {
      seg.push({ index: i, term: 1, time: i * 10, data: new Uint8Array(0), timing: 'caught-up' });
    }
    await repo.withLock(() => repo.archive.write(seg));
  }
  t.equal(AMBIGUITY_SCAN_SEGMENTS, 16);
  await t.rejects(restore(repo, { kind: 'time', time: 55 }, { factory }), {
    code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS',
    message:
      /one of indices 5\.\.85 \(or later: the archive after index 85 was not read\).*Of entries 6\.\.85, 80 were archived by an agent catching up/,
    details: { known: 5, upTo: 85, notReadAfter: 85, caughtUp: 80 },
  });
  // Near the end the run is read to the archive's end.
  await t.rejects(restore(repo, { kind: 'time', time: 905 }, { factory }), {
    message: /one of indices 90\.\.100 \(or later: the archive ends there\)/,
  });
  const r = await restore(repo, { kind: 'time', time: 55, ifAmbiguous: 'earlier' }, { factory });
  t.equal(r.index, 5);
});
