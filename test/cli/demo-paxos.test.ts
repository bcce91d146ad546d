import { spawnSync } from 'node:child_process';
import t from 'tap';
import { SYNOD_CLI } from '../helpers/node-processes.js';

const synod = (args: string[]) =>
  spawnSync(process.execPath, [...SYNOD_CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

t.test('synod demo --protocol paxos runs the Paxos tour to its end', async (t) => {
  const r = synod(['demo', '--protocol', 'paxos']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /all three replicas agree/);
  const withDashboard = synod(['demo', '--protocol', 'paxos', '--dashboard', '0']);
  t.not(withDashboard.status, 0, 'the Paxos tour has no dashboard: refused');
  t.match(
    withDashboard.stderr,
    /^synod: the Paxos tour runs in a simulation with no dashboard; .*synod node --protocol paxos --dashboard/,
  );
});
