/**
 * `synod demo --protocol paxos` as a person runs it: the protocol step by step in a simulation,
 * then the Multi-Paxos cluster tour (demos/paxos-cluster.ts); with `--dashboard PORT`, the
 * cluster tour with the dashboard (it used to be refused: the tour had no dashboard). Both
 * processes run at once; standard input is not a terminal, so each exits after its tour.
 */
import t from 'tap';
import { runSynod } from '../helpers/node-processes.js';

t.test(
  'synod demo --protocol paxos [--dashboard PORT] runs the Paxos tours to their end',
  async (t) => {
    const [plain, withDashboard] = await Promise.all([
      runSynod(['demo', '--protocol', 'paxos'], 180_000),
      runSynod(['demo', '--protocol', 'paxos', '--dashboard', '0'], 180_000),
    ]);
    t.equal(plain.code, 0, plain.err);
    t.match(plain.out, /all three replicas agree/, 'the simulated tour');
    t.match(plain.out, /Multi-Paxos on a real cluster/);
    t.match(plain.out, /Tour complete: 6 writes, failover \d+ ms\./, 'then the cluster tour');
    t.equal(withDashboard.code, 0, withDashboard.err);
    t.match(
      withDashboard.out,
      /dashboard: http:\/\/127\.0\.0\.1:\d+\//,
      'prints the dashboard URL',
    );
    t.match(withDashboard.out, /Tour complete: 6 writes/);
    t.notMatch(withDashboard.out, /all three replicas agree/, 'with --dashboard: the cluster tour');
  },
);
