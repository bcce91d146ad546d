/**
 * `npm run sim -- paxos [--seeds N] [--from S] [--seed S] [--nodes 3|5] [--verbose]`:
 * randomised Multi-Paxos runs on the core-level cluster simulation (drops, duplicates,
 * reordering, partitions, crash-restarts losing unsynced writes), with safety checked after
 * every event and liveness after healing. Prints the first failing seed and exits 1.
 * With `--actors`, runs the real actor shells in lib/sim instead (slower, ~1 s a seed).
 */
import { runActorSim } from '../actors/paxos/sim-actors.js';
import { runSimCluster } from '../actors/paxos/sim-cluster.js';

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const one = arg(argv, '--seed');
  const from = Number(one ?? arg(argv, '--from') ?? 1);
  const seeds = one !== undefined ? 1 : Number(arg(argv, '--seeds') ?? 1000);
  const fixedNodes = arg(argv, '--nodes');
  const verbose = argv.includes('--verbose');
  if (!Number.isInteger(from) || !Number.isInteger(seeds) || seeds < 1) {
    console.error(
      'usage: npm run sim -- paxos [--seeds N] [--from S] [--seed S] [--nodes N] [--actors]',
    );
    return 2;
  }
  const started = process.hrtime.bigint();
  if (argv.includes('--actors')) {
    let ops = 0;
    let restarts = 0;
    for (let seed = from; seed < from + seeds; seed++) {
      const r = await runActorSim({
        seed,
        nodes: fixedNodes !== undefined ? Number(fixedNodes) : seed % 5 === 0 ? 5 : 3,
        ...(seed % 3 === 0 ? { leaseMs: 60 } : {}),
      });
      ops += r.okOps;
      restarts += r.learnerRestarts;
      if (verbose || r.violation) {
        console.log(
          `seed ${seed}: ${r.violation ?? 'ok'} steps=${r.steps} ok=${r.okOps} learner restarts=${r.learnerRestarts}`,
        );
      }
      if (r.violation) {
        console.log(
          `FAILED at seed ${seed}; reproduce: npm run sim -- paxos --actors --seed ${seed}`,
        );
        return 1;
      }
    }
    const secs = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(
      `paxos (actors): ${seeds} seeds from ${from} safe, linearizable and live; ` +
        `${ops} client ops ok, ${restarts} learner actor restarts injected, ${secs.toFixed(1)} s`,
    );
    return 0;
  }
  let chosen = 0;
  let ops = 0;
  for (let seed = from; seed < from + seeds; seed++) {
    const shape = seed % 4;
    const r = runSimCluster({
      seed,
      faultPhaseMs: 2000,
      healPhaseMs: 2500,
      nodes: fixedNodes !== undefined ? Number(fixedNodes) : shape === 0 ? 5 : 3,
      ...(shape === 1 ? { leaseMs: 60 } : {}),
      ...(shape === 2 && fixedNodes === undefined ? { nodes: 5, phase1: 4, phase2: 2 } : {}),
    });
    chosen += r.chosenSlots;
    ops += r.okOps;
    if (verbose || r.violation || !r.live) {
      console.log(
        `seed ${seed}: ${r.violation ?? (r.live ? 'ok' : 'NOT LIVE')} events=${r.events} ` +
          `chosen=${r.chosenSlots} ok=${r.okOps} leaders=${r.leaderChanges}`,
      );
    }
    if (r.violation || !r.live) {
      console.log(`FAILED at seed ${seed}; reproduce: npm run sim -- paxos --seed ${seed}`);
      return 1;
    }
    if ((seed - from + 1) % 1000 === 0) {
      console.log(`${seed - from + 1} seeds ok (${chosen} slots chosen, ${ops} client ops ok)`);
    }
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `paxos: ${seeds} seeds from ${from} safe and live; ${chosen} slots chosen, ` +
      `${ops} client ops ok, ${secs.toFixed(1)} s`,
  );
  return 0;
}
