import { Subject } from 'rxjs';
import t from 'tap';
import { DashboardServer } from '../../lib/dashboard/server.js';
import type {
  ClusterView,
  Control,
  DashboardSource,
  MessageSample,
} from '../../lib/dashboard/view.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { jsonFeed } from '../helpers/json-feed.js';

function fakeSource() {
  const changes$ = new Subject<void>();
  const messages$ = new Subject<MessageSample>();
  const controls: Control[] = [];
  let term = 1;
  const source: DashboardSource = {
    view: (): ClusterView => ({
      cluster: 'test',
      time: 0,
      nodes: ['a', 'b', 'c'].map((id) => ({
        id,
        up: true,
        protocol: 'raft',
        role: id === 'a' ? 'leader' : 'follower',
        term,
      })),
    }),
    changes$,
    messages$,
    control: async (c) => {
      controls.push(c);
      term++;
      return { ok: true, message: `did ${c.op}` };
    },
  };
  return { source, changes$, messages$, controls };
}

t.test('serves the page and a feed; controls need the admin secret', async (t) => {
  const { source, controls } = fakeSource();
  const clock = new VirtualClock();
  const server = new DashboardServer({ source, port: 0, adminSecret: 's3cret', clock });
  const { port, url } = await server.start();
  t.teardown(() => server.stop());
  const page = await fetch(url);
  t.equal(page.status, 200);
  t.match(await page.text(), /<title>Synod dashboard<\/title>/);
  t.equal((await fetch(`${url}nope`)).status, 404);
  t.equal(((await (await fetch(`${url}view.json`)).json()) as ClusterView).nodes.length, 3);

  const anon = jsonFeed(`ws://127.0.0.1:${port}/feed`);
  await anon.opened;
  t.same(await anon.next((f) => f.kind === 'hello'), {
    kind: 'hello',
    controls: false,
    readOnly: false,
  });
  t.equal(((await anon.next((f) => f.kind === 'view')).view as ClusterView).nodes.length, 3);
  anon.ws.send(JSON.stringify({ id: 1, control: { op: 'stop', node: 'a' } }));
  const refused = await anon.next((f) => f.kind === 'result');
  t.equal(refused.ok, false);
  t.match(refused.message, /admin secret/);
  t.equal(controls.length, 0, 'nothing happened');

  const admin = jsonFeed(`ws://127.0.0.1:${port}/feed?token=s3cret`);
  await admin.opened;
  t.equal((await admin.next((f) => f.kind === 'hello')).controls, true);
  // The connection's token is not enough: every control carries it.
  admin.ws.send(JSON.stringify({ id: 9, control: { op: 'stop', node: 'a' } }));
  const bare = await admin.next((f) => f.kind === 'result' && f.id === 9);
  t.equal(bare.ok, false, 'a control without the token is refused');
  t.match(bare.message, /SYNOD_ERR_DASHBOARD_REFUSED/);
  admin.ws.send(JSON.stringify({ id: 10, token: 's3creT', control: { op: 'stop', node: 'a' } }));
  t.equal(
    (await admin.next((f) => f.kind === 'result' && f.id === 10)).ok,
    false,
    'a control with a wrong token is refused',
  );
  t.equal(controls.length, 0, 'nothing happened');
  admin.ws.send(JSON.stringify({ id: 2, token: 's3cret', control: { op: 'stop', node: 'a' } }));
  t.same(await admin.next((f) => f.kind === 'result'), {
    kind: 'result',
    id: 2,
    ok: true,
    message: 'did stop',
  });
  t.same(controls, [{ op: 'stop', node: 'a' }]);
  for (const bad of [
    { op: 'explode' },
    { op: 'stop' },
    { op: 'put', key: '', value: 'x' },
    'nope',
  ]) {
    admin.ws.send(JSON.stringify({ id: 3, token: 's3cret', control: bad }));
    t.equal(
      (await admin.next((f) => f.kind === 'result')).ok,
      false,
      `refused ${JSON.stringify(bad)}`,
    );
  }
  admin.ws.send('{not json');
  t.match((await admin.next((f) => f.kind === 'result')).message, /malformed/);
  t.equal(controls.length, 1, 'malformed controls never reach the source');
  anon.ws.close();
  admin.ws.close();
});

t.test('views are coalesced per tick and message samples are rate-limited', async (t) => {
  const { source, changes$, messages$ } = fakeSource();
  const clock = new VirtualClock();
  const server = new DashboardServer({
    source,
    port: 0,
    clock,
    intervalMs: 100,
    maxMessagesPerSecond: 50,
  });
  const { port } = await server.start();
  t.teardown(() => server.stop());
  const c = jsonFeed(`ws://127.0.0.1:${port}/feed`);
  await c.opened;
  await c.next((f) => f.kind === 'view');
  const sentBefore = server.stats.viewsSent;
  for (let i = 0; i < 1_000; i++) changes$.next();
  clock.step(); // one tick
  t.equal(server.stats.viewsSent - sentBefore, 1, '1,000 changes → one view per tick');
  for (let i = 0; i < 1_000; i++) messages$.next({ from: 'a', to: 'b', type: 'AppendEntries' });
  t.equal(server.stats.messagesSent, 5, '50/s at 100 ms ticks → 5 samples per tick');
  t.equal(server.stats.messagesDropped, 995);
  c.ws.close();
});
