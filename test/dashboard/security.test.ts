/**
 * The dashboard refuses what a malicious web page in the user's browser could send it:
 * - the in-process demo (no admin secret) embeds a per-run random token in the page it
 *   serves, and every control must carry it: a control without it, or with another, is
 *   refused and never reaches the cluster;
 * - a WebSocket upgrade or HTTP request whose Origin is not the dashboard's own is refused
 *   with 403 (a page on evil.example cannot open the feed, with or without the admin secret);
 * - while the token is embedded, a Host that is a DNS name other than localhost is refused
 *   (DNS rebinding would otherwise make evil.example same-origin with the dashboard);
 * - the page may not be framed (clickjacking).
 */
import { request } from 'node:http';
import { Subject } from 'rxjs';
import t from 'tap';
import { WebSocket } from 'ws';
import { DashboardServer, requestProblem } from '../../lib/dashboard/server.js';
import type { ClusterView, Control, DashboardSource } from '../../lib/dashboard/view.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { jsonFeed } from '../helpers/json-feed.js';

function fakeSource() {
  const controls: Control[] = [];
  const source: DashboardSource = {
    view: (): ClusterView => ({
      cluster: 'test',
      time: 0,
      nodes: [{ id: 'a', up: true, protocol: 'raft', role: 'leader', term: 1 }],
    }),
    changes$: new Subject<void>(),
    control: async (c) => {
      controls.push(c);
      return { ok: true, message: `did ${c.op}` };
    },
  };
  return { source, controls };
}

/** A raw HTTP GET with chosen headers (fetch would not let us forge Host). */
function get(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Tries a WebSocket upgrade; resolves 'open' or the HTTP status it was refused with. */
function upgrade(url: string, headers: Record<string, string>): Promise<'open' | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', () => resolve(-1));
  });
}

t.test(
  'the demo dashboard: a per-run token embedded in the page, Origin and Host checked',
  async (t) => {
    const { source, controls } = fakeSource();
    const server = new DashboardServer({ source, port: 0, clock: new VirtualClock() });
    const { port, url } = await server.start();
    t.teardown(() => server.stop());
    const self = `127.0.0.1:${port}`;

    const page = await get(port, '/', { host: self });
    t.equal(page.status, 200, 'the page is served to its own host');
    const token = /<meta name="synod-token" content="([^"]+)">/.exec(page.body)?.[1];
    t.ok(token && token.length >= 32, 'the page embeds a long random token');
    t.equal(page.headers['x-frame-options'], 'DENY', 'the page may not be framed');
    t.match(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
    const other = new DashboardServer({ source, port: 0, clock: new VirtualClock() });
    const o = await other.start();
    t.teardown(() => other.stop());
    const otherToken = /content="([^"]+)"/.exec(await (await fetch(o.url)).text())?.[1];
    t.not(otherToken, token, 'every server run makes its own token');

    // DNS rebinding: evil.example resolving to 127.0.0.1 is refused by name.
    const rebound = await get(port, '/', { host: `evil.example:${port}` });
    t.equal(rebound.status, 403, 'a page served under a foreign host name is refused');
    t.notMatch(rebound.body, /<meta name="synod-token"/, 'and carries no token');
    t.match(rebound.body, /SYNOD_ERR_DASHBOARD_FORBIDDEN/);
    t.equal((await get(port, '/', { host: `localhost:${port}` })).status, 200, 'localhost works');
    t.equal(
      (await get(port, '/view.json', { host: self, origin: 'http://evil.example' })).status,
      403,
      'a cross-origin read of the view is refused',
    );
    t.equal(
      await upgrade(`ws://${self}/feed`, { origin: 'http://evil.example' }),
      403,
      'a WebSocket from another origin is refused',
    );
    t.equal(
      await upgrade(`ws://${self}/feed`, { origin: 'null' }),
      403,
      'a WebSocket from an opaque origin (sandboxed frame, file://) is refused',
    );
    t.equal(
      await upgrade(`ws://${self}/feed?token=${token}`, { origin: 'http://evil.example' }),
      403,
      'even with the token',
    );
    t.equal(
      await upgrade(`ws://${self}/feed`, {
        host: `evil.example:${port}`,
        origin: `http://evil.example:${port}`,
      }),
      403,
      'a rebound same-origin WebSocket is refused by its Host',
    );
    t.equal(
      await upgrade(`ws://${self}/feed`, { origin: `http://${self}` }),
      'open',
      "the page's own origin is accepted",
    );
    t.ok(server.stats.requestsRefused >= 6, 'refusals are counted');

    const feed = jsonFeed(`ws://${self}/feed?token=${token}`);
    await feed.opened;
    t.teardown(() => feed.ws.close());
    t.equal((await feed.next((f) => f.kind === 'hello')).controls, true, 'the page may control');
    feed.ws.send(JSON.stringify({ id: 1, control: { op: 'stop', node: 'a' } }));
    const missing = await feed.next((f) => f.kind === 'result' && f.id === 1);
    t.equal(missing.ok, false, 'a control without the token is refused');
    t.match(missing.message, /SYNOD_ERR_DASHBOARD_REFUSED.*token/);
    feed.ws.send(JSON.stringify({ id: 2, token: otherToken, control: { op: 'stop', node: 'a' } }));
    t.equal(
      (await feed.next((f) => f.kind === 'result' && f.id === 2)).ok,
      false,
      "another run's token is refused",
    );
    t.equal(controls.length, 0, 'no refused control reached the cluster');
    feed.ws.send(JSON.stringify({ id: 3, token, control: { op: 'stop', node: 'a' } }));
    t.same(await feed.next((f) => f.kind === 'result' && f.id === 3), {
      kind: 'result',
      id: 3,
      ok: true,
      message: 'did stop',
    });
    t.same(controls, [{ op: 'stop', node: 'a' }], 'the control with the token reached it');
    t.ok(url.startsWith('http://127.0.0.1:'), 'the demo serves on loopback');
  },
);

t.test('a real cluster (admin secret): Origin checked, the secret never in the page', async (t) => {
  const { source, controls } = fakeSource();
  const server = new DashboardServer({
    source,
    port: 0,
    adminSecret: 'admin-secret-0123456789',
    clock: new VirtualClock(),
  });
  const { port } = await server.start();
  t.teardown(() => server.stop());
  const self = `127.0.0.1:${port}`;
  const page = await get(port, '/', { host: self });
  t.notMatch(page.body, /<meta name="synod-token"|admin-secret-0123456789/, 'no token in the page');
  // A real cluster's dashboard is opened by host name across laptops: names are allowed.
  t.equal((await get(port, '/', { host: `laptop-b.local:${port}` })).status, 200);
  t.equal(
    await upgrade(`ws://${self}/feed?token=admin-secret-0123456789`, {
      origin: 'http://evil.example',
    }),
    403,
    'a WebSocket from another origin is refused, even with the admin secret',
  );
  t.equal(
    await upgrade(`ws://laptop-b.local:${port}/feed`.replace('laptop-b.local', '127.0.0.1'), {
      host: `laptop-b.local:${port}`,
      origin: `http://laptop-b.local:${port}`,
    }),
    'open',
    'its own origin under a host name is accepted',
  );
  const feed = jsonFeed(`ws://${self}/feed`);
  await feed.opened;
  t.teardown(() => feed.ws.close());
  feed.ws.send(JSON.stringify({ id: 1, control: { op: 'heal' } }));
  t.equal((await feed.next((f) => f.kind === 'result')).ok, false, 'no secret: refused');
  feed.ws.send(
    JSON.stringify({ id: 2, token: 'admin-secret-0123456789', control: { op: 'heal' } }),
  );
  t.equal((await feed.next((f) => f.kind === 'result' && f.id === 2)).ok, true, 'secret: done');
  t.same(controls, [{ op: 'heal' }]);
});

t.test('a read-only dashboard refuses every control and checks Origin', async (t) => {
  const { source, controls } = fakeSource();
  const server = new DashboardServer({
    source,
    port: 0,
    readOnly: true,
    clock: new VirtualClock(),
  });
  const { port } = await server.start();
  t.teardown(() => server.stop());
  const page = await get(port, '/', { host: `127.0.0.1:${port}` });
  t.notMatch(page.body, /<meta name="synod-token"/, 'a read-only page carries no token');
  t.equal(await upgrade(`ws://127.0.0.1:${port}/feed`, { origin: 'http://evil.example' }), 403);
  const feed = jsonFeed(`ws://127.0.0.1:${port}/feed`);
  await feed.opened;
  t.teardown(() => feed.ws.close());
  feed.ws.send(JSON.stringify({ id: 1, token: 'anything', control: { op: 'heal' } }));
  t.match((await feed.next((f) => f.kind === 'result')).message, /read-only/);
  t.equal(controls.length, 0);
});

t.test('requestProblem', async (t) => {
  t.equal(requestProblem({ host: '127.0.0.1:8080' }, true), undefined, 'no Origin: not a page');
  t.equal(requestProblem({ host: '[::1]:8080', origin: 'http://[::1]:8080' }, true), undefined);
  t.equal(
    requestProblem({ host: 'app.localhost:1', origin: 'http://app.localhost:1' }, true),
    undefined,
  );
  t.match(requestProblem({}, true), /no Host/);
  t.match(requestProblem({ host: 'x.example:1' }, true), /not this dashboard/);
  t.equal(requestProblem({ host: 'x.example:1' }, true, ['x.example']), undefined, 'allowed');
  t.equal(requestProblem({ host: 'x.example:1' }, false), undefined, 'no host check');
  t.match(
    requestProblem({ host: '127.0.0.1:1', origin: 'http://127.0.0.1:2' }, true),
    /cross-origin/,
    'another port is another origin',
  );
  t.equal(requestProblem({ host: 'h:1', origin: 'https://h:1' }, false), undefined);
});
