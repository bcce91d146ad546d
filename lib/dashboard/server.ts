/**
 * Serves the dashboard page and a WebSocket feed (`/feed`) of a `DashboardSource`.
 *
 * - The view is pushed at most every `intervalMs` (changes are coalesced), so a busy
 *   cluster costs the page a bounded rate of updates.
 * - Messages between nodes are sampled: at most `maxMessagesPerSecond` reach each page.
 * - A page whose socket is backed up (bufferedAmount over `maxBufferedBytes`) skips updates
 *   until it drains: the server never queues without bound.
 * - Controls need `adminSecret` when one is configured (a real cluster); without one (the
 *   in-process demo) the server only listens on loopback unless told otherwise.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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
  /** Refuse every control (a read-only dashboard). */
  readOnly?: boolean;
  intervalMs?: number;
  maxMessagesPerSecond?: number;
  maxBufferedBytes?: number;
  clock?: Clock;
}

interface Client {
  socket: WebSocket;
  authorized: boolean;
  messageBudget: number;
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
  };

  constructor(private readonly options: DashboardServerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  async start(): Promise<{ port: number; url: string }> {
    const host = this.options.host ?? '127.0.0.1';
    const http = createServer((req, res) => this.serve(req, res));
    const wss = new WebSocketServer({ server: http, path: '/feed', maxPayload: 128 * 1024 });
    wss.on('connection', (socket, req) => this.connect(socket, req));
    this.http = http;
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(this.options.port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    const port = (http.address() as AddressInfo).port;
    this.subs.push(this.options.source.changes$.subscribe(() => (this.dirty = true)));
    if (this.options.source.messages$) {
      this.subs.push(this.options.source.messages$.subscribe((m) => this.sample(m)));
    }
    const interval = this.options.intervalMs ?? 100;
    this.timer = this.clock.setInterval(interval, () => this.tick(interval));
    return { port, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/` };
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
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

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy':
          "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self' ws: wss:",
      });
      res.end(dashboardPage());
      return;
    }
    if (req.method === 'GET' && url.pathname === '/view.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.options.source.view()));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  private authorized(token: string | null): boolean {
    if (this.options.readOnly) return false;
    const secret = this.options.adminSecret;
    if (secret === undefined) return true;
    if (token === null) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(secret);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private connect(socket: WebSocket, req: IncomingMessage): void {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
    const client: Client = { socket, authorized: this.authorized(token), messageBudget: 0 };
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
    let msg: { id?: unknown; control?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      this.send(client, { kind: 'result', id: null, ok: false, message: 'malformed JSON' });
      return;
    }
    const id = typeof msg.id === 'number' ? msg.id : null;
    if (!client.authorized) {
      this.stats.controlsRefused++;
      this.send(client, {
        kind: 'result',
        id,
        ok: false,
        message: 'refused: controls need the admin secret (open the page with ?token=SECRET)',
      });
      return;
    }
    const problem = controlProblem(msg.control);
    if (problem) {
      this.send(client, { kind: 'result', id, ok: false, message: problem });
      return;
    }
    try {
      const r = await this.options.source.control(msg.control as Control);
      this.send(client, { kind: 'result', id, ...r });
    } catch (err) {
      this.send(client, { kind: 'result', id, ok: false, message: (err as Error).message });
    }
    this.dirty = true;
  }

  private tick(interval: number): void {
    const budget = Math.max(
      1,
      Math.round(((this.options.maxMessagesPerSecond ?? 40) * interval) / 1000),
    );
    for (const c of this.clients) c.messageBudget = budget;
    if (!this.dirty || this.clients.size === 0) return;
    this.dirty = false;
    const payload = JSON.stringify({ kind: 'view', view: this.options.source.view() });
    for (const c of this.clients) {
      if (c.socket.bufferedAmount > (this.options.maxBufferedBytes ?? 1 << 20)) {
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
