/**
 * One restore into a node data directory, in a process of its own, as `synod restore --repo
 * REPO --to latest --dest DIR` runs it: `restoreDataDirs` (the function the CLI calls) of the
 * repository's latest backup, digest-checked. Run by bench/backup.ts so that the restore's
 * peak RSS is its own (the bench process holds the whole state it backed up) and its CPU is
 * counted from a cold start of the restore code, as an operator's is.
 *
 *     node <tsx loader> bench/lib/restore-child.ts REPO DEST [--in-memory]
 *
 * `--in-memory` forces the path that rebuilds the state machine in memory and encodes the
 * node's snapshot image from it (the only path for a `kv` repository before session 14),
 * so the bench can time it against the streamed one, alternated.
 *
 * Prints one JSON line: wall ms and process CPU ms (all threads) of the `restoreDataDirs`
 * call alone, the process's peak RSS (`maxRssMb`, VmHWM: the whole process, module loading
 * included), the restored digest, key count and bytes read.
 */
import { readFileSync } from 'node:fs';
import { Repository } from '../../actors/backup/repository.js';
import { restoreDataDirs } from '../../actors/backup/restore-data-dirs.js';

const [repoDir, dest] = process.argv.slice(2);
if (!repoDir || !dest) {
  console.error('usage: restore-child.ts REPO DEST [--in-memory]');
  process.exit(2);
}
const inMemory = process.argv.includes('--in-memory');
const repo = await Repository.open(repoDir);
const c0 = process.cpuUsage();
const t0 = performance.now();
const { result } = await restoreDataDirs(
  repo,
  { kind: 'latest' },
  {
    members: ['n1'],
    clusterId: 'bench-restored',
    clusterName: 'bench',
    now: 0,
    dest: { dir: dest, node: 'n1' },
    ...(inMemory ? { stream: false } : {}),
  },
);
const wallMs = performance.now() - t0;
const c1 = process.cpuUsage();
console.log(
  JSON.stringify({
    wallMs,
    cpuMs: (c1.user - c0.user + c1.system - c0.system) / 1000,
    maxRssMb: peakRssKb() / 1024,
    digest: result.digest,
    keyCount: result.keyCount,
    bytesRead: result.bytesRead,
  }),
);
process.exit(0);

/**
 * This process's peak RSS in KiB: VmHWM, the high-water mark of its own address space. Not
 * `resourceUsage().maxRSS`: Linux carries that across fork and exec, so a child of the bench
 * (which holds the whole state) would report the bench's RSS.
 */
function peakRssKb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}
