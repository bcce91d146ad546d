/**
 * `npx tsx scripts/witness-sweep.ts [--levels=1,2,4,8] [--rounds=6] [--phase=3]`: where the KV
 * client's `witnessReads: { maxInFlight }` switch belongs (docs/kv.md, "Witnessed reads").
 *
 * One Synod cluster of three `synod node` processes (as `npm run bench -- etcd`), two client
 * connections to it — one witnessing every strong read (`witnessReads: true`), one never
 * (`false`: the batched ReadIndex round) — and, for each level C, `--rounds` rounds in which C
 * closed-loop readers on each connection run for `--phase` seconds, the order swapped every
 * round. Prints per level the medians over rounds (reads/s, mean and p50 latency, server CPU per
 * get from /proc) and the per-round ratio batched/witnessed of mean latency (above 1: witnessed
 * faster). Not part of `npm run bench` (it writes no results): a measurement tool.
 */
import os from 'node:os';
import path from 'node:path';
import { numFlag } from '../bench/lib/args.js';
import { cpuMsOf } from '../bench/lib/procs.js';
import { SynodProcessCluster } from '../bench/lib/synod-cluster.js';
import type { KvClient } from '../lib/kv-client/client.js';

interface Phase {
  ops: number;
  mean: number;
  p50: number;
  cpuUs: number;
}

const argv = process.argv.slice(2);
const levelsArg = argv.find((a) => a.startsWith('--levels='))?.slice('--levels='.length);
const levels = (levelsArg ?? '1,2,4,8').split(',').map(Number);
if (levels.some((c) => !Number.isInteger(c) || c < 1)) {
  console.error(
    'usage: npx tsx scripts/witness-sweep.ts [--levels=1,2,4,8] [--rounds=6] [--phase=3]',
  );
  process.exit(2);
}
const rounds = Math.max(1, numFlag(argv, 'rounds', 6));
const phaseMs = numFlag(argv, 'phase', 3) * 1000;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

const cluster = await SynodProcessCluster.start({
  dir: path.join(os.tmpdir(), `synod-witness-sweep-${process.pid}`),
  log: (l) => console.log(l),
});
const cpu = (): number => cluster.ids.reduce((a, id) => a + (cpuMsOf(cluster.pid(id)) ?? 0), 0);
const maxC = Math.max(...levels);
const common = { timeoutMs: 10_000, attemptTimeoutMs: 5000, read: { level: 'strong' as const } };
const sides = {
  witnessed: await cluster.clients(maxC, { ...common, witnessReads: true }),
  batched: await cluster.clients(maxC, { ...common, witnessReads: false }),
};

async function phase(clients: KvClient[]): Promise<Phase> {
  const first = clients[0] as KvClient;
  const w0 = performance.now();
  while (performance.now() - w0 < 200) await first.get('k1');
  const lat: number[] = [];
  const c0 = cpu();
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (kv) => {
      while (performance.now() - t0 < phaseMs) {
        const s = performance.now();
        const r = await kv.get('k1');
        if (r.outcome === 'ok') lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  return {
    ops: (lat.length * 1000) / elapsed,
    mean: lat.reduce((a, b) => a + b, 0) / lat.length,
    p50: median(lat),
    cpuUs: ((cpu() - c0) * 1000) / lat.length,
  };
}

try {
  await (sides.witnessed.clients[0] as KvClient).put('k1', 'x'.repeat(100));
  console.log(
    `load average at start ${os.loadavg()[0]?.toFixed(1)}; ${rounds} rounds of ${phaseMs / 1000} s per side`,
  );
  for (const c of levels) {
    const res: Record<'witnessed' | 'batched', Phase[]> = { witnessed: [], batched: [] };
    for (let r = 0; r < rounds; r++) {
      const order =
        r % 2 === 0 ? (['witnessed', 'batched'] as const) : (['batched', 'witnessed'] as const);
      for (const n of order) res[n].push(await phase(sides[n].clients.slice(0, c)));
    }
    for (const n of ['witnessed', 'batched'] as const) {
      const xs = res[n];
      console.log(
        `C=${c} ${n.padEnd(9)} ${median(xs.map((x) => x.ops)).toFixed(0)} reads/s, mean ${median(xs.map((x) => x.mean)).toFixed(3)} ms, p50 ${median(xs.map((x) => x.p50)).toFixed(3)} ms, ${median(xs.map((x) => x.cpuUs)).toFixed(0)} µs server CPU/get`,
      );
    }
    const ratios = res.witnessed.map((w, i) => (res.batched[i] as Phase).mean / w.mean);
    console.log(
      `C=${c} batched/witnessed mean latency per round: median ${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(', ')}), load ${os.loadavg()[0]?.toFixed(1)}`,
    );
  }
} finally {
  await sides.witnessed.close();
  await sides.batched.close();
  await cluster.stop();
}
process.exit(0);
