/**
 * A real cluster's page shows the links that are down between nodes it can see, not only the
 * partitions an operator made from the page: a firewall between b and c (both still reachable
 * from the dashboard's node a) shows as the link b–c down, though no partition group separates
 * them (a reaches both). A link down on one side only (the other still has it up) is not shown;
 * a node the dashboard cannot reach is shown down, not as links down. A fake node answers the
 * polls, on a virtual clock.
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { Subject } from 'rxjs';
import t from 'tap';
import { DashboardServer } from '../../lib/dashboard/server.js';
import type { DashboardSource } from '../../lib/dashboard/view.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { NodeDashboardSource } from '../../lib/node/node-dashboard.js';
import type { RunningNode } from '../../lib/node/synod-node.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

t.test('links down between nodes are in the view', async (t) => {
  const clock = new VirtualClock();
  const ids = ['a', 'b', 'c', 'd'];
  // Link states as each node reports them: peer → state.
  let links: Record<string, Record<string, string>> = {};
  let unreachable = new Set<string>();
  const status = (id: string): NodeStatus => ({
    id,
    cluster: 'c',
    url: `ws://${id}`,
    protocol: 'raft',
    role: id === 'a' ? 'leader' : 'follower',
    term: 1,
    leader: 'a',
    commitIndex: 1,
    appliedIndex: 1,
    lastIndex: 1,
    voters: ids,
    learners: [],
    revision: 0,
    keys: 0,
    links: ids.filter((p) => p !== id).map((peer) => ({ peer, state: links[id]?.[peer] ?? 'up' })),
    members: Object.fromEntries(ids.map((x) => [x, `ws://${x}`])),
    cut: [],
    uptimeMs: 0,
  });
  const node = {
    id: 'a',
    system: {
      clock,
      ask: async (address: string) => {
        const id = address.split('/')[0] as string;
        if (unreachable.has(id)) throw new Error('timeout');
        return status(id);
      },
    },
  } as unknown as RunningNode;
  const source = new NodeDashboardSource(node);
  t.teardown(() => source.close());
  const poll = async () => {
    clock.advanceTo(clock.now() + 500);
    while (clock.step(clock.now()) !== undefined);
    for (let i = 0; i < 5; i++) await turn();
  };

  await poll();
  t.same(source.view().linksDown ?? [], [], 'all links up: none down');

  // A firewall between b and c: both sides see their link down.
  links = { b: { c: 'reconnecting' }, c: { b: 'down' } };
  await poll();
  t.same(source.view().linksDown, [['b', 'c']], 'b–c is down');
  t.equal(source.view().partitions, undefined, 'no partition group: a reaches both');

  // One side only: b still has its link to c up (c's end is reconnecting) — not shown.
  links = { c: { b: 'reconnecting' } };
  await poll();
  t.same(source.view().linksDown ?? [], [], 'a link up on one side is not shown down');

  // d unreachable (shown down); the others' links to it are down: not listed as links down.
  links = { a: { d: 'down' }, b: { d: 'down' }, c: { d: 'down' } };
  unreachable = new Set(['d']);
  await poll();
  t.equal(source.view().nodes.find((n) => n.id === 'd')?.up, false, 'd is shown down');
  t.same(source.view().linksDown ?? [], [], 'and not as links down');
});

const CHROMIUM = process.env.SYNOD_CHROMIUM ?? '/usr/bin/chromium';
t.test(
  'the page draws links down',
  { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
  async (t) => {
    const source: DashboardSource = {
      view: () => ({
        cluster: 'links',
        time: 0,
        nodes: ['a', 'b', 'c'].map((id) => ({ id, up: true, protocol: 'raft', term: 1 })),
        linksDown: [['b', 'c']],
      }),
      changes$: new Subject<void>(),
      control: async () => ({ ok: true, message: 'ok' }),
    };
    const server = new DashboardServer({ source, port: 0, readOnly: true });
    const { url } = await server.start();
    t.teardown(() => server.stop());
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 3, null, {
      timeout: 15_000,
    });
    t.equal(await page.locator('#partitions').textContent(), 'links down: b ✕ c');
    t.equal(await page.locator('#ring line.linkdown').count(), 1, 'one dashed line on the ring');
  },
);
