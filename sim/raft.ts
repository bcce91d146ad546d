/**
 * `npm run sim -- raft [--seeds N] [--from S] [--seed S] [--nodes 3|5] [--core] [--verbose]`:
 * randomized Raft runs. By default RaftNode actor clusters in the deterministic simulation
 * (drops, duplicates, reordering, partitions, crash-restarts losing unsynced writes;
 * clients doing reads, writes and cas; invariants after every step; every history checked
 * for linearizability; liveness after heal). `--core` runs the faster core-level
 * randomized test instead. Prints the first failing seed and exits 1.
 */
import { runCoreFuzz } from '../test/helpers/raft-fuzz.js';
import { runRandomSeed } from '../test/helpers/raft-random.js';

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const one = arg(argv, '--seed');
  const from = Number(one ?? arg(argv, '--from') ?? 1);
  const seeds = one !== undefined ? 1 : Number(arg(argv, '--seeds') ?? 1000);
  const nodesArg = arg(argv, '--nodes');
  const core = argv.includes('--core');
  const verbose = argv.includes('--verbose');
  if (!Number.isInteger(from) || !Number.isInteger(seeds) || seeds < 1) {
    console.error(
      'usage: npm run sim -- raft [--seeds N] [--from S] [--seed S] [--nodes N] [--core]',
    );
    return 2;
  }
  const started = performance.now();
  let ops = 0;
  let committed = 0;
  for (let seed = from; seed < from + seeds; seed++) {
    const nodes = nodesArg !== undefined ? Number(nodesArg) : seed % 3 === 0 ? 5 : 3;
    if (core) {
      try {
        committed += runCoreFuzz(seed, 1500, nodes).commits;
      } catch (e) {
        console.log(`FAIL seed ${seed} (core, ${nodes} nodes): ${(e as Error).message}`);
        console.log(`replay: npm run sim -- raft --core --seed ${seed} --nodes ${nodes}`);
        return 1;
      }
    } else {
      const r = await runRandomSeed(seed, { nodes });
      ops += r.okOps;
      committed += r.committed;
      if (verbose) console.log(JSON.stringify(r));
      if (!r.ok) {
        console.log(`FAIL seed ${seed} (${nodes} nodes): ${r.error}`);
        console.log(`replay: npm run sim -- raft --seed ${seed} --nodes ${nodes}`);
        return 1;
      }
    }
    const done = seed - from + 1;
    if (!verbose && done % 100 === 0) {
      const s = ((performance.now() - started) / 1000).toFixed(0);
      console.log(`${done}/${seeds} seeds ok (${s} s)`);
    }
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `${seeds} seeds ok (${core ? 'core' : 'actors'}): ${ops} client ops acknowledged, ${committed} entries committed, ${secs} s`,
  );
  return 0;
}
