/**
 * `synod node --id a --listen 0.0.0.0:7001 --peers b=ws://10.0.0.2:7001,c=ws://10.0.0.3:7001
 *   --data ./data/a --secret-file ./cluster.key [--join ws://host:port[,…]] [--dashboard 8080]`
 *
 * Runs one node until SIGINT/SIGTERM, then shuts down cleanly (in-flight writes finish, the
 * log is closed). Every setting also comes from SYNOD_* environment variables or a JSON
 * `--config` file.
 *
 * `--read-level LEVEL [--max-lag-ms MS] [--max-lag-versions N]` (env SYNOD_READ_LEVEL,
 * SYNOD_MAX_LAG_MS, SYNOD_MAX_LAG_VERSIONS; config keys "read-level", "max-lag-ms",
 * "max-lag-versions") sets the cluster-wide default read level: what a KV read that names no
 * level gets. Give every node the same. A malformed one exits 2 with
 * SYNOD_ERR_KV_INVALID_READ_LEVEL.
 */
import { readFileSync } from 'node:fs';
import type { ReadDefault } from '../../actors/kv/messages.js';
import type { ReadLevel } from '../../actors/kv/types.js';
import { readDefaultProblem } from '../../actors/kv/validate.js';

import { SystemClock, systemClock } from '../../lib/clock.js';
import { DashboardServer } from '../../lib/dashboard/server.js';
import { consoleLogger } from '../../lib/logger.js';
import { parseKeyTypes, startGossipNode } from '../../lib/node/gossip-node.js';
import { parseJoinTargets } from '../../lib/node/join-cluster.js';
import { NodeBackups } from '../../lib/node/node-backups.js';
import { NodeDashboardSource } from '../../lib/node/node-dashboard.js';
import { startPaxosNode } from '../../lib/node/paxos-node.js';
import { type NodeEnd, type RunningNode, startNode } from '../../lib/node/synod-node.js';
import { CliError, type Parsed, parseArgs, reportError, usage } from '../args.js';
import { readSecretFile } from '../secret.js';

/** True for a loopback listen address (nothing leaves the machine). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export const summary =
  'run a cluster node (Raft or Multi-Paxos + KV service, or a leaderless gossip replica) over WebSockets';

export const specs = {
  id: { kind: 'string', description: 'this node id', required: true },
  listen: { kind: 'string', description: 'host:port to listen on', default: '127.0.0.1:7001' },
  advertise: {
    kind: 'string',
    description: 'URL other nodes use to reach this one (default from --listen)',
  },
  peers: { kind: 'list', description: 'other founding members, id=ws://host:port,…' },
  join: {
    kind: 'string',
    description:
      'join a running cluster through these nodes (ws://host:port or id=ws://host:port, comma-separated)',
  },
  'join-timeout': {
    kind: 'number',
    description:
      'how long --join retries no-leader / not-leader / unreachable answers before giving up (ms)',
    default: 60000,
  },
  'handoff-ms': {
    kind: 'number',
    description:
      'on SIGINT/SIGTERM a Raft leader hands leadership to the most up-to-date voter and waits up to MS for it (0: off)',
    default: 1000,
  },
  data: { kind: 'string', description: 'data directory', required: true },
  'snapshot-every': {
    kind: 'number',
    description:
      'take a snapshot of the state and compact the log every N applied entries (0: never; default 10000 with Raft, 1000 slots with Multi-Paxos, and by default either waits longer, up to 100,000 entries (10x with Raft, 100x with Multi-Paxos), while the entries since add up to less than the size of the last snapshot; a value given here is exact; etcd calls it --snapshot-count)',
  },
  'cluster-name': {
    kind: 'string',
    description: 'cluster name (must match on every node and client)',
    default: 'synod',
    env: 'SYNOD_CLUSTER_NAME',
  },
  cluster: {
    kind: 'string',
    description: 'the older spelling of --cluster-name (on clients, --cluster is the node URLs)',
    // SYNOD_CLUSTER is the clients' list of node URLs (synod kv, status, backup): not read here.
    env: false,
  },
  'secret-file': { kind: 'string', description: 'file holding the shared cluster secret' },
  protocol: {
    kind: 'string',
    description:
      'raft or paxos (consensus + KV service), or gossip (the leaderless store, docs/eventual.md)',
    choices: ['raft', 'paxos', 'gossip'],
    default: 'raft',
  },
  replicas: {
    kind: 'number',
    description: '--protocol gossip: replicas per key, N (the same on every node)',
    default: 3,
  },
  'key-types': {
    kind: 'list',
    description:
      '--protocol gossip: key types by prefix, PREFIX=TYPE,… with TYPE dvv, lww, mv, pn or orset (e.g. counter/=pn,tags/=orset; the same on every node; other keys are dvv)',
  },
  'read-level': {
    kind: 'string',
    description:
      'default read level of KV reads that name none: strong, bounded, session, prefix, eventual',
    default: 'strong',
  },
  'max-lag-ms': {
    kind: 'string',
    description: 'bound of the default read level bounded: staleness in ms',
  },
  'max-lag-versions': {
    kind: 'string',
    description: 'bound of the default read level bounded: log entries behind',
  },
  dashboard: { kind: 'number', description: 'serve the dashboard on this port' },
  'admin-secret-file': {
    kind: 'string',
    description: 'admin secret: enables dashboard controls and `synod member remove`',
  },
  'backup-repo': {
    kind: 'string',
    description: 'backup repository the dashboard takes backups into and restores from',
  },
  'backup-key-file': { kind: 'string', description: 'key of an encrypted backup repository' },
  'tls-cert': { kind: 'string', description: 'TLS certificate (PEM) for wss://' },
  'tls-key': { kind: 'string', description: 'TLS private key (PEM) for wss://' },
  'tls-ca': {
    kind: 'string',
    description:
      "CA certificate (PEM) that signed the peers' certificates (a private or self-signed CA)",
  },
  'log-format': {
    kind: 'string',
    description: 'log format',
    choices: ['text', 'json'],
    default: 'text',
  },
  'log-level': {
    kind: 'string',
    description: 'log level',
    choices: ['debug', 'info', 'warn', 'error'],
    default: 'info',
  },
  verbose: { kind: 'boolean', description: 'print stack traces on errors', default: false },
} as const;

/** The default read level from the parsed options, or a CliError naming where it came from. */
export function readDefaultOf(
  o: Record<string, unknown>,
  sources: Record<string, string> = {},
): ReadDefault {
  const d: { level: ReadLevel; maxLagMs?: number; maxLagVersions?: number } = {
    level: o['read-level'] as ReadLevel,
  };
  // Numbers are checked here, not by the option parser, so a bad one gets the SYNOD_ERR code.
  const num = (v: unknown): number =>
    typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  const from = (name: string): string => {
    const src = sources[name];
    const env = `SYNOD_${name.replace(/-/g, '_').toUpperCase()}`;
    return src === 'env' ? env : src === 'config' ? `config key "${name}"` : `--${name}`;
  };
  let problem: string | undefined;
  for (const [name, field] of [
    ['max-lag-ms', 'maxLagMs'],
    ['max-lag-versions', 'maxLagVersions'],
  ] as const) {
    if (o[name] === undefined) continue;
    d[field] = num(o[name]);
    if (Number.isNaN(d[field]))
      problem ??= `${from(name)} must be a number; got ${JSON.stringify(o[name])}`;
  }
  problem ??= readDefaultProblem(d, {
    level: from('read-level'),
    maxLagMs: from('max-lag-ms'),
    maxLagVersions: from('max-lag-versions'),
  });
  if (problem)
    throw new CliError(
      `SYNOD_ERR_KV_INVALID_READ_LEVEL: ${problem}`,
      2,
      'SYNOD_ERR_KV_INVALID_READ_LEVEL',
    );
  return d;
}

/**
 * The cluster name: `--cluster-name` (SYNOD_CLUSTER_NAME, config key "cluster-name"), or the
 * older node spelling `--cluster` (config key "cluster"). Clients take the node URLs with
 * `--cluster`, so node URLs given here are refused with what to use instead.
 */
export function clusterNameOf(o: Parsed['options'], sources: Parsed['sources']): string {
  const named = o['cluster-name'] as string;
  const old = o.cluster as string | undefined;
  if (old === undefined) return named;
  if (old.includes('://') || old.includes(','))
    throw new CliError(
      `--cluster "${old}": synod node takes the cluster's name here (--cluster-name NAME), not node URLs; list the other members with --peers id=ws://host:port,… or join a running cluster with --join ws://host:port`,
    );
  if (sources['cluster-name'] !== 'default' && named !== old)
    throw new CliError(
      `--cluster "${old}" and --cluster-name "${named}" disagree: give the cluster name once, with --cluster-name`,
    );
  return old;
}

function describeRead(d: ReadDefault): string {
  const bounds = [
    ...(d.maxLagMs !== undefined ? [`maxLagMs ${d.maxLagMs}`] : []),
    ...(d.maxLagVersions !== undefined ? [`maxLagVersions ${d.maxLagVersions}`] : []),
  ];
  return bounds.length > 0 ? `${d.level} (${bounds.join(', ')})` : d.level;
}

function parseListen(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const host = i > 0 ? text.slice(0, i) : '0.0.0.0';
  const port = Number(i >= 0 ? text.slice(i + 1) : text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new CliError(`--listen "${text}" is not host:port`);
  return { host, port };
}

/**
 * Whether `argv`/the environment ask for JSON logs, before the options are parsed: a start error
 * in parsing itself (an unknown flag, a missing value) is then a JSON line too.
 */
export function wantsJson(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--log-format') return argv[i + 1] === 'json';
    if (argv[i]?.startsWith('--log-format=')) return argv[i] === '--log-format=json';
  }
  return env.SYNOD_LOG_FORMAT === 'json';
}

/**
 * A fatal start error as one JSON log line (`--log-format json`): the same text as the plain
 * `synod: …` line in `msg`, with the error's stable code and the exit code; the stack trace
 * (with `--verbose`) in `stack`, not on lines of its own.
 */
export function reportErrorJson(err: unknown, verbose: boolean, name?: string): number {
  const lines: string[] = [];
  const exitCode = reportError(err, false, (s) => lines.push(s));
  const e = err as { code?: unknown; stack?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const line = {
    time: new Date(systemClock.wallNow()).toISOString(),
    level: 'error',
    msg: lines
      .join('')
      .trim()
      .replace(/^synod: /, ''),
    ...(name !== undefined ? { name } : {}),
    ...(code !== undefined ? { code } : {}),
    exitCode,
    fatal: true,
    ...(verbose && typeof e?.stack === 'string' ? { stack: e.stack } : {}),
  };
  process.stderr.write(`${JSON.stringify(line)}\n`);
  return exitCode;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(usage('node', '--id ID --data DIR [options]', specs));
    return 0;
  }
  let verbose = argv.includes('--verbose');
  let json = wantsJson(argv);
  let name: string | undefined;
  try {
    const { options: o, sources } = parseArgs(argv, specs);
    verbose = o.verbose === true;
    json = o['log-format'] === 'json';
    name = o.id as string;
    const defaultRead = readDefaultOf(o, sources);
    const clusterName = clusterNameOf(o, sources);
    if (o.protocol !== 'gossip') {
      for (const name of ['replicas', 'key-types'] as const)
        if (sources[name] !== undefined && sources[name] !== 'default')
          throw new CliError(`--${name} is a setting of the leaderless store (--protocol gossip)`);
    } else {
      // What does not apply to a leaderless node is refused, not ignored.
      const consensusOnly = [
        'read-level',
        'max-lag-ms',
        'max-lag-versions',
        'snapshot-every',
        'backup-repo',
        'backup-key-file',
      ] as const;
      for (const name of consensusOnly)
        if (sources[name] !== undefined && sources[name] !== 'default')
          throw new CliError(
            `--${name} does not apply to --protocol gossip (${name.startsWith('backup') ? 'not available for the leaderless store yet' : 'the leaderless store has no log; reads name R and a level per request'})`,
          );
    }
    if (o.protocol === 'paxos' && o.join !== undefined)
      throw new CliError(
        'Multi-Paxos membership is static: list every member with --peers on every node (--join works with --protocol raft)',
      );
    // Checked before anything is written to the data directory.
    if (o.join !== undefined) parseJoinTargets(o.join as string);
    const joinTimeout = o['join-timeout'] as number;
    if (!Number.isFinite(joinTimeout) || joinTimeout < 0 || joinTimeout > 86_400_000)
      throw new CliError(
        `--join-timeout must be between 0 and 86400000 ms; got ${String(o['join-timeout'])}`,
      );
    const handoffMs = o['handoff-ms'] as number;
    if (!Number.isFinite(handoffMs) || handoffMs < 0 || handoffMs > 600_000)
      throw new CliError(
        `--handoff-ms must be between 0 and 600000 ms; got ${String(o['handoff-ms'])}`,
      );
    const snapshotEvery = o['snapshot-every'] as number | undefined;
    if (
      snapshotEvery !== undefined &&
      (!Number.isInteger(snapshotEvery) || snapshotEvery < 0 || snapshotEvery > 1_000_000_000)
    )
      throw new CliError(
        `--snapshot-every must be a whole number of entries between 0 and 1000000000; got ${String(o['snapshot-every'])}`,
      );
    if ((o['tls-cert'] === undefined) !== (o['tls-key'] === undefined))
      throw new CliError('--tls-cert and --tls-key go together');
    if (o['tls-ca'] !== undefined && o['tls-cert'] === undefined)
      throw new CliError('--tls-ca needs --tls-cert and --tls-key (it is for wss:// peers)');
    const logger = consoleLogger({
      wallNow: () => systemClock.wallNow(),
      name: o.id as string,
      format: o['log-format'] as 'text' | 'json',
      level: o['log-level'] as 'info',
    });
    const secret = readSecretFile(o['secret-file'] as string | undefined);
    const adminSecret = readSecretFile(o['admin-secret-file'] as string | undefined);
    const config = {
      id: o.id as string,
      listen: parseListen(o.listen as string),
      peers: (o.peers as string[] | undefined) ?? [],
      dataDir: o.data as string,
      cluster: clusterName,
      logger,
      defaultRead,
      handoffMs,
      ...(snapshotEvery !== undefined ? { snapshotEvery } : {}),
      ...(o.advertise ? { advertise: o.advertise as string } : {}),
      ...(secret ? { secret } : {}),
      ...(adminSecret ? { adminSecret } : {}),
      ...(o.join ? { join: o.join as string, joinTimeoutMs: o['join-timeout'] as number } : {}),
      ...(o['tls-cert']
        ? {
            tls: {
              certFile: o['tls-cert'] as string,
              keyFile: o['tls-key'] as string,
              ...(o['tls-ca'] !== undefined ? { caFile: o['tls-ca'] as string } : {}),
            },
          }
        : {}),
    };
    const node =
      o.protocol === 'paxos'
        ? await startPaxosNode(config)
        : o.protocol === 'gossip'
          ? await startGossipNode({
              ...config,
              gossip: {
                n: o.replicas as number,
                keyTypes: parseKeyTypes((o['key-types'] as string[] | undefined) ?? []),
              },
            })
          : await startNode(config);
    logger.log(
      'info',
      o.protocol === 'gossip'
        ? `node ${node.id} up at ${node.url} (cluster ${clusterName}, leaderless gossip store, N=${String(o.replicas)})`
        : `node ${node.id} up at ${node.url} (cluster ${clusterName}, ${o.protocol === 'paxos' ? 'Multi-Paxos' : 'Raft'}, default read level ${describeRead(defaultRead)})`,
    );
    let dashboard: DashboardServer | undefined;
    if (o.dashboard !== undefined) {
      dashboard = new DashboardServer({
        // The source talks to nodes through their admin actors only (id, system, status()),
        // which Multi-Paxos and leaderless (gossip) nodes provide as well.
        source: new NodeDashboardSource(
          node as RunningNode,
          o['backup-repo'] !== undefined
            ? new NodeBackups({
                repoDir: o['backup-repo'] as string,
                ...(o['backup-key-file'] ? { keyFile: o['backup-key-file'] as string } : {}),
                contact: `${node.id}=${node.url}`,
                clusterName,
                ...(secret ? { secret } : {}),
                listenHost: parseListen(o.listen as string).host,
                advertiseHost: new URL(node.url).hostname,
                clock: new SystemClock(),
                log: (line) => logger.log('info', line),
              })
            : undefined,
        ),
        port: o.dashboard as number,
        host: parseListen(o.listen as string).host,
        ...(adminSecret ? { adminSecret } : { readOnly: true }),
        // With the node's certificate the page and feed are https/wss: the admin secret in
        // the page's address and in every control then never crosses the network in clear.
        // (The node itself read these files already, so they are readable PEM here.)
        ...(o['tls-cert'] !== undefined
          ? {
              tls: {
                cert: readFileSync(o['tls-cert'] as string),
                key: readFileSync(o['tls-key'] as string),
              },
            }
          : {}),
      });
      const started = await dashboard.start().catch(async (err: unknown) => {
        // The node is up: close it and the dashboard's source cleanly before the one-line
        // error, or the process lingers.
        await dashboard?.stop().catch(() => undefined);
        await node.stop().catch(() => undefined);
        throw err;
      });
      const { url } = started;
      logger.log(
        'info',
        `dashboard at ${url}${adminSecret ? ' (controls need ?token=ADMIN_SECRET)' : ' (read-only)'}`,
      );
      const dashHost = parseListen(o.listen as string).host;
      if (adminSecret && o['tls-cert'] === undefined && !isLoopback(dashHost))
        logger.log(
          'warn',
          `the dashboard serves plain HTTP on ${dashHost}: its admin secret (in the page's address and every control) crosses the network in the clear; give the node --tls-cert and --tls-key to serve it over https`,
        );
    }
    // Runs until a signal, or until the node cannot serve any more (its consensus actor
    // stopped for good): then it exits non-zero with the cause, as etcd does on a storage
    // failure, instead of lingering as a process that is up and serves nothing (F2/F3).
    const ended = await new Promise<NodeEnd | undefined>((resolve) => {
      process.once('SIGINT', () => resolve(undefined));
      process.once('SIGTERM', () => resolve(undefined));
      void node.ended.then(resolve);
    });
    if (ended) {
      logger.log(
        ended.exitCode === 0 ? 'warn' : 'error',
        `node ${node.id} exits: ${ended.message}`,
        {
          code: ended.code,
        },
      );
      // A broken store may not close: bound the shutdown, then leave regardless.
      setTimeout(() => process.exit(ended.exitCode), 10_000).unref();
      await Promise.race([
        Promise.all([dashboard?.stop(), node.stop()]).catch(() => undefined),
        new Promise((r) => setTimeout(r, 8_000).unref()),
      ]);
      // The logger said it already; a text log ends with the plain one-line summary, a JSON
      // log stays JSON only.
      if (!json) process.stderr.write(`synod: ${ended.code}: ${ended.message}\n`);
      return ended.exitCode;
    }
    logger.log('info', 'shutting down: finishing in-flight work and closing the log');
    await dashboard?.stop();
    await node.stop();
    logger.log('info', 'stopped cleanly');
    return 0;
  } catch (err) {
    return json ? reportErrorJson(err, verbose, name) : reportError(err, verbose);
  }
}
