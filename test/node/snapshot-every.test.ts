/**
 * `synod node --snapshot-every N` (NodeConfig.snapshotEvery): how often a node snapshots its
 * state and compacts its log. Checked on a real one-node Raft cluster in this process: with
 * N = 20, thirty writes leave a snapshot file in <data>/raft/snapshots, and with N = 0 (never)
 * they leave none; a bad value is a usage error before anything starts.
 */
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { run as runNode } from '../../cli/commands/node.js';
import { KvClient } from '../../lib/kv-client/client.js';
import { captureStderr } from '../helpers/capture-stderr.js';
import { until } from '../helpers/node-processes.js';
import { clientOf, startOneNode } from '../helpers/one-node.js';

async function snapshotsAfterWrites(t: Test, snapshotEvery: number): Promise<string[]> {
  const one = await startOneNode(t, 'snapshots', { snapshotEvery });
  const { system } = await clientOf(t, one, `snap-client-${snapshotEvery}`);
  const kv = new KvClient({ system, nodes: ['n1'] });
  for (let i = 0; i < 30; i++) {
    const r = await kv.put(`k${i}`, `v${i}`);
    t.equal(r.outcome, 'ok', `write ${i}`, { diagnostic: r.outcome !== 'ok' });
  }
  const snapDir = path.join(one.dataDir, 'raft', 'snapshots');
  const list = () =>
    existsSync(snapDir) ? readdirSync(snapDir).filter((n) => n.endsWith('.snap')) : [];
  if (snapshotEvery > 0)
    await until('a snapshot file', async () => (list().length > 0 ? true : undefined));
  return list();
}

t.test('--snapshot-every 20: thirty writes leave a snapshot', async (t) => {
  const files = await snapshotsAfterWrites(t, 20);
  t.ok(files.length >= 1, `a snapshot in raft/snapshots (${files.join(', ')})`);
});

t.test('--snapshot-every 0: never', async (t) => {
  const files = await snapshotsAfterWrites(t, 0);
  t.same(files, [], 'no snapshot file after thirty writes');
});

t.test('a bad --snapshot-every is a usage error', async (t) => {
  for (const bad of ['-1', '1.5', 'often', '2000000000']) {
    const r = await captureStderr(() =>
      runNode([
        '--id',
        'x',
        '--data',
        path.join(tmpdir(), 'never-created'),
        '--snapshot-every',
        bad,
      ]),
    );
    t.equal(r.value, 2, `exit 2 for --snapshot-every ${bad}`);
    t.match(r.err, /--snapshot-every/, 'the message names the option');
  }
  t.notOk(existsSync(path.join(tmpdir(), 'never-created')), 'nothing was written');
});
