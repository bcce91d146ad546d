/**
 * No unbounded memory under sustained load, in the server or in the page.
 * - Server (virtual clock): a source changing its view continuously and emitting 10,000
 *   messages a second, a page that reads and a page that never reads (its socket paused).
 *   What the server holds per page stays bounded (buffered bytes ≤ the cap plus one frame;
 *   no per-page queue at all), the reading page gets at most its message budget per tick,
 *   the stalled page is skipped and then dropped, and the reading page keeps being served.
 * - A real node's dashboard source: samples fetched from nodes wait in a bounded queue.
 * - The page's stores (the very JavaScript the page runs, loaded in Node): flooded with
 *   10,000 events, narration lines, unanswered controls and message dots, each stays at its
 *   cap; a negative control with uncapped limits grows, so the check can fail. In Chromium
 *   (when present) the same flood through a real feed leaves the page's stores and its event
 *   list at their caps.
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { Subject } from 'rxjs';
import t from 'tap';
import { WebSocket } from 'ws';
import {
  dashboardPage,
  loadPageStores,
  PAGE_LIMITS,
  PAGE_STORES_JS,
} from '../../lib/dashboard/page.js';
import { DashboardServer } from '../../lib/dashboard/server.js';
import type { ClusterView, DashboardSource, MessageSample } from '../../lib/dashboard/view.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { NodeDashboardSource } from '../../lib/node/node-dashboard.js';
import type { RunningNode } from '../../lib/node/synod-node.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';

/** Runs the virtual clock's timers due in the next `ms`. */
function advance(clock: VirtualClock, ms: number): void {
  const end = clock.now() + ms;
  while (clock.step(end) !== undefined);
  clock.advanceTo(end);
}

/** One turn of the event loop (lets real socket I/O progress; no timed wait). */
const turn = () => new Promise<void>((r) => setImmediate(r));

function loadSource(narrationBytes: number) {
  const changes$ = new Subject<void>();
  const messages$ = new Subject<MessageSample>();
  let n = 0;
  const source: DashboardSource = {
    view: (): ClusterView => ({
      cluster: 'load',
      time: n,
      nodes: ['a', 'b', 'c'].map((id) => ({ id, up: true, protocol: 'raft', term: n })),
      // A big view: a stalled page backs up after a few frames.
      narration: [`${n++} ${'x'.repeat(narrationBytes)}`],
    }),
    changes$,
    messages$,
    control: async () => ({ ok: true, message: 'ok' }),
  };
  return { source, changes$, messages$ };
}

t.test(
  'the server holds a bounded amount per page and drops a page that stays stalled',
  async (t) => {
    const clock = new VirtualClock();
    const { source, changes$, messages$ } = loadSource(200_000);
    const maxBufferedBytes = 64 * 1024;
    const server = new DashboardServer({
      source,
      port: 0,
      clock,
      intervalMs: 100,
      maxMessagesPerSecond: 40,
      maxBufferedBytes,
      maxBackedUpMs: 5_000,
    });
    const { port } = await server.start();
    t.teardown(() => server.stop());
    const frame = JSON.stringify({ kind: 'view', view: source.view() }).length;

    let fastMsgs = 0;
    let fastViews = 0;
    const fast = new WebSocket(`ws://127.0.0.1:${port}/feed`);
    fast.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { kind: string };
      if (f.kind === 'msg') fastMsgs++;
      if (f.kind === 'view') fastViews++;
    });
    const slow = new WebSocket(`ws://127.0.0.1:${port}/feed`);
    await Promise.all(
      [fast, slow].map((ws) => new Promise<void>((resolve) => ws.once('open', () => resolve()))),
    );
    t.teardown(() => {
      fast.terminate();
      slow.terminate();
    });
    // The stalled page: its process stops reading the socket.
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();

    let maxHeld = 0;
    let maxMsgsPerTick = 0;
    let backedUpAt: number | undefined;
    const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    let closed = false;
    void slowClosed.then(() => (closed = true));
    // 10,000 messages a second and a changed view on every tick, for up to 120 virtual s.
    for (let tick = 0; tick < 1_200 && server.stats.slowClientsDropped === 0; tick++) {
      changes$.next();
      const before = fastMsgs;
      for (let i = 0; i < 1_000; i++) messages$.next({ from: 'a', to: 'b', type: 'append' });
      advance(clock, 100);
      for (let i = 0; i < 5; i++) await turn();
      for (const c of server.clientBuffers()) maxHeld = Math.max(maxHeld, c.bufferedBytes);
      maxMsgsPerTick = Math.max(maxMsgsPerTick, fastMsgs - before);
      if (backedUpAt === undefined && server.stats.viewsSkipped > 0) backedUpAt = clock.now();
    }
    // The page reads again: it finds its connection closed by the server.
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    await slowClosed;
    t.ok(backedUpAt !== undefined, `the stalled page backed up (at ${backedUpAt} virtual ms)`);
    t.ok(server.stats.viewsSkipped > 0, `views skipped for it: ${server.stats.viewsSkipped}`);
    t.ok(
      maxHeld <= maxBufferedBytes + frame + 4096,
      `held per page ≤ cap + one frame (${maxHeld} ≤ ${maxBufferedBytes} + ${frame})`,
    );
    t.equal(server.stats.slowClientsDropped, 1, 'the page that stayed stalled was dropped');
    t.pass('its socket was closed');
    t.equal(server.clientCount(), 1, 'the reading page is still served');
    t.ok(maxMsgsPerTick <= 4, `the reading page got at most 4 samples a tick (${maxMsgsPerTick})`);
    t.ok(
      server.stats.messagesDropped > 100_000,
      `samples dropped: ${server.stats.messagesDropped}`,
    );
    const views = fastViews;
    changes$.next();
    advance(clock, 100);
    for (let i = 0; i < 50 && fastViews === views; i++) await turn();
    t.ok(fastViews > views, `the reading page still gets views (${fastViews})`);
    t.same(
      server.clientBuffers().map((c) => c.controlsInFlight),
      [0],
      'nothing else is held per page',
    );
  },
);

t.test("a real node's dashboard source queues fetched samples within a cap", async (t) => {
  const clock = new VirtualClock();
  let seq = 0;
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
    voters: ['a', 'b', 'c'],
    learners: [],
    revision: 0,
    keys: 0,
    links: [],
    members: { a: 'ws://a', b: 'ws://b', c: 'ws://c' },
    cut: [],
    uptimeMs: 0,
    // Each node answers with 1,000 new samples on every poll.
    messages: Array.from({ length: 1_000 }, () => ({
      seq: ++seq,
      from: id,
      to: id === 'a' ? 'b' : 'a',
      type: 'append',
    })),
  });
  const node = {
    id: 'a',
    system: {
      clock,
      ask: async (address: string) => status(address.split('/')[0] as string),
    },
    status: async () => status('a'),
  } as unknown as RunningNode;
  const source = new NodeDashboardSource(node);
  let emitted = 0;
  const sub = source.messages$.subscribe(() => emitted++);
  t.teardown(() => sub.unsubscribe());
  let maxQueued = 0;
  for (let i = 0; i < 200; i++) {
    advance(clock, 50);
    for (let j = 0; j < 3; j++) await turn();
    maxQueued = Math.max(maxQueued, source.queued());
  }
  t.ok(source.stats.samplesReceived >= 30_000, `received ${source.stats.samplesReceived}`);
  t.ok(
    maxQueued <= NodeDashboardSource.MAX_QUEUED,
    `queued ≤ ${NodeDashboardSource.MAX_QUEUED} (${maxQueued})`,
  );
  t.ok(source.stats.samplesDropped > 0, `older samples dropped: ${source.stats.samplesDropped}`);
  t.ok(emitted > 0 && emitted <= 200 * 13, `paced out: ${emitted} emitted in 10 virtual s`);
});

t.test("the page's stores stay at their caps (the page's own code)", async (t) => {
  t.ok(dashboardPage().includes(PAGE_STORES_JS), 'the code tested is the code the page runs');
  const flood = (limits: Record<keyof typeof PAGE_LIMITS, number>) => {
    const s = loadPageStores(limits);
    for (let i = 0; i < 10_000; i++) {
      s.addEvent(`event ${i}`);
      s.narrate([`line ${i}`, `line ${i + 1}`]);
      s.track(i, { op: 'heal' });
      s.takeDot();
    }
    // A view carrying a huge narration is taken only up to narrationPerView lines.
    s.narrate(Array.from({ length: 5_000 }, (_, i) => `burst ${i}`));
    return s;
  };
  const s = flood(PAGE_LIMITS);
  const sizes = s.sizes();
  t.equal(sizes.events, PAGE_LIMITS.events, `events capped at ${PAGE_LIMITS.events}`);
  t.equal(sizes.seen, PAGE_LIMITS.seen, `narration remembered capped at ${PAGE_LIMITS.seen}`);
  t.equal(sizes.seenOrder, PAGE_LIMITS.seen);
  t.equal(sizes.pending, PAGE_LIMITS.pending, `pending controls capped at ${PAGE_LIMITS.pending}`);
  t.equal(sizes.dots, PAGE_LIMITS.dots, `dots in flight capped at ${PAGE_LIMITS.dots}`);
  t.equal(s.events()[0], 'event 9999', 'the newest event is kept');
  t.same(s.settle(9_999), { op: 'heal' }, 'the newest pending control is kept');
  t.equal(s.settle(0), undefined, 'the oldest was forgotten');
  t.same(s.narrate(['burst 4999']), [], 'a line just shown is not shown again');
  for (let i = 0; i < 100; i++) s.releaseDot();
  t.equal(s.sizes().dots, 0, 'dots are released');

  // Negative control: the same flood with no caps grows, so the checks above can fail.
  const inf = Number.POSITIVE_INFINITY;
  const open = flood({
    events: inf,
    seen: inf,
    narrationPerView: inf,
    pending: inf,
    dots: inf,
    logTail: inf,
  }).sizes();
  t.ok(open.events === 10_000 && open.pending === 10_000 && open.seen > 10_000, 'uncapped grows');
});

const CHROMIUM = process.env.SYNOD_CHROMIUM ?? '/usr/bin/chromium';
t.test(
  'in Chromium: a flooded page keeps its stores and event list at their caps',
  { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
  async (t) => {
    const changes$ = new Subject<void>();
    const messages$ = new Subject<MessageSample>();
    let n = 0;
    const source: DashboardSource = {
      view: () => ({
        cluster: 'flood',
        time: n,
        nodes: ['a', 'b', 'c'].map((id) => ({ id, up: true, protocol: 'raft', term: 1 })),
        // 40 new narration lines in every view.
        narration: Array.from({ length: 40 }, (_, i) => `view ${n} line ${i}`),
      }),
      changes$,
      messages$,
      control: async () => ({ ok: true, message: 'ok' }),
    };
    const server = new DashboardServer({
      source,
      port: 0,
      intervalMs: 20,
      maxMessagesPerSecond: 2_000,
    });
    const { url } = await server.start();
    t.teardown(() => server.stop());
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 3, null, {
      timeout: 15_000,
    });
    // Flood: 100 views of 40 new lines each and 20,000 messages, pushed as fast as they go.
    for (let i = 0; i < 100; i++) {
      n++;
      changes$.next();
      for (let j = 0; j < 200; j++) messages$.next({ from: 'a', to: 'b', type: 'append' });
      await new Promise<void>((r) => setImmediate(r));
    }
    await page.waitForFunction(
      (last) => (document.querySelector('#events')?.textContent ?? '').includes(`view ${last} `),
      n,
      { timeout: 30_000 },
    );
    const sizes = (await page.evaluate(() =>
      (
        window as unknown as { synodStores: { sizes(): Record<string, number> } }
      ).synodStores.sizes(),
    )) as Record<string, number>;
    const rows = await page.locator('#events > div').count();
    t.ok(
      (sizes.events ?? Number.POSITIVE_INFINITY) <= PAGE_LIMITS.events,
      `events ${sizes.events}`,
    );
    t.equal(rows, sizes.events, `the event list shows ${rows} lines, as many as the store`);
    t.ok((sizes.seen ?? Number.POSITIVE_INFINITY) <= PAGE_LIMITS.seen, `seen ${sizes.seen}`);
    t.ok((sizes.dots ?? Number.POSITIVE_INFINITY) <= PAGE_LIMITS.dots, `dots ${sizes.dots}`);
    const svgCircles = await page.locator('#ring circle').count();
    t.ok(
      svgCircles <= 3 + PAGE_LIMITS.dots,
      `circles on the ring ≤ 3 + ${PAGE_LIMITS.dots} (${svgCircles})`,
    );
  },
);
