/**
 * A real node's dashboard when members come and go: a learner that joins shows on the page
 * (as a learner, with the cluster's protocol, down while it answers no status poll — a backup
 * agent has no admin actor), and once it leaves the cluster it leaves the page too. Before, a
 * member that left stayed for ever: the backup agent of every backup taken from the page as a
 * "down" card, a removed voter with the last status it reported. Waits are bounded waits on
 * the source's views, never fixed sleeps.
 */
import { filter, firstValueFrom, map, timeout } from 'rxjs';
import t from 'tap';
import type { ClusterView } from '../../lib/dashboard/view.js';
import type { AdminMsg } from '../../lib/node/node-admin.js';
import { NodeDashboardSource } from '../../lib/node/node-dashboard.js';
import { clientOf, startOneNode } from '../helpers/one-node.js';

t.test('members that join and leave come and go on the page', async (t) => {
  const one = await startOneNode(t, 'members-leave');
  const source = new NodeDashboardSource(one.node);
  t.teardown(() => source.close());
  const viewWhere = (what: string, pred: (v: ClusterView) => boolean) =>
    firstValueFrom(
      source.changes$.pipe(
        map(() => source.view()),
        filter(pred),
        timeout({
          first: 20_000,
          with: () => {
            throw new Error(`no view where ${what}; last: ${JSON.stringify(source.view())}`);
          },
        }),
      ),
    );
  const ids = (v: ClusterView) => v.nodes.map((n) => n.id);

  await viewWhere('n1 leads', (v) => v.nodes.some((n) => n.id === 'n1' && n.role === 'leader'));
  const { system, transport } = await clientOf(t, one, 'agent', { listen: true });
  const url = transport.address()?.url as string;
  const joined = (await system.ask(
    'n1/admin',
    { type: 'node.join', id: 'agent', url, learner: true } as AdminMsg & { type: 'node.join' },
    10_000,
  )) as { ok: boolean; message: string };
  t.ok(joined.ok, joined.message);
  const during = await viewWhere('the learner is shown', (v) => ids(v).includes('agent'));
  const agent = during.nodes.find((n) => n.id === 'agent');
  t.equal(agent?.role, 'learner', 'shown as a learner');
  t.equal(agent?.protocol, 'raft', "with the cluster's protocol");
  t.equal(agent?.up, false, 'down: it answers no status poll');
  t.ok(during.nodes.find((n) => n.id === 'n1')?.learners?.includes('agent'), "in n1's learners");

  const left = (await system.ask(
    'n1/admin',
    { type: 'node.leave', id: 'agent' } as AdminMsg & { type: 'node.leave' },
    10_000,
  )) as { ok: boolean; message: string };
  t.ok(left.ok, left.message);
  const after = await viewWhere('the learner is gone', (v) => !ids(v).includes('agent'));
  t.same(ids(after), ['n1'], 'only the members remain');
  // And it stays gone (the next polls do not bring it back).
  let polls = 0;
  const later = await viewWhere('two more polls', () => ++polls >= 2);
  t.same(ids(later), ['n1'], 'still only the members');
});
