/**
 * `synod demo --pace MS`: the default follows stdout (1500 ms on a terminal, 0 in a pipe, so
 * tests and the README test stay fast), a given value wins, and a bad one is a usage error.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { paceOf } from '../../cli/commands/demo.js';
import { SYNOD_CLI } from '../helpers/node-processes.js';

t.test('the default pace follows stdout; --pace wins', async (t) => {
  t.equal(paceOf(undefined, true), 1500, 'a terminal: 1500 ms');
  t.equal(paceOf(undefined, false), 0, 'a pipe or a file: 0');
  t.equal(paceOf(0, true), 0, '--pace 0 on a terminal');
  t.equal(paceOf(250, false), 250, '--pace 250 in a pipe');
  t.throws(() => paceOf(-1, true), { exitCode: 2, message: /--pace must be between 0 and/ });
});

t.test('synod demo --pace -5: one line, exit 2', async (t) => {
  const r = spawnSync(process.execPath, [...SYNOD_CLI, 'demo', '--pace', '-5', '--exit'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 2);
  t.match(r.stderr, /^synod: --pace must be between 0 and 600000 ms, got -5\n$/);
});
