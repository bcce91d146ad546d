/**
 * The dashboard of a real Multi-Paxos cluster: three `synod node --protocol paxos` processes,
 * one with `--dashboard` (read-only). Every node's card shows its ballots and slots (the
 * ballot, the promised ballot, the distinguished proposer, the chosen prefix), the nodes agree
 * on the distinguished proposer, and a write moves the chosen prefix on every node.
 */
import t from 'tap';
import type { ClusterView } from '../../lib/dashboard/view.js';
import { connect } from '../../lib/kv-client/connect.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { freePort, NodeProcesses, TEST_SECRET } from '../helpers/node-processes.js';

t.test('a Multi-Paxos node dashboard shows ballots and slots', async (t) => {
  const cluster = await NodeProcesses.create(['a', 'b', 'c']);
  t.teardown(() => cluster.close());
  const port = await freePort();
  cluster.startAll((id) => [
    '--protocol',
    'paxos',
    ...(id === 'a' ? ['--dashboard', String(port)] : []),
  ]);

  let feed: ReturnType<typeof jsonFeed> | undefined;
  const end = Date.now() + 60_000;
  while (!feed) {
    const f = jsonFeed(`ws://127.0.0.1:${port}/feed`);
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
  const viewWhere = async (what: string, pred: (v: ClusterView) => boolean, ms = 90_000) => {
    try {
      const f = await feed.next((f: Frame) => f.kind === 'view' && pred(f.view as ClusterView), ms);
      return f.view as ClusterView;
    } catch {
      const last = feed.last('view');
      throw new Error(`no view where ${what}; last: ${JSON.stringify(last?.view)}`);
    }
  };
  const slot = (v: ClusterView, id: string) =>
    Number(v.nodes.find((n) => n.id === id)?.extra?.['chosen up to slot'] ?? -1);

  const formed = await viewWhere(
    'three Paxos nodes agreeing on a distinguished proposer',
    (v) =>
      v.nodes.length === 3 &&
      v.nodes.every((n) => n.up && n.protocol === 'paxos') &&
      new Set(v.nodes.map((n) => n.extra?.distinguished)).size === 1 &&
      v.nodes[0]?.extra?.distinguished !== '-',
  );
  for (const n of formed.nodes) {
    t.match(String(n.extra?.ballot), /^\d+\.\w+$/, `${n.id} shows its ballot (${n.extra?.ballot})`);
    // "0" until its acceptor hears a prepare or accept: a leader elected by a phase-1 quorum
    // of the other two may reach it only later (seen in a loaded run).
    t.match(String(n.extra?.promised), /^(0|\d+\.\w+)$/, `${n.id} shows its promised ballot`);
    t.type(n.extra?.['highest slot'], 'number', `${n.id} shows its highest slot`);
  }
  const before = Math.min(...formed.nodes.map((n) => slot(formed, n.id)));

  const client = await connect(
    [...cluster.nodes.values()].map((n) => `${n.id}=${n.url}`),
    { secret: TEST_SECRET },
  );
  t.teardown(() => client.disconnect());
  for (let i = 0; i < 3; i++) {
    const r = await client.put(`k${i}`, `v${i}`, { timeoutMs: 20_000 });
    t.equal(r.outcome, 'ok', `put k${i}`);
  }
  const moved = await viewWhere('every node chose the new slots', (v) =>
    v.nodes.every((n) => slot(v, n.id) >= before + 3),
  );
  t.ok(
    moved.nodes.every((n) => slot(moved, n.id) >= before + 3),
    'the chosen prefix moved on all three',
  );
  // The slots were chosen by a phase-2 quorum, and every status in this view was taken after
  // its node learned them: at least a majority of acceptors show the ballot they promised.
  t.ok(
    moved.nodes.filter((n) => /^\d+\.\w+$/.test(String(n.extra?.promised))).length >= 2,
    'a majority of acceptors show a promised ballot',
  );
});
