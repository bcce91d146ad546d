/**
 * The `synod demo` tour: a 3-node Raft cluster with the key-value state machine, in one
 * process, on the real clock, with the dashboard. It elects a leader, replicates writes,
 * kills the leader, re-elects, brings the old leader back and shows it caught up, then
 * takes a snapshot backup and restores it into a fresh node. Every step prints what
 * happened and what was measured.
 */
import { KvStateMachine } from '../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../actors/kv/types.js';
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
  const steps: string[] = [];
  const step = (title: string) => {
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

    step('Start three nodes and elect a leader');
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

    step('Replicate writes');
    let written = 0;
    for (const [key, value] of [
      ['greeting', 'hello'],
      ['city', 'Lisbon'],
      ['color', 'teal'],
      ['planet', 'Mars'],
      ['answer', '42'],
    ] as const) {
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

    step(`Kill the leader (${first})`);
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

    step(`Bring ${first} back`);
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

    step('Back up the state and restore it into a fresh node');
    const leaderSm = machines.get(second);
    if (!leaderSm) throw new Error('no state machine on the leader');
    const image = leaderSm.snapshot();
    const restored = new KvStateMachine();
    restored.restore(image);
    const keys = restored.range({ start: '' }).count;
    say(
      `snapshot of ${image.byteLength} bytes at revision ${leaderSm.revision} restored: ${keys} keys, city=${restored.get('city')?.value}`,
    );

    print(`\nTour complete: ${written} writes, failover ${failoverMs} ms.`);
    if (options.onReady) await options.onReady(cluster, url);
    return { steps, firstLeader: first, secondLeader: second, failoverMs, keysWritten: written };
  } finally {
    await dashboard?.stop();
    await cluster.shutdown();
  }
}
