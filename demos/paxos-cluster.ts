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
 * 5. backup and restore: the backup agent cannot join a Multi-Paxos cluster yet
 *    (docs/backup.md, "On Multi-Paxos"), and the tour says so instead of pretending.
 *
 * Then, on a terminal, the cluster stays up until Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Clock, systemClock } from '../lib/clock.js';
import { DashboardServer } from '../lib/dashboard/server.js';
import { connect, type RemoteKvClient } from '../lib/kv-client/connect.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import type { NodeStatus } from '../lib/node/node-admin.js';
import { NodeDashboardSource } from '../lib/node/node-dashboard.js';
import { type RunningPaxosNode, startPaxosNode } from '../lib/node/paxos-node.js';
import type { RunningNode } from '../lib/node/synod-node.js';

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
  /** False: the backup step cannot run on Multi-Paxos yet (said in the tour). */
  backedUp: boolean;
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
    if (options.dashboardPort !== undefined) {
      source = new NodeDashboardSource(nodes.get('a') as unknown as RunningNode);
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

    await step('Backup and restore');
    print(
      'not on Multi-Paxos yet: the backup agent joins a cluster as a Raft learner, and a Multi-Paxos cluster has no way to add a non-voting learner (docs/backup.md, "On Multi-Paxos"). `synod demo` (Raft) shows the backup agent taking a full and an incremental backup and restoring both.',
    );

    const replicas: Record<string, Record<string, string | undefined>> = {};
    for (const id of IDS) {
      const sm = nodes.get(id)?.sm;
      replicas[id] = Object.fromEntries(
        [...KEYS.map(([k]) => k), 'after-failover'].map((k) => [k, sm?.get(k)?.value]),
      );
    }
    print(`\nTour complete: ${writes} writes, failover ${failoverMs} ms.`);
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
      backedUp: false,
    };
  } finally {
    await client?.disconnect().catch(() => undefined);
    source?.close();
    await dashboard?.stop().catch(() => undefined);
    await Promise.all([...nodes.values()].map((n) => n.stop().catch(() => undefined)));
    await rm(dir, { recursive: true, force: true });
  }
}
