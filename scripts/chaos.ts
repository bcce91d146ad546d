/**
 * `npm run chaos -- --minutes M --seed S --protocol raft|paxos|eventual [--out DIR] [--nemesis a,b]`
 *
 * Jepsen-style run against five real `synod node` processes in network namespaces (needs root;
 * see docs/chaos.md; `eventual` runs the leaderless store, test/chaos/harness/eventual-run.ts). Prints the summary and exits 0 on pass, 1 on fail, 2 on a harness error,
 * 3 when skipped (not root, no namespaces, or the node refuses the protocol).
 */
import path from 'node:path';
import { EVENTUAL_NEMESES, runEventualChaos } from '../test/chaos/harness/eventual-run.js';
import { NEMESES, type NemesisKind } from '../test/chaos/harness/nemesis.js';
import { runChaos } from '../test/chaos/harness/run.js';

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(
      [
        'usage: npm run chaos -- [--minutes M] [--seed S] [--protocol raft|paxos|eventual] [--out DIR]',
        '                        [--nemesis kind,kind] [--clients P] [--workers W] [--keys K]',
        '                        [--checker-timeout S]  (default: half the run, at least 120 s)',
        `nemeses: ${NEMESES.join(', ')} (eventual: ${EVENTUAL_NEMESES.join(', ')})`,
      ].join('\n'),
    );
    return 0;
  }
  try {
    const minutes = Number(flag(argv, 'minutes') ?? '1');
    const seed = Number(flag(argv, 'seed') ?? String(Math.floor(Math.random() * 1e6)));
    const protocol = flag(argv, 'protocol') ?? 'raft';
    if (!Number.isFinite(minutes) || minutes <= 0) throw new Error('--minutes must be > 0');
    if (!Number.isInteger(seed)) throw new Error('--seed must be an integer');
    if (protocol !== 'raft' && protocol !== 'paxos' && protocol !== 'eventual')
      throw new Error('--protocol is raft, paxos or eventual');
    const checkerText = flag(argv, 'checker-timeout');
    const checkerS = checkerText === undefined ? undefined : Number(checkerText);
    if (checkerS !== undefined && !(Number.isFinite(checkerS) && checkerS > 0))
      throw new Error('--checker-timeout is a number of seconds > 0');
    const kindsText = flag(argv, 'nemesis');
    const kinds = kindsText?.split(',').map((k) => {
      if (!(NEMESES as readonly string[]).includes(k))
        throw new Error(`unknown nemesis "${k}" (${NEMESES.join(', ')})`);
      return k as NemesisKind;
    });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dir = path.resolve(
      flag(argv, 'out') ?? `test-artifacts/chaos/${protocol}-seed${seed}-${stamp}`,
    );
    console.log(`chaos: ${minutes} min, seed ${seed}, protocol ${protocol}, results in ${dir}`);
    const r = await (protocol === 'eventual' ? runEventualChaos : runChaos)({
      seed,
      durationMs: Math.round(minutes * 60_000),
      protocol,
      dir,
      ...(kinds ? { kinds } : {}),
      ...(flag(argv, 'clients') ? { clientProcs: Number(flag(argv, 'clients')) } : {}),
      ...(flag(argv, 'workers') ? { workersPerProc: Number(flag(argv, 'workers')) } : {}),
      ...(flag(argv, 'keys') ? { keys: Number(flag(argv, 'keys')) } : {}),
      ...(checkerS !== undefined ? { checkerTimeoutMs: checkerS * 1000 } : {}),
    });
    const { readFileSync, existsSync } = await import('node:fs');
    const summary = path.join(dir, 'summary.txt');
    console.log(existsSync(summary) ? readFileSync(summary, 'utf8') : `${r.status}: ${r.reason}`);
    return r.status === 'pass' ? 0 : r.status === 'fail' ? 1 : r.status === 'skipped' ? 3 : 2;
  } catch (err) {
    console.error(`chaos: ${(err as Error).message}`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
