/**
 * `npm run bench -- eventual [--repeats=N] [--seconds=S]`: the leaderless store on 5
 * in-process nodes (5 actor systems on the in-memory transport, real clock, msgpack on
 * every message), driven by a client node with 64 requests in flight:
 *  - writes/s and reads/s at W=R=1 and W=R=quorum (N=3), random keys out of 10 000;
 *  - convergence time after a partition heals: 2+3 split, 1 000 W=1 writes on each side
 *    (sloppy quorum: hints), heal, wall time until every key range has equal Merkle roots
 *    on all its replicas and no hint is left.
 * The quorum numbers are reported with the W=R=1 numbers of the same run as baseline.
 */

import type { GetResult, Quorum, WriteResult } from '../actors/gossip/messages.js';
import {
  GossipReplica,
  type InspectResult,
  type ReplicaMessage,
} from '../actors/gossip/replica.js';
import { MemoryKeyStore } from '../actors/gossip/store.js';
import type { Replies } from '../lib/actor.js';
import { ActorSystem } from '../lib/actor-system.js';
import { SystemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import { MemoryNetwork } from '../transports/memory/memory-network.js';
import { type BenchMain, report, summarize } from './harness.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const KEYS = 10_000;
const IN_FLIGHT = 64;

interface Cluster {
  systems: Map<string, ActorSystem>;
  client: ActorSystem;
  network: MemoryNetwork;
  shutdown(): Promise<void>;
}

async function startCluster(seed: number): Promise<Cluster> {
  const clock = new SystemClock();
  const random = new Random(seed);
  const network = new MemoryNetwork({ clock, random: random.fork() });
  const systems = new Map<string, ActorSystem>();
  for (const id of [...NODES, 'cl']) {
    const system = new ActorSystem({
      nodeId: id,
      clock,
      random: random.fork(),
      transport: network.connect(id, clock),
      logger: silentLogger,
    });
    systems.set(id, system);
    if (id === 'cl') continue;
    system.spawn(
      'gossip',
      new GossipReplica({
        store: new MemoryKeyStore(),
        seeds: id === 'a' ? [] : ['a'],
        n: 3,
        antiEntropyIntervalMs: 200,
        hintIntervalMs: 100,
        requestTimeoutMs: 2000,
        swim: { periodMs: 200, pingTimeoutMs: 50 },
      }),
    );
  }
  const client = systems.get('cl') as ActorSystem;
  systems.delete('cl');
  // wait until every replica is ready and sees all five members
  for (;;) {
    const snaps = await Promise.all(
      NODES.map((n) =>
        client
          .ask(
            `${n}/gossip`,
            { type: 'replica-snapshot' } as ReplicaMessage & Replies<unknown>,
            1000,
          )
          .catch(() => undefined),
      ),
    );
    const ok = snaps.every((s) => {
      const snap = s as { ready: boolean; members: { state: string }[] } | undefined;
      return (
        snap?.ready && snap.members.length === 5 && snap.members.every((m) => m.state === 'alive')
      );
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    systems,
    client,
    network,
    async shutdown() {
      for (const s of systems.values()) await s.shutdown();
      await client.shutdown();
    },
  };
}

/** Runs `op` with IN_FLIGHT concurrent requests for `seconds`; returns completed ops/s. */
async function drive(
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ rate: number; errors: number }> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  let i = 0;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() < end) {
      try {
        await op(i++);
        done++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return { rate: done / ((performance.now() - start) / 1000), errors };
}

async function throughput(
  c: Cluster,
  q: Quorum,
  seconds: number,
  rnd: Random,
): Promise<{ writes: number; reads: number; errors: number }> {
  const write = (i: number) =>
    c.client.ask(
      `${NODES[i % 5]}/gossip`,
      {
        type: 'kv-write',
        key: `k${rnd.int(KEYS)}`,
        op: { op: 'put', value: i },
        w: q,
      } as ReplicaMessage & Replies<WriteResult>,
      5000,
    );
  const read = (i: number) =>
    c.client.ask(
      `${NODES[i % 5]}/gossip`,
      { type: 'kv-get', key: `k${rnd.int(KEYS)}`, r: q } as ReplicaMessage & Replies<GetResult>,
      5000,
    );
  const w = await drive(seconds, write);
  const r = await drive(seconds, read);
  return { writes: w.rate, reads: r.rate, errors: w.errors + r.errors };
}

async function divergence(c: Cluster): Promise<number> {
  const res = await Promise.all(
    NODES.map((n) =>
      c.client
        .ask(
          `${n}/gossip`,
          { type: 'replica-inspect' } as ReplicaMessage & Replies<InspectResult>,
          1000,
        )
        .catch(() => undefined),
    ),
  );
  if (res.some((r) => r === undefined)) return Number.POSITIVE_INFINITY;
  const rings = new Set(res.map((r) => r?.ring));
  if (rings.size !== 1) return Number.POSITIVE_INFINITY;
  const roots = new Map<number, Set<string>>();
  let d = 0;
  for (const r of res as InspectResult[]) {
    d += r.hints;
    for (const [seg, root] of r.roots) {
      const s = roots.get(seg) ?? new Set<string>();
      s.add(root);
      roots.set(seg, s);
    }
  }
  for (const s of roots.values()) d += s.size - 1;
  return d;
}

async function convergenceAfterHeal(
  c: Cluster,
  rnd: Random,
): Promise<{ ms: number; writes: number }> {
  const sideA = ['a', 'b'];
  const sideB = ['c', 'd', 'e'];
  c.network.partition([[...sideA, 'cl'], [...sideB, 'cl'].filter((x) => x !== 'cl')]);
  // let failure detection mark the other side dead, so writes go to fallbacks with hints
  await new Promise((r) => setTimeout(r, 1500));
  let writes = 0;
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 1000; i++) {
    ops.push(
      c.client
        .ask(
          `${sideA[i % 2]}/gossip`,
          {
            type: 'kv-write',
            key: `p${rnd.int(KEYS)}`,
            op: { op: 'put', value: i },
            w: 'one',
          } as ReplicaMessage & Replies<WriteResult>,
          5000,
        )
        .then(
          () => writes++,
          () => {},
        ),
    );
  }
  await Promise.all(ops);
  // then the client moves to side B (the partition stays) and writes there too
  c.network.heal();
  c.network.partition([sideA, [...sideB, 'cl']]);
  const opsB: Promise<unknown>[] = [];
  for (let i = 0; i < 1000; i++) {
    opsB.push(
      c.client
        .ask(
          `${sideB[i % 3]}/gossip`,
          {
            type: 'kv-write',
            key: `p${rnd.int(KEYS)}`,
            op: { op: 'put', value: -i },
            w: 'one',
          } as ReplicaMessage & Replies<WriteResult>,
          5000,
        )
        .then(
          () => writes++,
          () => {},
        ),
    );
  }
  await Promise.all(opsB);
  const healedAt = performance.now();
  c.network.heal();
  for (;;) {
    if ((await divergence(c)) === 0) break;
    if (performance.now() - healedAt > 60_000) throw new Error('no convergence within 60 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { ms: performance.now() - healedAt, writes };
}

export const main: BenchMain = async (argv) => {
  const repeats = Number(argv.find((a) => a.startsWith('--repeats='))?.split('=')[1] ?? 3);
  const seconds = Number(argv.find((a) => a.startsWith('--seconds='))?.split('=')[1] ?? 2);
  const rnd = new Random(42);
  const w1: number[] = [];
  const r1: number[] = [];
  const wq: number[] = [];
  const rq: number[] = [];
  const conv: number[] = [];
  let errors = 0;
  let partitionWrites = 0;
  for (let i = 0; i < repeats; i++) {
    const c = await startCluster(100 + i);
    await throughput(c, 'one', 0.5, rnd); // warm-up
    const one = await throughput(c, 'one', seconds, rnd);
    const quorum = await throughput(c, 'quorum', seconds, rnd);
    w1.push(one.writes);
    r1.push(one.reads);
    wq.push(quorum.writes);
    rq.push(quorum.reads);
    errors += one.errors + quorum.errors;
    const cv = await convergenceAfterHeal(c, rnd);
    conv.push(cv.ms);
    partitionWrites += cv.writes;
    await c.shutdown();
  }
  return report(
    'eventual',
    [
      summarize('writes/s, W=1 (N=3, 5 nodes)', 'ops/s', 'higher', w1),
      summarize('reads/s, R=1 (N=3, 5 nodes)', 'ops/s', 'higher', r1),
      summarize('writes/s, W=quorum', 'ops/s', 'higher', wq, { name: 'writes/s, W=1', runs: w1 }),
      summarize('reads/s, R=quorum', 'ops/s', 'higher', rq, { name: 'reads/s, R=1', runs: r1 }),
      summarize(
        'convergence after partition heal (2k W=1 writes during a 2+3 split)',
        'ms',
        'lower',
        conv,
      ),
    ],
    [
      `${IN_FLIGHT} requests in flight from a client node, random keys out of ${KEYS}, ${seconds} s per measurement, ${repeats} runs (a fresh cluster each)`,
      `every message msgpack-encoded through the in-memory transport; stores in memory (MemoryKeyStore)`,
      `SWIM period 200 ms, anti-entropy every 200 ms, hint delivery every 100 ms; ${errors} failed requests; ${partitionWrites} partition writes acknowledged`,
      'taken on a loaded machine shared with other engineers (2 cores): treat absolute numbers as a lower bound',
    ],
  );
};
