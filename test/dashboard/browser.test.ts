/// <reference lib="dom" />
/**
 * End to end in a real browser: Debian's chromium driven by playwright-core. Starts the
 * 3-node demo, opens the dashboard, checks three nodes and exactly one leader, stops the
 * leader from the page, sees a new leader with a higher term, restarts the old one, writes
 * a key from the page and sees the commit index advance on every node.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import { runTour } from '../../demos/raft-kv-tour.js';

const CHROMIUM = process.env.SYNOD_CHROMIUM ?? '/usr/bin/chromium';
const artifacts = path.resolve('test-artifacts');

if (!existsSync(CHROMIUM)) {
  console.error(
    `\n*** SKIPPING the dashboard browser test: no chromium at ${CHROMIUM} (.ci/run installs Debian's chromium) ***\n`,
  );
}
{
  const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}`;
  t.test(
    'dashboard in headless chromium: leader, stop, re-election, write',
    { skip },
    async (t) => {
      mkdirSync(artifacts, { recursive: true });
      await runTour({
        dashboardPort: 0,
        print: () => {},
        onReady: async (_cluster, url) => {
          t.ok(url, 'the tour serves a dashboard');
          const browser = await chromium.launch({
            executablePath: CHROMIUM,
            headless: true,
            args: [
              '--no-sandbox',
              '--disable-gpu',
              '--disable-quic',
              '--no-first-run',
              '--disable-background-networking',
              '--disable-component-update',
              '--disable-sync',
            ],
          });
          try {
            const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
            await page.goto(url as string);
            await page.waitForFunction(
              () => document.querySelectorAll('.card').length === 3,
              null,
              {
                timeout: 15_000,
              },
            );
            await page.waitForFunction(
              () => document.querySelectorAll('.card[data-role="leader"]').length === 1,
              null,
              {
                timeout: 15_000,
              },
            );
            t.equal(await page.locator('.card').count(), 3, 'three nodes');
            t.equal(
              await page.locator('.card[data-role="leader"]').count(),
              1,
              'exactly one leader',
            );
            const leader = await page
              .locator('.card[data-role="leader"]')
              .getAttribute('data-node');
            const term = Number(
              await page.locator(`.card[data-node="${leader}"] [data-field="term"]`).textContent(),
            );
            t.ok(leader, `leader is ${leader} in term ${term}`);

            await page.locator(`.card[data-node="${leader}"] button[data-action="stop"]`).click();
            await page.waitForFunction(
              ({ old, term }) => {
                const l = document.querySelector('.card[data-role="leader"]') as HTMLElement | null;
                if (!l || l.dataset.node === old) return false;
                return Number(l.querySelector('[data-field="term"]')?.textContent) > term;
              },
              { old: leader, term },
              { timeout: 15_000 },
            );
            const newLeader = await page
              .locator('.card[data-role="leader"]')
              .getAttribute('data-node');
            const newTerm = Number(
              await page
                .locator(`.card[data-node="${newLeader}"] [data-field="term"]`)
                .textContent(),
            );
            t.not(newLeader, leader, `new leader ${newLeader}`);
            t.ok(newTerm > term, `with a higher term (${newTerm} > ${term})`);
            t.equal(
              await page.locator(`.card[data-node="${leader}"]`).getAttribute('data-role'),
              'down',
              'old leader shown down',
            );

            await page
              .locator(`.card[data-node="${leader}"] button[data-action="restart"]`)
              .click();
            await page.waitForFunction(
              (old) =>
                (document.querySelector(`.card[data-node="${old}"]`) as HTMLElement | null)?.dataset
                  .role === 'follower',
              leader,
              { timeout: 15_000 },
            );
            const commits = async () =>
              Promise.all(
                ['a', 'b', 'c'].map(async (id) =>
                  Number(
                    await page
                      .locator(`.card[data-node="${id}"] [data-field="commit"]`)
                      .textContent(),
                  ),
                ),
              );
            const before = Math.max(...(await commits()));
            await page.fill('#key', 'from-the-browser');
            await page.fill('#value', 'hi');
            await page.click('#put');
            await page.waitForFunction(
              (before) =>
                ['a', 'b', 'c'].every(
                  (id) =>
                    Number(
                      document.querySelector(`.card[data-node="${id}"] [data-field="commit"]`)
                        ?.textContent,
                    ) > before,
                ),
              before,
              { timeout: 15_000 },
            );
            const after = await commits();
            t.ok(
              after.every((c) => c > before),
              `commit index advanced on every node (${before} → ${after.join(', ')})`,
            );
            t.match(await page.locator('#result').textContent(), /put from-the-browser committed/);
            await page.screenshot({ path: path.join(artifacts, 'dashboard.png') });
            t.ok(
              existsSync(path.join(artifacts, 'dashboard.png')),
              'screenshot kept as a test artifact',
            );
          } finally {
            await browser.close();
          }
        },
      });
    },
  );
}
