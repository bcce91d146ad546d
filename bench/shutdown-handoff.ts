/**
 * `npm run bench -- shutdown-handoff [--trials=N] [--rounds=R]`: write unavailability when the
 * Raft leader of three `synod node` processes is stopped with SIGTERM, with the leadership
 * transfer on shutdown (the default, `--handoff-ms 1000`) and without it (`--handoff-ms 0`,
 * the baseline: the followers elect a leader after their election timeout).
 *
 * One trial: the leader (all three caught up) gets SIGTERM; two probe clients, one per
 * survivor, put in a loop (200 ms attempts, 2–5 ms backoff) and stop at the first write a new
 * leader accepts. The number is the time from SIGTERM to that write: the drain of in-flight
 * writes (at least its 50 ms quiet period: no writes are in flight here) plus the hand-over or
 * the election. Then the stopped node restarts on its data and the cluster settles. Each
 * round runs `trials` trials on a cluster with the hand-off, then on a fresh one without it,
 * so both see the same machine load.
 */
import os from 'node:os';
import path from 'node:path';
import { type BenchMain, report, summarize } from './harness.js';
import { numFlag } from './lib/args.js';
import { sleep } from './lib/procs.js';
import { SynodProcessCluster } from './lib/synod-cluster.js';

async function trial(
  cluster: SynodProcessCluster,
  n: number,
): Promise<{ ms: number; from: string; to: string; exitMs: number }> {
  const leader = await cluster.waitForLeader(30_000, { caughtUp: true });
  const survivors = cluster.ids.filter((id) => id !== leader.id);
  const probes = survivors.map((s) =>
    cluster.client([s], {
      timeoutMs: 200,
      attemptTimeoutMs: 200,
      retryBackoffMs: { base: 2, max: 5 },
    }),
  );
  await Promise.all(probes.map((p) => p.put(`handoff/warm/${n}`, 'x')));
  const t0 = performance.now();
  const exited = cluster.kill(leader.id, 'SIGTERM').then(() => performance.now() - t0);
  const found: { winner?: { ms: number; to: string } } = {};
  const deadline = t0 + 30_000;
  await Promise.all(
    probes.map(async (p, i) => {
      let k = 0;
      while (!found.winner && performance.now() < deadline) {
        const r = await p.put(`handoff/${n}`, `probe-${i}-${k++}`);
        if (r.outcome === 'ok' && r.servedBy !== leader.id) {
          const ms = performance.now() - t0;
          const prev = found.winner as { ms: number } | undefined;
          if (!prev || ms < prev.ms) found.winner = { ms, to: r.servedBy };
          return;
        }
        await sleep(2);
      }
    }),
  );
  for (const p of probes) await p.close();
  const exitMs = await exited;
  if (!found.winner) throw new Error(`trial ${n}: no new leader accepted a write within 30 s`);
  await cluster.startNode(leader.id);
  await cluster.waitForLeader(60_000, { caughtUp: true });
  return { ms: found.winner.ms, from: leader.id, to: found.winner.to, exitMs };
}

export const main: BenchMain = async (argv) => {
  const trials = numFlag(argv, 'trials', 5);
  const rounds = numFlag(argv, 'rounds', 2);
  const loadAtStart = os.loadavg().map((v) => Math.round(v * 100) / 100);
  const runs: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const exits: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const saved = process.env.SYNOD_HANDOFF_MS;
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['on', 'off'] as const) {
        process.env.SYNOD_HANDOFF_MS = mode === 'on' ? '1000' : '0';
        const cluster = await SynodProcessCluster.start({
          dir: path.join(os.tmpdir(), `synod-bench-handoff-${process.pid}-${r}-${mode}`),
          log: (l) => console.log(l),
        });
        try {
          for (let i = 0; i < trials; i++) {
            const x = await trial(cluster, i);
            runs[mode].push(x.ms);
            exits[mode].push(x.exitMs);
            console.log(
              `round ${r + 1} ${mode === 'on' ? 'hand-off' : 'no hand-off'} ${i + 1}/${trials}: ${x.from} stopped, ${x.to} accepted a write after ${x.ms.toFixed(0)} ms (process exited after ${x.exitMs.toFixed(0)} ms)`,
            );
          }
        } finally {
          await cluster.stop();
        }
      }
    }
  } finally {
    if (saved === undefined) delete process.env.SYNOD_HANDOFF_MS;
    else process.env.SYNOD_HANDOFF_MS = saved;
  }
  const round = (v: number[]) => v.map((x) => Math.round(x)).join(', ');
  const m = summarize(
    'SIGTERM to the leader → first write accepted by a new leader, with the hand-off',
    'ms',
    'lower',
    runs.on,
    { name: 'without the hand-off (--handoff-ms 0)', runs: runs.off },
  );
  m.extra = { withMs: runs.on.map(Math.round), withoutMs: runs.off.map(Math.round) };
  const rep = report(
    'shutdown-handoff',
    [m],
    [
      `Three \`synod node\` processes on loopback (dist/ build), default Raft timeouts (heartbeat 50 ms, election 150–300 ms), file storage with fsync. ${rounds} round(s) of ${trials} trials with the hand-off and ${trials} without, on fresh clusters.`,
      `With the hand-off (ms): ${round(runs.on)}. Without (ms): ${round(runs.off)}.`,
      `SIGTERM → process exit (ms), with: ${round(exits.on)}; without: ${round(exits.off)}.`,
      `Load average at start ${loadAtStart.join(' / ')}.`,
    ],
    argv,
  );
  rep.loadAtStart = loadAtStart;
  return rep;
};
