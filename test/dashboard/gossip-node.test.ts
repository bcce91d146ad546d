/**
 * The dashboard of a real leaderless cluster: three `synod node --protocol gossip` processes,
 * every one with the admin secret, one serving the dashboard. The feed shows a card per replica
 * with its keys, hints, share of the ring (the shares sum to 100 %) and SWIM view, and the event
 * log says whether the replicas have converged (Merkle roots per key range, hints, ring views,
 * asked of every replica); isolate and heal work from the page (the partition is shown, then
 * converged again); a write from the page is refused with what to use instead.
 * Waits are bounded waits for feed frames, never fixed sleeps.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ClusterView } from '../../lib/dashboard/view.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { freePort, NodeProcesses } from '../helpers/node-processes.js';

const ADMIN = 'an-admin-secret-of-enough-length';

t.test('a leaderless cluster on the dashboard: ring, SWIM views, convergence', async (t) => {
  const cluster = await NodeProcesses.create(['a', 'b', 'c']);
  t.teardown(() => cluster.close());
  const adminFile = path.join(cluster.dir, 'admin.key');
  writeFileSync(adminFile, `${ADMIN}\n`);
  const port = await freePort();
  cluster.startAll((id) => [
    '--protocol',
    'gossip',
    '--admin-secret-file',
    adminFile,
    ...(id === 'a' ? ['--dashboard', String(port)] : []),
  ]);
  const output = () => [...cluster.nodes.values()].map((n) => n.output).join('\n');
  let feed: ReturnType<typeof jsonFeed> | undefined;
  const end = Date.now() + 90_000;
  while (!feed) {
    const f = jsonFeed(`ws://127.0.0.1:${port}/feed?token=${ADMIN}`);
    try {
      await f.opened;
      feed = f;
    } catch {
      if (Date.now() > end) throw new Error(`no dashboard on ${port}:\n${output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  t.teardown(() => feed?.ws.close());
  const viewWhere = async (what: string, pred: (v: ClusterView) => boolean, ms = 90_000) => {
    try {
      const f = await feed.next((f: Frame) => f.kind === 'view' && pred(f.view as ClusterView), ms);
      return f.view as ClusterView;
    } catch {
      throw new Error(
        `no view where ${what}; last: ${JSON.stringify(feed.last('view')?.view)}\n${output().slice(-3000)}`,
      );
    }
  };
  let nextId = 1;
  const control = async (c: Record<string, unknown>) => {
    const id = nextId++;
    feed.ws.send(JSON.stringify({ id, token: ADMIN, control: c }));
    return feed.next((f) => f.kind === 'result' && f.id === id, 60_000);
  };
  const converged = (v: ClusterView) => /^converged/.test(v.narration?.[0] ?? '');
  const formed = await viewWhere(
    'three replicas that see each other alive, converged',
    (v) =>
      v.nodes.length === 3 &&
      v.nodes.every((n) => n.up && n.protocol === 'gossip' && n.voters?.length === 3) &&
      v.nodes.every((n) => String(n.extra?.['sees alive']).split(' ').length === 2) &&
      converged(v),
  );
  t.same(
    formed.nodes.map((n) => n.id),
    ['a', 'b', 'c'],
    'a card per replica',
  );
  const shares = formed.nodes.map((n) => Number.parseFloat(String(n.extra?.['ring share'])));
  const total = shares.reduce((a, b) => a + b, 0);
  t.ok(Math.abs(total - 100) < 0.5, `ring shares sum to 100 % (${shares.join(' + ')})`);
  t.ok(
    formed.nodes.every(
      (n) => n.extra?.keys !== undefined && n.extra?.['pending hints'] !== undefined,
    ),
    'keys and pending hints on every card',
  );

  // The message flow: SWIM and anti-entropy traffic sampled by every replica, not only a.
  const fromOther = await feed
    .next((f) => f.kind === 'msg' && f.from !== 'a', 60_000)
    .catch(() => undefined);
  t.ok(
    fromOther,
    `the feed carries messages sent by other replicas (${JSON.stringify(fromOther)})`,
  );

  const put = await control({ op: 'put', key: 'k', value: 'v' });
  t.equal(put.ok, false, 'a write from the page is refused');
  t.match(String(put.message), /KV client/, `with what to use instead: ${String(put.message)}`);

  const cut = await control({ op: 'isolate', node: 'c' });
  t.equal(cut.ok, true, `isolate: ${String(cut.message)}`);
  const split = await viewWhere('the partition is shown', (v) => (v.partitions?.length ?? 0) === 2);
  t.same(
    split.partitions?.find((g) => g.includes('c')),
    ['c'],
    'c is alone in its group',
  );
  const healed = await control({ op: 'heal' });
  t.equal(healed.ok, true, `heal: ${String(healed.message)}`);
  // Views made after the heal (the feed still holds older, unpartitioned ones).
  const healedAt = Date.now();
  await viewWhere(
    'healed and converged',
    (v) => v.time >= healedAt && !v.partitions && converged(v),
  );
  t.pass('healed: no partition, converged');
});
