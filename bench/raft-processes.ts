/**
 * `npm run bench -- raft-processes [--duration=S] [--levels=1,16,256] [--trials=N] [--runs=N]`:
 * Raft over three `synod node` processes (WebSockets, file storage, fsync on): committed
 * writes/s and p50/p99 at each concurrency level, and leader SIGKILL → first accepted write
 * (p50/p99 over `trials`). See bench/lib/raft-processes.ts; bench/raft.ts can call
 * `measureRaftProcesses` directly.
 */
import path from 'node:path';
import { type BenchMain, loadNote, report } from './harness.js';
import { listFlag, numFlag } from './lib/args.js';
import { repoRoot } from './lib/procs.js';
import { measureRaftProcesses } from './lib/raft-processes.js';

export const main: BenchMain = async (argv) => {
  const plotFile = path.join(repoRoot, 'benchmarks', 'raft-processes-latency.svg');
  const r = await measureRaftProcesses({
    levels: listFlag(argv, 'levels', [1, 16, 256]),
    durationMs: numFlag(argv, 'duration', 10) * 1000,
    trials: numFlag(argv, 'trials', 20),
    runs: numFlag(argv, 'runs', 1),
    plotFile,
  });
  const rep = report('raft-processes', r.measurements, [
    'Three `synod node` processes on loopback (dist/ build), WebSocket transport with the shared secret, file storage with fsync (group commit), default Raft timeouts; the load generator (bench/lib/loadgen.ts) runs in the benchmark process: C KV clients (sessions) over one WebSocket connection per node, closed loop, 100-byte values, puts only; the first second of each level is warm-up and not recorded.',
    loadNote(),
    ...r.notes,
  ]);
  rep.images = [
    { title: 'put latency per concurrency level', file: path.relative(repoRoot, plotFile) },
  ];
  return rep;
};
