/**
 * `synod bench [NAME ...] [-- bench options]`: runs the benchmark suite of a source checkout
 * (the same as `npm run bench -- NAME ...`): each named benchmark (all, when none is named)
 * prints JSON and a table, saves benchmarks/results/NAME.json and regenerates BENCHMARKS.md.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, reportError } from '../args.js';

export const summary = 'run benchmarks (all, or the ones named) and regenerate BENCHMARKS.md';

const USAGE = `usage: synod bench [NAME ...] [--OPTION=VALUE ...]

Runs bench/NAME.ts for each NAME (every benchmark when none is named: actors, transport,
storage, checker, raft, paxos, kv, eventual, backup, etcd), prints each report as JSON and
as a table, saves benchmarks/results/NAME.json and regenerates BENCHMARKS.md.
Options (e.g. --runs=5) are passed to the benchmarks. Needs a source checkout (the
benchmarks are not part of the installed package).`;

/** The checkout root: two levels above cli/commands (source) or dist/cli/commands (built). */
function checkoutRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(path.join(dir, 'scripts', 'bench.ts'))) return dir;
    dir = path.dirname(dir);
  }
  throw new CliError(
    'synod bench needs a source checkout (scripts/bench.ts and bench/ were not found); clone the repository and run it there',
    2,
    'SYNOD_ERR_NO_CHECKOUT',
  );
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  try {
    const root = checkoutRoot();
    let tsx: string;
    try {
      tsx = createRequire(path.join(root, 'package.json')).resolve('tsx');
    } catch {
      throw new CliError(
        'synod bench needs the dev dependencies (tsx): run `npm install` in the checkout',
        2,
        'SYNOD_ERR_NO_TSX',
      );
    }
    const child = spawn(
      process.execPath,
      ['--import', `file://${tsx}`, path.join(root, 'scripts', 'bench.ts'), ...argv],
      { cwd: root, stdio: 'inherit' },
    );
    return await new Promise<number>((resolve) => {
      child.on('close', (code, signal) => resolve(code ?? (signal ? 130 : 1)));
    });
  } catch (err) {
    return reportError(err, false);
  }
}
