/**
 * `synod demo --protocol paxos`: the Multi-Paxos tour on a real cluster. Three Multi-Paxos nodes
 * run in this process, each as `synod node --protocol paxos` runs one: their own data directory
 * with fsync, the WebSocket transport on loopback with a cluster secret, the KV service and the
 * admin actor. The dashboard is node a's (the one `synod node --dashboard` serves), with its
 * stop/restart, isolate/heal, transfer and write controls. The tour:
 *
 * 1. start the three nodes; one proposer wins phase 1 and becomes the distinguished proposer;
 * 2. writes through the KV client, each chosen in its own slot with phase 2 only;
 * 3. the distinguished proposer's node is stopped (its Paxos actors and KV service, storage
 *    closed); another proposer times out, wins phase 1 with a higher ballot, and writes go on
 *    with two of three nodes;
 * 4. the stopped node restarts from its data directory and catches up;
 * 5. backup and restore: the backup agent (`LivePaxosBackup`, actors/backup/paxos-learner.ts)
 *    starts with its own node id on its own WebSocket transport with the cluster secret and
 *    pulls the decided slots from the members' learners; it never joins the configuration
 *    (Multi-Paxos membership is static). It takes a full backup after the writes; a put and a
 *    delete change the data; it takes an incremental one and stops. Both backups are restored
 *    from the repository into fresh in-memory state machines, and each restored state is
 *    compared key by key (value, revisions, version) with what the cluster held at that
 *    backup's slot.
 *
 * The dashboard's "take backup" and "restore" controls write into the same repository
 * (lib/node/node-backups.ts: a backup runs the agent as `synod backup` does; a restore writes
 * a new cluster's data directories next to it). Then, on a terminal, the cluster stays up
 * until Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { BackupSummary } from '../actors/backup/agent.js';
import type { KvKeyedState } from '../actors/backup/kv-state.js';
import { LivePaxosBackup } from '../actors/backup/paxos-learner.js';
import { Repository } from '../actors/backup/repository.js';
import { restore } from '../actors/backup/restore.js';
import { PAXOS_KV_KIND } from '../actors/backup/state-kind.js';
import type { KvStateMachine } from '../actors/kv/state-machine.js';
import type { KeyValue, KvOp } from '../actors/kv/types.js';
import { ActorSystem } from '../lib/actor-system.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { DashboardServer } from '../lib/dashboard/server.js';
import { connect, type RemoteKvClient } from '../lib/kv-client/connect.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { NodeStatus } from '../lib/node/node-admin.js';
import { NodeBackups } from '../lib/node/node-backups.js';
import { NodeDashboardSource } from '../lib/node/node-dashboard.js';
import { type RunningPaxosNode, startPaxosNode } from '../lib/node/paxos-node.js';
import type { RunningNode } from '../lib/node/synod-node.js';
import { randomFromEntropy } from '../lib/random.js';
import { WebSocketTransport } from '../transports/websocket/transport.js';

export interface PaxosTourOptions {
  print?: (line: string) => void;
  /** Serve the dashboard on this port (0 = any free port; undefined = no dashboard). */
  dashboardPort?: number;
  dashboardHost?: string;
  /** When the port is taken, serve on a free port instead of failing. */
  dashboardPortFallback?: boolean;
  /** Pause between steps (ms) so a person can follow on the dashboard (default 0). */
  paceMs?: number;
  /** How to pause (default: a timer). Tests record the pauses with it. */
  pause?: (ms: number) => Promise<void>;
  /** Called once the tour is done, with the nodes (the CLI keeps them up until Ctrl-C). */
  onReady?: (nodes: RunningPaxosNode[], dashboardUrl: string | undefined) => Promise<void>;
  /** Where the nodes log (default: nothing; warnings and errors matter only when debugging). */
  logger?: Logger;
}

export interface PaxosTourResult {
  steps: string[];
  firstLeader: string;
  firstBallot: string;
  secondLeader: string;
  secondBallot: string;
  failoverMs: number;
  writes: number;
  /** Every node's value of every key written, at the end (all equal when caught up). */
  replicas: Record<string, Record<string, string | undefined>>;
  /** True once step 5 took both backups and both restores matched the cluster. */
  backedUp: boolean;
  /** Step 5: the backups taken and how their restores compared with the cluster. */
  backups: PaxosTourBackup[];
  /** Writes of step 5 (a put and a delete between the full and the incremental backup). */
  backupWrites: number;
}

export interface PaxosTourBackup {
  id: string;
  type: string;
  /** The slot the backup holds the state at. */
  index: number;
  /** The slot the restore from the repository reached (equal to `index`). */
  restoredIndex: number;
  /** Keys the cluster held at `index`, and keys the restored state holds. */
  clusterKeys: number;
  restoredKeys: number;
  /** Keys compared (the union of both), and those that differ (empty when they match). */
  compared: number;
  differing: string[];
}

const IDS = ['a', 'b', 'c'] as const;
const KEYS = [
  ['greeting', 'hello'],
  ['city', 'Lisbon'],
  ['color', 'teal'],
  ['planet', 'Mars'],
  ['answer', '42'],
] as const;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function runPaxosTour(options: PaxosTourOptions = {}): Promise<PaxosTourResult> {
  const print = options.print ?? ((l: string) => console.log(l));
  const clock: Clock = systemClock;
  const paceMs = options.paceMs ?? 0;
  if (!Number.isFinite(paceMs) || paceMs < 0)
    throw new RangeError(`paceMs must be a number of ms ≥ 0, got ${paceMs}`);
  const wait = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : options.pause
        ? options.pause(ms)
        : new Promise((resolve) => clock.setTimer(ms, resolve));
  const steps: string[] = [];
  const step = async (title: string) => {
    if (steps.length > 0) await wait(paceMs);
    steps.push(title);
    print(`\n== ${steps.length}. ${title}`);
  };
  /** Polls `probe` every 50 ms until it returns a value; throws after `ms`. */
  const until = async <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) => {
    const end = clock.now() + ms;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (clock.now() > end) throw new Error(`the Paxos tour gave up waiting for ${what}`);
      await new Promise<void>((r) => clock.setTimer(50, r));
    }
  };

  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-demo-paxos-'));
  const secret = randomBytes(24).toString('hex');
  const adminSecret = randomBytes(24).toString('hex');
  const ports = new Map<string, number>();
  for (const id of IDS) ports.set(id, await freePort());
  const url = (id: string) => `ws://127.0.0.1:${ports.get(id)}`;
  const nodes = new Map<string, RunningPaxosNode>();
  let dashboard: DashboardServer | undefined;
  let source: NodeDashboardSource | undefined;
  let client: RemoteKvClient | undefined;
  let dashboardUrl: string | undefined;
  let repo: Repository | undefined;
  const statuses = async (): Promise<Map<string, NodeStatus>> => {
    const out = new Map<string, NodeStatus>();
    await Promise.all(
      [...nodes.values()].map(async (n) => {
        const s = await n.status().catch(() => undefined);
        if (s) out.set(n.id, s);
      }),
    );
    return out;
  };
  /** The distinguished proposer every running node agrees on, with its ballot. */
  const agreedLeader = async (except?: string) => {
    const all = await statuses();
    const running = [...all.values()].filter((s) => s.role !== 'stopped');
    const leader = running.find((s) => s.role === 'leader' && s.id !== except);
    if (!leader || running.some((s) => s.paxos?.distinguished !== leader.id)) return undefined;
    return { id: leader.id, ballot: leader.paxos?.ballot ?? '?' };
  };
  try {
    await step('Start three Multi-Paxos nodes and elect a distinguished proposer');
    let t0 = clock.now();
    for (const id of IDS) {
      nodes.set(
        id,
        await startPaxosNode({
          id,
          listen: { host: '127.0.0.1', port: ports.get(id) as number },
          peers: IDS.filter((p) => p !== id).map((p) => `${p}=${url(p)}`),
          dataDir: path.join(dir, id),
          cluster: 'synod-demo-paxos',
          secret,
          adminSecret,
          logger: options.logger ?? silentLogger,
        }),
      );
    }
    // The tour's backup repository (for a Multi-Paxos cluster): step 5 writes into it, and so
    // do the dashboard's "take backup" and "restore" controls, before and after the tour.
    const repoDir = path.join(dir, 'backups');
    repo = await Repository.init(repoDir, {
      state: 'kv',
      protocol: 'paxos',
      clusterId: 'synod-demo-paxos',
      now: clock.wallNow(),
    });
    if (options.dashboardPort !== undefined) {
      const backups = new NodeBackups({
        repoDir,
        contact: IDS.map((id) => `${id}=${url(id)}`).join(','),
        clusterName: 'synod-demo-paxos',
        secret,
        listenHost: '127.0.0.1',
        advertiseHost: '127.0.0.1',
        clock,
        log: (line) => print(`dashboard: ${line}`),
      });
      source = new NodeDashboardSource(nodes.get('a') as unknown as RunningNode, backups);
      const serve = (port: number) =>
        new DashboardServer({
          source: source as NodeDashboardSource,
          port,
          ...(options.dashboardHost ? { host: options.dashboardHost } : {}),
        });
      dashboard = serve(options.dashboardPort);
      try {
        dashboardUrl = (await dashboard.start()).url;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !options.dashboardPortFallback)
          throw err;
        print(
          `port ${options.dashboardPort} is in use; serving the dashboard on a free port instead`,
        );
        dashboard = serve(0);
        dashboardUrl = (await dashboard.start()).url;
      }
      print(`dashboard: ${dashboardUrl}`);
    }
    const first = await until('a distinguished proposer', () => agreedLeader());
    print(
      `nodes a, b, c up on ${IDS.map((id) => `127.0.0.1:${ports.get(id)}`).join(', ')} (data in ${dir})`,
    );
    print(
      `${first.id} won phase 1 with ballot ${first.ballot} after ${Math.round(clock.now() - t0)} ms: it is the distinguished proposer, and every slot after this takes phase 2 only`,
    );

    await step('Replicate writes, one slot each');
    client = await connect(
      IDS.map((id) => `${id}=${url(id)}`),
      { secret, cluster: 'synod-demo-paxos', timeoutMs: 10_000 },
    );
    let writes = 0;
    for (const [key, value] of KEYS) {
      if (writes > 0) await wait(paceMs / 5);
      const r = await client.put(key, value);
      if (r.outcome !== 'ok')
        throw new Error(
          `the Paxos tour's write ${key} failed: ${r.error.code}: ${r.error.message}`,
        );
      writes++;
      print(
        `put ${key}=${value} → chosen in slot ${r.token.index}, revision ${r.value.rev} (served by ${r.servedBy})`,
      );
    }
    const chosen = (await nodes.get(first.id)?.status())?.commitIndex ?? 0;
    await until('every node to apply the writes', async () => {
      const s = await statuses();
      return [...s.values()].every((x) => x.appliedIndex >= chosen) ? true : undefined;
    });
    print(
      `every node applied slot ${chosen}: ${IDS.map((id) => `${id}:${nodes.get(id)?.sm.get('city')?.value}`).join(' ')}`,
    );

    await step(`Stop the distinguished proposer (${first.id})`);
    t0 = clock.now();
    const stopped = nodes.get(first.id) as RunningPaxosNode;
    const r1 = await stopped.consensus.stop();
    print(`${r1.message}`);
    const second = await until('a new distinguished proposer', () => agreedLeader(first.id));
    const failoverMs = Math.round(clock.now() - t0);
    print(
      `${second.id} timed out waiting for ${first.id}'s heartbeats, won phase 1 with the higher ballot ${second.ballot} after ${failoverMs} ms, and re-proposed whatever ${first.id} might have had chosen`,
    );
    const after = await client.put('after-failover', 'still writable');
    if (after.outcome !== 'ok')
      throw new Error(
        `the write after failover failed: ${after.error.code}: ${after.error.message}`,
      );
    writes++;
    print(
      `put after-failover → chosen in slot ${after.token.index} with two of three nodes (served by ${after.servedBy})`,
    );

    await step(`Bring ${first.id} back`);
    const r2 = await stopped.consensus.restart();
    if (!r2.ok) throw new Error(`restarting ${first.id} failed: ${r2.message}`);
    print(r2.message);
    const target = (await nodes.get(second.id)?.status())?.commitIndex ?? 0;
    await until(`${first.id} to catch up`, async () => {
      const s = await stopped.status().catch(() => undefined);
      return s && s.appliedIndex >= target && s.paxos?.distinguished ? s : undefined;
    });
    const back = (await stopped.status()) as NodeStatus;
    print(
      `${first.id} restarted from its data directory, caught up to slot ${target}, follows ${back.paxos?.distinguished ?? '?'}, and has after-failover=${stopped.sm.get('after-failover')?.value}`,
    );

    await step('Back up the cluster with the backup agent and restore it');
    const bk = await backupStep({
      nodes,
      member: () => nodes.get(second.id) as RunningPaxosNode,
      leader: async () => (await agreedLeader())?.id,
      repo: repo as Repository,
      client,
      secret,
      clock,
      say: print,
      until,
    });
    const replicas: Record<string, Record<string, string | undefined>> = {};
    for (const id of IDS) {
      const sm = nodes.get(id)?.sm;
      replicas[id] = Object.fromEntries(
        [...KEYS.map(([k]) => k), 'after-failover'].map((k) => [k, sm?.get(k)?.value]),
      );
    }
    print(
      `\nTour complete: ${writes} writes, failover ${failoverMs} ms. Then ${bk.writes} more (a put and a delete) between a full and an incremental backup, both restored and equal to the cluster at their slots, key by key.`,
    );
    if (options.onReady) await options.onReady([...nodes.values()], dashboardUrl);
    return {
      steps,
      firstLeader: first.id,
      firstBallot: first.ballot,
      secondLeader: second.id,
      secondBallot: second.ballot,
      failoverMs,
      writes,
      replicas,
      backedUp: true,
      backups: bk.backups,
      backupWrites: bk.writes,
    };
  } finally {
    await client?.disconnect().catch(() => undefined);
    source?.close();
    await dashboard?.stop().catch(() => undefined);
    await Promise.all([...nodes.values()].map((n) => n.stop().catch(() => undefined)));
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every key's value, revisions and version, as one comparable line per key. */
function stateOf(sm: KvStateMachine): Map<string, string> {
  return new Map(
    sm
      .range({ start: '' })
      .kvs.map((kv: KeyValue) => [
        kv.key,
        `${kv.value} (create ${kv.createRev}, mod ${kv.modRev}, version ${kv.version})`,
      ]),
  );
}

function compareStates(cluster: Map<string, string>, restored: Map<string, string>) {
  const keys = new Set([...cluster.keys(), ...restored.keys()]);
  const differing: string[] = [];
  for (const k of keys) {
    const a = cluster.get(k);
    const b = restored.get(k);
    if (a !== b) differing.push(`${k}: cluster ${a ?? '(absent)'}, restored ${b ?? '(absent)'}`);
  }
  return { compared: keys.size, differing };
}

interface BackupStepContext {
  nodes: Map<string, RunningPaxosNode>;
  /** A running member whose replica the backups are compared with. */
  member: () => RunningPaxosNode;
  /** The distinguished proposer now (the agent asks its learner first). */
  leader: () => Promise<string | undefined>;
  repo: Repository;
  client: RemoteKvClient;
  secret: string;
  clock: Clock;
  say: (line: string) => void;
  until: <T>(what: string, probe: () => Promise<T | undefined>, ms?: number) => Promise<T>;
}

/**
 * Step 5: the backup agent on Multi-Paxos (docs/backup.md, "On Multi-Paxos"). It runs on its
 * own transport with its own node id and pulls decided slots from the members' learners (it is
 * never a member); a full backup, a put and a delete, an incremental one; then both are
 * restored from the repository into fresh state machines and compared, key by key, with the
 * state the cluster held at each backup's slot. Throws when a restore differs.
 */
async function backupStep(
  ctx: BackupStepContext,
): Promise<{ backups: PaxosTourBackup[]; writes: number }> {
  const { nodes, repo, clock, say } = ctx;
  const agentId = 'tour-backup';
  const random = randomFromEntropy();
  const transport = await WebSocketTransport.create({
    nodeId: agentId,
    cluster: 'synod-demo-paxos',
    listen: { host: '127.0.0.1', port: 0 },
    peers: [...nodes.values()].map((n) => `${n.id}=${n.url}`),
    clock,
    random: random.fork(),
    secret: ctx.secret,
    logger: { log: () => {} },
  });
  const system = new ActorSystem({
    nodeId: agentId,
    clock,
    random,
    transport,
    logger: { log: () => {} },
  });
  /**
   * The state a running node holds once it applied slot `index`, with its KV revision (read in
   * the same turn). Slots after `index` that are no-ops leave both unchanged; the restore of a
   * backup at `index` must reach the same revision, which says no write came in between.
   */
  const clusterAt = async (index: number) => {
    const node = ctx.member();
    await ctx.until(`${node.id} to apply slot ${index}`, async () =>
      (await node.status()).appliedIndex >= index ? true : undefined,
    );
    return { state: stateOf(node.sm), revision: node.sm.revision, node: node.id };
  };
  /** The highest slot any running member knows chosen (an acknowledged write's is in it). */
  const chosenIndex = async () => {
    let best = 0;
    for (const n of nodes.values()) {
      const s = await n.status().catch(() => undefined);
      if (s && s.role !== 'stopped') best = Math.max(best, s.commitIndex);
    }
    return best;
  };
  const taken: {
    summary: BackupSummary;
    cluster: Awaited<ReturnType<typeof clusterAt>>;
  }[] = [];
  let writes = 0;
  try {
    const live = await LivePaxosBackup.start<KvOp>({
      system,
      members: [...nodes.keys()],
      membership: { committedIndex: chosenIndex, leader: ctx.leader },
      repo,
      clusterId: 'synod-demo-paxos',
      kind: PAXOS_KV_KIND,
      log: (line) => say(`backup agent ${agentId}: ${line}`),
    });
    try {
      const voters = (await ctx.member().status()).voters;
      say(
        `the agent is no member (voters stay ${voters.join(', ')}): it asks the members' learners for the decided slots, as a lagging learner does, and adds nothing to any quorum`,
      );
      await live.catchUp(20_000);
      const full = await live.backup('full');
      taken.push({ summary: full, cluster: await clusterAt(full.index) });
      say(
        `full backup ${full.id} at slot ${full.index}: ${full.records} records (the keys, the KV revision and the client sessions), ${full.chunks} chunk(s), ${full.bytes} bytes, taken while the cluster kept running`,
      );
      const put = await ctx.client.put('city', 'Porto');
      if (put.outcome !== 'ok')
        throw new Error(`the backup step's put failed: ${put.error.code}: ${put.error.message}`);
      writes++;
      const del = await ctx.client.delete('color');
      if (del.outcome !== 'ok')
        throw new Error(`the backup step's delete failed: ${del.error.code}: ${del.error.message}`);
      writes++;
      say(
        `changed city=Porto (slot ${put.token.index}) and deleted color (slot ${del.token.index}) on the live cluster`,
      );
      await live.catchUp(20_000);
      const incr = await live.backup('incr');
      taken.push({ summary: incr, cluster: await clusterAt(incr.index) });
      say(
        `incremental backup ${incr.id} at slot ${incr.index}: ${incr.records} records (only what changed since ${incr.parent})`,
      );
      await live.leave();
      const pulled = live.pullerView();
      say(
        `the agent archived the slots it pulled (${pulled?.requests ?? 0} requests, ${pulled?.resets ?? 0} snapshots taken) and stopped`,
      );
    } catch (err) {
      await live.leave().catch(() => undefined);
      throw err;
    }
  } finally {
    await system.shutdown().catch(() => undefined);
    await transport.close(500).catch(() => undefined);
  }
  const backups: PaxosTourBackup[] = [];
  for (const { summary, cluster } of taken) {
    const r = await restore(
      repo,
      { kind: 'backup', id: summary.id },
      { factory: PAXOS_KV_KIND.factory },
    );
    const restored = stateOf((r.state.inner as KvKeyedState).machine);

    const machine = (r.state.inner as KvKeyedState).machine;
    const { compared, differing } = compareStates(cluster.state, restored);
    if (machine.revision !== cluster.revision)
      differing.push(
        `revision: cluster ${cluster.revision} (${cluster.node}), restored ${machine.revision}: a write the tour did not make came in (a put from the dashboard?)`,
      );
    const city = restored.get('city')?.split(' (')[0] ?? '(none)';
    const color = restored.get('color')?.split(' (')[0] ?? '(deleted)';
    if (r.index !== summary.index || differing.length > 0)
      throw new Error(
        `restoring ${summary.type} backup ${summary.id} (slot ${summary.index}) gave slot ${r.index} and ${differing.length} differing key(s): ${differing.slice(0, 3).join('; ')}`,
      );
    say(
      `restored ${summary.type} ${summary.id} (slot ${r.index}, digest ${r.digest.slice(0, 12)}… checked) into a fresh state machine: ${restored.size} keys, city=${city}, color=${color}; all ${compared} keys equal what the cluster held at slot ${summary.index} (value, revisions, version; revision ${machine.revision} on both)`,
    );
    backups.push({
      id: summary.id,
      type: summary.type,
      index: summary.index,
      restoredIndex: r.index,
      clusterKeys: cluster.state.size,
      restoredKeys: restored.size,
      compared,
      differing,
    });
  }
  return { backups, writes };
}
