/**
 * `synod status --cluster ws://h:p,… [--secret-file F] [--backup-repo DIR] [--json]`: members,
 * roles, terms, indices and lag, from every node's admin actor, and the backups of the
 * cluster's repository (newest of each type, how far behind the cluster), as a table or JSON.
 */
import { loadKey } from '../../actors/backup/crypto.js';
import { Repository } from '../../actors/backup/repository.js';
import {
  type RepositorySummary,
  summarizeRepository,
} from '../../actors/backup/repository-summary.js';
import { untrustedLinkAdvice } from '../../lib/kv-client/tls-advice.js';
import type { AdminMsg, NodeStatus } from '../../lib/node/node-admin.js';
import {
  clusterClientSpecs,
  discoverPeers,
  openAdminClient,
  readClusterTarget,
} from '../admin-client.js';
import { CliError, parseArgs, reportError, usage } from '../args.js';

export const summary = 'show members, roles, terms, indices and lag of a cluster';

const specs = {
  ...clusterClientSpecs,
  'backup-repo': {
    kind: 'string',
    description: 'also show the backups in this repository (synod backup --repo)',
    env: 'SYNOD_BACKUP_REPO',
  },
  'backup-key-file': {
    kind: 'string',
    description: 'key of an encrypted backup repository (or $SYNOD_BACKUP_KEY)',
  },
  json: { kind: 'boolean', description: 'print JSON', default: false },
  'timeout-ms': { kind: 'number', description: 'how long to wait for each node', default: 3000 },
  verbose: { kind: 'boolean', description: 'print stack traces on errors', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(usage('status', '--cluster ws://host:port,… [options]', specs));
    return 0;
  }
  let verbose = false;
  try {
    const { options: o, sources } = parseArgs(argv, specs);
    verbose = o.verbose === true;
    const target = readClusterTarget(o, sources);
    const { caFile } = target;
    const timeoutMs = o['timeout-ms'] as number;
    // A bare URL whose node is down is shown as unreachable; it does not stop the others.
    const found = await discoverPeers(target, timeoutMs);
    const peers = found.peers;
    const undiscovered: Unreachable[] = found.undiscovered.map((u) => ({ id: u.url, ...u }));
    // Nothing listed could be reached: say why in one line, as before there was a cluster.
    if (peers.length === 0 && undiscovered.length > 0)
      throw new CliError(undiscovered.map((u) => u.error).join('; '), 1);
    const transportErrors: string[] = [];
    const client = await openAdminClient('status', target, peers);
    const { system, transport } = client;
    const linkProblems = new Map<string, string>();
    transport.links$.subscribe((l) => {
      if (!l.reason || l.state === 'up') return;
      // A peer that refused our handshake says why with a stable code at the reason's start.
      const refusal =
        /^SYNOD_ERR_(AUTH|WRONG|BAD_SECRET|SECRET|VERSION|PROTOCOL|CLUSTER)[A-Z_]*/.exec(l.reason);
      if (refusal) transportErrors.push(l.reason);
      // Keep the most telling reason: an error code beats "connecting" or "closed".
      if (
        !linkProblems.has(l.peer) ||
        (l.reason.includes('SYNOD_ERR') && !linkProblems.get(l.peer)?.includes('SYNOD_ERR'))
      ) {
        linkProblems.set(l.peer, l.reason);
      }
    });
    const ask = (id: string) =>
      system
        .ask(
          `${id}/admin`,
          { type: 'node.status' } as AdminMsg & { type: 'node.status' },
          timeoutMs,
        )
        .then(
          (s): { id: string; status: NodeStatus } => ({ id, status: s as NodeStatus }),
          (err: Error): Unreachable => ({ id, error: err.message }),
        );
    // Ask the nodes given, then every member they know of (the leader knows joined nodes).
    const known = new Set(peers.map((p) => p.id));
    let round = peers.map((p) => p.id);
    const results: Awaited<ReturnType<typeof ask>>[] = [];
    const memberUrls = new Map<string, string>();
    for (let i = 0; i < 4 && round.length > 0; i++) {
      const answers = await Promise.all(round.map(ask));
      results.push(...answers);
      round = [];
      for (const r of answers) {
        if (!('status' in r)) continue;
        for (const [id, url] of Object.entries(r.status.members)) {
          memberUrls.set(url.replace(/\/$/, ''), id);
          if (known.has(id)) continue;
          known.add(id);
          transport.addPeer(`${id}=${url}`);
          round.push(id);
        }
      }
    }
    // A link that failed without a refusal (a TLS error, say) changes its reason without a
    // new event: read the last reason of every link that is still not up.
    for (const id of known) {
      const l = transport.linkStatus(id);
      if (l === undefined || l.state === 'up' || l.reason === undefined) continue;
      if (!linkProblems.get(id)?.includes('SYNOD_ERR')) linkProblems.set(id, l.reason);
    }
    await client.close();
    // A listed URL that did not answer is shown under its member id when the others know it.
    for (const u of undiscovered) {
      const id = memberUrls.get((u.url ?? u.id).replace(/\/$/, ''));
      const r = id === undefined ? undefined : results.find((x) => x.id === id);
      if (r === undefined) results.push(u);
      else if ('error' in r) {
        r.url = u.url;
        r.error = u.error;
      }
    }
    for (const r of results)
      if ('error' in r && r.url === undefined) {
        const url =
          peers.find((p) => p.id === r.id)?.url ??
          [...memberUrls].find(([, id]) => id === r.id)?.[0];
        if (url !== undefined) r.url = url;
      }
    // An ask that timed out says less than the link's own reason (refused, wrong secret, …).
    const why = (r: Unreachable): string => {
      const link = linkProblems.get(r.id);
      return link !== undefined && r.error.startsWith('no reply')
        ? `${r.error}; link: ${link}`
        : r.error;
    };
    const ok = results.filter((r): r is { id: string; status: NodeStatus } => 'status' in r);
    if (ok.length === 0 && transportErrors.length > 0) {
      throw new CliError(
        `refused: ${transportErrors[0]} (check --secret-file and --cluster-name)`,
        1,
      );
    }
    if (ok.length === 0) {
      // Every node's certificate untrusted: the one thing to change, in one line.
      const untrusted = results
        .map((r) => ({ r, advice: untrustedLinkAdvice(linkProblems.get(r.id) ?? '', caFile) }))
        .filter((x) => x.advice !== undefined);
      if (untrusted.length === results.length && untrusted[0] !== undefined)
        throw new CliError(
          `${untrusted.map((x) => ('url' in x.r ? x.r.url : undefined) ?? x.r.id).join(', ')}: ${untrusted[0].advice} (${linkProblems.get(untrusted[0].r.id)})`,
          1,
        );
      throw new CliError(
        `no node answered (${results.map((r) => `${r.id}: ${linkProblems.get(r.id) ?? ('error' in r ? r.error : '')}`).join('; ')}): check --cluster, --secret-file and that the nodes run`,
        1,
      );
    }
    const leader = ok.find((r) => r.status.role === 'leader');
    const repoDir = o['backup-repo'] as string | undefined;
    let backups: RepositorySummary | undefined;
    let backupError: string | undefined;
    if (repoDir !== undefined) {
      try {
        const keyFile = o['backup-key-file'] as string | undefined;
        const key = loadKey(keyFile !== undefined ? { keyFile } : {});
        backups = await summarizeRepository(await Repository.open(repoDir, key ? { key } : {}));
      } catch (err) {
        const e = err as { code?: string; message?: string };
        backupError = `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
      }
    }
    const commitIndex = leader?.status.commitIndex;
    if (o.json) {
      console.log(
        JSON.stringify(
          {
            nodes: results.map((r) =>
              'status' in r
                ? r.status
                : {
                    id: r.id,
                    state: 'unreachable',
                    ...(r.url !== undefined ? { url: r.url } : {}),
                    error: why(r),
                  },
            ),
            ...(backups
              ? {
                  backups: {
                    ...backups,
                    behindBy:
                      commitIndex !== undefined
                        ? Math.max(0, commitIndex - backups.restorableTo)
                        : null,
                  },
                }
              : {}),
            ...(backupError ? { backupsError: backupError } : {}),
          },
          null,
          2,
        ),
      );
      if (backupError) console.error(`synod: backups: ${backupError}`);
      return backupError ? 1 : 0;
    }
    const rows = [
      ['node', 'role', 'term', 'leader', 'commit', 'applied', 'lag', 'revision', 'keys', 'url'],
    ];
    for (const r of results) {
      if (!('status' in r)) {
        rows.push([
          r.id,
          'unreachable',
          '',
          '',
          '',
          '',
          '',
          '',
          '',
          `${r.url ?? ''} (${why(r)})`.trim(),
        ]);
        continue;
      }
      const s = r.status;
      const lag = leader?.status.lag?.[s.id];
      rows.push([
        s.id,
        s.role,
        String(s.term),
        s.leader ?? '-',
        String(s.commitIndex),
        String(s.appliedIndex),
        lag === undefined ? '-' : String(lag),
        String(s.revision),
        String(s.keys),
        s.url,
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
    for (const row of rows)
      console.log(
        row
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
    const paxos = ok.filter((r) => r.status.paxos !== undefined);
    if (paxos.length > 0) printPaxos(paxos.map((r) => r.status));
    const gossip = ok.filter((r) => r.status.gossip !== undefined);
    if (gossip.length > 0) printGossip(gossip.map((r) => r.status));
    if (leader && leader.status.protocol === 'paxos')
      console.log(`\nMulti-Paxos members (static): ${leader.status.voters.join(', ')}`);
    else if (leader)
      console.log(
        `\nvoters: ${leader.status.voters.join(', ')}; learners: ${leader.status.learners.join(', ') || 'none'}`,
      );
    if (backups) printBackups(backups, commitIndex, Date.now());
    if (backupError) {
      console.error(`synod: backups: ${backupError}`);
      return 1;
    }
    return 0;
  } catch (err) {
    return reportError(err, verbose);
  }
}

/** The leaderless replicas' own view: SWIM members, ring, hints (no leader, no log). */
function printGossip(nodes: NodeStatus[]): void {
  console.log('\nleaderless (gossip) replicas: SWIM view, ring, keys and hints held for others');
  for (const s of nodes) {
    const g = s.gossip;
    if (!g) continue;
    const members = Object.entries(g.members)
      .map(([id, state]) => `${id}:${state}`)
      .join(' ');
    console.log(
      `  ${s.id}  ${g.ready ? 'ready' : 'joining'}  N=${g.n}  ring ${g.ring.join(',') || '-'}  members ${members || '-'}  keys ${g.keys}  hints ${g.hints}`,
    );
  }
}

/** A node that did not answer: its id (or the URL, when no node knows it), where, and why. */
interface Unreachable {
  id: string;
  url?: string;
  error: string;
}

/** Multi-Paxos nodes: ballots, the distinguished proposer and slot positions. */
function printPaxos(nodes: NodeStatus[]): void {
  const rows = [
    [
      'node',
      'ballot',
      'promised',
      'distinguished',
      'chosen',
      'highest',
      'in-flight',
      'floor',
      'snapshot',
    ],
  ];
  for (const s of nodes) {
    const p = s.paxos;
    if (!p) continue;
    rows.push([
      s.id,
      p.ballot,
      p.promised,
      p.distinguished ?? '-',
      String(p.chosenUpTo),
      String(p.highestSlot),
      String(p.inFlight + p.queued),
      String(p.floor),
      String(p.snapshotIndex),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  console.log('\nMulti-Paxos (slots):');
  for (const row of rows)
    console.log(
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

/** The backups section: newest of each type and how far the newest restorable point lags. */
function printBackups(b: RepositorySummary, commitIndex: number | undefined, now: number): void {
  console.log(`\nbackups in ${b.repo}: ${b.backups}${b.encrypted ? ' (encrypted)' : ''}`);
  const age = (t: number) => {
    const s = Math.max(0, Math.round((now - t) / 1000));
    return s < 120
      ? `${s} s ago`
      : s < 7200
        ? `${Math.round(s / 60)} min ago`
        : `${Math.round(s / 3600)} h ago`;
  };
  for (const type of ['full', 'diff', 'incr'] as const) {
    const p = b.latestByType[type];
    if (p)
      console.log(
        `  newest ${type.padEnd(4)}  ${p.id}  index ${p.index}  ${p.keys} keys  ${age(p.time)}`,
      );
  }
  if (b.archive)
    console.log(
      `  log archive: indices ${b.archive.from}..${b.archive.to} (${b.archive.segments} segments)`,
    );
  if (b.latest && commitIndex !== undefined)
    console.log(
      `  restorable to index ${b.restorableTo}; the cluster has committed ${commitIndex} (${Math.max(0, commitIndex - b.restorableTo)} entries not yet backed up)`,
    );
  else if (!b.latest) console.log('  no backup yet: run synod backup full --cluster … --repo …');
  for (const d of b.damaged)
    console.log(`  DAMAGED manifest ${d.name}: ${d.code} (run synod backup verify)`);
}
