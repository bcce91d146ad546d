/// <reference lib="dom" />
/**
 * A real cluster's dashboard across laptops carries the admin secret (in the page's address
 * and in every control): over plain HTTP anyone on the network reads it. With a certificate
 * the dashboard serves HTTPS and its feed WSS, so the secret travels encrypted:
 * - DashboardServer with `tls`: the page over https (checked against the certificate), the
 *   feed over wss with the admin secret (controls on), plain HTTP on that port refused;
 * - the page in Chromium over https connects its feed over wss and shows the cluster;
 * - `synod node --tls-cert … --tls-key … --dashboard PORT` serves the dashboard over https.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Subject } from 'rxjs';
import t from 'tap';
import { WebSocket } from 'ws';
import { DashboardServer } from '../../lib/dashboard/server.js';
import type { DashboardSource } from '../../lib/dashboard/view.js';
import { freePort, NodeProcesses, SYNOD_CLI, until } from '../helpers/node-processes.js';
import { selfSignedCert } from '../helpers/ws-util.js';

const ADMIN = 'admin-secret-of-the-tls-test-0123';
const CHROMIUM = process.env.SYNOD_CHROMIUM ?? '/usr/bin/chromium';
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

const source: DashboardSource = {
  view: () => ({
    cluster: 'over-tls',
    time: 0,
    nodes: [{ id: 'a', up: true, protocol: 'raft', role: 'leader', term: 1 }],
  }),
  changes$: new Subject<void>(),
  control: async (c) => ({ ok: true, message: `${c.op} done` }),
};

t.test('the dashboard over https and wss', { skip: !hasOpenssl && 'no openssl' }, async (t) => {
  const { certFile, keyFile } = selfSignedCert();
  const cert = readFileSync(certFile);
  const server = new DashboardServer({
    source,
    port: 0,
    adminSecret: ADMIN,
    tls: { cert, key: readFileSync(keyFile) },
  });
  const { port, url } = await server.start();
  t.teardown(() => server.stop());
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+\/$/, `served at ${url}`);

  const page = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    httpsGet(url, { ca: cert }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
  t.equal(page.status, 200, 'the page over https, checked against the certificate');
  t.notMatch(page.body, new RegExp(ADMIN), 'the secret is not in the page');

  const ws = new WebSocket(`wss://127.0.0.1:${port}/feed?token=${ADMIN}`, { ca: cert });
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ id: 1, token: ADMIN, control: { op: 'heal' } }));
  await until('the hello and the result', () =>
    frames.some((f) => f.kind === 'result') ? true : undefined,
  );
  t.equal(frames.find((f) => f.kind === 'hello')?.controls, true, 'wss feed, controls on');
  t.equal(frames.find((f) => f.kind === 'result')?.ok, true, 'a control over wss');

  const plain = await new Promise<string>((resolve) => {
    httpGet(`http://127.0.0.1:${port}/`, (res) => resolve(`status ${res.statusCode}`)).on(
      'error',
      (err) => resolve(`error ${err.message}`),
    );
  });
  t.notMatch(plain, /status 200/, `plain HTTP does not get the page (${plain})`);

  await t.test(
    'in Chromium',
    { skip: existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}` },
    async (t) => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
      });
      t.teardown(() => browser.close());
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const p = await context.newPage();
      await p.goto(`${url}?token=${ADMIN}`);
      await p.waitForFunction(
        () =>
          document.querySelector('#cluster')?.textContent === 'over-tls' &&
          document.querySelector('#status')?.textContent === 'live' &&
          !(document.querySelector('#heal') as HTMLButtonElement).disabled,
        null,
        { timeout: 15_000 },
      );
      t.pass('the page over https shows the cluster over its wss feed, controls on');
    },
  );
});

t.test(
  'synod node with a certificate serves its dashboard over https',
  { skip: !hasOpenssl && 'no openssl' },
  async (t) => {
    const nodes = await NodeProcesses.create(['n1']);
    t.teardown(() => nodes.close());
    const { certFile, keyFile } = selfSignedCert();
    const adminFile = path.join(nodes.dir, 'admin.key');
    writeFileSync(adminFile, `${ADMIN}\n`);
    const port = await freePort();
    for (const n of nodes.nodes.values()) n.url = n.url.replace('ws://', 'wss://');
    nodes.startAll(() => [
      '--tls-cert',
      certFile,
      '--tls-key',
      keyFile,
      '--tls-ca',
      certFile,
      '--admin-secret-file',
      adminFile,
      '--dashboard',
      String(port),
    ]);
    const line = await until(
      'the dashboard line',
      () => /dashboard at \S+/.exec(nodes.node('n1').output)?.[0],
      60_000,
    ).catch((err: Error) => {
      t.comment(nodes.node('n1').output.slice(-2000));
      throw err;
    });
    t.equal(line, `dashboard at https://127.0.0.1:${port}/`, line);
  },
);

t.test(
  'a node with an admin secret and a plain-HTTP dashboard beyond loopback warns at start',
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'synod-dash-warn-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const adminFile = path.join(dir, 'admin.key');
    writeFileSync(adminFile, `${ADMIN}\n`);
    const [port, dashPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        ...SYNOD_CLI,
        'node',
        '--id',
        'n1',
        '--listen',
        `0.0.0.0:${port}`,
        '--data',
        path.join(dir, 'n1'),
        '--admin-secret-file',
        adminFile,
        '--dashboard',
        String(dashPort),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    t.teardown(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    const warning = await until(
      'the warning',
      () => /the dashboard serves plain HTTP on 0\.0\.0\.0[^\n]*/.exec(output)?.[0],
      60_000,
    ).catch(() => undefined);
    t.ok(warning, `warned: ${warning ?? output.slice(-1500)}`);
    t.match(String(warning), /--tls-cert and --tls-key/, 'saying what to do');
  },
);
