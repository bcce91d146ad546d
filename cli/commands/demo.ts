/**
 * `synod demo [--dashboard PORT] [--protocol raft]`: the embedded tour. A 3-node cluster in
 * this process elects a leader, replicates writes, loses its leader, re-elects, heals and
 * backs up, narrating each step; the dashboard shows it live. When standard input is a
 * terminal the cluster then stays up for play until Ctrl-C; otherwise (CI) it exits.
 */

import { runPaxosDemo } from '../../demos/paxos.js';
import { runTour } from '../../demos/raft-kv-tour.js';
import { runRateLimiterDemo } from '../../demos/rate-limiter.js';
import { CliError, parseArgs, reportError, usage } from '../args.js';

export const summary = 'run the in-process tour: election, writes, failover, catch-up, backup';

const specs = {
  dashboard: {
    kind: 'number',
    description: 'serve the dashboard on this port (0 = any free port)',
    default: 8080,
  },
  'dashboard-host': {
    kind: 'string',
    description: 'address the dashboard listens on',
    default: '127.0.0.1',
  },
  protocol: {
    kind: 'string',
    description: 'consensus protocol',
    choices: ['raft', 'paxos'],
    default: 'raft',
  },
  actor: {
    kind: 'boolean',
    description: 'run the custom-actor demo (a rate limiter) instead',
    default: false,
  },
  exit: { kind: 'boolean', description: 'exit after the tour even on a terminal', default: false },
  verbose: { kind: 'boolean', description: 'print stack traces on errors', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(usage('demo', '[options]', specs));
    return 0;
  }
  let verbose = false;
  try {
    const { options, sources } = parseArgs(argv, specs);
    verbose = options.verbose === true;
    if (options.actor) {
      await runRateLimiterDemo({ seconds: 1 });
      return 0;
    }
    if (options.protocol === 'paxos') {
      // The Paxos tour: a dueling-proposer episode, then a Multi-Paxos log with an election,
      // writes, a killed distinguished proposer and its restart (demos/paxos.ts).
      if (sources.dashboard === 'flag')
        throw new CliError('the Paxos tour has no dashboard yet; run it without --dashboard');
      await runPaxosDemo();
      return 0;
    }
    const interactive = process.stdin.isTTY === true && options.exit !== true;
    await runTour({
      dashboardPort: options.dashboard as number,
      dashboardHost: options['dashboard-host'] as string,
      dashboardPortFallback: sources.dashboard === 'default',
      onReady: async (cluster, url) => {
        if (!interactive) return;
        console.log(
          `\nThe cluster stays up for you to play with${url ? ` at ${url}` : ''}. Ctrl-C to stop.`,
        );
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        console.log('\nstopping the cluster…');
        void cluster;
      },
    });
    return 0;
  } catch (err) {
    return reportError(err, verbose);
  }
}
