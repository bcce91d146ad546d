/**
 * `npm run sim -- <name> [--seeds N] [--seed S] [--from S]`: runs the randomized simulation
 * sim/<name>.ts over many seeds (the long setting of the CI suites).
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const simDir = path.join(here, '..', 'sim');
const available = readdirSync(simDir)
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3));
const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run sim -- <${available.join('|')}> [--seeds N] [--seed S]`);
  process.exit(2);
}
const mod = (await import(path.join(simDir, `${name}.ts`))) as {
  main: (argv: string[]) => Promise<number>;
};
process.exit(await mod.main(rest));
