/**
 * The backup agent on Multi-Paxos, end to end in one process: three `synod node --protocol
 * paxos` nodes (startPaxosNode: WebSocket transport on loopback with a cluster secret, file
 * storage, the KV service), a KV client writing, and the pull-based agent (paxos-learner.ts)
 * dialling them with the secret. It never joins the configuration.
 *
 * - more than 1,000 writes first, so every member has compacted the first slots: the agent,
 *   starting at slot 1, is answered with snapshots by every member and takes one (a `reset`,
 *   an archive gap up to it);
 * - a full backup while a writer keeps writing: it holds every write acknowledged before;
 * - a point of known state (index I1), overwrites and deletes after it, an incremental;
 * - point-in-time restore to index:I1 gives exactly the state at I1 (every key compared);
 *   index:I1 before the snapshot the agent took is refused as an archive gap;
 * - `synod restore --cluster-dir` (the CLI's run(), in process) writes three fresh
 *   Multi-Paxos data directories; three new nodes start on them, serve every acknowledged key
 *   (deleted ones absent), and take new writes above the restored index;
 * - `synod backup full --cluster` (the CLI's run(), in process) against the Paxos nodes;
 * - the standing agent (runLiveAgent, `synod backup agent`) archives writes made while it runs.
 * Waits are bounded polls of observable state, never fixed sleeps.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { LogArchive } from '../../actors/backup/archive.js';
import { KvKeyedState } from '../../actors/backup/kv-state.js';
import { liveBackup, runLiveAgent } from '../../actors/backup/live-cli.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { run as backupCli } from '../../cli/commands/backup.js';
import { run as restoreCli } from '../../cli/commands/restore.js';
import { SystemClock } from '../../lib/clock.js';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';
import { type RunningPaxosNode, startPaxosNode } from '../../lib/node/paxos-node.js';
import { freePort } from '../helpers/node-processes.js';

const clock = new SystemClock();
const silent = { log: () => {} };
const dir = mkdtempSync(path.join(tmpdir(), 'synod-paxos-backup-'));
const secret = randomBytes(24).toString('hex');
const secretFile = path.join(dir, 'secret');
writeFileSync(secretFile, `${secret}\n`);
const CLUSTER = 'paxbk';
const running: RunningPaxosNode[] = [];
const clients: RemoteKvClient[] = [];

t.teardown(async () => {
  for (const c of clients) await c.disconnect().catch(() => undefined);
  for (const n of running) await n.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const end = clock.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (clock.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise<void>((r) => clock.setTimer(25, r));
  }
}

/** Runs a CLI command in process with its stdout and stderr captured. */
async function quiet<T>(f: () => Promise<T>): Promise<{ value: T; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  const write = process.stderr.write;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: await f(), out: out.join('\n'), err: err.join('') };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}

/** Starts `ids` as a Multi-Paxos cluster on `dataDir(id)`; resolves once a leader is agreed. */
async function startCluster(ids: string[], dataDir: (id: string) => string) {
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const url = (id: string) => `ws://127.0.0.1:${ports.get(id)}`;
  const nodes: RunningPaxosNode[] = [];
  for (const id of ids) {
    const n = await startPaxosNode({
      id,
      listen: { host: '127.0.0.1', port: ports.get(id) as number },
      peers: ids.filter((p) => p !== id).map((p) => `${p}=${url(p)}`),
      dataDir: dataDir(id),
      cluster: CLUSTER,
      secret,
      logger: silent,
    });
    nodes.push(n);
    running.push(n);
  }
  const leader = await until('a leader', async () => {
    const all = await Promise.all(nodes.map((n) => n.status()));
    const l = all.find((s) => s.role === 'leader');
    return l && all.every((s) => s.leader === l.id) ? l.id : undefined;
  });
  const peers = ids.map((id) => `${id}=${url(id)}`);
  const client = await connect(peers, { secret, cluster: CLUSTER, timeoutMs: 20_000 });
  clients.push(client);
  // The highest decided prefix any member knows: every acknowledged write is in it even when
  // leadership moved since setup (a former leader's prefix can lag behind the writes made
  // through its successor: seen at load 30, keys written just before were missing).
  const commitIndex = async () =>
    Math.max(...(await Promise.all(nodes.map((n) => n.status()))).map((s) => s.commitIndex));
  return { nodes, peers, client, leader, commitIndex };
}

t.test('Multi-Paxos: live backups, point-in-time restore, a restored cluster', async (t) => {
  let t0 = clock.now();
  const phase = (what: string) => {
    t.comment(`${what}: ${Math.round(clock.now() - t0)} ms`);
    t0 = clock.now();
  };
  const src = await startCluster(['a', 'b', 'c'], (id) => path.join(dir, 'src', id));
  /** What the source cluster acknowledged: key → value (null = deleted). */
  const acked = new Map<string, string | null>();
  const put = async (k: string, v: string) => {
    const r = await src.client.put(k, v, { timeoutMs: 20_000 });
    if (r.outcome !== 'ok') throw new Error(`put ${k}: ${r.outcome}`);
    acked.set(k, v);
  };
  const del = async (k: string) => {
    const r = await src.client.delete(k, { timeoutMs: 20_000 });
    if (r.outcome !== 'ok') throw new Error(`delete ${k}: ${r.outcome}`);
    acked.set(k, null);
  };
  // Bulk writes go straight to the leader's log (as the KV service proposes them, with a
  // session), 64 at a time: the KV client's own writes are kept for the writer that runs
  // during a backup. A retry keeps its seq, so the session applies it once.
  let seq = 0;
  const proposeOne = async (
    op: { t: 'put'; key: string; value: string } | { t: 'del'; key: string },
    acks: number,
  ) => {
    const q = ++seq;
    const command = { clientId: 'bulk', seq: q, op: { ...op, s: { c: 'bulk', q, a: acks } } };
    for (let attempt = 0; ; attempt++) {
      const leader = await until('a leader', async () => {
        for (const n of src.nodes) if ((await n.status()).role === 'leader') return n;
        return undefined;
      });
      try {
        const r = await leader.log.propose(command as never, { timeoutMs: 10_000 });
        if ((r.result as { t: string }).t === 'error')
          throw new Error(`${op.key}: ${JSON.stringify(r.result)}`);
        acked.set(op.key, op.t === 'put' ? op.value : null);
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise<void>((r) => clock.setTimer(50, r));
      }
    }
  };
  const writeOps = async (
    ops: ({ t: 'put'; key: string; value: string } | { t: 'del'; key: string })[],
    width = 64,
  ) => {
    for (let i = 0; i < ops.length; i += width) {
      const acks = seq; // every earlier write is answered
      await Promise.all(ops.slice(i, i + width).map((op) => proposeOne(op, acks)));
    }
  };
  const writeMany = (prefix: string, n: number) =>
    writeOps(
      Array.from({ length: n }, (_, i) => ({
        t: 'put',
        key: `${prefix}/${i}`,
        value: `${prefix}-${i}`,
      })),
    );

  phase('cluster up');
  // 1. More slots than a member keeps before compacting (1,000): the agent must start from a
  //    member's snapshot.
  await writeMany('a', 1100);
  // Writes are answered once a quorum chose them: the third member may still be applying
  // and snapshotting, so wait (bounded) until each member says it compacted.
  let snapshotsAt: number[] = [];
  await until(
    'every member to snapshot past slot 1,000',
    async () => {
      snapshotsAt = await Promise.all(
        src.nodes.map(async (n) => (await n.status()).paxos?.snapshotIndex ?? 0),
      );
      return snapshotsAt.every((s) => s >= 1000) ? true : undefined;
    },
    30_000,
  ).catch(() => undefined);
  t.ok(
    snapshotsAt.every((s) => s >= 1000),
    `every member compacted (snapshots at ${snapshotsAt.join(', ')})`,
  );

  phase('1100 writes');
  const repoDir = path.join(dir, 'repo');
  const { repo } = await Repository.openOrInitKv(repoDir, {
    clusterId: CLUSTER,
    now: clock.wallNow(),
  });
  const lines: string[] = [];
  // A writer keeps writing while the agent pulls and backs up.
  let writing = true;
  const writer = (async () => {
    let i = 0;
    while (writing) await put(`w/${i % 50}`, `w-${i++}`);
    return i;
  })();
  const committedBefore = await src.commitIndex();
  const full = await liveBackup({
    cluster: src.peers.join(','),
    clusterName: CLUSTER,
    secret,
    repo,
    kind: 'full',
    agentId: 'bk1',
    log: (l) => lines.push(l),
  });
  writing = false;
  const wrote = await writer;
  t.equal(full.type, 'full', 'a full backup');
  t.ok(full.index >= committedBefore, `it holds slot ${committedBefore} (at ${full.index})`);
  t.equal(repo.config.protocol, 'paxos', 'the repository now says protocol paxos');
  t.equal(full.protocol, 'paxos', 'the agent found a Multi-Paxos cluster');
  t.equal(full.pulled?.resets, 1, 'it started from a member snapshot (one archive gap)');
  t.equal(full.pulled?.snapshotsDeclined, 2, 'after asking the two other members for the slots');
  t.ok(wrote > 0, `${wrote} writes went on during the backup`);
  const json = JSON.parse(readFileSync(path.join(repoDir, 'repo.json'), 'utf8')) as {
    protocol?: string;
  };
  t.equal(json.protocol, 'paxos', 'repo.json records it');

  phase('full backup');
  // 2. A point of known state, then overwrites and deletes after it.
  await writeMany('c', 100);
  const i1 = await src.commitIndex();
  const atI1 = new Map(acked);
  const changes: Parameters<typeof writeOps>[0] = [];
  for (let i = 0; i < 100; i += 2) changes.push({ t: 'put', key: `c/${i}`, value: `changed-${i}` });
  for (let i = 1; i < 100; i += 10) changes.push({ t: 'del', key: `c/${i}` });
  for (let i = 0; i < 1100; i += 100) changes.push({ t: 'del', key: `a/${i}` });
  await writeOps(changes);
  await put('client/last', 'through the KV client');
  await del('w/0');
  // A time after these writes and before the next run; the slot decided by then.
  const betweenRuns = clock.wallNow();
  const decidedBetween = await src.commitIndex();
  const firstRunTip = LogArchive.tip(await repo.archive.list());

  phase('writes after');
  // 3. An incremental by a second run: the agent rebuilds its state from the repository and
  //    pulls from the next slot (no compaction since: the archive is contiguous).
  const incr = await liveBackup({
    cluster: src.peers.join(','),
    clusterName: CLUSTER,
    secret,
    repo,
    kind: 'incr',
    agentId: 'bk1',
  });
  t.equal(incr.type, 'incr', 'an incremental');
  t.equal(incr.parent, full.id, 'whose parent is the full');
  t.equal(incr.pulled?.resets, 0, 'the second run pulled on from the archive without a gap');
  t.ok(incr.records < 400, `it holds only the changed keys (${incr.records} records)`);
  // The second run caught up the slots decided between the runs: archived as caught up, so a
  // restore to a time between the runs refuses rather than restore the first run's state (B7).
  const between: string[] = [];
  for (const s of await repo.archive.list()) {
    for (const e of await repo.archive.read(s)) {
      if (e.index > firstRunTip && e.index <= decidedBetween) between.push(e.timing as string);
    }
  }
  t.ok(between.length > 0, `slots ${firstRunTip + 1}..${decidedBetween} are archived`);
  t.ok(
    between.every((x) => x === 'caught-up'),
    'the slots decided between the runs are archived as caught up',
  );
  await t.rejects(
    restore(repo, { kind: 'time', time: betweenRuns }, { factory: () => new KvKeyedState() }),
    { code: 'SYNOD_ERR_BACKUP_TIME_AMBIGUOUS' },
    'a time between the two runs is refused',
  );

  phase('incr backup');
  // 4. Point-in-time: the state right after I1, every key compared.
  const pitr = await restore(
    repo,
    { kind: 'index', index: i1 },
    { factory: () => new KvKeyedState() },
  );
  t.equal(pitr.index, i1, `restored to slot ${i1}`);
  const kv = (pitr.state.inner as KvKeyedState).machine;
  let same = 0;
  const wrong: string[] = [];
  for (const [k, v] of atI1) {
    const got = kv.get(k)?.value ?? null;
    if (got === v) same++;
    else wrong.push(`${k}: ${got} != ${v}`);
  }
  t.same(wrong.slice(0, 5), [], `every key as at slot ${i1} (${same} compared)`);
  t.equal(kv.get('c/0')?.value, 'c-0', 'an overwrite after I1 is not in it');
  t.equal(kv.get('c/1')?.value, 'c-1', 'a delete after I1 is not in it');
  await t.rejects(
    restore(repo, { kind: 'index', index: 500 }, { factory: () => new KvKeyedState() }),
    { code: /SYNOD_ERR_BACKUP_(ARCHIVE_GAP|TARGET_UNREACHABLE)/ },
    'a slot inside the gap before the agent took a snapshot is refused',
  );

  phase('pitr');
  // 5. `synod restore --cluster-dir` into fresh Multi-Paxos data directories, and a new
  //    cluster on them.
  const restored = path.join(dir, 'restored');
  const code = await quiet(() =>
    restoreCli([
      '--repo',
      repoDir,
      '--to',
      'latest',
      '--cluster-dir',
      restored,
      '--members',
      'x,y,z',
      '--cluster-name',
      CLUSTER,
      '--json',
    ]),
  );
  t.equal(code.value, 0, `synod restore --cluster-dir exits 0: ${code.out.slice(0, 300)}`);
  const info = JSON.parse(readFileSync(path.join(restored, 'x', 'restore.json'), 'utf8')) as {
    protocol?: string;
    index: number;
  };
  t.equal(info.protocol, 'paxos', 'restore.json says paxos');
  phase('restore cli');
  const dst = await startCluster(['x', 'y', 'z'], (id) => path.join(restored, id));
  phase('restored cluster up');
  // One range read of the whole key space (a strong read on the restored leader).
  const all = await dst.client.prefix('', { limit: 100_000 });
  if (all.outcome !== 'ok') throw new Error(`range: ${all.outcome}`);
  const served = new Map(all.value.kvs.map((kv) => [kv.key, kv.value]));
  const missing: string[] = [];
  for (const [k, v] of acked) {
    if ((served.get(k) ?? null) !== v) missing.push(`${k}: ${served.get(k)} != ${v}`);
  }
  const live = [...acked.values()].filter((v) => v !== null).length;
  t.same(
    missing.slice(0, 5),
    [],
    `the restored cluster serves every acknowledged key (${acked.size} compared)`,
  );
  t.equal(served.size, live, `and no other key (${live} live, deleted ones absent)`);
  const after = await dst.client.put('after/restore', 'yes', { timeoutMs: 20_000 });
  t.equal(after.outcome, 'ok', 'it takes new writes');
  t.ok(after.outcome === 'ok' && after.token.index > info.index, 'above the restored slot');
  t.equal((await dst.client.get('after/restore')).outcome, 'ok', 'and serves them');

  phase('checks');
  // 6. The CLI path against the Paxos nodes: synod backup full --cluster.
  const cliRepo = path.join(dir, 'cli-repo');
  const cli = await quiet(() =>
    backupCli([
      'full',
      '--cluster',
      src.peers.join(','),
      '--secret-file',
      secretFile,
      '--cluster-name',
      CLUSTER,
      '--repo',
      cliRepo,
      '--agent-id',
      'bk2',
      '--json',
    ]),
  );
  t.equal(cli.value, 0, `synod backup full --cluster exits 0: ${cli.out.slice(0, 400)}`);
  const summary = JSON.parse(cli.out) as { type: string; keyCount: number };
  t.equal(summary.type, 'full', 'it wrote a full backup');
  t.match(
    cli.err,
    /pulling decided slots from [abc], [abc], [abc]/,
    'the agent pulled (it never joined)',
  );
  t.ok(
    lines.some((l) => /pulling decided slots/.test(l)),
    'so did the first one',
  );
  phase('cli backup');

  // 7. The long-running agent (`synod backup agent`) on the same repository: it keeps the
  //    archive current while writes go on, and on stop has archived them.
  let release: () => void = () => {};
  const stop = new Promise<void>((r) => {
    release = r;
  });
  const agentRepo = await Repository.open(cliRepo);
  const running = runLiveAgent({
    cluster: src.peers.join(','),
    clusterName: CLUSTER,
    secret,
    repo: agentRepo,
    agentId: 'bk3',
    stop,
    onReady: () => {
      void (async () => {
        for (let i = 0; i < 20; i++) await put(`agent/${i}`, `g${i}`);
        const target = await src.commitIndex();
        await until('the agent to pull the writes', async () => {
          const s = await agentRepo.archive.list();
          const buffered = s.length > 0 ? Math.max(...s.map((x) => x.last)) : 0;
          return buffered >= target || target <= 0 ? true : undefined;
        }).catch(() => undefined);
        release();
      })();
    },
  });
  const ran = await running;
  const lastWrite = await src.commitIndex();
  t.ok(
    ran.archivedTo >= lastWrite - 1,
    `the standing agent archived to ${ran.archivedTo} (commit ${lastWrite})`,
  );
  const pitr2 = await restore(agentRepo, { kind: 'latest' }, { factory: () => new KvKeyedState() });
  t.equal(
    (pitr2.state.inner as KvKeyedState).machine.get('agent/19')?.value,
    'g19',
    'its archive restores the writes made while it ran',
  );
  phase('standing agent');
  const st = await src.nodes[0]?.status();
  t.same(st?.voters, ['a', 'b', 'c'], 'the configuration is unchanged');
  t.same(st?.learners, [], 'no learner was added');
});
