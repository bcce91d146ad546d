/**
 * `synod demo [NAME] [--dashboard PORT] [--protocol raft|paxos]`: the embedded tour. A 3-node
 * cluster in this process elects a leader, replicates writes, loses its leader, re-elects,
 * heals and backs up, narrating each step; the dashboard shows it live. When standard input
 * is a terminal the cluster then stays up for play until Ctrl-C; otherwise (CI) it exits.
 * `--pace MS` pauses between the tour's steps (default 1500 ms when stdout is a terminal, so a
 * person can follow in the browser; 0 when it is a pipe or file, so tests stay fast).
 * NAME picks another demo of demos/ (`synod demo --list`).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runAcrossLaptops } from '../../demos/across-laptops.js';
import { runBackupRestoreDemo } from '../../demos/backup-restore.js';
import { runEventualStoreDemo } from '../../demos/eventual-store.js';
import { runPaxosDemo } from '../../demos/paxos.js';
import { runPaxosTour } from '../../demos/paxos-cluster.js';
import { runTour } from '../../demos/raft-kv-tour.js';
import { runRateLimiterDemo } from '../../demos/rate-limiter.js';
import { systemClock } from '../../lib/clock.js';
import { EventualDashboardSource } from '../../lib/dashboard/eventual-source.js';
import { DashboardServer } from '../../lib/dashboard/server.js';
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
  pace: {
    kind: 'number',
    description:
      'tour: pause between steps in ms, to follow along in the browser (default 1500 when stdout is a terminal, 0 otherwise)',
  },
  list: { kind: 'boolean', description: 'list the demos', default: false },
  'base-port': {
    kind: 'number',
    description: 'laptops demo: first of the four loopback ports its nodes use',
    default: 7001,
  },
  verbose: { kind: 'boolean', description: 'print stack traces on errors', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(usage('demo', '[NAME] [options]', specs));
    console.log(listing());
    return 0;
  }
  let verbose = false;
  try {
    const { options, sources, positionals } = parseArgs(argv, specs);
    verbose = options.verbose === true;
    if (options.list) {
      console.log(listing());
      return 0;
    }
    if (positionals.length > 1)
      throw new CliError(`one demo at a time (got ${positionals.join(', ')})`);
    const name =
      positionals[0] ?? (options.actor ? 'actor' : options.protocol === 'paxos' ? 'paxos' : 'tour');
    if (!(name in DEMOS))
      throw new CliError(`no demo "${name}"; the demos are: ${Object.keys(DEMOS).join(', ')}`);
    if (name === 'eventual') {
      // The dashboard only when asked for (--dashboard PORT): replicas, ring, convergence.
      let server: DashboardServer | undefined;
      let source: EventualDashboardSource | undefined;
      const interactive = process.stdin.isTTY === true && options.exit !== true;
      try {
        await runEventualStoreDemo({
          onCluster: async (cluster, vnodes) => {
            if (sources.dashboard !== 'flag') return;
            source = new EventualDashboardSource(cluster, { clock: systemClock, vnodes });
            server = new DashboardServer({
              source,
              port: options.dashboard as number,
              host: options['dashboard-host'] as string,
            });
            const { url } = await server.start();
            console.log(`dashboard: ${url}`);
          },
          beforeStop: async () => {
            if (!server || !interactive) return;
            console.log(
              '\nThe replicas stay up for you to play with on the dashboard. Ctrl-C to stop.',
            );
            await new Promise<void>((resolve) => {
              process.once('SIGINT', resolve);
              process.once('SIGTERM', resolve);
            });
          },
        });
      } finally {
        // Also when the story fails: an open dashboard would keep the process alive.
        source?.stop();
        await server?.stop();
      }
      return 0;
    }
    if (name === 'backup') {
      const r = await runBackupRestoreDemo();
      return r.mismatches === 0 && r.keysChecked > 0 ? 0 : 1;
    }
    if (name === 'laptops') {
      const r = await runAcrossLaptops({
        basePort: options['base-port'] as number,
        synod: [path.join(packageRoot(), 'bin', 'synod.js')],
      });
      console.log(`\nDone: ${r.leader} led; members ${r.members.join(', ')}.`);
      return 0;
    }
    if (name === 'actor') {
      await runRateLimiterDemo({ seconds: 1 });
      return 0;
    }
    // The cluster tours: pace, dashboard, and (on a terminal) the cluster kept up to play with.
    const interactive = process.stdin.isTTY === true && options.exit !== true;
    const tour = {
      paceMs: paceOf(options.pace as number | undefined, process.stdout.isTTY === true),
      dashboardPort: options.dashboard as number,
      dashboardHost: options['dashboard-host'] as string,
      dashboardPortFallback: sources.dashboard === 'default',
      onReady: async (_cluster: unknown, url: string | undefined) => {
        if (!interactive) return;
        console.log(
          `\nThe cluster stays up for you to play with${url ? ` at ${url}` : ''}. Ctrl-C to stop.`,
        );
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        console.log('\nstopping the cluster…');
      },
    };
    if (name === 'paxos') {
      // The protocol step by step first (a simulation: dueling proposers, then a Multi-Paxos
      // log), unless the cluster tour is asked for with a dashboard.
      if (sources.dashboard !== 'flag') {
        await runPaxosDemo();
        console.log('\n\n# Multi-Paxos on a real cluster: three nodes in this process');
      }
      await runPaxosTour(tour);
      return 0;
    }
    await runTour(tour);
    return 0;
  } catch (err) {
    return reportError(err, verbose);
  }
}

/**
 * The tour's pause between steps: `--pace MS` (SYNOD_PACE) when given, else 1500 ms for a
 * person at a terminal and 0 when stdout is a pipe or a file (tests, CI, the README test).
 */
export function paceOf(flag: number | undefined, stdoutIsTty: boolean): number {
  if (flag === undefined) return stdoutIsTty ? 1500 : 0;
  if (flag < 0 || flag > 600_000)
    throw new CliError(`--pace must be between 0 and 600000 ms, got ${flag}`);
  return flag;
}

/** The demos of demos/, by the name `synod demo NAME` takes. */
const DEMOS = {
  tour: 'Raft + KV in one process with the dashboard: election, writes, failover, backup, restore',
  paxos:
    'dueling Paxos proposers, then a 3-node Multi-Paxos cluster with the dashboard: election, writes, failover, catch-up, backup, restore',
  actor: 'write your own actor: a token-bucket rate limiter',
  eventual: 'the leaderless store: a partition, siblings, CRDT merges, anti-entropy',
  backup:
    'a backup agent learning a live cluster, full + incremental backups, point-in-time restore',
  laptops:
    'the across-laptops guide on one machine: three synod node processes, status, kv, a join',
} as const;

function listing(): string {
  const lines = ['demos (synod demo NAME):'];
  for (const [n, what] of Object.entries(DEMOS)) lines.push(`  ${n.padEnd(9)} ${what}`);
  return lines.join('\n');
}

/** The package's root (holding package.json), from source or from dist/. */
function packageRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new CliError('cannot find the synod package root');
    dir = up;
  }
  return dir;
}
