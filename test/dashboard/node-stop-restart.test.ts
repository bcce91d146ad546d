/**
 * Stop and restart a node of a real cluster from the dashboard: three `synod node` processes
 * (Raft, then Multi-Paxos), every one with the admin secret, one serving the dashboard.
 * - Without the admin secret the page's stop is refused, and an admin `node.stop` with no
 *   proof, or a proof made with another secret, is refused by the node itself.
 * - "stop" on the leader stops its consensus part: the feed shows it stopped while its
 *   process stays up, the others elect a new leader in a higher term and keep taking writes.
 * - "restart" reopens its data directory: it rejoins and its applied index reaches the
 *   others'.
 * Waits are bounded waits for feed frames, never fixed sleeps.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Replies } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import type { ClusterView, NodeView } from '../../lib/dashboard/view.js';
import { silentLogger } from '../../lib/logger.js';
import { makeAdminProof } from '../../lib/node/admin-auth.js';
import type { AdminMsg, ControlReply } from '../../lib/node/node-admin.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { type Frame, jsonFeed } from '../helpers/json-feed.js';
import { freePort, NodeProcesses, TEST_SECRET } from '../helpers/node-processes.js';

const ADMIN = 'an-admin-secret-of-enough-length';

async function openFeed(url: string, output: () => string) {
  // The dashboard server starts after the node has started: retry the connection (bounded).
  const end = Date.now() + 90_000;
  for (;;) {
    const f = jsonFeed(url);
    try {
      await f.opened;
      return f;
    } catch {
      if (Date.now() > end) throw new Error(`no dashboard at ${url}:\n${output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

for (const protocol of ['raft', 'paxos'] as const) {
  t.test(`${protocol}: stop and restart a node from the dashboard`, async (t) => {
    const cluster = await NodeProcesses.create(['a', 'b', 'c']);
    t.teardown(() => cluster.close());
    const adminFile = path.join(cluster.dir, 'admin.key');
    writeFileSync(adminFile, `${ADMIN}\n`);
    const port = await freePort();
    cluster.startAll((id) => [
      ...(protocol === 'paxos' ? ['--protocol', 'paxos'] : []),
      '--admin-secret-file',
      adminFile,
      ...(id === 'a' ? ['--dashboard', String(port)] : []),
    ]);
    const output = () => [...cluster.nodes.values()].map((n) => n.output).join('\n');
    const feed = await openFeed(`ws://127.0.0.1:${port}/feed?token=${ADMIN}`, output);
    t.teardown(() => feed.ws.close());
    const anon = await openFeed(`ws://127.0.0.1:${port}/feed`, output);
    t.teardown(() => anon.ws.close());

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
    const node = (v: ClusterView, id: string) => v.nodes.find((n) => n.id === id) as NodeView;
    const leaders = (v: ClusterView) => v.nodes.filter((n) => n.up && n.role === 'leader');
    /**
     * Raft: a higher term. Multi-Paxos: a higher ballot (round, then proposer id), since a new
     * distinguished proposer may take over in the same round with a higher proposer id.
     */
    const rank = (n: NodeView): [number, string] => {
      if (protocol === 'raft') return [n.term ?? 0, ''];
      const [round, who] = String(n.extra?.ballot ?? '0').split('.');
      return [Number(round), who ?? ''];
    };
    const higher = (n: NodeView, than: NodeView) => {
      const [a, x] = rank(n);
      const [b, y] = rank(than);
      return a > b || (a === b && x > y);
    };
    let nextId = 1;
    const control = async (
      c: Record<string, unknown>,
      via = feed,
      token: string | null = ADMIN,
    ) => {
      const id = nextId++;
      via.ws.send(JSON.stringify({ id, ...(token ? { token } : {}), control: c }));
      return via.next((f) => f.kind === 'result' && f.id === id, 90_000);
    };

    const settled = (v: ClusterView) =>
      v.nodes.length === 3 &&
      v.nodes.every((n) => n.up) &&
      leaders(v).length === 1 &&
      v.nodes.every((n) => n.leader === leaders(v)[0]?.id);
    const formed = await viewWhere('three nodes up with one leader', settled);
    const first = leaders(formed)[0] as NodeView;
    // Refused without the admin secret: by the dashboard, and by the node itself.
    const anonStop = await control({ op: 'stop', node: first.id }, anon, null);
    t.equal(anonStop.ok, false, 'a page without the admin secret cannot stop a node');
    t.match(anonStop.message, /SYNOD_ERR_DASHBOARD_REFUSED/);
    const random = new Random(7);
    const transport = await WebSocketTransport.create({
      nodeId: 'probe-1',
      cluster: 'synod',
      peers: [`${first.id}=${cluster.node(first.id).url}`],
      random: random.fork(),
      secret: TEST_SECRET,
      logger: silentLogger,
    } as ConstructorParameters<typeof WebSocketTransport>[0]);
    const probe = new ActorSystem({ nodeId: 'probe-1', transport, random, logger: silentLogger });
    t.teardown(async () => {
      await probe.shutdown();
      await transport.close();
    });
    const askStop = (extra: { at: number; proof: string }) =>
      probe.ask(
        `${first.id}/admin`,
        { type: 'node.stop', ...extra } as AdminMsg & Replies<ControlReply>,
        20_000,
      );
    const noProof = await askStop({ at: Date.now(), proof: '' });
    t.equal(noProof.ok, false, 'node.stop without a proof is refused');
    t.match(noProof.message, /SYNOD_ERR_ADMIN_REFUSED/);
    const wrong = await askStop(
      makeAdminProof('another-secret', 'synod', 'node.stop', first.id, Date.now()),
    );
    t.equal(wrong.ok, false, 'node.stop with a proof of another secret is refused');
    t.match(wrong.message, /wrong admin secret/);
    // Nothing was stopped (on Multi-Paxos the distinguished proposer may still move on its own).
    feed.frames.splice(0); // only views from now on
    const stable = await viewWhere('everyone still up, one leader', settled, 30_000);
    t.pass('the refused stops stopped nothing');
    const old = leaders(stable)[0] as NodeView;
    t.pass(`${old.id} leads in term ${old.term}`);

    // Stop the leader from the page.
    const stopped = await control({ op: 'stop', node: old.id });
    t.equal(stopped.ok, true, `stop: ${String(stopped.message)}`);
    const failover = await viewWhere(
      `${old.id} stopped and a new leader in a higher ${protocol === 'raft' ? 'term' : 'ballot'}`,
      (v) =>
        node(v, old.id)?.up === false &&
        node(v, old.id)?.role === 'stopped' &&
        leaders(v).length === 1 &&
        higher(leaders(v)[0] as NodeView, old),
    );
    const next = leaders(failover)[0] as NodeView;
    t.not(next.id, old.id, `${next.id} leads now`);
    t.ok(
      higher(next, old),
      `in a higher ${protocol === 'raft' ? 'term' : 'ballot'} (${rank(next).join('.')} > ${rank(old).join('.')})`,
    );
    const child = cluster.node(old.id).child;
    t.ok(child && child.exitCode === null && child.signalCode === null, 'its process is still up');

    // The cluster keeps taking writes while it is stopped; it does not see them.
    // As a client would, retry while the new leader is still taking over (a Multi-Paxos
    // leader runs phase 1 before it takes writes; on a loaded machine that takes seconds).
    let put = await control({ op: 'put', key: 'while-stopped', value: 'x' });
    for (let end = Date.now() + 60_000; !put.ok && Date.now() < end; ) {
      if (!/no leader|try again/.test(String(put.message))) break;
      await new Promise((r) => setTimeout(r, 500));
      put = await control({ op: 'put', key: 'while-stopped', value: 'x' });
    }
    t.equal(put.ok, true, `put while ${old.id} is stopped: ${String(put.message)}`);
    const index = Number(/(?:index|slot) (\d+)/.exec(String(put.message))?.[1]);
    t.ok(index > 0, 'the put reports its index');
    const moved = await viewWhere('the running nodes applied the put', (v) =>
      v.nodes.filter((n) => n.id !== old.id).every((n) => (n.appliedIndex ?? 0) >= index),
    );
    t.ok(
      (node(moved, old.id).appliedIndex ?? 0) < index,
      `the stopped node did not apply it (${node(moved, old.id).appliedIndex} < ${index})`,
    );
    const again = await control({ op: 'stop', node: old.id });
    t.equal(again.ok, false, 'stopping a stopped node is refused');

    // Restart it: it reopens its data directory, rejoins and catches up.
    const restarted = await control({ op: 'restart', node: old.id });
    t.equal(restarted.ok, true, `restart: ${String(restarted.message)}`);
    const caught = await viewWhere(`${old.id} is back and caught up`, (v) => {
      const me = node(v, old.id);
      const top = Math.max(
        ...v.nodes.filter((n) => n.id !== old.id).map((n) => n.appliedIndex ?? 0),
      );
      return (
        me?.up === true && leaders(v).length === 1 && (me.appliedIndex ?? 0) >= Math.max(top, index)
      );
    });
    t.ok(
      (node(caught, old.id).appliedIndex ?? 0) >= index,
      `${old.id} applied up to ${node(caught, old.id).appliedIndex} (the others: ${caught.nodes
        .filter((n) => n.id !== old.id)
        .map((n) => n.appliedIndex)
        .join(', ')})`,
    );
    const after = await control({ op: 'put', key: 'after-restart', value: 'y' });
    t.equal(after.ok, true, 'the cluster takes writes with it back');
    const all = Number(/(?:index|slot) (\d+)/.exec(String(after.message))?.[1]);
    await viewWhere('all three applied the last put', (v) =>
      v.nodes.every((n) => (n.appliedIndex ?? 0) >= all),
    );
    t.pass(`all three applied index ${all}`);

    // A process whose consensus an operator stopped still shuts down cleanly on SIGTERM.
    const victim = ['a', 'b', 'c'].find((id) => id !== 'a') as string;
    const down = await control({ op: 'stop', node: victim });
    t.equal(down.ok, true, `stop ${victim} again`);
    await cluster.kill(victim, 'SIGTERM');
    t.equal(cluster.node(victim).child?.exitCode, 0, 'then exits 0 on SIGTERM');
  });
}
