/**
 * The in-process demo's network and leadership controls, as the page sends them to its
 * source (LocalCluster.control): isolate the leader (the partition is in the view, the others
 * elect a leader in a higher term), heal (no partition, one leader again, the isolated node
 * caught up), transfer leadership to a chosen follower, and the refusals (unknown node, a
 * stopped target). Waits are bounded waits on the cluster's change stream, never sleeps.
 */
import t from 'tap';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { LocalCluster } from '../../lib/cluster/local-cluster.js';

t.test("the demo's isolate, heal and transfer controls", async (t) => {
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    name: 'controls',
    seed: 11,
    stateMachine: () => new KvStateMachine(),
  });
  t.teardown(() => cluster.shutdown());
  await cluster.start();
  const first = await cluster.waitForLeader(20_000);
  const term = cluster.raft(first)?.status().term ?? 0;

  const cut = await cluster.control({ op: 'isolate', node: first });
  t.equal(cut.ok, true, cut.message);
  const others = cluster.ids().filter((id) => id !== first);
  t.same(cluster.view().partitions, [[first], others], 'the view shows the partition');
  const second = await cluster.waitFor(
    () => {
      const l = others.find((id) => cluster.raft(id)?.status().role === 'leader');
      return l !== undefined && (cluster.raft(l)?.status().term ?? 0) > term ? l : undefined;
    },
    20_000,
    'a leader on the majority side in a higher term',
  );
  t.ok(others.includes(second), `${second} leads the majority`);
  const r = await cluster.propose({ t: 'put', key: 'during', value: 'split' });
  t.ok(r.index > 0, 'the majority takes writes');

  const healed = await cluster.control({ op: 'heal' });
  t.equal(healed.ok, true, healed.message);
  t.equal(cluster.view().partitions, undefined, 'no partition in the view');
  await cluster.waitFor(
    () => {
      const v = cluster.view();
      const leaders = v.nodes.filter((n) => n.role === 'leader');
      return leaders.length === 1 && v.nodes.every((n) => (n.appliedIndex ?? 0) >= r.index)
        ? true
        : undefined;
    },
    20_000,
    'one leader and the isolated node caught up',
  );
  t.pass(`${first} rejoined and applied index ${r.index}`);

  const leader = cluster.leader() as string;
  const target = cluster.ids().find((id) => id !== leader) as string;
  const moved = await cluster.control({ op: 'transfer', to: target });
  t.equal(moved.ok, true, moved.message);
  await cluster.waitFor(
    () => (cluster.leader() === target ? true : undefined),
    20_000,
    `${target} to lead`,
  );
  t.pass(`${target} leads after the transfer`);
  const toSelf = await cluster.control({ op: 'transfer', to: target });
  t.equal(toSelf.ok, false, 'a transfer to the leader itself is refused');
  t.match(toSelf.message, new RegExp(`${target} already leads`));

  // Isolations add up, as on a real cluster: a second one does not heal the first.
  const [x, y] = cluster.ids().filter((id) => id !== target) as [string, string];
  await cluster.control({ op: 'isolate', node: x });
  await cluster.control({ op: 'isolate', node: y });
  t.same(cluster.view().partitions, [[x], [y], [target]], 'both isolated, each alone');
  t.equal(cluster.network.connected(x, target), false, `${x} still cannot reach ${target}`);
  await cluster.control({ op: 'heal' });
  t.equal(cluster.view().partitions, undefined, 'healed');

  const unknown = await cluster.control({ op: 'isolate', node: 'nobody' });
  t.equal(unknown.ok, false, 'isolating an unknown node is refused');
  t.match(unknown.message, /no node nobody/);
  const stopped = cluster.ids().find((id) => id !== target) as string;
  await cluster.control({ op: 'stop', node: stopped });
  const toStopped = await cluster.control({ op: 'transfer', to: stopped });
  t.equal(toStopped.ok, false, 'a transfer to a stopped node is refused');
  t.match(toStopped.message, /not running/);
  const noSuch = await cluster.control({ op: 'transfer', to: 'nobody' });
  t.equal(noSuch.ok, false, 'a transfer to an unknown node is refused');
});
