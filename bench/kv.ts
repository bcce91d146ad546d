/**
 * `npm run bench -- kv [--backend=raft|paxos] [--seconds=S] [--clients=N] [--runs=R]`: read
 * throughput and latency per read level on a 3-node KV cluster, with `eventual` as the baseline
 * measured in the same run. The cluster runs in this process on the in-memory transport (every
 * message still goes through the msgpack codec); the WebSocket transport was not on main when
 * this benchmark was written.
 *
 * Each run: N closed-loop clients spread over the three nodes read 32 keys for S seconds at one
 * level (bounded: maxLagMs 100); writes are not running, so `strong` pays one read-index round
 * per batch of reads and `session` never waits.
 */
import { startEmbeddedCluster } from '../actors/kv/embedded.js';
import type { ReadOptions } from '../actors/kv/messages.js';
import { systemClock } from '../lib/clock.js';
import { KvClient } from '../lib/kv-client/client.js';
import { runWorkload } from '../lib/kv-client/workload.js';
import { Random } from '../lib/random.js';
import { type BenchMain, type Measurement, report, summarize } from './harness.js';

function opt(argv: string[], name: string, fallback: string): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    if (a === `--${name}` && argv[i + 1] !== undefined) return argv[i + 1] as string;
  }
  return fallback;
}

const LEVELS: { name: string; read: ReadOptions }[] = [
  { name: 'eventual', read: { level: 'eventual' } },
  { name: 'prefix', read: { level: 'prefix' } },
  { name: 'session', read: { level: 'session' } },
  { name: 'bounded(100ms)', read: { level: 'bounded', maxLagMs: 100 } },
  { name: 'strong', read: { level: 'strong' } },
];

export const main: BenchMain = async (argv) => {
  const backend = opt(argv, 'backend', 'raft') as 'raft' | 'paxos';
  const seconds = Number(opt(argv, 'seconds', '2'));
  const clients = Number(opt(argv, 'clients', '24'));
  const runs = Number(opt(argv, 'runs', '3'));
  const cluster = await startEmbeddedCluster({ backend, clock: systemClock, seed: 7 });
  const leader = await cluster.ready();
  const random = new Random(11);
  // Load 32 keys.
  const loader = new KvClient({ system: cluster.clientSystem, nodes: cluster.nodes });
  for (let k = 0; k < 32; k++) await loader.put(`k${k}`, `v${k}`.padEnd(64, 'x'));
  const tput = new Map<string, number[]>();
  const p50 = new Map<string, number[]>();
  const p99 = new Map<string, number[]>();
  const failedReads = new Map<string, number>();
  for (let r = 0; r < runs; r++) {
    for (const l of LEVELS) {
      const rep = await runWorkload(
        {
          clients,
          keys: 32,
          mix: { read: 1, write: 0, cas: 0 },
          valueSize: 64,
          durationMs: seconds * 1000,
          read: l.read,
        },
        (i) =>
          new KvClient({
            system: cluster.clientSystem,
            nodes: cluster.nodes,
            readNode: cluster.nodes[i % cluster.nodes.length] as string,
          }),
        systemClock,
        random,
      );
      if (rep.ops.read.failed + rep.ops.read.indeterminate > 0)
        failedReads.set(l.name, (failedReads.get(l.name) ?? 0) + rep.ops.read.failed);
      for (const [m, v] of [
        [tput, rep.ops.read.opsPerSec],
        [p50, rep.ops.read.latencyMs.p50],
        [p99, rep.ops.read.latencyMs.p99],
      ] as const) {
        const arr = m.get(l.name) ?? [];
        arr.push(v);
        m.set(l.name, arr);
      }
    }
  }
  await cluster.stop();
  const base = { name: 'eventual', runs: tput.get('eventual') ?? [] };
  const baseP50 = { name: 'eventual', runs: p50.get('eventual') ?? [] };
  const ms: Measurement[] = [];
  for (const l of LEVELS) {
    ms.push(
      summarize(
        `reads/s at ${l.name}`,
        'reads/s',
        'higher',
        tput.get(l.name) ?? [],
        l.name === 'eventual' ? undefined : base,
      ),
    );
    ms.push(
      summarize(
        `read p50 at ${l.name}`,
        'ms',
        'lower',
        p50.get(l.name) ?? [],
        l.name === 'eventual' ? undefined : baseP50,
      ),
    );
    ms.push(summarize(`read p99 at ${l.name}`, 'ms', 'lower', p99.get(l.name) ?? []));
  }
  const notes = [
    `backend ${backend}, 3 nodes in one process (in-memory transport with msgpack), leader ${leader}`,
    `${clients} closed-loop readers spread over the nodes, 32 keys of 64 B, ${seconds} s per level, ${runs} runs; no concurrent writes`,
    'WebSocket transport not used (not on main when measured)',
    'taken on a loaded shared machine (2 cores, ~6 other engineers running tests): compare ratios, not absolute numbers',
  ];
  if (failedReads.size > 0)
    notes.push(`failed reads: ${JSON.stringify(Object.fromEntries(failedReads))}`);
  return report('kv', ms, notes);
};
