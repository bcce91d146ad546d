/**
 * The dashboard feed of a real cluster: three `synod node` processes over WebSockets, one
 * started with `--dashboard` and an admin secret. The feed shows three nodes and one leader;
 * controls from the page write a key (forwarded to the leader), isolate a node and heal,
 * and transfer leadership; a SIGKILLed process shows as down and comes back after a restart.
 * Waits are bounded waits for feed frames, never fixed sleeps.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ClusterView, NodeView } from '../../lib/dashboard/view.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { freePort, NodeProcesses } from '../helpers/node-processes.js';

const ADMIN = 'an-admin-secret-of-enough-length';

t.test('the dashboard of a real 3-process cluster shows it and its controls work', async (t) => {
  const cluster = await NodeProcesses.create(['a', 'b', 'c']);
  t.teardown(() => cluster.close());
  const adminFile = path.join(cluster.dir, 'admin.key');
  writeFileSync(adminFile, `${ADMIN}\n`);
  const port = await freePort();
  const repoDir = path.join(cluster.dir, 'backups');
  // Every node holds the admin secret: each checks the proof of isolate/heal/transfer itself.
  cluster.startAll((id) => [
    '--admin-secret-file',
    adminFile,
    ...(id === 'a' ? ['--dashboard', String(port), '--backup-repo', repoDir] : []),
  ]);

  // The dashboard server starts after the node has started: retry the connection (bounded).
  let feed: ReturnType<typeof jsonFeed> | undefined;
  const end = Date.now() + 60_000;
  while (!feed) {
    const f = jsonFeed(`ws://127.0.0.1:${port}/feed?token=${ADMIN}`);
    try {
      await f.opened;
      feed = f;
    } catch {
      if (Date.now() > end)
        throw new Error(`no dashboard on ${port}:\n${cluster.node('a').output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  t.teardown(() => feed?.ws.close());
  t.equal((await feed.next((f) => f.kind === 'hello', 10_000)).controls, true, 'controls on');

  const viewWhere = async (what: string, pred: (v: ClusterView) => boolean, ms = 30_000) => {
    try {
      const f = await feed.next((f: Frame) => f.kind === 'view' && pred(f.view as ClusterView), ms);
      return f.view as ClusterView;
    } catch {
      const last = feed.last('view');
      throw new Error(`no view where ${what}; last: ${JSON.stringify(last?.view)}`);
    }
  };
  const leaders = (v: ClusterView) => v.nodes.filter((n) => n.up && n.role === 'leader');
  const control = async (id: number, control: Record<string, unknown>) => {
    feed.ws.send(JSON.stringify({ id, token: ADMIN, control }));
    return feed.next((f) => f.kind === 'result' && f.id === id, 30_000);
  };

  const formed = await viewWhere(
    'three nodes are up with one leader',
    (v) =>
      v.nodes.length === 3 &&
      v.nodes.every((n) => n.up) &&
      leaders(v).length === 1 &&
      v.nodes.every((n) => n.voters?.length === 3),
    90_000,
  );
  const leader = leaders(formed)[0] as NodeView;
  t.same(
    formed.nodes.map((n) => n.id),
    ['a', 'b', 'c'],
    'the feed shows every node of the cluster',
  );
  t.ok(
    formed.nodes.every((n) => n.leader === leader.id),
    `everyone agrees ${leader.id} leads`,
  );

  const put = await control(1, { op: 'put', key: 'from-the-page', value: 'hello' });
  t.equal(put.ok, true, `put: ${String(put.message)}`);
  const index = Number(/index (\d+)/.exec(String(put.message))?.[1]);
  t.ok(index > 0, 'the put reports its log index');
  await viewWhere(`every node applied index ${index}`, (v) =>
    v.nodes.every((n) => (n.appliedIndex ?? 0) >= index),
  );
  t.pass('the write is applied on all three nodes');

  // Isolate a follower other than the dashboard's own node, see the partition, heal.
  const victim = ['b', 'c'].find((id) => id !== leader.id) as string;
  const cut = await control(2, { op: 'isolate', node: victim });
  t.equal(cut.ok, true, `isolate: ${String(cut.message)}`);
  const split = await viewWhere('the partition is shown', (v) => (v.partitions?.length ?? 0) === 2);
  t.same(
    split.partitions?.find((g) => g.includes(victim)),
    [victim],
    `${victim} is alone in its group`,
  );
  const put2 = await control(3, { op: 'put', key: 'during-partition', value: 'x' });
  t.equal(put2.ok, true, 'the majority side still takes writes');
  const healed = await control(4, { op: 'heal' });
  t.equal(healed.ok, true, 'heal');
  const after = await viewWhere(
    'healed: no partition, one leader, the isolated node caught up',
    (v) => {
      const top = Math.max(...v.nodes.map((n) => n.commitIndex ?? 0));
      return (
        !v.partitions &&
        leaders(v).length === 1 &&
        v.nodes.every((n) => n.up && (n.commitIndex ?? 0) === top && top > index)
      );
    },
    60_000,
  );
  t.ok(after, `${victim} rejoined and caught up`);

  // Transfer leadership to a follower.
  const current = leaders(after)[0] as NodeView;
  const target = ['a', 'b', 'c'].find((id) => id !== current.id) as string;
  const moved = await control(5, { op: 'transfer', to: target });
  t.equal(moved.ok, true, `transfer: ${String(moved.message)}`);
  const transferred = await viewWhere(`${target} leads`, (v) =>
    leaders(v).some((n) => n.id === target),
  );
  t.ok((leaders(transferred)[0]?.term ?? 0) > (current.term ?? 0), 'in a higher term');
  if (target !== 'a') {
    const forwarded = await control(7, { op: 'put', key: 'forwarded', value: 'y' });
    t.match(
      forwarded.message,
      new RegExp(`by ${target}$`),
      'a follower forwards a put to the leader',
    );
  }

  // A SIGKILLed process shows as down; restarted, it comes back and catches up.
  const killed = ['b', 'c'].find((id) => id !== target) as string;
  await cluster.kill(killed);
  await viewWhere(`${killed} is shown down`, (v) => v.nodes.some((n) => n.id === killed && !n.up));
  t.pass(`${killed} is shown down after SIGKILL`);
  cluster.start(killed);
  await viewWhere(
    `${killed} is back`,
    (v) => v.nodes.every((n) => n.up) && leaders(v).length === 1,
    60_000,
  );
  t.pass(`${killed} is shown up again after a restart`);

  const refused = await control(6, { op: 'isolate', node: 'nobody' });
  t.equal(refused.ok, false, 'isolating an unknown node is refused');

  // Backups from the page: the node runs the backup agent (a learner that joins, backs up,
  // leaves); the catalog appears in the view; a second one is incremental.
  const full = await control(8, { op: 'backup' });
  t.equal(full.ok, true, `backup: ${String(full.message)}`);
  const one = await viewWhere(
    'a full backup in the catalog',
    (v) => (v.backups ?? []).length === 1,
    120_000,
  );
  t.equal(one.backups?.[0]?.type, 'full', 'the first backup is a full');
  const busy = await control(9, { op: 'backup' });
  t.equal(busy.ok, true, `second backup: ${String(busy.message)}`);
  const two = await viewWhere(
    'two backups in the catalog',
    (v) => (v.backups ?? []).length === 2,
    120_000,
  );
  t.equal(two.backups?.[1]?.type, 'incr', 'the second is incremental');
  // The agents joined as learners and left: the page shows the three members only again.
  // (Views after the second backup's: the feed still holds older ones, from before the
  // first poll found every member.)
  const members = await viewWhere(
    'only the three members after the backups',
    (v) => v.time > two.time && v.nodes.map((n) => n.id).join() === 'a,b,c',
  );
  t.same(
    members.nodes.map((n) => n.id),
    ['a', 'b', 'c'],
    'the backup agents left the page',
  );
  // Restore: a new cluster's data directories next to the repository; the running one is untouched.
  const restored = await control(10, { op: 'restore' });
  t.equal(restored.ok, true, `restore: ${String(restored.message)}`);
  t.match(String(restored.message), /restored index \d+ .* into .*backups-restores/);
  const [stamp] = readdirSync(`${repoDir}-restores`);
  t.same(
    readdirSync(path.join(`${repoDir}-restores`, stamp as string)).sort(),
    ['a', 'b', 'c'],
    'one data dir per member',
  );
  const stillWrites = await control(11, { op: 'put', key: 'after-restore', value: 'z' });
  t.equal(stillWrites.ok, true, 'the running cluster still takes writes');
});
