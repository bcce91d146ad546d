/**
 * `synod restore --repo DIR --to latest|ID|index:N|time:ISO --dest DATADIR`: rebuilds the
 * state from a backup repository (nearest backup + archived log), checks its digest, and
 * writes it as a fresh node data directory for a new cluster. See docs/backup.md.
 * Exit codes: 0 restored, 1 refused (damage, unreachable target, ...), 2 usage error.
 */
import { randomUUID } from 'node:crypto';
import { openRepo, parseArgs, reportError, UsageError } from '../../actors/backup/cli-args.js';
import { progressPrinter } from '../../actors/backup/progress.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';
import { formatTarget, parseTarget, type RestoreTarget } from '../../actors/backup/target.js';
import { SystemClock } from '../../lib/clock.js';

export const summary =
  'restore a backup (latest, an id, index:N or time:ISO) into a new data directory';

const USAGE = `usage: synod restore --repo DIR --to TARGET --dest DATADIR [options]

TARGET: latest            the newest state the repository holds (backup + archived log)
        <backup id>       exactly that backup (see synod backup list)
        index:N           the state right after log index N was applied
        time:ISO          the state at that time (last entry committed at or before it);
                          refused (SYNOD_ERR_BACKUP_TIME_AMBIGUOUS) where the archive cannot
                          tell which entries were committed by then: entries a catching-up
                          agent (a one-off backup --cluster) stamped with its catch-up time,
                          entries archived before synod recorded that, or missing entries

options:
  --dest DATADIR        a fresh directory for the restored node's data (must be empty):
                        the storage directory itself, or with --node ID a directory
                        'synod node --id ID --data DATADIR' starts from
  --cluster-dir DIR     restore the whole new cluster: one 'synod node --data' directory
                        per member, DIR/<member>
  --node ID             (with --dest) the member this directory is for
  --cluster-name NAME   the name the new nodes are started with (default synod)
  --members a,b,c       members (voters) of the new cluster (default: n1)
  --cluster-id ID       id of the new cluster (default: a new random id)
  --key-file FILE       key of an encrypted repository (or $SYNOD_BACKUP_KEY)
  --if-ambiguous WHAT   with --to time:ISO: refuse (default) or earlier (restore the last
                        index known to be committed at or before that time, with a warning)
  --dry-run             rebuild and check the state, write nothing
  --json                print the result as JSON
  -h, --help            this help

The restore refuses (exit 1, with a SYNOD_ERR_BACKUP_... code) rather than write a state it
cannot prove right: a missing or corrupt chunk, a broken chain, a digest mismatch, a gap
in the log archive, a target before the first backup or past the archive's end, a time the
archive cannot resolve to one index.`;

export async function run(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(
      argv,
      [
        '--repo',
        '--to',
        '--dest',
        '--members',
        '--cluster-id',
        '--key-file',
        '--cluster',
        '--secret-file',
        '--cluster-dir',
        '--node',
        '--cluster-name',
        '--if-ambiguous',
      ],
      ['--help', '--json', '--dry-run'],
    );
    if (args.flags.has('--help')) {
      console.log(USAGE);
      return 0;
    }
    if (args.positional.length > 0)
      throw new UsageError(`unexpected argument ${args.positional[0]}`);
    const toText = args.values.get('--to');
    if (!toText) throw new UsageError('--to TARGET is required');
    const parsed = parseTarget(toText);
    const ifAmbiguous = args.values.get('--if-ambiguous');
    if (ifAmbiguous !== undefined && ifAmbiguous !== 'refuse' && ifAmbiguous !== 'earlier')
      throw new UsageError(`--if-ambiguous ${ifAmbiguous}: expected refuse or earlier`);
    if (ifAmbiguous !== undefined && parsed.kind !== 'time')
      throw new UsageError('--if-ambiguous goes with --to time:ISO');
    const target: RestoreTarget =
      ifAmbiguous !== undefined && parsed.kind === 'time'
        ? { ...parsed, ifAmbiguous: ifAmbiguous as 'refuse' | 'earlier' }
        : parsed;
    const dest = args.values.get('--dest');
    const clusterDir = args.values.get('--cluster-dir');
    const nodeId = args.values.get('--node');
    const dryRun = args.flags.has('--dry-run');
    if (!dest && !clusterDir && !dryRun)
      throw new UsageError('--dest DATADIR or --cluster-dir DIR is required (or --dry-run)');
    if (dest && clusterDir) throw new UsageError('--dest and --cluster-dir exclude each other');
    if (nodeId && !dest) throw new UsageError('--node goes with --dest');
    const clusterName = args.values.get('--cluster-name') ?? 'synod';
    if (args.values.has('--cluster')) {
      throw new UsageError(
        '--cluster: restoring straight into running nodes is not supported; restore into --dest and start new nodes on it',
      );
    }
    const members = (args.values.get('--members') ?? 'n1')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (nodeId && !members.includes(nodeId))
      throw new UsageError(`--node ${nodeId} is not one of --members ${members.join(',')}`);
    const repo = await openRepo(args);
    const clock = new SystemClock();
    const printer = progressPrinter(process.stderr, () => clock.now());
    const t0 = clock.now();
    const clusterId = args.values.get('--cluster-id') ?? randomUUID();
    const { result: res, dirs } = await restoreDataDirs(repo, target, {
      members,
      clusterId,
      clusterName,
      now: clock.wallNow(),
      ...(!dryRun && dest ? { dest: { dir: dest, ...(nodeId ? { node: nodeId } : {}) } } : {}),
      ...(!dryRun && clusterDir ? { clusterDir } : {}),
      progress: printer.update,
      warn: (w) => console.error(`warning: ${w}`),
    });
    printer.done();
    const written = dirs.length > 0;
    const secs = (clock.now() - t0) / 1000;
    const out = {
      target: formatTarget(target),
      index: res.index,
      term: res.term,
      time: new Date(res.time).toISOString(),
      keys: res.keyCount,
      stateDigest: res.digest,
      chain: res.chain,
      replayed: res.replayed,
      chunksRead: res.chunksRead,
      bytesRead: res.bytesRead,
      seconds: secs,
      ...(written
        ? { dest: dirs.length === 1 ? dirs[0] : dirs, clusterId, members }
        : { dryRun: true }),
    };
    if (args.flags.has('--json')) {
      console.log(JSON.stringify(out, null, 2));
    } else {
      console.log(
        `restored index ${res.index} (term ${res.term}, committed ${out.time}): ${res.keyCount} keys, digest ${res.digest.slice(0, 16)}…`,
      );
      console.log(
        `  from ${res.chain.length ? res.chain.join(' → ') : 'the empty state'}${res.replayed ? ` + ${res.replayed} archived entries` : ''}; ${res.chunksRead} chunks read in ${secs.toFixed(1)} s`,
      );
      if (written)
        console.log(
          `  wrote ${dirs.join(', ')} for new cluster ${clusterId} (members ${members.join(', ')})`,
        );
      else console.log('  dry run: nothing written');
    }
    return 0;
  } catch (err) {
    return reportError('synod restore', err, USAGE);
  }
}
