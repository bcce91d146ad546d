/**
 * Serves the dashboard page and a WebSocket feed (`/feed`) of a `DashboardSource`.
 *
 * - The view is pushed at most every `intervalMs` (changes are coalesced), so a busy
 *   cluster costs the page a bounded rate of updates.
 * - Messages between nodes are sampled: at most `maxMessagesPerSecond` reach each page.
 * - A page whose socket is backed up (bufferedAmount over `maxBufferedBytes`) skips updates
 *   until it drains: the server never queues without bound.
 * - Every control carries a token: the admin secret when one is configured (a real cluster;
 *   the page takes it from `?token=…`), otherwise a random token made for this server run
 *   and embedded in the page it serves (the in-process demo). A page on another origin can
 *   neither read that token (the same-origin policy) nor open the feed: a WebSocket or HTTP
 *   request whose `Origin` is not the dashboard's own is refused with 403, and while the
 *   token is embedded, a `Host` that is not an IP address, `localhost` or an allowed name is
 *   refused too (DNS rebinding). The page may not be framed (clickjacking).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Subscription } from 'rxjs';
import { WebSocket, WebSocketServer } from 'ws';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { dashboardPage } from './page.js';
import { type Control, controlProblem, type DashboardSource, type MessageSample } from './view.js';

export interface DashboardServerOptions {
  source: DashboardSource;
  port: number;
  host?: string;
  /** Required for controls when set; pages pass it as `?token=…`. */
  adminSecret?: string;
  /**
   * Without `adminSecret`: the token every control must carry, embedded in the page served
   * (default: 24 random bytes, new for every server).
   */
  controlToken?: string;
  /** Host names (besides IP addresses and `localhost`) the page may be served under. */
  allowedHosts?: string[];
  /** Controls one page may have in flight at once; more are refused (default 4). */
  maxControlsInFlight?: number;
  /** A page whose socket stays backed up this long is disconnected (default 30,000 ms). */
  maxBackedUpMs?: number;
  /**
   * Serve https and wss with this certificate and key (PEM): a real cluster's page carries
   * the admin secret, which must not cross a network in the clear.
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Refuse every control (a read-only dashboard). */
  readOnly?: boolean;
  intervalMs?: number;
  maxMessagesPerSecond?: number;
  maxBufferedBytes?: number;
  clock?: Clock;
}

interface Client {
  socket: WebSocket;
  /** The page opened the feed with the right token (it shows the controls as usable). */
  authorized: boolean;
  messageBudget: number;
  controlsInFlight: number;
  /** Since when (clock ms) its socket has been over `maxBufferedBytes`, if it is. */
  backedUpSince: number | undefined;
}

/** Why a request or WebSocket upgrade is refused (403), or undefined. */
export function requestProblem(
  headers: { host?: string | undefined; origin?: string | undefined },
  checkHost: boolean,
  allowedHosts: readonly string[] = [],
): string | undefined {
  const host = headers.host;
  if (host === undefined || host === '') return 'no Host header';
  if (checkHost) {
    let name: string;
    try {
      name = new URL(`http://${host}`).hostname;
    } catch {
      return `bad Host header ${JSON.stringify(host)}`;
    }
    const ip = /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.startsWith('[');
    const local = name === 'localhost' || name.endsWith('.localhost');
    if (!ip && !local && !allowedHosts.includes(name))
      return `Host ${JSON.stringify(host)} is not this dashboard's (open it by IP address or localhost)`;
  }
  const origin = headers.origin;
  // Browsers always send Origin on WebSocket upgrades and cross-origin requests; a client
  // without one is not a web page (curl, a test, the CLI), which could read the page anyway.
  if (origin === undefined) return undefined;
  if (origin !== `http://${host}` && origin !== `https://${host}`)
    return `cross-origin request from ${JSON.stringify(origin)} refused`;
  return undefined;
}

export class DashboardServer {
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly clients = new Set<Client>();
  private readonly subs: Subscription[] = [];
  private timer: TimerHandle | undefined;
  private dirty = true;
  private readonly clock: Clock;
  readonly stats = {
    viewsSent: 0,
    viewsSkipped: 0,
    messagesSent: 0,
    messagesDropped: 0,
    controlsRefused: 0,
    requestsRefused: 0,
    slowClientsDropped: 0,
  };
  /** The token controls must carry: the admin secret, or this run's random token. */
  private readonly token: string;
  /** True when the token is embedded in the page (no admin secret). */
  private readonly embedded: boolean;

  constructor(private readonly options: DashboardServerOptions) {
    this.clock = options.clock ?? systemClock;
    this.embedded = options.adminSecret === undefined && options.readOnly !== true;
    this.token =
      options.adminSecret ?? options.controlToken ?? randomBytes(24).toString('base64url');
  }

  async start(): Promise<{ port: number; url: string }> {
    const host = this.options.host ?? '127.0.0.1';
    const handler = (req: IncomingMessage, res: ServerResponse) => this.serve(req, res);
    const tls = this.options.tls;
    const http: Server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key }, handler)
      : createServer(handler);
    // Bind first: a port in use must be a plain EADDRINUSE rejection (which callers turn into
    // one line, or a fallback port), not an 'error' event re-emitted by the WebSocket server
    // with nobody listening, which crashed the process.
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => reject(Object.assign(err, { purpose: 'dashboard' }));
      http.once('error', failed);
      http.listen(this.options.port, host, () => {
        http.off('error', failed);
        resolve();
      });
    });
    const wss = new WebSocketServer({
      server: http,
      path: '/feed',
      maxPayload: 128 * 1024,
      verifyClient: (info, done) => {
        const problem = this.problem(info.req);
        if (problem === undefined) done(true);
        else {
          this.stats.requestsRefused++;
          done(false, 403, problem);
        }
      },
    });
    wss.on('connection', (socket, req) => this.connect(socket, req));
    wss.on('error', () => {}); // the http server's own errors surface above, not here
    this.http = http;
    this.wss = wss;
    const port = (http.address() as AddressInfo).port;
    this.subs.push(this.options.source.changes$.subscribe(() => (this.dirty = true)));
    if (this.options.source.messages$) {
      this.subs.push(this.options.source.messages$.subscribe((m) => this.sample(m)));
    }
    const interval = this.options.intervalMs ?? 100;
    this.timer = this.clock.setInterval(interval, () => this.tick(interval));
    const scheme = tls ? 'https' : 'http';
    const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
    return {
      port,
      url: `${scheme}://${shown.includes(':') && !shown.startsWith('[') ? `[${shown}]` : shown}:${port}/`,
    };
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.options.source.close?.();
    for (const s of this.subs.splice(0)) s.unsubscribe();
    for (const c of this.clients) c.socket.terminate();
    this.clients.clear();
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) =>
      this.http ? this.http.close(() => resolve()) : resolve(),
    );
  }

  clientCount(): number {
    return this.clients.size;
  }

  /** Sizes of what the server holds per page, for tests and monitoring. */
  clientBuffers(): { bufferedBytes: number; controlsInFlight: number }[] {
    return [...this.clients].map((c) => ({
      bufferedBytes: c.socket.bufferedAmount,
      controlsInFlight: c.controlsInFlight,
    }));
  }

  private problem(req: IncomingMessage): string | undefined {
    return requestProblem(
      { host: req.headers.host, origin: req.headers.origin },
      this.embedded,
      this.options.allowedHosts,
    );
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const problem = this.problem(req);
    if (problem !== undefined) {
      this.stats.requestsRefused++;
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(`SYNOD_ERR_DASHBOARD_FORBIDDEN: ${problem}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' });
      res.end('the dashboard takes controls over its WebSocket feed only\n');
      return;
    }
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'x-frame-options': 'DENY',
        'referrer-policy': 'no-referrer',
        'content-security-policy':
          "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self' ws: wss:; frame-ancestors 'none'",
      });
      res.end(dashboardPage(this.embedded ? this.token : undefined));
      return;
    }
    if (url.pathname === '/view.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(this.options.source.view()));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  private authorized(token: unknown): boolean {
    if (this.options.readOnly) return false;
    if (typeof token !== 'string') return false;
    const a = Buffer.from(token);
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private connect(socket: WebSocket, req: IncomingMessage): void {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
    const client: Client = {
      socket,
      authorized: this.authorized(token),
      messageBudget: 0,
      controlsInFlight: 0,
      backedUpSince: undefined,
    };
    this.clients.add(client);
    socket.on('close', () => this.clients.delete(client));
    socket.on('error', () => this.clients.delete(client));
    socket.on('message', (data) => void this.onControl(client, data.toString()));
    this.send(client, {
      kind: 'hello',
      controls: client.authorized,
      readOnly: this.options.readOnly ?? false,
    });
    this.send(client, { kind: 'view', view: this.options.source.view() });
  }

  private async onControl(client: Client, text: string): Promise<void> {
    let msg: { id?: unknown; token?: unknown; control?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      this.send(client, { kind: 'result', id: null, ok: false, message: 'malformed JSON' });
      return;
    }
    const id = typeof msg.id === 'number' ? msg.id : null;
    // Every control carries the token itself (not only the connection that sent it).
    if (!this.authorized(msg.token)) {
      this.stats.controlsRefused++;
      this.send(client, {
        kind: 'result',
        id,
        ok: false,
        message: this.options.readOnly
          ? 'SYNOD_ERR_DASHBOARD_REFUSED: refused: this dashboard is read-only (start the node with --admin-secret-file to allow controls)'
          : this.embedded
            ? 'SYNOD_ERR_DASHBOARD_REFUSED: refused: the control carries no valid token (reload the page)'
            : 'SYNOD_ERR_DASHBOARD_REFUSED: refused: controls need the admin secret (open the page with ?token=SECRET)',
      });
      return;
    }
    const problem = controlProblem(msg.control);
    if (problem) {
      this.send(client, { kind: 'result', id, ok: false, message: problem });
      return;
    }
    if (client.controlsInFlight >= (this.options.maxControlsInFlight ?? 4)) {
      this.stats.controlsRefused++;
      this.send(client, {
        kind: 'result',
        id,
        ok: false,
        message: 'SYNOD_ERR_DASHBOARD_BUSY: too many controls in flight; wait for their results',
      });
      return;
    }
    client.controlsInFlight++;
    try {
      const r = await this.options.source.control(msg.control as Control);
      this.send(client, { kind: 'result', id, ok: r.ok, message: r.message });
    } catch (err) {
      this.send(client, { kind: 'result', id, ok: false, message: (err as Error).message });
    } finally {
      client.controlsInFlight--;
    }
    this.dirty = true;
  }

  private tick(interval: number): void {
    const budget = Math.max(
      1,
      Math.round(((this.options.maxMessagesPerSecond ?? 40) * interval) / 1000),
    );
    const now = this.clock.now();
    const maxBuffered = this.options.maxBufferedBytes ?? 1 << 20;
    for (const c of [...this.clients]) {
      c.messageBudget = budget;
      // A page that cannot keep up is sampled (views and messages skipped while it is backed
      // up); one that stays backed up is dropped, so no socket holds memory forever.
      if (c.socket.bufferedAmount <= maxBuffered) c.backedUpSince = undefined;
      else if (c.backedUpSince === undefined) c.backedUpSince = now;
      else if (now - c.backedUpSince >= (this.options.maxBackedUpMs ?? 30_000)) {
        this.stats.slowClientsDropped++;
        this.clients.delete(c);
        c.socket.terminate();
      }
    }
    if (!this.dirty || this.clients.size === 0) return;
    this.dirty = false;
    const payload = JSON.stringify({ kind: 'view', view: this.options.source.view() });
    for (const c of this.clients) {
      if (c.socket.bufferedAmount > maxBuffered) {
        this.stats.viewsSkipped++;
        this.dirty = true;
        continue;
      }
      this.stats.viewsSent++;
      c.socket.send(payload);
    }
  }

  private sample(m: MessageSample): void {
    for (const c of this.clients) {
      if (
        c.messageBudget <= 0 ||
        c.socket.bufferedAmount > (this.options.maxBufferedBytes ?? 1 << 20)
      ) {
        this.stats.messagesDropped++;
        continue;
      }
      c.messageBudget--;
      this.stats.messagesSent++;
      this.send(c, { kind: 'msg', from: m.from, to: m.to, type: m.type });
    }
  }

  private send(client: Client, value: unknown): void {
    if (client.socket.readyState === WebSocket.OPEN) client.socket.send(JSON.stringify(value));
  }
}
