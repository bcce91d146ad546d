/**
 * `synod kv get|put|del|cas|scan|watch|status|workload`: the replicated key-value store from the
 * command line, against a remote cluster (`--cluster ws://host:port,...` over WebSockets; node ids are read
 * from each node's handshake, or given as `id=ws://host:port`) or
 * an in-process one (`--embedded raft|paxos`). Exit codes: 0 ok, 1 the operation failed or was
 * indeterminate (or a cas compare failed), 2 usage or bad input.
 */
import { writeSync } from 'node:fs';
import type { Quorum } from '../../actors/gossip/messages.js';
import { type EmbeddedCluster, startEmbeddedCluster } from '../../actors/kv/embedded.js';
import type { ReadOptions } from '../../actors/kv/messages.js';
import { READ_LEVELS, type ReadLevel } from '../../actors/kv/types.js';
import { systemClock } from '../../lib/clock.js';
import { HistoryRecorder } from '../../lib/history/recorder.js';
import { KvClient } from '../../lib/kv-client/client.js';
import {
  connect,
  connectLeaderless,
  type RemoteLeaderlessKvClient,
} from '../../lib/kv-client/connect.js';
import type { KvResponse } from '../../lib/kv-client/response.js';
import { parseMix, runWorkload, type WorkloadReport } from '../../lib/kv-client/workload.js';
import type { Logger } from '../../lib/logger.js';
import { readTlsCaFile } from '../../lib/node/discover.js';
import { CLIENT_ADVICE } from '../../lib/node/refusal-report.js';
import { randomFromEntropy } from '../../lib/random.js';
import { CliError } from '../args.js';
import { readSecretFile } from '../secret.js';

export const summary = 'replicated key-value store: get, put, del, cas, scan, watch, workload';

const USAGE = `usage: synod kv COMMAND [options]

commands:
  get KEY                 read a key
  put KEY VALUE           write a key
  del KEY                 delete a key
  cas KEY VALUE           write KEY only if --expect VALUE | --expect-absent | --expect-rev N
                          (VALUE "-" with --delete: delete instead)
  scan PREFIX             list keys under PREFIX (--limit N); --start A --end B for a range
  watch KEY               print changes as JSON lines (--prefix, --from-rev N, --count N)
  status                  each node's KV status (leader, applied index, revision)
  workload                closed-loop load with a Jepsen history (see below)
  incr KEY [BY]           add BY (default 1) to a counter key (--protocol gossip, a pn key)

cluster (one of):
  --cluster ws://host:port,ws://...    (or SYNOD_CLUSTER) nodes running the KV service;
                                       id=ws://host:port skips asking the node for its id
  --secret-file FILE                   (or SYNOD_SECRET_FILE) the cluster secret
  --cluster-name NAME                  (or SYNOD_CLUSTER_NAME) the nodes' cluster name
                                       (default synod)
  --tls-ca FILE                        (or SYNOD_TLS_CA) PEM CA that signed the nodes'
                                       certificates, for wss:// with a private/self-signed CA
  --embedded raft|paxos                an in-process 3-node cluster (state is discarded)
  --protocol gossip                    the nodes run the leaderless store (synod node
                                       --protocol gossip): get, put, del and incr only;
                                       --w / --r one|quorum|all|N (default quorum), reads
                                       --consistency eventual|session; get prints every
                                       sibling of a key in conflict, one per line; put and
                                       del read the key first and replace what they read
                                       (--blind: write without reading, as a new sibling)

reads:
  --consistency strong|bounded|session|prefix|eventual   (default: the cluster's
                          default read level, set by synod node --read-level; strong if unset)
  --max-lag-ms MS, --max-lag-versions N                   bounds for bounded reads
  --timeout MS            operation deadline, retries included (default 5000)
  --json                  print the full response as JSON

workload:
  --clients N (8)  --keys K (10)  --mix read:2,write:2,cas:1  --value-size B (16)
  --duration S (10)  --consistency LEVEL  --history out.jsonl  --json

exit codes: 0 ok; 1 failed, indeterminate, or cas compare failed; 2 usage or bad input`;

class UsageError extends Error {}

interface Args {
  cmd: string;
  pos: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set([
  'cluster',
  'secret-file',
  'cluster-name',
  'tls-ca',
  'embedded',
  'consistency',
  'max-lag-ms',
  'max-lag-versions',
  'timeout',
  'expect',
  'expect-rev',
  'limit',
  'start',
  'end',
  'from-rev',
  'count',
  'clients',
  'keys',
  'mix',
  'value-size',
  'duration',
  'history',
  'protocol',
  'w',
  'r',
]);
const BOOL_FLAGS = new Set(['json', 'prefix', 'expect-absent', 'delete', 'help', 'blind']);

function parseArgs(argv: string[]): Args {
  const pos: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-h') {
      flags.set('help', true);
      continue;
    }
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (BOOL_FLAGS.has(name)) {
      flags.set(name, true);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown option --${name}`);
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    flags.set(name, v);
  }
  const cmd = pos.shift() ?? '';
  return { cmd, pos, flags };
}

function str(a: Args, name: string): string | undefined {
  const v = a.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function num(a: Args, name: string, fallback: number, min = 0): number {
  const v = str(a, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min)
    throw new UsageError(`--${name} must be a number ≥ ${min}, got "${v}"`);
  return n;
}

function readOptions(a: Args): ReadOptions {
  const given = str(a, 'consistency');
  if (given !== undefined && !READ_LEVELS.includes(given as ReadLevel))
    throw new UsageError(`--consistency must be one of ${READ_LEVELS.join(', ')}, got "${given}"`);
  const level = given as ReadLevel | undefined;
  const o: { -readonly [K in keyof ReadOptions]: ReadOptions[K] } = {};
  // No --consistency: the request names no level and the cluster's default applies.
  if (level !== undefined) o.level = level;
  if (a.flags.has('max-lag-ms')) o.maxLagMs = num(a, 'max-lag-ms', 0);
  if (a.flags.has('max-lag-versions')) o.maxLagVersions = num(a, 'max-lag-versions', 0);
  if (level === 'bounded' && o.maxLagMs === undefined && o.maxLagVersions === undefined)
    throw new UsageError('--consistency bounded needs --max-lag-ms and/or --max-lag-versions');
  if (level !== 'bounded' && (o.maxLagMs !== undefined || o.maxLagVersions !== undefined))
    throw new UsageError('--max-lag-ms / --max-lag-versions go with --consistency bounded');
  return o;
}

interface Session {
  client(i?: number): KvClient;
  nodes: readonly string[];
  close(): Promise<void>;
  /**
   * Resolves with one line saying what to fix once every node has refused this client's
   * handshake (wrong secret, cluster name, …) and no link to any of them ever came up, so
   * nothing was sent. Never resolves otherwise (and for an embedded cluster).
   */
  refused: Promise<string>;
  /** Refusals by some nodes while others answered: worth a warning, not a failure. */
  refusalNotes(): string[];
}

/**
 * The client transport's log: a refused handshake is kept (and turned into one line saying what
 * to fix, see `Session.refused`) instead of printed as it happens; other warnings and errors go
 * to stderr as before.
 */
class RefusalWatch {
  readonly byNode = new Map<string, string>();
  private listeners: (() => void)[] = [];
  readonly logger: Logger = {
    log: (level, message, fields) => {
      if (fields?.refusal === true && typeof fields.peer === 'string') {
        if (!this.byNode.has(fields.peer)) this.byNode.set(fields.peer, String(fields.code ?? ''));
        for (const l of this.listeners) l();
        return;
      }
      if (level !== 'warn' && level !== 'error') return;
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      process.stderr.write(`${level.toUpperCase()} [kv client] ${message}${extra}\n`);
    },
  };

  onChange(f: () => void): void {
    this.listeners.push(f);
  }

  /** One sentence per problem: "node a refused …: wrong cluster secret — pass …". */
  describe(nodes: readonly string[]): { code: string; line: string } {
    const byCode = new Map<string, string[]>();
    for (const n of nodes) {
      const code = this.byNode.get(n);
      if (code !== undefined) byCode.set(code, [...(byCode.get(code) ?? []), n]);
    }
    const parts = [...byCode].map(([code, ns]) => {
      const advice = CLIENT_ADVICE[code] ?? {
        what: code,
        todo: 'check --cluster and --secret-file',
      };
      return `${ns.length === 1 ? 'node' : 'nodes'} ${ns.join(', ')} refused this client's handshake: ${advice.what} (${code}) — ${advice.todo}`;
    });
    return { code: [...byCode.keys()][0] ?? 'SYNOD_ERR_KV_UNAVAILABLE', line: parts.join('; ') };
  }
}

async function open(a: Args): Promise<Session> {
  const timeoutMs = num(a, 'timeout', 5000, 1);
  const embedded = str(a, 'embedded');
  if (embedded !== undefined) {
    if (embedded !== 'raft' && embedded !== 'paxos')
      throw new UsageError(`--embedded must be raft or paxos, got "${embedded}"`);
    const cluster: EmbeddedCluster = await startEmbeddedCluster({
      backend: embedded,
      clock: systemClock,
      seed: randomFromEntropy().nextUint32(),
    });
    await cluster.ready();
    return {
      nodes: cluster.nodes,
      client: () => new KvClient({ system: cluster.clientSystem, nodes: cluster.nodes, timeoutMs }),
      close: () => cluster.stop(),
      refused: new Promise<string>(() => undefined),
      refusalNotes: () => [],
    };
  }
  const spec = str(a, 'cluster') ?? process.env.SYNOD_CLUSTER;
  if (!spec)
    throw new UsageError(
      'name the cluster: --cluster ws://host:port,... (or SYNOD_CLUSTER), or --embedded raft|paxos',
    );
  const peers = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const secretFile = str(a, 'secret-file') ?? process.env.SYNOD_SECRET_FILE;
  const secret = readSecretFile(secretFile);
  const clusterName = str(a, 'cluster-name') ?? process.env.SYNOD_CLUSTER_NAME;
  const caFile = str(a, 'tls-ca') ?? (process.env.SYNOD_TLS_CA || undefined);
  if (caFile !== undefined) {
    try {
      readTlsCaFile(caFile, str(a, 'tls-ca') !== undefined ? '--tls-ca' : 'SYNOD_TLS_CA');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const watch = new RefusalWatch();
  const first = await connect(peers, {
    ...(caFile !== undefined ? { caFile } : {}),
    ...(secret !== undefined ? { secret } : {}),
    ...(clusterName ? { cluster: clusterName } : {}),
    timeoutMs,
    logger: watch.logger,
  });
  const extra: KvClient[] = [];
  const transport = first.system.getTransport() as
    | { linkStatus?(peer: string): { incarnation?: string } | undefined }
    | undefined;
  // A link that came up once may have carried the request: only a cluster that refused this
  // client from the start is "nothing was sent".
  const neverUp = (n: string) => transport?.linkStatus?.(n)?.incarnation === undefined;
  const refused = new Promise<string>((resolve) => {
    const check = () => {
      if (first.nodes.every((n) => watch.byNode.has(n) && neverUp(n)))
        resolve(watch.describe(first.nodes).line);
    };
    watch.onChange(check);
    check();
  });
  return {
    refused,
    refusalNotes: () => (watch.byNode.size > 0 ? [watch.describe(first.nodes).line] : []),
    nodes: first.nodes,
    client: (i = 0) => {
      if (i === 0) return first;
      const c = new KvClient({ system: first.system, nodes: first.nodes, timeoutMs });
      extra.push(c);
      return c;
    },
    close: async () => {
      for (const c of extra) await c.close();
      await first.disconnect();
    },
  };
}

/**
 * Set once the command's outcome is decided elsewhere (every node refused this client): the
 * command, still pending, then ends as the session closes and must not print a second answer.
 */
let decided = false;
/** What a pending command must stop (a watch's subscription) once the outcome is decided. */
const onDecided: (() => void)[] = [];

function out(line: string): void {
  if (!decided) writeSync(1, `${line}\n`);
}

function errLine(line: string): void {
  if (!decided) process.stderr.write(`${line}\n`);
}

function report<T>(a: Args, r: KvResponse<T>, text: (v: T) => string): number {
  if (a.flags.has('json')) out(JSON.stringify(r));
  else if (r.outcome === 'ok') out(text(r.value));
  else
    errLine(
      `${r.outcome === 'failed' ? 'failed (not applied)' : 'indeterminate (may have been applied)'}: ${r.error.code}: ${r.error.message}`,
    );
  return r.outcome === 'ok' ? 0 : 1;
}

/** The positional arguments each command takes: [at least, at most, what they are]. */
const POSITIONALS: Record<string, [number, number, string]> = {
  get: [1, 1, 'KEY'],
  put: [2, 2, 'KEY VALUE'],
  del: [1, 1, 'KEY'],
  cas: [2, 2, 'KEY VALUE'],
  scan: [0, 1, 'PREFIX'],
  watch: [1, 1, 'KEY'],
  status: [0, 0, 'no arguments'],
  workload: [0, 0, 'no arguments'],
  incr: [1, 2, 'KEY [BY]'],
};

/** Too few or too many positional arguments is a usage error (a stray word is not ignored). */
function checkPositionals(a: Args): void {
  const [min, max, what] = POSITIONALS[a.cmd] ?? [0, 0, ''];
  if (a.pos.length < min) throw new UsageError(`kv ${a.cmd} needs ${what}`);
  if (a.pos.length > max)
    throw new UsageError(
      `kv ${a.cmd} takes ${max === 0 ? 'no arguments' : `${what}${min < max ? ' (optional)' : ''}`}; got ${a.pos.length}: ${a.pos.map((p) => JSON.stringify(p)).join(' ')}${max > 0 ? ' (quote a value with spaces)' : ''}`,
    );
}

/** Runs one kv command on an open session; resolves with the exit code. */
async function runCommand(a: Args, s: Session, read: ReadOptions): Promise<number> {
  const kv = s.client();
  const [k0, k1] = a.pos as [string, string];
  switch (a.cmd) {
    case 'get':
      return report(a, await kv.get(k0, read), (v) => (v.value === null ? '(absent)' : v.value));
    case 'put':
      return report(a, await kv.put(k0, k1), (v) => `ok, revision ${v.rev}`);
    case 'del':
      return report(a, await kv.delete(k0), (v) =>
        v.t === 'del' && !v.deleted ? `(absent), revision ${v.rev}` : `deleted, revision ${v.rev}`,
      );
    case 'cas': {
      const cond =
        str(a, 'expect') !== undefined
          ? { value: str(a, 'expect') as string }
          : a.flags.has('expect-absent')
            ? { value: null }
            : a.flags.has('expect-rev')
              ? { modRev: num(a, 'expect-rev', 0) }
              : undefined;
      if (!cond)
        throw new UsageError('kv cas needs --expect VALUE, --expect-absent or --expect-rev N');
      const r = await kv.cas(k0, cond, a.flags.has('delete') ? null : k1);
      const code = report(a, r, (v) =>
        v.t === 'cas' && v.succeeded
          ? `ok, revision ${v.rev}`
          : `compare failed (current: ${v.t === 'cas' && v.prev ? v.prev.value : '(absent)'})`,
      );
      return code === 0 && r.outcome === 'ok' && r.value.t === 'cas' && !r.value.succeeded
        ? 1
        : code;
    }
    case 'scan': {
      const limit = a.flags.has('limit') ? num(a, 'limit', 0) : undefined;
      const opts = { ...read, ...(limit !== undefined ? { limit } : {}) };
      const r =
        str(a, 'start') !== undefined
          ? await kv.range(str(a, 'start') as string, str(a, 'end'), opts)
          : await kv.prefix(a.pos[0] ?? '', opts);
      return report(a, r, (v) =>
        [
          ...v.kvs.map((kvp) => `${kvp.key}\t${kvp.value}`),
          `(${v.kvs.length} of ${v.count}${v.more ? ', more' : ''}; revision ${v.rev})`,
        ].join('\n'),
      );
    }
    case 'status': {
      let worst = 0;
      const defaults = new Map<string, string[]>();
      // All at once: a down node waits out its deadline (its link may be coming up) without
      // holding up the others; printed in the nodes' order.
      const answers = await Promise.all(s.nodes.map((n) => kv.status(n)));
      for (const [i, n] of s.nodes.entries()) {
        const r = answers[i] as Awaited<ReturnType<typeof kv.status>>;
        if (r.outcome === 'ok') {
          out(JSON.stringify(r.value));
          const d = JSON.stringify(r.value.defaultRead ?? { level: 'strong' });
          defaults.set(d, [...(defaults.get(d) ?? []), n]);
        } else {
          out(JSON.stringify({ nodeId: n, error: r.error }));
          worst = 1;
        }
      }
      // The default read level is set per node; a read gets the one of the node it reaches.
      if (defaults.size > 1)
        errLine(
          `synod: warning: the nodes disagree on the default read level (${[...defaults]
            .map(([d, ns]) => `${ns.join(',')}: ${d}`)
            .join('; ')}); give every node the same --read-level`,
        );
      return worst;
    }
    case 'watch': {
      const count = num(a, 'count', Number.POSITIVE_INFINITY, 1);
      const fromRev = num(a, 'from-rev', 0);
      return await new Promise<number>((resolve) => {
        let seen = 0;
        const sub = kv.watch(k0, { prefix: a.flags.has('prefix'), fromRev }).subscribe({
          next: (e) => {
            out(JSON.stringify(e));
            if (++seen >= count) {
              sub.unsubscribe();
              resolve(0);
            }
          },
          error: (err: unknown) => {
            const e = err as { code?: string; message?: string };
            errLine(`watch failed: ${e.code ?? ''}: ${e.message ?? String(err)}`);
            resolve(1);
          },
        });
        onDecided.push(() => sub.unsubscribe());
        // Ctrl-C (or a service manager's SIGTERM) ends a watch normally: exit 0.
        const stop = () => {
          sub.unsubscribe();
          resolve(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }
    case 'workload': {
      const historyFile = str(a, 'history');
      const recorder = historyFile
        ? HistoryRecorder.toFile(historyFile, { clock: systemClock })
        : undefined;
      const rep: WorkloadReport = await runWorkload(
        {
          clients: num(a, 'clients', 8, 1),
          keys: num(a, 'keys', 10, 1),
          mix: parseMix(str(a, 'mix') ?? 'read:2,write:2,cas:1'),
          valueSize: num(a, 'value-size', 16, 0),
          durationMs: num(a, 'duration', 10, 0) * 1000,
          read,
          ...(recorder ? { recorder } : {}),
        },
        (i) => s.client(i),
        systemClock,
        randomFromEntropy(),
      );
      await recorder?.close();
      if (a.flags.has('json'))
        out(
          JSON.stringify({
            ...rep,
            consistency: read.level ?? 'cluster default',
            history: historyFile ?? null,
          }),
        );
      else {
        out(
          `${rep.clients} clients, ${(rep.durationMs / 1000).toFixed(1)} s, reads at ${read.level ?? 'the cluster default level'}`,
        );
        out('op      count      ok  failed  indet.    ops/s   p50 ms   p90 ms   p99 ms   max ms');
        for (const [name, st] of [...Object.entries(rep.ops), ['total', rep.total] as const]) {
          out(
            `${name.padEnd(6)} ${String(st.count).padStart(6)} ${String(st.ok).padStart(7)} ${String(st.failed).padStart(7)} ${String(st.indeterminate).padStart(7)} ${st.opsPerSec.toFixed(0).padStart(8)} ${st.latencyMs.p50.toFixed(2).padStart(8)} ${st.latencyMs.p90.toFixed(2).padStart(8)} ${st.latencyMs.p99.toFixed(2).padStart(8)} ${st.latencyMs.max.toFixed(2).padStart(8)}`,
          );
        }
        if (Object.keys(rep.errors).length > 0) out(`errors: ${JSON.stringify(rep.errors)}`);
        if (historyFile) out(`history: ${historyFile} (check it with: synod check ${historyFile})`);
      }
      return 0;
    }
  }
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  decided = false;
  onDecided.length = 0;
  let a: Args;
  try {
    a = parseArgs(argv);
    if (a.flags.has('help') || a.cmd === '' || a.cmd === 'help') {
      out(USAGE);
      return a.cmd === '' && !a.flags.has('help') ? 2 : 0;
    }
    const protocol = str(a, 'protocol');
    if (protocol !== undefined && !['raft', 'paxos', 'gossip'].includes(protocol))
      throw new UsageError(`--protocol must be raft, paxos or gossip, got "${protocol}"`);
    if (protocol === 'gossip') {
      if (!['get', 'put', 'del', 'incr'].includes(a.cmd))
        throw new UsageError(
          `kv ${a.cmd} is not available on a leaderless keyspace (--protocol gossip): get, put, del and incr are (cas, scans and watches need a leader or a log)`,
        );
    } else if (a.cmd === 'incr' || a.flags.has('w') || a.flags.has('r') || a.flags.has('blind'))
      throw new UsageError(
        `${a.cmd === 'incr' ? 'kv incr' : '--w / --r / --blind'} is for a leaderless keyspace: add --protocol gossip`,
      );
    else if (!['get', 'put', 'del', 'cas', 'scan', 'watch', 'status', 'workload'].includes(a.cmd))
      throw new UsageError(`unknown kv command "${a.cmd}"`);
  } catch (err) {
    process.stderr.write(
      `synod kv: ${(err as Error).message} (synod kv --help lists the commands and options)\n`,
    );
    return 2;
  }
  if (str(a, 'protocol') === 'gossip') return runLeaderless(a);
  let s: Session | undefined;
  try {
    checkPositionals(a);
    const read = a.cmd === 'get' || a.cmd === 'scan' || a.cmd === 'workload' ? readOptions(a) : {};
    s = await open(a);
    const session = s;
    // Whichever comes first: the command's answer, or every node refusing this client (then
    // nothing was sent, and waiting out the deadline would only end in a timeout that hides the
    // cause).
    const first = await Promise.race([
      runCommand(a, session, read).then((code) => ({ code })),
      session.refused.then((line) => ({ line })),
    ]);
    if ('line' in first) {
      decided = true;
      const code = /\((SYNOD_ERR_[A-Z_]+)\)/.exec(first.line)?.[1] ?? 'SYNOD_ERR_KV_UNAVAILABLE';
      for (const f of onDecided.splice(0)) f();
      if (a.flags.has('json'))
        writeSync(
          1,
          `${JSON.stringify({ outcome: 'failed', error: { code, message: `${first.line}; nothing was sent` }, attempts: 0 })}\n`,
        );
      else
        process.stderr.write(`synod kv: failed (not applied): ${first.line}; nothing was sent\n`);
      return 1;
    }
    for (const note of session.refusalNotes()) process.stderr.write(`synod kv: warning: ${note}\n`);
    return first.code;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (err instanceof UsageError) {
      process.stderr.write(`synod kv: ${e.message}\n`);
      return 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(`synod kv: ${e.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`synod kv: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
    return e.code === 'SYNOD_ERR_KV_INVALID_ARGUMENT' ? 2 : 1;
  } finally {
    await s?.close().catch(() => undefined);
  }
}

function quorumOf(a: Args, name: 'w' | 'r'): Quorum | undefined {
  const v = str(a, name);
  if (v === undefined) return undefined;
  if (v === 'one' || v === 'quorum' || v === 'all') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${name} must be one, quorum, all or a whole number ≥ 1, got "${v}"`);
  return n;
}

/** `synod kv get|put|del|incr --protocol gossip`: one request to a leaderless keyspace. */
async function runLeaderless(a: Args): Promise<number> {
  let kv: RemoteLeaderlessKvClient | undefined;
  try {
    checkPositionals(a);
    const timeoutMs = num(a, 'timeout', 5000, 1);
    const w = quorumOf(a, 'w');
    const r = quorumOf(a, 'r');
    const level = str(a, 'consistency');
    if (level !== undefined && level !== 'eventual' && level !== 'session')
      throw new UsageError(
        `--consistency on a leaderless keyspace is eventual or session, got "${level}" (there is no leader: use a Raft or Multi-Paxos cluster for ${level} reads)`,
      );
    const by = a.cmd === 'incr' && a.pos[1] !== undefined ? Number(a.pos[1]) : 1;
    if (!Number.isSafeInteger(by))
      throw new UsageError(`kv incr: BY must be a whole number, got "${a.pos[1]}"`);
    const spec = str(a, 'cluster') ?? process.env.SYNOD_CLUSTER;
    if (!spec)
      throw new UsageError('name the cluster: --cluster ws://host:port,... (or SYNOD_CLUSTER)');
    const secret = readSecretFile(str(a, 'secret-file') ?? process.env.SYNOD_SECRET_FILE);
    const clusterName = str(a, 'cluster-name') ?? process.env.SYNOD_CLUSTER_NAME;
    const caFile = str(a, 'tls-ca') ?? (process.env.SYNOD_TLS_CA || undefined);
    kv = await connectLeaderless(
      spec
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
      {
        timeoutMs,
        ...(secret !== undefined ? { secret } : {}),
        ...(clusterName ? { cluster: clusterName } : {}),
        ...(caFile !== undefined ? { caFile } : {}),
      },
    );
    const key = a.pos[0] as string;
    const wo = w !== undefined ? { w } : {};
    const written = (v: { acks: number; hinted: number }) =>
      `ok, ${v.acks} acks${v.hinted > 0 ? ` (${v.hinted} hinted)` : ''}`;
    switch (a.cmd) {
      case 'get': {
        const res = await kv.get(key, {
          ...(r !== undefined ? { r } : {}),
          ...(level !== undefined ? { level: level as ReadLevel } : {}),
        });
        return report(a, res, (v) =>
          v.absent
            ? '(absent)'
            : v.crdt !== undefined && v.crdt !== null
              ? JSON.stringify(v.crdt)
              : v.conflict
                ? [`(${v.siblings.length} siblings in conflict)`, ...v.siblings].join('\n')
                : String(v.value),
        );
      }
      case 'put':
      case 'del': {
        // A write replaces exactly the versions its causal context covers: without one (a new
        // process knows none) a put only adds a sibling and a delete removes nothing. So read
        // the key first (its context is kept by the client) unless --blind asks for that.
        if (!a.flags.has('blind')) {
          const seen = await kv.get(key, { r: r ?? 'quorum' });
          if (seen.outcome !== 'ok') {
            report(a, seen, () => '');
            errLine(
              `synod kv: nothing written: reading ${key} for its causal context failed (--blind writes without it, as a new sibling)`,
            );
            return 1;
          }
        }
        const res =
          a.cmd === 'put' ? await kv.put(key, a.pos[1] as string, wo) : await kv.delete(key, wo);
        return report(a, res, written);
      }
      default:
        return report(a, await kv.increment(key, by, wo), written);
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    process.stderr.write(`synod kv: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
    return err instanceof UsageError || e.code === 'SYNOD_ERR_KV_INVALID_ARGUMENT'
      ? 2
      : err instanceof CliError
        ? err.exitCode
        : 1;
  } finally {
    await kv?.disconnect().catch(() => undefined);
  }
}
