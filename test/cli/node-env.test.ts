// `synod node` takes its cluster name with --cluster-name / SYNOD_CLUSTER_NAME, as the clients
// do: the client commands take --cluster / SYNOD_CLUSTER as their list of node URLs, and a node
// given that list as its name would have written it into its data directory as the cluster it
// belongs to. The node's older spelling `--cluster NAME` still works; URLs there are refused.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { parseArgs } from '../../cli/args.js';
import { clusterNameOf, specs } from '../../cli/commands/node.js';
import { SYNOD_CLI } from '../helpers/node-processes.js';

t.test('synod node --help: the cluster name comes from SYNOD_CLUSTER_NAME', async (t) => {
  const r = spawnSync(process.execPath, [...SYNOD_CLI, 'node', '--help'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 0);
  const lines = r.stdout.split('\n');
  const named = lines.find((l) => l.trimStart().startsWith('--cluster-name ')) ?? '';
  t.match(named, /\[env SYNOD_CLUSTER_NAME\]/, named.trim());
  const old = lines.find((l) => l.trimStart().startsWith('--cluster ')) ?? '';
  t.notMatch(old, /\[env SYNOD_CLUSTER\]/, `--cluster does not read SYNOD_CLUSTER: ${old.trim()}`);
});

t.test(
  'the cluster name: --cluster-name, the env, the older --cluster, and refusals',
  async (t) => {
    const name = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const p = parseArgs(['--id', 'a', '--data', 'd', ...argv], specs, env);
      return clusterNameOf(p.options, p.sources);
    };
    t.equal(name([]), 'synod', 'default');
    t.equal(name(['--cluster-name', 'prod']), 'prod', '--cluster-name');
    t.equal(name([], { SYNOD_CLUSTER_NAME: 'prod' }), 'prod', 'SYNOD_CLUSTER_NAME');
    t.equal(
      name([], { SYNOD_CLUSTER: 'ws://10.0.0.1:7001' }),
      'synod',
      'SYNOD_CLUSTER is not read',
    );
    t.equal(name(['--cluster', 'prod']), 'prod', 'the older --cluster NAME');
    t.equal(name(['--cluster', 'prod', '--cluster-name', 'prod']), 'prod', 'both, agreeing');
    t.throws(
      () => name(['--cluster', 'prod', '--cluster-name', 'test']),
      /disagree: give the cluster name once, with --cluster-name/,
      'both, disagreeing',
    );
    t.throws(
      () => name(['--cluster', 'ws://10.0.0.2:7001,ws://10.0.0.3:7001']),
      /takes the cluster's name here \(--cluster-name NAME\), not node URLs; list the other members with --peers/,
      "node URLs given to --cluster (the clients' meaning) are refused with what to use",
    );
  },
);
