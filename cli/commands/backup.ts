/**
 * `synod backup full|diff|incr|list|verify|expire|schedule|init`: the backup repository
 * from the command line. See docs/backup.md.
 * Exit codes: 0 success, 1 failure (or damage found by verify), 2 usage error, 3 (`--cluster`
 * backups and `agent`) backups written, but the archive's last entries or leaving the cluster
 * failed afterwards (the warnings on stderr say which).
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import path from 'node:path';
import type { BackupEvent, BackupFailedEvent } from '../../actors/backup/agent.js';
import {
  intOpt,
  openRepo,
  type ParsedArgs,
  parseArgs,
  reportError,
  UsageError,
} from '../../actors/backup/cli-args.js';
import { loadKey, newKey } from '../../actors/backup/crypto.js';
import { afterBackupWarnings, liveBackup, runLiveAgent } from '../../actors/backup/live-cli.js';
import type { BackupType, Manifest } from '../../actors/backup/manifest.js';
import { offlineBackup } from '../../actors/backup/offline.js';
import { progressPrinter } from '../../actors/backup/progress.js';
import { Repository } from '../../actors/backup/repository.js';
import { expire } from '../../actors/backup/retention.js';
import {
  compileSchedule,
  loadSchedule,
  nextDue,
  type SchedulePolicy,
  saveSchedule,
} from '../../actors/backup/schedule.js';
import { stateKindOf } from '../../actors/backup/state-kind.js';
import { verify } from '../../actors/backup/verify.js';
import { SystemClock } from '../../lib/clock.js';
import { readTlsCaFile } from '../../lib/node/discover.js';
import { readSecretFile } from '../secret.js';

export const summary =
  'full/diff/incr backups, list, verify, expire and schedule a backup repository';

const USAGE = `usage: synod backup <command> --repo DIR [options]

commands:
  init        create a repository in DIR
                --encrypt               encrypt with AES-256-GCM (key: --key-file or
                                        $SYNOD_BACKUP_KEY; --new-key-file F writes a new key)
                --cluster-id ID         the cluster it backs up (else set by the first backup)
                --chunk-size BYTES      average chunk size, a power of two (default 1048576)
                --compress ALGO         none, deflate[:1-9], brotli[:0-11] or lz4 (default:
                                        lz4 when its optional module lz4-napi loads, else
                                        brotli:1; brotli stores text in ~0.65 of lz4's space)
  full|diff|incr
              take a backup. Without --cluster, of the repository's own latest state
              (latest backup + log archive), e.g. to consolidate a chain into a new full.
              A diff or incr with no full backup present is taken as a full.
  list        the complete backups, oldest first           [--json]
  verify      read everything; name every damaged thing    [--json]
              (exit 1 when anything is damaged)
  expire      apply retention: --keep-full N [--keep-diff M] [--dry-run] [--json]
  agent       run the backup agent: join --cluster as a learner and stay, keep the log
              archive current (point-in-time restore up to the last seconds), take the
              scheduled backups and apply retention (see schedule); Ctrl-C or SIGTERM
              flushes the archive, leaves the cluster and exits
  schedule    set the policy the backup agent runs (cron in UTC, or @every 1h):
                --full CRON --diff CRON --incr CRON [--keep-full N --keep-diff M]
              with no rule: show the policy and the next due backups; --clear removes it

common options:
  --repo DIR          the repository (required)
  --key-file FILE     the key of an encrypted repository (or set $SYNOD_BACKUP_KEY)
  -h, --help          this help

a live cluster (full|diff|incr): the agent joins it as a learner (a non-voting member),
catches up with what the leader has committed, writes the backup, archives the log it
received, and leaves the cluster again; writes go on meanwhile.
  --cluster URLS        ws://host:port or id=ws://host:port, comma-separated (or SYNOD_CLUSTER)
  --secret-file FILE    the cluster secret (or SYNOD_SECRET_FILE)
  --cluster-name NAME   the name the nodes were started with (default synod)
  --tls-ca FILE         PEM CA that signed the nodes' certificates, for a wss:// cluster
                        with a private or self-signed CA (or SYNOD_TLS_CA)
  --agent-id ID         the learner's member id (default backup)
  --listen HOST:PORT    where the agent listens for the cluster (default 127.0.0.1:0)
  --advertise URL       the URL the cluster reaches the agent at (default from --listen)
  --nice N              CPU priority of this process, 0-19 (default 10, also for agent):
                        on a machine it shares with nodes, their work comes first; 0 leaves
                        the priority as started
  (init --state kv|map: the state machine the repository backs up; default kv. A missing
   repository is created, unencrypted unless a key is given, on the first --cluster backup.)

exit codes: 0 ok; 1 failure, refusal or damage found by verify; 2 usage error; 3 (--cluster
backups and agent) the backups are written and restore, but afterwards the log archive's
last entries could not be written or the agent could not leave the cluster (stderr says
which, and what to do)`;

const VALUE_OPTS = [
  '--repo',
  '--key-file',
  '--new-key-file',
  '--cluster',
  '--secret-file',
  '--cluster-id',
  '--chunk-size',
  '--compress',
  '--keep-full',
  '--keep-diff',
  '--full',
  '--diff',
  '--incr',
  '--cluster-name',
  '--agent-id',
  '--listen',
  '--advertise',
  '--state',
  '--tls-ca',
  '--nice',
];
const FLAG_OPTS = ['--help', '--json', '--dry-run', '--encrypt', '--clear'];

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv, VALUE_OPTS, FLAG_OPTS);
    const [cmd, ...extra] = args.positional;
    if (args.flags.has('--help') || !cmd) {
      console.log(USAGE);
      return cmd || args.flags.has('--help') ? 0 : 2;
    }
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
    switch (cmd) {
      case 'init':
        return await init(args);
      case 'full':
      case 'diff':
      case 'incr':
        return await take(args, cmd);
      case 'list':
        return await list(args);
      case 'verify':
        return await doVerify(args);
      case 'expire':
        return await doExpire(args);
      case 'schedule':
        return await schedule(args);
      case 'agent':
        return await agent(args);
      default:
        throw new UsageError(`unknown backup command ${cmd}`);
    }
  } catch (err) {
    if (err instanceof CaFileError) {
      console.error(`synod backup: ${err.message}`);
      return 2;
    }
    return reportError('synod backup', err, USAGE);
  }
}

async function init(args: ParsedArgs): Promise<number> {
  const dir = args.values.get('--repo');
  if (!dir) throw new UsageError('--repo DIR is required');
  let key: Buffer | undefined;
  if (args.flags.has('--encrypt')) {
    const newKeyFile = args.values.get('--new-key-file');
    if (newKeyFile) {
      const { writeFileSync } = await import('node:fs');
      key = newKey();
      writeFileSync(newKeyFile, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      console.log(
        `wrote a new key to ${newKeyFile} (keep it: without it the backups cannot be read)`,
      );
    } else {
      const keyFile = args.values.get('--key-file');
      key = loadKey(keyFile !== undefined ? { keyFile } : {});
      if (!key)
        throw new UsageError(
          '--encrypt needs --key-file FILE, --new-key-file FILE or $SYNOD_BACKUP_KEY',
        );
    }
  }
  const chunk = intOpt(args, '--chunk-size', 64);
  // Default: the repository's (LZ4 when its native module loads here, else brotli 1).
  const compress = args.values.get('--compress');
  const m =
    compress === undefined ? null : /^(none|deflate|brotli|lz4)(?::(\d{1,2}))?$/.exec(compress);
  if (compress !== undefined && !m)
    throw new UsageError(
      `--compress must be none, deflate[:1-9], brotli[:0-11] or lz4 (got ${compress})`,
    );
  const compression = m ? compressionOf(m) : undefined;
  const clusterId = args.values.get('--cluster-id');
  const state = args.values.get('--state') ?? 'kv';
  if (state !== 'kv' && state !== 'map')
    throw new UsageError(`--state must be kv or map (got ${state})`);
  const repo = await Repository.init(dir, {
    state,
    ...(key ? { key } : {}),
    ...(clusterId ? { clusterId } : {}),
    ...(chunk
      ? { chunker: { avgSize: chunk, minSize: Math.max(1, chunk >> 2), maxSize: chunk * 4 } }
      : {}),
    ...(compression ? { compression } : {}),
    now: new SystemClock().wallNow(),
  });
  console.log(`initialized backup repository ${repo.dir}${key ? ' (encrypted)' : ''}`);
  return 0;
}

function parseListen(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65_535)
    throw new UsageError(`--listen "${text}" is not host:port`);
  return { host: text.slice(0, i), port };
}

/** Opens --repo, creating a KV repository there when none exists yet (live backups only). */
async function openOrCreate(
  args: ParsedArgs,
  clusterName: string,
): Promise<{ repo: Repository; discardIfUnused: () => Promise<void> }> {
  const keyFile = args.values.get('--key-file');
  const key = loadKey(keyFile !== undefined ? { keyFile } : {});
  const dir = args.values.get('--repo');
  if (!dir) throw new UsageError('--repo DIR is required');
  const existed = existsSync(dir);
  const { repo, created } = await Repository.openOrInitKv(dir, {
    ...(key ? { key } : {}),
    clusterId: args.values.get('--cluster-id') ?? clusterName,
    now: new SystemClock().wallNow(),
  });
  if (created) console.error(`created backup repository ${dir}${key ? ' (encrypted)' : ''}`);
  /**
   * After a failure: a repository this run created and left without a backup or an archived
   * entry is removed again, so a mistyped --cluster or a wrong secret leaves nothing behind.
   */
  const discardIfUnused = async () => {
    if (!created) return;
    const unused = (await repo.scan()).length === 0 && (await repo.archive.list()).length === 0;
    if (!unused) return;
    if (existed) {
      for (const name of readdirSync(dir))
        if (CREATED_BY_INIT.has(name))
          rmSync(path.join(dir, name), { recursive: true, force: true });
    } else rmSync(dir, { recursive: true, force: true });
    console.error(`removed the backup repository created for it: ${dir} (nothing was written)`);
  };
  return { repo, discardIfUnused };
}

/** What `Repository.init` (and a first backup that failed) leaves in a repository directory. */
const CREATED_BY_INIT = new Set(['repo.json', 'chunks', 'backups', 'archive', 'LOCK']);

/**
 * `--nice N` (default 10): lowers the CPU priority of the process that follows a live cluster
 * (a one-shot `--cluster` backup or the agent), before its worker threads start (threads
 * inherit it), so that on a machine shared with nodes their writes come first (the issue's
 * "without slowing writes"). On an idle machine a niced process runs at full speed.
 */
function lowerPriority(args: ParsedArgs, log: (line: string) => void): void {
  const n = intOpt(args, '--nice', 0) ?? 10;
  if (n > 19) throw new UsageError(`--nice must be an integer from 0 to 19 (got ${n})`);
  if (n === 0) return;
  try {
    setPriority(0, Math.max(getPriority(0), n));
    reniceThreads(n);
  } catch (err) {
    log(`backup: could not lower the CPU priority to ${n}: ${(err as Error).message}`);
  }
}

/**
 * On Linux a nice value belongs to a thread: `setPriority(0, n)` lowers only the calling
 * thread (and the threads it starts later: chunk workers, libuv's pool). V8's platform
 * threads (its garbage collector's helpers) started with the process and stay at their
 * priority: measured in session 10, they did a third of a `--cluster` backup's CPU at nice 0
 * while the main thread ran at nice 10. So every thread of the process is lowered, by its id
 * (/proc/self/task); elsewhere there is nothing to enumerate and nothing is done.
 */
export function reniceThreads(n: number): void {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return;
  }
  for (const tid of tids) {
    const id = Number(tid);
    try {
      if (getPriority(id) < n) setPriority(id, n);
    } catch {
      // the thread ended in between
    }
  }
}

async function takeLive(args: ParsedArgs, kind: BackupType, cluster: string): Promise<number> {
  lowerPriority(args, (line) => console.error(line));
  const clusterName = args.values.get('--cluster-name') ?? 'synod';
  const secret = readSecretFile(args.values.get('--secret-file') ?? process.env.SYNOD_SECRET_FILE);
  const caFile = tlsCa(args);
  const { repo, discardIfUnused } = await openOrCreate(args, clusterName);
  const clock = new SystemClock();
  const printer = progressPrinter(process.stderr, () => clock.now());
  const t0 = clock.now();
  const listen = args.values.get('--listen');
  const advertise = args.values.get('--advertise');
  const agentId = args.values.get('--agent-id');
  const json = args.flags.has('--json');
  const r = await liveBackup({
    cluster,
    clusterName,
    repo,
    kind,
    clock,
    ...(secret ? { secret } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(agentId ? { agentId } : {}),
    ...(listen ? { listen: parseListen(listen) } : {}),
    ...(advertise ? { advertise } : {}),
    progress: printer.update,
    log: (line) => console.error(line),
  }).catch(async (err: unknown) => {
    printer.done();
    await discardIfUnused();
    throw err;
  });
  printer.done();
  const secs = (clock.now() - t0) / 1000;
  if (json) {
    console.log(JSON.stringify({ ...r, seconds: secs }));
  } else {
    if (r.promoted)
      console.log(`no full backup to build on: took a full backup instead of ${kind}`);
    console.log(
      `${r.type} backup ${r.id} of the live cluster at index ${r.index} (term ${r.term}; the leader had committed ${r.committedAtRequest}): ${r.keyCount} keys, ${r.records} records, ${r.chunks} chunks, ${fmtBytes(r.bytes)} (${fmtBytes(r.storedBytes)} new) in ${secs.toFixed(1)} s`,
    );
    console.log(
      `log archive up to index ${r.archivedTo}; ${r.leaveError ? `${r.protocol === 'paxos' ? 'puller' : 'learner'} ${r.agentId} did not leave cleanly` : agentGone(r.protocol, r.agentId)}`,
    );
  }
  const warnings = afterBackupWarnings(r);
  if (warnings.length > 0) {
    console.error(`backup ${r.id} is written and restores; after it:`);
    for (const w of warnings) console.error(w);
    return 3;
  }
  return 0;
}

/** How the agent left: a Raft learner leaves the configuration; a Paxos puller never joined it. */
function agentGone(protocol: 'raft' | 'paxos', agentId: string): string {
  return protocol === 'paxos'
    ? `puller ${agentId} disconnected (on Multi-Paxos it never joins the configuration)`
    : `learner ${agentId} left the cluster`;
}

/** `--tls-ca FILE` (or SYNOD_TLS_CA), checked before anything is dialled: unusable is exit 2. */
function tlsCa(args: ParsedArgs): string | undefined {
  const flag = args.values.get('--tls-ca');
  const file = flag ?? (process.env.SYNOD_TLS_CA || undefined);
  if (file === undefined) return undefined;
  try {
    readTlsCaFile(file, flag !== undefined ? '--tls-ca' : 'SYNOD_TLS_CA');
  } catch (err) {
    throw new CaFileError((err as Error).message);
  }
  return file;
}

/** An unusable `--tls-ca`: a usage error (exit 2) that is one line, without the usage text. */
class CaFileError extends UsageError {}

async function agent(args: ParsedArgs): Promise<number> {
  const cluster = args.values.get('--cluster') ?? process.env.SYNOD_CLUSTER;
  if (!cluster) throw new UsageError('agent needs --cluster URLS (or SYNOD_CLUSTER)');
  lowerPriority(args, (line) => console.error(line));
  const clusterName = args.values.get('--cluster-name') ?? 'synod';
  const secret = readSecretFile(args.values.get('--secret-file') ?? process.env.SYNOD_SECRET_FILE);
  const caFile = tlsCa(args);
  const { repo, discardIfUnused } = await openOrCreate(args, clusterName);
  const clock = new SystemClock();
  const listen = args.values.get('--listen');
  const advertise = args.values.get('--advertise');
  const agentId = args.values.get('--agent-id');
  const json = args.flags.has('--json');
  const stamp = () => new Date(clock.wallNow()).toISOString();
  const say = (line: string) =>
    json
      ? console.log(JSON.stringify({ time: stamp(), msg: line }))
      : console.log(`${stamp()} ${line}`);
  const stop = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  void stop.then((sig) => say(`${sig}: flushing the log archive and leaving the cluster`));
  const r = await runLiveAgent({
    cluster,
    clusterName,
    repo,
    clock,
    stop,
    ...(secret ? { secret } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(agentId ? { agentId } : {}),
    ...(listen ? { listen: parseListen(listen) } : {}),
    ...(advertise ? { advertise } : {}),
    log: say,
    onBackup: (b) => console.log(agentBackupLine(b, json, stamp())),
    onReady: (s) => {
      const next = s.nextScheduled
        ? `next scheduled: ${s.nextScheduled.type} at ${new Date(s.nextScheduled.time).toISOString()}`
        : 'no schedule set (synod backup schedule --repo … --full CRON …): archiving the log only';
      say(`caught up at index ${s.index} (${s.keyCount} keys); archiving the log; ${next}`);
    },
  }).catch(async (err: unknown) => {
    await discardIfUnused();
    throw err;
  });
  say(
    `stopped: ${r.backups.length} backup(s) taken, log archived to index ${r.archivedTo}; ${r.leaveError ? `${r.protocol === 'paxos' ? 'puller' : 'learner'} ${r.agentId} did not leave cleanly` : agentGone(r.protocol, r.agentId)}`,
  );
  const warnings = afterBackupWarnings(r);
  for (const w of warnings) console.error(w);
  return warnings.length > 0 ? 3 : 0;
}

/**
 * The line `synod backup agent` prints for a backup written (or failed), with its window:
 * `full backup ID written at index N in 2.31 s (requested …Z, written …Z – …Z)`, or with
 * `--json` `{time, msg, event, id, kind, index, requestedAt, startedAt, endedAt, seconds}`
 * (the three times as ISO 8601 UTC with milliseconds; `event` is `backup` or
 * `backup-failed`, which has `error` instead of `id`/`index`). A benchmark or a monitor
 * can tell from them which writes ran while a backup did.
 */
export function agentBackupLine(
  b: BackupEvent | BackupFailedEvent,
  json: boolean,
  time: string,
): string {
  const iso = (ms: number) => new Date(ms).toISOString();
  const seconds = (b.endedAt - b.requestedAt) / 1000;
  const msg =
    b.type === 'backup'
      ? `${b.kind} backup ${b.id} written at index ${b.index} in ${seconds.toFixed(2)} s${b.reusedBytes ? ` (${mib(b.reusedBytes)} of ${mib(b.bytes ?? 0)} MiB reused from the last full)` : ''}`
      : `${b.kind} backup failed after ${seconds.toFixed(2)} s: ${b.error}`;
  const window = {
    requestedAt: iso(b.requestedAt),
    startedAt: iso(b.startedAt),
    endedAt: iso(b.endedAt),
  };
  if (json) {
    const what =
      b.type === 'backup'
        ? {
            id: b.id,
            kind: b.kind,
            index: b.index,
            ...(b.bytes !== undefined ? { bytes: b.bytes, reusedBytes: b.reusedBytes ?? 0 } : {}),
          }
        : { kind: b.kind, error: b.error };
    return JSON.stringify({ time, msg, event: b.type, ...what, ...window, seconds });
  }
  return `${time} ${msg} (requested ${window.requestedAt}, written ${window.startedAt} – ${window.endedAt})`;
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

async function take(args: ParsedArgs, kind: BackupType): Promise<number> {
  const cluster = args.values.get('--cluster') ?? process.env.SYNOD_CLUSTER;
  if (cluster) return takeLive(args, kind, cluster);
  const repo = await openRepo(args);
  const clock = new SystemClock();
  const printer = progressPrinter(process.stderr, () => clock.now());
  const t0 = clock.now();
  const { manifest: m, promoted } = await offlineBackup(repo, kind, {
    factory: stateKindOf(repo).factory,
    now: clock.wallNow(),
    progress: printer.update,
  });
  printer.done();
  const secs = (clock.now() - t0) / 1000;
  if (args.flags.has('--json')) {
    console.log(JSON.stringify({ ...summaryOf(m), promoted, seconds: secs }));
  } else {
    if (promoted) console.log(`no full backup present: took a full backup instead of ${kind}`);
    console.log(
      `${m.type} backup ${m.id} at index ${m.index} (term ${m.term}): ${m.records} records, ${m.chunks.length} chunks, ${fmtBytes(m.bytes)} (${fmtBytes(m.storedBytes)} new) in ${secs.toFixed(1)} s`,
    );
  }
  return 0;
}

function summaryOf(m: Manifest) {
  return {
    id: m.id,
    type: m.type,
    parent: m.parent,
    index: m.index,
    term: m.term,
    time: new Date(m.time).toISOString(),
    createdAt: new Date(m.createdAt).toISOString(),
    keys: m.keyCount,
    records: m.records,
    chunks: m.chunks.length,
    bytes: m.bytes,
    storedBytes: m.storedBytes,
    stateDigest: m.stateDigest,
  };
}

function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

async function list(args: ParsedArgs): Promise<number> {
  const repo = await openRepo(args);
  const scanned = await repo.scan();
  const segs = await repo.archive.list();
  if (args.flags.has('--json')) {
    console.log(
      JSON.stringify(
        {
          backups: scanned.flatMap((s) => (s.manifest ? [summaryOf(s.manifest)] : [])),
          damaged: scanned.flatMap((s) =>
            s.error ? [{ id: s.name, error: s.error.message }] : [],
          ),
          archive: segs.length
            ? {
                from: segs[0]?.first,
                to: Math.max(...segs.map((s) => s.last)),
                segments: segs.length,
              }
            : null,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const rows = [['id', 'type', 'parent', 'index', 'term', 'time (UTC)', 'keys', 'size', 'new']];
  for (const s of scanned) {
    const m = s.manifest;
    if (!m) {
      rows.push([s.name, 'DAMAGED', s.error?.code ?? '', '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      m.id,
      m.type,
      m.parent ?? '-',
      String(m.index),
      String(m.term),
      new Date(m.time).toISOString().replace('T', ' ').slice(0, 19),
      String(m.keyCount),
      fmtBytes(m.bytes),
      fmtBytes(m.storedBytes),
    ]);
  }
  const w = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(w[i] as number))
        .join('  ')
        .trimEnd(),
    );
  if (rows.length === 1) console.log('(no backups)');
  console.log(
    segs.length
      ? `log archive: indices ${segs[0]?.first}..${Math.max(...segs.map((s) => s.last))} in ${segs.length} segments`
      : 'log archive: empty',
  );
  return 0;
}

async function doVerify(args: ParsedArgs): Promise<number> {
  const repo = await openRepo(args);
  const clock = new SystemClock();
  const printer = progressPrinter(process.stderr, () => clock.now());
  const r = await verify(repo, { progress: printer.update });
  printer.done();
  if (args.flags.has('--json')) {
    console.log(JSON.stringify(r, null, 2));
    return r.ok ? 0 : 1;
  }
  console.log(
    `${r.backups} backups, ${r.chunks} chunks (${fmtBytes(r.chunkBytes)}), ${r.segments} archive segments${r.archivedFrom !== null ? ` (indices ${r.archivedFrom}..${r.archivedTo})` : ''}, ${r.orphanChunks} unreferenced chunks`,
  );
  const at = r.archiveTiming;
  if (at.caughtUp + at.unknown > 0) {
    console.log(
      `archive entry times: ${at.observed} observed live, ${at.caughtUp} caught up (committed at or before their time), ${at.unknown} of unknown precision (archive formats 1 and 2); restore --to time: refuses a time these leave ambiguous`,
    );
  }
  for (const p of r.problems) {
    console.log(
      `DAMAGED ${p.kind} ${p.target}: ${p.detail}${p.affects.length ? ` [breaks: ${p.affects.join(', ')}]` : ''}`,
    );
  }
  console.log(r.ok ? 'verify: OK' : `verify: ${r.problems.length} problem(s)`);
  return r.ok ? 0 : 1;
}

async function doExpire(args: ParsedArgs): Promise<number> {
  const full = intOpt(args, '--keep-full', 1);
  if (full === undefined) throw new UsageError('expire needs --keep-full N');
  const diff = intOpt(args, '--keep-diff', 0);
  const repo = await openRepo(args);
  const r = await expire(
    repo,
    { full, ...(diff !== undefined ? { diff } : {}) },
    { dryRun: args.flags.has('--dry-run') },
  );
  if (args.flags.has('--json')) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  console.log(
    `${args.flags.has('--dry-run') ? 'would expire' : 'expired'} ${r.expired.length} backup(s)${r.expired.length ? `: ${r.expired.join(', ')}` : ''}`,
  );
  console.log(
    `kept ${r.kept.length}; removed ${r.segmentsRemoved} archive segment(s), ${r.chunksRemoved} chunk(s), ${fmtBytes(r.bytesFreed)}`,
  );
  for (const w of r.warnings) console.log(`warning: ${w}`);
  return 0;
}

async function schedule(args: ParsedArgs): Promise<number> {
  const repo = await openRepo(args);
  const clock = new SystemClock();
  if (args.flags.has('--clear')) {
    await repo.fs.unlink((await import('../../actors/backup/schedule.js')).scheduleFile(repo.dir));
    console.log('schedule removed');
    return 0;
  }
  const rules = ['--full', '--diff', '--incr'].filter((o) => args.values.has(o));
  let policy: SchedulePolicy | undefined;
  if (rules.length > 0) {
    const full = intOpt(args, '--keep-full', 1);
    const diff = intOpt(args, '--keep-diff', 0);
    policy = {
      ...(args.values.has('--full') ? { full: args.values.get('--full') as string } : {}),
      ...(args.values.has('--diff') ? { diff: args.values.get('--diff') as string } : {}),
      ...(args.values.has('--incr') ? { incr: args.values.get('--incr') as string } : {}),
      ...(full !== undefined
        ? { retention: { full, ...(diff !== undefined ? { diff } : {}) } }
        : {}),
    };
    await saveSchedule(repo.fs, repo.dir, policy);
    console.log(
      'schedule saved (the backup agent picks it up when it starts or on reload-schedule)',
    );
  } else {
    policy = await loadSchedule(repo.fs, repo.dir);
    if (!policy) {
      console.log('no schedule (set one with --full/--diff/--incr CRON)');
      return 0;
    }
  }
  const c = compileSchedule(policy);
  if (args.flags.has('--json')) {
    console.log(JSON.stringify(policy));
    return 0;
  }
  for (const r of c.rules) console.log(`${r.type.padEnd(4)}  ${r.rule.text}`);
  if (policy.retention) {
    console.log(
      `retention: keep ${policy.retention.full} full${policy.retention.diff !== undefined ? `, ${policy.retention.diff} diff` : ''}`,
    );
  }
  let t = clock.wallNow();
  console.log('next:');
  for (let i = 0; i < 5; i++) {
    const d = nextDue(c, t);
    console.log(`  ${new Date(d.time).toISOString()}  ${d.type}`);
    t = d.time;
  }
  return 0;
}

/** `--compress ALGO[:LEVEL]` (already matched) as compression parameters; usage errors. */
function compressionOf(m: RegExpExecArray): {
  algo: 'none' | 'deflate' | 'brotli' | 'lz4';
  level: number;
} {
  const algo = m[1] as 'none' | 'deflate' | 'brotli' | 'lz4';
  const level = Number(m[2] ?? (algo === 'none' || algo === 'lz4' ? 0 : 1));
  if (algo === 'lz4' && level !== 0)
    throw new UsageError(`--compress lz4 takes no level (got ${level})`);
  if (algo === 'deflate' && (level < 1 || level > 9))
    throw new UsageError(`--compress deflate takes a level 1-9 (got ${level})`);
  if (algo === 'brotli' && level > 11)
    throw new UsageError(`--compress brotli takes a level 0-11 (got ${level})`);
  return { algo, level };
}
