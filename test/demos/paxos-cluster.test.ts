/**
 * `synod demo --protocol paxos` (demos/paxos-cluster.ts): three real Multi-Paxos nodes in one
 * process with the dashboard. The tour runs to its end and tells a true story (a new
 * distinguished proposer with a higher ballot, every replica with every write, and step 5: the
 * backup agent on Multi-Paxos takes a full and an incremental backup around a put and a delete,
 * and both restores equal the cluster at their slots, key by key); and while the cluster is up
 * after the tour, the dashboard shows the three Paxos nodes, lists the tour's two backups from
 * the repository, and its stop/restart, "take backup" and "restore" controls work on them (the
 * page's token, as a browser would send it). test/cli/demo-paxos.test.ts runs it as `synod demo`.
 */
import t from 'tap';
import { runPaxosTour } from '../../demos/paxos-cluster.js';
import type { ClusterView } from '../../lib/dashboard/view.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { until } from '../helpers/node-processes.js';

t.test('the Multi-Paxos tour with the dashboard, and its controls afterwards', async (t) => {
  const lines: string[] = [];
  const seen: {
    view?: ClusterView;
    stop?: Frame;
    restart?: Frame;
    after?: ClusterView;
    catalog?: ClusterView['backups'];
    backup?: Frame;
    third?: ClusterView['backups'];
    restore?: Frame;
  } = {};
  const r = await runPaxosTour({
    print: (l) => lines.push(l),
    dashboardPort: 0,
    onReady: async (_nodes, url) => {
      t.ok(url, 'the dashboard URL is printed');
      const page = await fetch(url as string);
      t.equal(page.status, 200, 'the page is served');
      const html = await page.text();
      const token = /<meta name="synod-token" content="([^"]+)">/.exec(html)?.[1];
      t.ok(token, 'the page carries its control token');
      seen.view = await until(
        'a view of three Paxos nodes with one leader',
        async () => {
          const v = (await (await fetch(`${url}view.json`)).json()) as ClusterView;
          const leaders = v.nodes.filter((n) => n.up && n.role === 'leader');
          return v.nodes.length === 3 && v.nodes.every((n) => n.up) && leaders.length === 1
            ? v
            : undefined;
        },
        30_000,
        100,
      );
      const feed = jsonFeed(`${(url as string).replace(/^http/, 'ws')}feed`);
      await feed.opened;
      const control = async (id: number, c: Record<string, unknown>) => {
        feed.ws.send(JSON.stringify({ id, token, control: c }));
        return feed.next((f) => f.kind === 'result' && f.id === id, 30_000);
      };
      seen.stop = await control(1, { op: 'stop', node: 'c' });
      seen.after = await until(
        'c shown stopped',
        async () => {
          const v = (await (await fetch(`${url}view.json`)).json()) as ClusterView;
          return v.nodes.find((n) => n.id === 'c')?.up === false ? v : undefined;
        },
        30_000,
        100,
      );
      seen.restart = await control(2, { op: 'restart', node: 'c' });
      // The repository's catalog (re-read from disk by the dashboard), then a backup and a
      // restore from the page.
      const catalog = async (n: number) =>
        until(
          `the dashboard to list ${n} backups`,
          async () => {
            const v = (await (await fetch(`${url}view.json`)).json()) as ClusterView;
            return (v.backups?.length ?? 0) >= n ? v.backups : undefined;
          },
          30_000,
          100,
        );
      seen.catalog = await catalog(2);
      seen.backup = await control(3, { op: 'backup' });
      seen.third = await catalog(3);
      seen.restore = await control(4, { op: 'restore' });
      feed.ws.close();
    },
  });
  t.same(
    r.steps,
    [
      'Start three Multi-Paxos nodes and elect a distinguished proposer',
      'Replicate writes, one slot each',
      `Stop the distinguished proposer (${r.firstLeader})`,
      `Bring ${r.firstLeader} back`,
      'Back up the cluster with the backup agent and restore it',
    ],
    'the steps in order',
  );
  t.not(r.secondLeader, r.firstLeader, 'another proposer took over');
  // A ballot is (round, proposer id): a higher round, or the same round and a higher id.
  const [round1, id1 = ''] = r.firstBallot.split('.');
  const [round2, id2 = ''] = r.secondBallot.split('.');
  t.ok(
    Number(round2) > Number(round1) || (round2 === round1 && id2 > id1),
    `with a higher ballot (${r.firstBallot} → ${r.secondBallot})`,
  );
  t.equal(r.writes, 6);
  // Step 5 changed city and deleted color after the full backup.
  const expected = {
    greeting: 'hello',
    city: 'Porto',
    color: undefined,
    planet: 'Mars',
    answer: '42',
    'after-failover': 'still writable',
  };
  for (const id of ['a', 'b', 'c']) t.same(r.replicas[id], expected, `${id} holds every write`);
  // Step 5: both backups taken and both restores equal to the cluster at their slots.
  t.equal(r.backedUp, true, 'the backup step ran');
  t.equal(r.backupWrites, 2, 'a put and a delete between the backups');
  t.same(
    r.backups.map((b) => b.type),
    ['full', 'incr'],
    'a full, then an incremental backup',
  );
  const [full, incr] = r.backups;
  t.ok(full && incr && incr.index >= full.index + 2, `the incremental holds the two changes`);
  for (const b of r.backups) {
    t.equal(b.restoredIndex, b.index, `${b.type} restored to its slot ${b.index}`);
    t.same(b.differing, [], `${b.type}: every key equals the cluster's at slot ${b.index}`);
    t.equal(
      b.compared,
      b.clusterKeys,
      `${b.type}: all ${b.clusterKeys} of the cluster's keys compared`,
    );
  }
  t.equal(full?.clusterKeys, 6, 'the full holds the six keys written before it');
  t.equal(incr?.clusterKeys, 5, 'the incremental, one fewer (color deleted)');
  const text = lines.join('\n');
  t.match(
    text,
    /won phase 1 with ballot \d+\.[abc] after \d+ ms: it is the distinguished proposer/,
  );
  t.match(text, /put after-failover → chosen in slot \d+ with two of three nodes/);
  t.notMatch(text, /not on Multi-Paxos yet/, 'no longer says the backup cannot run');
  t.match(text, /pulling decided slots from [abc], [abc], [abc]/, 'the agent pulled, never joined');
  t.match(text, /full backup \S+ at slot \d+/);
  t.match(text, /changed city=Porto \(slot \d+\) and deleted color \(slot \d+\)/);
  t.match(text, /incremental backup \S+ at slot \d+: \d+ records/);
  t.match(text, /restored full .*city=Lisbon, color=teal; all 6 keys equal what the cluster held/);
  t.match(
    text,
    /restored incr .*city=Porto, color=\(deleted\); all 5 keys equal what the cluster held/,
  );
  t.match(text, /Tour complete: 6 writes, failover \d+ ms\. Then 2 more/);
  t.ok(
    seen.view?.nodes.every((n) => n.protocol === 'paxos'),
    'the dashboard shows Multi-Paxos nodes',
  );
  t.match(seen.stop, { ok: true }, `stop from the dashboard: ${seen.stop?.message}`);
  t.match(seen.restart, { ok: true }, `restart from the dashboard: ${seen.restart?.message}`);
  t.same(
    seen.catalog?.map((b) => [b.id, b.type, b.index]),
    r.backups.map((b) => [b.id, b.type, b.index]),
    "the dashboard lists the tour's two backups from the repository",
  );
  t.match(seen.backup, { ok: true }, `take backup from the dashboard: ${seen.backup?.message}`);
  t.equal(seen.third?.[2]?.type, 'incr', 'which wrote a third backup, an incremental');
  // Its key count includes the Multi-Paxos client sessions the image carries.
  t.match(
    seen.restore,
    { ok: true, message: /restored index \d+ \(\d+ keys, digest checked\) into .*a new cluster/ },
    `restore from the dashboard: ${seen.restore?.message}`,
  );
  t.equal(
    Number(/restored index (\d+)/.exec(String(seen.restore?.message))?.[1]),
    seen.third?.[2]?.index,
    'the latest backup restored',
  );
});
