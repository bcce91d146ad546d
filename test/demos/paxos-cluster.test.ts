/**
 * `synod demo --protocol paxos` (demos/paxos-cluster.ts): three real Multi-Paxos nodes in one
 * process with the dashboard. The tour runs to its end and tells a true story (a new
 * distinguished proposer with a higher ballot, every replica with every write, the backup step
 * saying it cannot run on Multi-Paxos); and while the cluster is up after the tour, the
 * dashboard shows the three Paxos nodes and its stop/restart controls work on them (the page's
 * token, as a browser would send it). test/cli/demo-paxos.test.ts runs it as `synod demo`.
 */
import t from 'tap';
import { runPaxosTour } from '../../demos/paxos-cluster.js';
import type { ClusterView } from '../../lib/dashboard/view.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { until } from '../helpers/node-processes.js';

t.test('the Multi-Paxos tour with the dashboard, and its controls afterwards', async (t) => {
  const lines: string[] = [];
  const seen: { view?: ClusterView; stop?: Frame; restart?: Frame; after?: ClusterView } = {};
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
      'Backup and restore',
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
  const expected = {
    greeting: 'hello',
    city: 'Lisbon',
    color: 'teal',
    planet: 'Mars',
    answer: '42',
    'after-failover': 'still writable',
  };
  for (const id of ['a', 'b', 'c']) t.same(r.replicas[id], expected, `${id} holds every write`);
  const text = lines.join('\n');
  t.match(
    text,
    /won phase 1 with ballot \d+\.[abc] after \d+ ms: it is the distinguished proposer/,
  );
  t.match(text, /put after-failover → chosen in slot \d+ with two of three nodes/);
  t.match(
    text,
    /not on Multi-Paxos yet: .*docs\/backup\.md/,
    'the backup step says why it cannot run',
  );
  t.equal(r.backedUp, false);
  t.match(text, /Tour complete: 6 writes, failover \d+ ms\./);
  t.ok(
    seen.view?.nodes.every((n) => n.protocol === 'paxos'),
    'the dashboard shows Multi-Paxos nodes',
  );
  t.match(seen.stop, { ok: true }, `stop from the dashboard: ${seen.stop?.message}`);
  t.match(seen.restart, { ok: true }, `restart from the dashboard: ${seen.restart?.message}`);
});
