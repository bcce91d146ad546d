// `synod node` reads its cluster name from SYNOD_CLUSTER_NAME, not SYNOD_CLUSTER: the client
// commands take SYNOD_CLUSTER as their list of node URLs, and a node given that list as its
// name would have written it into its data directory as the cluster it belongs to.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { SYNOD_CLI } from '../helpers/node-processes.js';

t.test('synod node --help: the cluster name comes from SYNOD_CLUSTER_NAME', async (t) => {
  const r = spawnSync(process.execPath, [...SYNOD_CLI, 'node', '--help'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 0);
  const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith('--cluster ')) ?? '';
  t.match(line, /\[env SYNOD_CLUSTER_NAME\]/, line.trim());
  t.notMatch(line, /\[env SYNOD_CLUSTER\]/);
});
