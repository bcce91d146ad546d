/**
 * `npm run bench -- eventual [--runs=N] [--seconds=S] [--in-flight=K]`: the leaderless store on
 * 5 in-process nodes (5 actor systems + a client system on the in-memory transport, real clock,
 * msgpack on every message; actors/gossip/embedded.ts), driven through the KV client API
 * (`LeaderlessKvClient`) with K requests in flight:
 *  - writes/s and reads/s at W=R=1 and W=R=quorum (N=3), random keys out of 10 000;
 *  - convergence time after a partition heals: 2+3 split, 1 000 W=1 writes on each side
 *    (sloppy quorum: hints), heal, time until every key range has equal Merkle roots on all its
 *    replicas and no hint is left.
 *
 * Robust to a loaded machine: every run measures, back to back, a **baseline** — the same K
 * asks in flight to a trivial echo actor on the replica nodes, through the same transport and
 * codec — and then each workload, so a ratio to the baseline compares numbers taken under the
 * same load. Runs are repeated (median, min, max), and each measurement is also given per CPU
 * second of this process (`process.cpuUsage`), which other processes' load disturbs much less
 * than wall time. The load average before and after is recorded.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { type EventualCluster, startEventualCluster } from '../actors/gossip/embedded.js';
import { Actor, type Replies } from '../lib/actor.js';
import { SystemClock } from '../lib/clock.js';
import type { LeaderlessKvClient } from '../lib/kv-client/leaderless.js';
import type { KvResponse } from '../lib/kv-client/response.js';
import { Random } from '../lib/random.js';
import { type BenchMain, type Measurement, report, summarize } from './harness.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const LEFT = ['a', 'b'];
const RIGHT = ['c', 'd', 'e'];
const KEYS = 10_000;

function opt(argv: string[], name: string, fallback: number): number {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  const v = a === undefined ? fallback : Number(a.slice(name.length + 3));
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

type EchoMsg = { readonly type: 'echo'; readonly n: number } & Replies<number>;
class Echo extends Actor<EchoMsg> {
  receive(msg: EchoMsg): void {
    this.ctx.reply(msg, msg.n);
  }
}

interface Rate {
  /** Completed operations per wall-clock second. */
  wall: number;
  /** Completed operations per CPU second of this process. */
  cpu: number;
  errors: number;
}

/** Runs `op` with `inFlight` concurrent loops for `seconds`. */
async function drive(
  seconds: number,
  inFlight: number,
  op: (i: number) => Promise<boolean>,
): Promise<Rate> {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const end = start + seconds * 1000;
  let done = 0;
  let errors = 0;
  let i = 0;
  const worker = async () => {
    while (performance.now() < end) {
      if (await op(i++)) done++;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const wallS = (performance.now() - start) / 1000;
  const c = process.cpuUsage(cpu0);
  const cpuS = (c.user + c.system) / 1e6;
  return { wall: done / wallS, cpu: done / Math.max(cpuS, 1e-6), errors };
}

const okay = (r: KvResponse<unknown>) => r.outcome === 'ok';

async function waitUntil(
  clock: SystemClock,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const end = clock.now() + timeoutMs;
  while (!(await probe())) {
    if (clock.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => clock.setTimer(20, r));
  }
}

async function convergence(
  c: EventualCluster,
  clock: SystemClock,
  kv: LeaderlessKvClient,
  rnd: Random,
  run: number,
): Promise<{ ms: number; writes: number }> {
  c.split(LEFT, RIGHT);
  // failure detection marks the other side dead, so writes go to stand-ins with hints
  await waitUntil(clock, 'the split to be detected', async () => {
    const s = await c.snapshot('a');
    return s?.members.filter((m) => RIGHT.includes(m.id) && m.state === 'dead').length === 3;
  });
  let writes = 0;
  for (const side of [LEFT, RIGHT]) {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++)
      ops.push(
        kv
          .put(`p${run}.${rnd.int(KEYS)}`, `v${i}`, { w: 'one', node: side[i % side.length] })
          .then((r) => {
            if (r.outcome === 'ok') writes++;
          }),
      );
    await Promise.all(ops);
  }
  const healedAt = clock.now();
  c.heal();
  await waitUntil(clock, 'convergence', async () => (await c.divergence()) === 0);
  const ms = clock.now() - healedAt;
  await c.ready(); // every member alive again before the next run
  return { ms, writes };
}

export const main: BenchMain = async (argv) => {
  const runs = opt(argv, 'runs', 5);
  const seconds = opt(argv, 'seconds', 1.5);
  const inFlight = opt(argv, 'in-flight', 64);
  const uptimeBefore = uptime();
  const loadBefore = loadavg();
  const clock = new SystemClock();
  const c = await startEventualCluster({
    clock,
    seed: 100,
    nodes: NODES,
    replica: {
      n: 3,
      antiEntropyIntervalMs: 200,
      hintIntervalMs: 100,
      requestTimeoutMs: 2000,
      swim: { periodMs: 200, pingTimeoutMs: 50 },
    },
  });
  await c.ready();
  for (const n of NODES) c.systems.get(n)?.spawn('echo', new Echo());
  const kv = c.client({ timeoutMs: 5000, attemptTimeoutMs: 5000 });
  const rnd = new Random(42);
  const echo = (i: number) =>
    c.clientSystem.ask(`${NODES[i % 5]}/echo`, { type: 'echo', n: i } as EchoMsg, 5000).then(
      () => true,
      () => false,
    );
  const put = (w: 'one' | 'quorum') => (i: number) =>
    kv.put(`k${rnd.int(KEYS)}`, `v${i}`, { w, node: NODES[i % 5] }).then(okay);
  const get = (r: 'one' | 'quorum') => (i: number) =>
    kv.get(`k${rnd.int(KEYS)}`, { r, node: NODES[i % 5] }).then(okay);
  const series = {
    echo: [] as Rate[],
    w1: [] as Rate[],
    r1: [] as Rate[],
    wq: [] as Rate[],
    rq: [] as Rate[],
  };
  const conv: number[] = [];
  let partitionWrites = 0;
  await drive(0.5, inFlight, put('one')); // warm-up (JIT, key space)
  await drive(0.3, inFlight, echo);
  for (let r = 0; r < runs; r++) {
    series.echo.push(await drive(seconds, inFlight, echo));
    series.w1.push(await drive(seconds, inFlight, put('one')));
    series.r1.push(await drive(seconds, inFlight, get('one')));
    series.wq.push(await drive(seconds, inFlight, put('quorum')));
    series.rq.push(await drive(seconds, inFlight, get('quorum')));
    const cv = await convergence(c, clock, kv, rnd, r);
    conv.push(cv.ms);
    partitionWrites += cv.writes;
  }
  await c.stop();
  const loadAfter = loadavg();
  const uptimeAfter = uptime();
  const wall = (s: Rate[]) => s.map((x) => x.wall);
  const cpu = (s: Rate[]) => s.map((x) => x.cpu);
  const errors = Object.values(series)
    .flat()
    .reduce((a, x) => a + x.errors, 0);
  const base = { name: 'echo asks/s (same transport)', runs: wall(series.echo) };
  const baseCpu = { name: 'echo asks per CPU-s', runs: cpu(series.echo) };
  const ms: Measurement[] = [
    summarize(
      'echo asks/s: baseline (5 nodes, same transport + codec)',
      'ops/s',
      'higher',
      wall(series.echo),
    ),
    summarize('writes/s, W=1 (N=3, 5 nodes)', 'ops/s', 'higher', wall(series.w1), base),
    summarize('reads/s, R=1', 'ops/s', 'higher', wall(series.r1), base),
    summarize('writes/s, W=quorum', 'ops/s', 'higher', wall(series.wq), base),
    summarize('reads/s, R=quorum', 'ops/s', 'higher', wall(series.rq), base),
    summarize('writes/s, W=quorum vs W=1', 'ops/s', 'higher', wall(series.wq), {
      name: 'writes/s, W=1',
      runs: wall(series.w1),
    }),
    summarize('reads/s, R=quorum vs R=1', 'ops/s', 'higher', wall(series.rq), {
      name: 'reads/s, R=1',
      runs: wall(series.r1),
    }),
    summarize('echo asks per CPU-second: baseline', 'ops/cpu-s', 'higher', cpu(series.echo)),
    summarize('writes per CPU-second, W=1', 'ops/cpu-s', 'higher', cpu(series.w1), baseCpu),
    summarize('reads per CPU-second, R=1', 'ops/cpu-s', 'higher', cpu(series.r1), baseCpu),
    summarize('writes per CPU-second, W=quorum', 'ops/cpu-s', 'higher', cpu(series.wq), baseCpu),
    summarize('reads per CPU-second, R=quorum', 'ops/cpu-s', 'higher', cpu(series.rq), baseCpu),
    summarize(
      'convergence after partition heal (2k W=1 writes during a 2+3 split)',
      'ms',
      'lower',
      conv,
    ),
  ];
  const fmt = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  return report('eventual', ms, [
    `5 replica nodes + 1 client system in one process (in-memory transport, msgpack on every message), MemoryKeyStore, N=3; through LeaderlessKvClient; ${inFlight} requests in flight, random keys out of ${KEYS}, ${seconds} s per measurement, ${runs} runs, each run = baseline then the four workloads back to back, then a partition/heal`,
    'baseline: the same number of asks in flight to an echo actor on the replica nodes (same transport, codec and client system); ratios compare numbers taken under the same load',
    `SWIM period 200 ms, anti-entropy every 200 ms, hint delivery every 100 ms; ${errors} failed requests; ${partitionWrites} partition writes acknowledged`,
    `load average (1, 5, 15 min) before: ${fmt(loadBefore)}; after: ${fmt(loadAfter)}`,
    `uptime before: ${uptimeBefore}`,
    `uptime after: ${uptimeAfter}`,
  ]);
};

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `(uptime unavailable) loadavg ${loadavg().join(', ')}`;
  }
}
