import { spawnSync } from 'node:child_process';
import t from 'tap';
import { SYNOD_CLI } from '../helpers/node-processes.js';

const synod = (args: string[]) =>
  spawnSync(process.execPath, [...SYNOD_CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

t.test('synod bench runs the suite of the checkout and refuses an unknown benchmark', async (t) => {
  const help = synod(['bench', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /usage: synod bench/);
  const bad = synod(['bench', 'no-such-benchmark']);
  t.not(bad.status, 0, 'an unknown benchmark is an error');
  t.match(bad.stderr, /unknown benchmark "no-such-benchmark"; available: actors/);
});
