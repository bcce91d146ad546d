// `synod demo NAME` runs each demo of demos/ from the synod command itself (no tsx needed):
// the list names them all, an unknown name is one line and a non-zero exit, and a named demo
// runs to its end through the CLI.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { SYNOD_CLI } from '../helpers/node-processes.js';

const synod = (args: string[]) =>
  spawnSync(process.execPath, [...SYNOD_CLI, 'demo', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });

t.test('synod demo --list names every demo', async (t) => {
  const r = synod(['--list']);
  t.equal(r.status, 0);
  for (const name of ['tour', 'paxos', 'actor', 'eventual', 'backup', 'laptops'])
    t.match(r.stdout, new RegExp(`^  ${name} `, 'm'), `lists ${name}`);
});

t.test('an unknown demo: one line naming the demos, non-zero exit', async (t) => {
  const r = synod(['nope']);
  t.not(r.status, 0);
  t.match(r.stderr.trim(), /^synod: no demo "nope"; the demos are: tour, paxos, actor/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});

t.test(
  'synod demo eventual runs the eventual-store demo to its end, with its dashboard',
  async (t) => {
    const r = synod(['eventual', '--dashboard', '0']);
    t.match(r.stdout, /^dashboard: http:\/\/127\.0\.0\.1:\d+/m, 'serves the dashboard when asked');
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /CRDTs merged by themselves/, 'reached its last step');
  },
);
