/// <reference lib="dom" />
/**
 * The page in Chromium when its dashboard goes away and comes back (the node serving it
 * restarted, the demo was run again): it says it is disconnected and greys out what it shows
 * (the last view is stale), reconnects by itself, and shows the new server's view.
 * - A real cluster's page (admin secret in its address): the controls work again.
 * - The demo's page (the token embedded in it is the old run's): the controls are off and the
 *   page says to reload it — not to add `?token=`, which is a real cluster's advice — and a
 *   reload brings them back.
 * Waits are bounded waits on the page's state, never fixed sleeps.
 */
import { existsSync } from 'node:fs';
import { chromium, type Page } from 'playwright-core';
import { Subject } from 'rxjs';
import t from 'tap';
import { DashboardServer } from '../../lib/dashboard/server.js';
import type { Control, DashboardSource } from '../../lib/dashboard/view.js';

const CHROMIUM = process.env.SYNOD_CHROMIUM ?? '/usr/bin/chromium';
const ADMIN = 'admin-secret-of-the-reconnect-test';

function source(cluster: string, controls: Control[]): DashboardSource {
  return {
    view: () => ({
      cluster,
      time: 0,
      nodes: ['a', 'b', 'c'].map((id) => ({
        id,
        up: true,
        protocol: 'raft',
        role: id === 'a' ? 'leader' : 'follower',
        term: 1,
      })),
    }),
    changes$: new Subject<void>(),
    control: async (c) => {
      controls.push(c);
      return { ok: true, message: `${c.op} done by ${cluster}` };
    },
  };
}

const text = (page: Page, sel: string) => page.locator(sel).textContent();

t.test(
  'the page across a restart of its dashboard',
  { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
  async (t) => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());

    for (const kind of ['real cluster', 'demo'] as const) {
      await t.test(kind, async (t) => {
        const controls: Control[] = [];
        const opts = kind === 'real cluster' ? { adminSecret: ADMIN } : {};
        let server = new DashboardServer({ source: source('first', controls), port: 0, ...opts });
        const { port, url } = await server.start();
        t.teardown(() => server.stop());
        const page = await browser.newPage();
        t.teardown(() => page.close());
        await page.goto(kind === 'real cluster' ? `${url}?token=${ADMIN}` : url);
        await page.waitForFunction(
          () =>
            document.querySelector('#cluster')?.textContent === 'first' &&
            !(document.querySelector('#heal') as HTMLButtonElement).disabled,
          null,
          { timeout: 15_000 },
        );
        t.pass('the page shows the first server, controls on');

        await server.stop();
        await page.waitForFunction(
          () => /disconnected/.test(document.querySelector('#status')?.textContent ?? ''),
          null,
          { timeout: 15_000 },
        );
        t.ok(
          await page.evaluate(() => document.body.classList.contains('offline')),
          'the stale view is greyed out while disconnected',
        );
        t.ok(
          await page.locator('#heal').isDisabled(),
          'controls are off while disconnected (nothing to send them to)',
        );

        server = new DashboardServer({ source: source('second', controls), port, ...opts });
        await server.start();
        await page.waitForFunction(
          () =>
            document.querySelector('#cluster')?.textContent === 'second' &&
            document.querySelector('#status')?.textContent === 'live',
          null,
          { timeout: 15_000 },
        );
        t.pass('reconnected by itself to the new server, showing its view');
        t.notOk(
          await page.evaluate(() => document.body.classList.contains('offline')),
          'no longer greyed out',
        );

        if (kind === 'real cluster') {
          t.notOk(await page.locator('#heal').isDisabled(), 'controls on again');
          await page.click('#heal');
          await page.waitForFunction(
            () => /heal done by second/.test(document.querySelector('#result')?.textContent ?? ''),
            null,
            { timeout: 15_000 },
          );
          t.same(controls, [{ op: 'heal' }], 'a control reaches the new server');
        } else {
          t.ok(await page.locator('#heal').isDisabled(), "the old run's token gives no controls");
          t.match(await text(page, '#result'), /reload/i, 'the page says to reload it');
          t.notMatch(await text(page, '#result'), /\?token=/, 'not to add ?token=');
          await page.reload();
          await page.waitForFunction(
            () =>
              document.querySelector('#cluster')?.textContent === 'second' &&
              !(document.querySelector('#heal') as HTMLButtonElement).disabled,
            null,
            { timeout: 15_000 },
          );
          t.pass('after a reload the controls are back');
        }
      });
    }
  },
);
