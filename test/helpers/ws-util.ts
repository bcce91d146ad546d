/**
 * Helpers for WebSocket transport tests: waiting on observables with an upper bound (never
 * a bare sleep), a capturing logger, a manual clock for heartbeat/backoff timers, and
 * transport factories on loopback with port 0.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { filter, firstValueFrom, type Observable, take, timeout, toArray } from 'rxjs';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { type Envelope, PROTOCOL_VERSION } from '../../lib/envelope.js';
import { Random } from '../../lib/random.js';
import type { LinkStatus } from '../../lib/transport.js';
import type { LogLevel, TransportLogger } from '../../transports/websocket/logger.js';
import type { WebSocketTransportOptions } from '../../transports/websocket/options.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';

/** Resolves with the first value matching `pred`, or rejects after `ms` (real time). */
export function waitFor<T>(
  source: Observable<T>,
  pred: (v: T) => boolean,
  ms = 10_000,
  what = 'event',
): Promise<T> {
  return firstValueFrom(
    source.pipe(
      filter(pred),
      take(1),
      timeout({
        first: ms,
        with: () => {
          throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        },
      }),
    ),
  );
}

/** Collects the first `n` values. */
export function collect<T>(source: Observable<T>, n: number, ms = 20_000): Promise<T[]> {
  return firstValueFrom(
    source.pipe(
      take(n),
      toArray(),
      timeout({
        first: ms,
        with: () => {
          throw new Error(`timed out after ${ms} ms collecting ${n} values`);
        },
      }),
    ),
  );
}

export function linkUp(t: WebSocketTransport, peer: string, ms = 10_000): Promise<LinkStatus> {
  return waitFor(
    t.links$,
    (s) => s.peer === peer && s.state === 'up',
    ms,
    `${t.nodeId}->${peer} up`,
  );
}

/** Polls `pred` on each macrotask turn until true, with a real-time upper bound. */
export async function until(pred: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

export class CapturingLogger implements TransportLogger {
  readonly lines: { level: LogLevel; message: string; fields?: Record<string, unknown> }[] = [];
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.lines.push(fields ? { level, message, fields } : { level, message });
    if (process.env.SYNOD_TEST_LOG) process.stderr.write(`${level} ${message}\n`);
  }
  has(level: LogLevel, text: string): boolean {
    return this.lines.some((l) => l.level === level && l.message.includes(text));
  }
}

/**
 * Timers fire only when the test advances time. `schedule` runs on a real macrotask, since
 * socket I/O is real anyway.
 */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; every: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  wallNow(): number {
    return 1_700_000_000_000 + this.t;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), every: 0, fn });
    return { cancel: () => this.timers.delete(id) };
  }
  setInterval(ms: number, fn: () => void): TimerHandle {
    const id = ++this.seq;
    const every = Math.max(1, ms);
    this.timers.set(id, { at: this.t + every, every, fn });
    return { cancel: () => this.timers.delete(id) };
  }
  schedule(fn: () => void): void {
    setImmediate(fn);
  }
  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; every: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      const [id, timer] = next;
      this.t = timer.at;
      if (timer.every > 0) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
    this.t = end;
  }
}

export function env(to: string, m: unknown, from?: string): Envelope {
  const e: Envelope = { v: PROTOCOL_VERSION, k: 'tell', to, m };
  if (from !== undefined) e.from = from;
  return e;
}

let seed = 1;
/** A loopback transport on a free port; quiet unless SYNOD_TEST_LOG is set. */
export async function startNode(
  nodeId: string,
  options: Partial<WebSocketTransportOptions> = {},
): Promise<{ t: WebSocketTransport; log: CapturingLogger; url: string }> {
  const log = new CapturingLogger();
  const t = await WebSocketTransport.create({
    nodeId,
    listen: { host: '127.0.0.1', port: 0 },
    random: new Random(seed++),
    logger: log,
    ...options,
  });
  return { t, log, url: t.address()?.url ?? '' };
}

/** A self-signed certificate for 127.0.0.1/localhost made with `openssl`. */
export function selfSignedCert(): { certFile: string; keyFile: string; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, dir };
}
