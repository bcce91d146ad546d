/**
 * `npm run bench -- [name ...] [--json-out DIR]`: runs bench/<name>.ts for each name (all
 * when none given), prints each report as JSON and as a table, and writes
 * bench-results/<name>.json.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchMain, table } from '../bench/harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const benchDir = path.join(here, '..', 'bench');
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts') && f !== 'harness.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('-'));
const selected = names.length > 0 ? names : available;
for (const name of selected) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(', ')}`);
    process.exit(2);
  }
}
const outDir = path.join(here, '..', 'bench-results');
mkdirSync(outDir, { recursive: true });
for (const name of selected) {
  const mod = (await import(path.join(benchDir, `${name}.ts`))) as { main: BenchMain };
  const rep = await mod.main(args.filter((a) => a !== name));
  console.log(JSON.stringify(rep, null, 2));
  console.log(
    `\n${name} on ${rep.machine.cpu} (${rep.machine.cores} cores), Node ${rep.machine.node}`,
  );
  console.log(table(rep));
  if (rep.notes) for (const n of rep.notes) console.log(`note: ${n}`);
  writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify(rep, null, 2)}\n`);
}
