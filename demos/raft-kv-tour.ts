/**
 * The `synod demo` tour: a 3-node Raft cluster with the key-value state machine, in one
 * process, on the real clock, with the dashboard. It elects a leader, replicates writes,
 * kills the leader, re-elects, brings the old leader back and shows it caught up, then
 * lets the backup agent join as a learner, take a full and an incremental backup while the
 * data changes, and restores both points from the repository. Every step prints what
 * happened and what was measured.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedBackup } from '../actors/backup/embedded.js';
import { type KvKeyedState, kvNodeImage } from '../actors/backup/kv-state.js';
import { Repository } from '../actors/backup/repository.js';
import { catalogOf } from '../actors/backup/repository-summary.js';
import { restore } from '../actors/backup/restore.js';
import { KV_KIND } from '../actors/backup/state-kind.js';
import { KvStateMachine } from '../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../actors/kv/types.js';
import { SessionStateMachine } from '../actors/raft/session-state-machine.js';
import type { Clock } from '../lib/clock.js';
import { LocalCluster } from '../lib/cluster/local-cluster.js';
import { DashboardServer } from '../lib/dashboard/server.js';

export interface TourOptions {
  print?: (line: string) => void;
  clock?: Clock;
  /** Serve the dashboard on this port (0 = any free port; undefined = no dashboard). */
  dashboardPort?: number;
  dashboardHost?: string;
  /** When the port is taken, serve on a free port instead of failing. */
  dashboardPortFallback?: boolean;
  /** Called once the tour is done, with the live cluster (the CLI keeps it running). */
  onReady?: (
    cluster: LocalCluster<KvOp, KvResult>,
    dashboardUrl: string | undefined,
  ) => Promise<void>;
  nodes?: string[];
  /**
   * Pause this long between steps (and a fifth of it between the writes of a step), so a person
   * watching the dashboard can follow. Default 0: no pause (tests, pipes). `synod demo` takes
   * `--pace MS`, 1500 by default on a terminal.
   */
  paceMs?: number;
  /** How to pause (default: a timer on the tour's clock). Tests record the pauses with it. */
  pause?: (ms: number) => Promise<void>;
}

export interface TourResult {
  steps: string[];
  firstLeader: string;
  secondLeader: string;
  failoverMs: number;
  keysWritten: number;
}

export async function runTour(options: TourOptions = {}): Promise<TourResult> {
  const print = options.print ?? ((l: string) => console.log(l));
  const paceMs = options.paceMs ?? 0;
  if (!Number.isFinite(paceMs) || paceMs < 0)
    throw new RangeError(`paceMs must be a number of ms ≥ 0, got ${paceMs}`);
  const steps: string[] = [];
  const wait = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : options.pause
        ? options.pause(ms)
        : new Promise((resolve) => clock.setTimer(ms, resolve));
  const step = async (title: string) => {
    if (steps.length > 0) await wait(paceMs);
    steps.push(title);
    print(`\n== ${steps.length}. ${title}`);
  };
  const machines = new Map<string, KvStateMachine>();
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: options.nodes ?? ['a', 'b', 'c'],
    name: 'synod-demo',
    ...(options.clock ? { clock: options.clock } : {}),
    stateMachine: (id) => {
      const sm = new KvStateMachine();
      machines.set(id, sm);
      return sm;
    },
    describe: (op) => `${op.t} ${op.key}`,
  });
  cluster.extraControls.put = async (c) => {
    if (c.op !== 'put') return { ok: false, message: 'not a put' };
    const r = await cluster.propose({ t: 'put', key: c.key, value: c.value });
    return { ok: true, message: `put ${c.key} committed at index ${r.index}` };
  };
  const clock = cluster.clock;
  let dashboard: DashboardServer | undefined;
  let url: string | undefined;
  // The tour's backup repository: the backup step writes into it, and so do the dashboard's
  // "take backup" and "restore" controls, before and after the tour.
  const repoDir = await mkdtemp(path.join(os.tmpdir(), 'synod-demo-backup-'));
  const repo = await Repository.init(repoDir, { state: 'kv', clusterId: 'synod-demo' });
  let catalog: { id: string; type: string; index: number; time: string }[] = [];
  const refreshCatalog = async () => {
    catalog = catalogOf(await repo.list());
  };
  cluster.extraView = () => ({ backups: catalog });
  let backingUp = false;
  cluster.extraControls.backup = async () => {
    if (backingUp) return { ok: false, message: 'a backup is already running' };
    backingUp = true;
    const kind = catalog.some((b) => b.type === 'full') ? 'incr' : 'full';
    // Shown while it runs: the page's event log (the time keeps two runs' lines apart, as
    // the page shows a line once), and the agent in the learners.
    cluster.narrate(
      `${kind} backup running since ${new Date(clock.wallNow()).toISOString()}: the backup agent joins as a learner, catches up and backs up`,
    );
    const agent = await startEmbeddedBackup(cluster, repo).catch((err: Error) => {
      backingUp = false;
      throw err;
    });
    try {
      await agent.live.catchUp(10_000);
      const b = await agent.live.backup(kind);
      await agent.live.leave();
      await refreshCatalog();
      const line = `${b.type} backup ${b.id} at index ${b.index} (the agent joined as a learner, backed up and left)`;
      cluster.narrate(line);
      return { ok: true, message: line };
    } finally {
      backingUp = false;
      await agent.stop();
    }
  };
  cluster.extraControls.restore = async (c) => {
    if (c.op !== 'restore') return { ok: false, message: 'not a restore' };
    if (catalog.length === 0) return { ok: false, message: 'no backup yet: take one first' };
    const r = await restore(
      repo,
      c.backup ? { kind: 'backup', id: c.backup } : { kind: 'latest' },
      { factory: KV_KIND.factory },
    );
    const kv = (r.state.inner as KvKeyedState).machine;
    const line = `restored ${c.backup ?? 'the latest state'} (index ${r.index}, digest ${r.digest.slice(0, 12)}… checked): ${kv.range({ start: '' }).count} keys, into a fresh state machine; the running cluster is untouched`;
    cluster.narrate(line);
    return { ok: true, message: line };
  };
  try {
    if (options.dashboardPort !== undefined) {
      dashboard = new DashboardServer({
        source: cluster,
        port: options.dashboardPort,
        ...(options.dashboardHost ? { host: options.dashboardHost } : {}),
        ...(options.clock ? { clock: options.clock } : {}),
      });
      try {
        url = (await dashboard.start()).url;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !options.dashboardPortFallback)
          throw err;
        print(
          `port ${options.dashboardPort} is in use; serving the dashboard on a free port instead`,
        );
        dashboard = new DashboardServer({
          source: cluster,
          port: 0,
          ...(options.dashboardHost ? { host: options.dashboardHost } : {}),
          ...(options.clock ? { clock: options.clock } : {}),
        });
        url = (await dashboard.start()).url;
      }
      print(`dashboard: ${url}`);
    }

    await step('Start three nodes and elect a leader');
    let t0 = clock.now();
    await cluster.start();
    const first = await cluster.waitForLeader(10_000);
    const term1 = cluster.raft(first)?.status().term ?? 0;
    const say = (line: string) => {
      print(line);
      cluster.narrate(line);
    };
    say(
      `leader ${first} elected in term ${term1} after ${Math.round(clock.now() - t0)} ms (pre-vote and check-quorum on)`,
    );

    await step('Replicate writes');
    let written = 0;
    for (const [key, value] of [
      ['greeting', 'hello'],
      ['city', 'Lisbon'],
      ['color', 'teal'],
      ['planet', 'Mars'],
      ['answer', '42'],
    ] as const) {
      if (written > 0) await wait(paceMs / 5);
      const r = await cluster.propose({ t: 'put', key, value });
      written++;
      say(
        `put ${key}=${value} → committed at log index ${r.index}, revision ${(r.result as { rev: number }).rev}`,
      );
    }
    const target = cluster.raft(first)?.status().commit ?? 0;
    await cluster.waitFor(
      () =>
        cluster.ids().every((id) => (cluster.raft(id)?.status().applied ?? 0) >= target)
          ? true
          : undefined,
      10_000,
      'every node to apply the writes',
    );
    say(
      `every node applied index ${target}: ${cluster
        .ids()
        .map((id) => `${id}:${machines.get(id)?.get('city')?.value}`)
        .join(' ')}`,
    );

    await step(`Kill the leader (${first})`);
    t0 = clock.now();
    await cluster.stop(first);
    const second = await cluster.waitForLeader(10_000, term1 + 1);
    const failoverMs = Math.round(clock.now() - t0);
    say(
      `${second} took over in term ${cluster.raft(second)?.status().term} after ${failoverMs} ms`,
    );
    const r = await cluster.propose({ t: 'put', key: 'after-failover', value: 'still writable' });
    written++;
    say(`put after-failover → committed at index ${r.index} with two of three nodes`);

    await step(`Bring ${first} back`);
    await cluster.restart(first);
    const commit = cluster.raft(second)?.status().commit ?? 0;
    await cluster.waitFor(
      () => ((cluster.raft(first)?.status().applied ?? 0) >= commit ? true : undefined),
      10_000,
      `${first} to catch up`,
    );
    const back = machines.get(first)?.get('after-failover')?.value;
    say(
      `${first} rejoined as ${cluster.raft(first)?.status().role}, caught up to index ${commit}, and has after-failover=${back}`,
    );

    await step('Back up the cluster with the backup agent and restore it');
    written += await backupStep(cluster, repo, say);
    await refreshCatalog();

    print(`\nTour complete: ${written} writes, failover ${failoverMs} ms.`);
    if (options.onReady) await options.onReady(cluster, url);
    return { steps, firstLeader: first, secondLeader: second, failoverMs, keysWritten: written };
  } finally {
    await dashboard?.stop();
    await cluster.shutdown();
    await rm(repoDir, { recursive: true, force: true });
  }
}

/**
 * The backup step (owned by the backup agent, docs/backup.md): the agent joins as a learner,
 * takes a full backup, the data changes, it takes an incremental one and leaves; both points
 * are restored from the repository, the latest one through the image a node starts from.
 * Returns the number of writes it made.
 */
async function backupStep(
  cluster: LocalCluster<KvOp, KvResult>,
  repo: Repository,
  say: (line: string) => void,
): Promise<number> {
  {
    const agent = await startEmbeddedBackup(cluster, repo);
    let full: Awaited<ReturnType<typeof agent.live.backup>>;
    let incr: Awaited<ReturnType<typeof agent.live.backup>>;
    try {
      const leader = cluster.leader() as string;
      say(
        `backup agent joined as a learner: it receives the committed log but does not vote (voters: ${cluster.raft(leader)?.status().membership.voters.join(', ')})`,
      );
      await agent.live.catchUp(10_000);
      full = await agent.live.backup('full');
      say(
        `full backup ${full.id} at log index ${full.index}: ${full.chunks} chunk(s), ${full.bytes} bytes, written while the cluster kept running`,
      );
      await cluster.propose({ t: 'put', key: 'city', value: 'Porto' });
      await cluster.propose({ t: 'del', key: 'color' });
      say('changed city=Porto and deleted color on the live cluster');
      await agent.live.catchUp(10_000);
      incr = await agent.live.backup('incr');
      say(
        `incremental backup ${incr.id} at index ${incr.index}: ${incr.records} records (only what changed since ${incr.parent})`,
      );
      await agent.live.leave();
      say('the agent archived the log it received and left the configuration');
    } finally {
      await agent.stop();
    }
    const show = (kv: KvStateMachine) =>
      `${kv.range({ start: '' }).count} keys, city=${kv.get('city')?.value ?? '(none)'}, color=${kv.get('color')?.value ?? '(deleted)'}`;
    const atFull = await restore(
      repo,
      { kind: 'backup', id: full.id },
      { factory: KV_KIND.factory },
    );
    say(
      `restored ${full.id} (index ${atFull.index}): ${show((atFull.state.inner as KvKeyedState).machine)}`,
    );
    const latest = await restore(repo, { kind: 'latest' }, { factory: KV_KIND.factory });
    // The latest state through the snapshot image a `synod node` data directory holds.
    const node = new KvStateMachine();
    new SessionStateMachine(node).restore(kvNodeImage(latest.state, latest.index));
    say(
      `restored latest (index ${latest.index}, digest ${latest.digest.slice(0, 12)}… checked) into a fresh node's state machine: ${show(node)}`,
    );
    return 2;
  }
}
