/**
 * A real node's card shows the tail of its log with terms, and the page sees the messages
 * between nodes: three `synod node` processes (Raft, then Multi-Paxos), one serving the
 * dashboard read-only. After 30 writes every node's card holds exactly the newest 20 log
 * entries (bounded), oldest first, with terms and command labels; the feed carries sampled
 * messages sent by every node, not only by the dashboard's own, at a bounded rate.
 */
import t from 'tap';
import type { ClusterView, NodeView } from '../../lib/dashboard/view.js';
import { connect } from '../../lib/kv-client/connect.js';
import { LOG_TAIL } from '../../lib/node/node-admin.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { freePort, NodeProcesses, TEST_SECRET } from '../helpers/node-processes.js';

for (const protocol of ['raft', 'paxos'] as const) {
  t.test(`${protocol}: log tail and message flow of a real cluster`, async (t) => {
    const cluster = await NodeProcesses.create(['a', 'b', 'c']);
    t.teardown(() => cluster.close());
    const port = await freePort();
    cluster.startAll((id) => [
      ...(protocol === 'paxos' ? ['--protocol', 'paxos'] : []),
      ...(id === 'a' ? ['--dashboard', String(port)] : []),
    ]);
    const output = () => [...cluster.nodes.values()].map((n) => n.output).join('\n');
    let feed: ReturnType<typeof jsonFeed> | undefined;
    const end = Date.now() + 90_000;
    while (!feed) {
      const f = jsonFeed(`ws://127.0.0.1:${port}/feed`);
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
        const f = await feed.next(
          (f: Frame) => f.kind === 'view' && pred(f.view as ClusterView),
          ms,
        );
        return f.view as ClusterView;
      } catch {
        const last = feed.last('view');
        throw new Error(
          `no view where ${what}; last: ${JSON.stringify(last?.view)}\n${output().slice(-4000)}`,
        );
      }
    };
    await viewWhere(
      'three nodes up with one leader',
      (v) =>
        v.nodes.length === 3 &&
        v.nodes.every((n) => n.up) &&
        v.nodes.filter((n) => n.role === 'leader').length === 1,
    );
    const client = await connect(
      [...cluster.nodes.values()].map((n) => `${n.id}=${n.url}`),
      { secret: TEST_SECRET },
    );
    t.teardown(() => client.disconnect());
    for (let i = 0; i < 30; i++) {
      const r = await client.put(`k${i}`, `v${i}`, { timeoutMs: 20_000 });
      t.equal(r.outcome, 'ok', `put k${i}`);
    }
    const labelled = (n: NodeView) => n.logTail?.some((e) => e.label === 'put k29') === true;
    const v = await viewWhere('every card shows the last put in its log tail', (v) =>
      v.nodes.every(labelled),
    );
    for (const n of v.nodes) {
      const tail = n.logTail ?? [];
      t.equal(tail.length, LOG_TAIL, `${n.id}: the newest ${LOG_TAIL} entries, no more`);
      // Raft: consecutive indexes. Multi-Paxos: increasing; the tail lists applied commands,
      // so a no-op slot (a new leader filling a gap) or a retried command applied once leaves
      // a hole, which a loaded machine produces.
      t.ok(
        tail.every(
          (e, i) =>
            i === 0 ||
            (protocol === 'paxos'
              ? e.index > (tail[i - 1]?.index ?? 0)
              : e.index === (tail[i - 1]?.index ?? 0) + 1),
        ),
        `${n.id}: ${protocol === 'paxos' ? 'increasing' : 'consecutive'} indexes, oldest first (${tail.map((e) => e.index).join(',')})`,
      );
      // Raft: terms never decrease along a log. Multi-Paxos: the ballot round each slot was
      // chosen in (a slot re-proposed by a new leader may carry a higher one than the next).
      t.ok(
        tail.every(
          (e, i) =>
            e.term >= 1 && (protocol === 'paxos' || i === 0 || e.term >= (tail[i - 1]?.term ?? 0)),
        ),
        `${n.id}: terms (${[...new Set(tail.map((e) => e.term))].join(', ')})`,
      );
      t.equal(tail.at(-1)?.label, 'put k29', `${n.id}: the last entry is the last put`);
      t.ok(
        tail.some((e) => e.label === 'put k20'),
        `${n.id}: commands are labelled`,
      );
    }

    // Messages: sampled by every node, so the feed shows traffic the dashboard's node never
    // sends. Wait (bounded) until samples from at least two nodes, one of them not a, came.
    const senders = new Set<string>();
    const types = new Set<string>();
    const links = new Set<string>();
    await feed.next((f) => {
      if (f.kind !== 'msg') return false;
      senders.add(String(f.from));
      types.add(String(f.type));
      links.add(`${f.from}→${f.to}`);
      return senders.size >= 2 && [...senders].some((s) => s !== 'a');
    }, 60_000);
    t.pass(`messages from ${[...senders].join(', ')} on ${[...links].join(' ')}`);
    t.ok(
      [...types].every((x) => x.length > 0 && x !== 'reply'),
      `typed messages (${[...types].join(', ')})`,
    );
    const msgs = feed.frames.filter((f) => f.kind === 'msg');
    t.ok(
      msgs.every((m) => ['a', 'b', 'c'].includes(String(m.from)) && m.from !== m.to),
      'between the nodes',
    );
  });
}
