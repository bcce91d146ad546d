/**
 * A delaying TCP relay: added latency between the chaos nodes on a kernel without `netem`
 * (this machine's kernel has only the htb, tbf, ingress and fifo qdiscs, so neither netem nor
 * fq's earliest-departure-time pacing exists). One relay runs inside each node's network
 * namespace (net.ts); while the `slow` nemesis holds that node, iptables' nat table sends the
 * node's TCP connections with its peers through the relay:
 *
 *   - OUTPUT: a connection the node opens to peer P (`-d P --dport 7001`) is DNATed to
 *     `<own ip>:<port for P>`, where the relay accepts it and opens its own connection to
 *     P:7001. The relay's sockets belong to a group of their own (`--gid`) and the DNAT rule
 *     skips that group (`-m owner ! --gid-owner`), so the relay's connection is not sent back
 *     to itself.
 *   - PREROUTING: a connection a peer opens to the node (`-s P --dport 7001`) is DNATed to
 *     `<own ip>:<inbound port>`; the relay opens its own connection to `<own ip>:7001`.
 *
 * Either way the peer sees the node's own address, so iptables partitions and loss (rules by
 * source address) still apply to relayed connections. What the node **sends** to its peers is
 * held for the delay (plus a uniform jitter, never reordering a stream): the node's egress,
 * exactly what `tc qdisc … netem delay D J` on the node's interface delays, so a round trip
 * between the node and a peer grows by D. Connections with clients are left alone (clients
 * are never cut off or slowed, as with partitions). Unlike netem, latency applies to bytes of
 * a TCP stream, not to packets: TCP's own ACKs are not delayed.
 *
 *   ip netns exec <ns> node --import tsx delay-relay.ts --listen-ip 10.231.1.11 --gid 4243
 *     --map 17001=10.231.1.12:7001:up,17999=10.231.1.11:7001:down --seed 7
 *
 * `up`: bytes from the accepted side (the node's own outgoing connection) to the target are
 * delayed; `down`: bytes from the target (the node) back to the accepted side (a peer) are.
 *
 * Control, JSON lines on stdin:
 *   {"id":1,"delay":120,"jitter":25}  set the delay (ms) and jitter (±ms)
 *   {"id":2,"reset":true}             delay 0, and close every relayed connection
 *   {"id":3,"stats":true}             report counters
 * Every control line is answered on stdout with `{"ack":<id>, …}`; `{"ready":true}` first.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Random } from '../../../lib/random.js';

interface Mapping {
  listenPort: number;
  host: string;
  port: number;
  /** Which direction is delayed: toward the target (`up`) or back from it (`down`). */
  delayed: 'up' | 'down';
}

export function parseMaps(text: string): Mapping[] {
  return text.split(',').map((m) => {
    const r = /^(\d+)=([\d.]+):(\d+):(up|down)$/.exec(m);
    if (!r) throw new Error(`delay-relay: bad --map entry "${m}" (port=host:port:up|down)`);
    return {
      listenPort: Number(r[1]),
      host: r[2] as string,
      port: Number(r[3]),
      delayed: r[4] as 'up' | 'down',
    };
  });
}

export interface DelaySettings {
  delayMs: number;
  jitterMs: number;
}

export interface RelayStats {
  connections: number;
  open: number;
  delayedChunks: number;
  delayedBytes: number;
  passedChunks: number;
  /** Smallest and largest time a delayed chunk was actually held (ms). All counters are since the last reset. */
  minHeldMs: number | null;
  maxHeldMs: number | null;
}

const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;

/**
 * One direction of a relayed connection: chunks from `src` reach `dst` no earlier than
 * `delayMs ± jitterMs` after they arrived, in order. With no delay and nothing queued they
 * pass at once. The source is paused while too much is queued (or `dst` is full).
 */
export class DelayedPipe {
  private queue: { buf: Buffer; arrived: number; due: number }[] = [];
  private head = 0;
  private queuedBytes = 0;
  private lastDue = 0;
  private timer: NodeJS.Timeout | undefined;
  private srcEnded = false;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly settings: DelaySettings | undefined,
    private readonly random: Random,
    private readonly stats: RelayStats,
  ) {
    src.on('data', (b: Buffer) => this.onData(b));
    src.on('end', () => {
      this.srcEnded = true;
      this.maybeEnd();
    });
    dst.on('drain', () => this.maybeResume());
  }

  private onData(b: Buffer): void {
    const s = this.settings;
    const pending = this.queue.length - this.head;
    if (!s || (s.delayMs <= 0 && s.jitterMs <= 0 && pending === 0)) {
      this.stats.passedChunks++;
      if (!this.dst.write(b)) this.src.pause();
      return;
    }
    const now = performance.now();
    const jitter = s.jitterMs > 0 ? (this.random.next() * 2 - 1) * s.jitterMs : 0;
    // Never earlier than a chunk before it: a TCP stream is not reordered.
    const due = Math.max(this.lastDue, now + Math.max(0, s.delayMs + jitter));
    this.lastDue = due;
    this.queue.push({ buf: b, arrived: now, due });
    this.queuedBytes += b.length;
    this.stats.delayedChunks++;
    this.stats.delayedBytes += b.length;
    if (this.queuedBytes > HIGH_WATER) this.src.pause();
    if (pending === 0) this.arm();
  }

  private arm(): void {
    if (this.timer || this.head >= this.queue.length) return;
    const next = this.queue[this.head] as { due: number };
    this.timer = setTimeout(() => this.flush(), Math.max(0, next.due - performance.now()));
  }

  private flush(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.queue.length) {
      const c = this.queue[this.head] as { buf: Buffer; arrived: number; due: number };
      // A timer may fire a fraction of a millisecond early: the chunk waits for its due time.
      if (c.due > now) break;
      this.head++;
      this.queuedBytes -= c.buf.length;
      const held = now - c.arrived;
      this.stats.minHeldMs =
        this.stats.minHeldMs === null ? held : Math.min(this.stats.minHeldMs, held);
      this.stats.maxHeldMs =
        this.stats.maxHeldMs === null ? held : Math.max(this.stats.maxHeldMs, held);
      if (!this.dst.destroyed) this.dst.write(c.buf);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.maybeResume();
    this.maybeEnd();
    this.arm();
  }

  private maybeResume(): void {
    if (this.queuedBytes < LOW_WATER && !this.dst.writableNeedDrain && this.src.isPaused())
      this.src.resume();
  }

  private maybeEnd(): void {
    if (this.srcEnded && this.head >= this.queue.length && !this.dst.destroyed) this.dst.end();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }
}

export interface Relay {
  settings: DelaySettings;
  stats: RelayStats;
  reset(): void;
  close(): Promise<void>;
}

/** Starts one listener per mapping on `listenIp`; resolves once all listen. */
export async function startRelay(
  listenIp: string,
  maps: readonly Mapping[],
  random: Random,
): Promise<Relay> {
  const settings: DelaySettings = { delayMs: 0, jitterMs: 0 };
  const stats: RelayStats = {
    connections: 0,
    open: 0,
    delayedChunks: 0,
    delayedBytes: 0,
    passedChunks: 0,
    minHeldMs: null,
    maxHeldMs: null,
  };
  const live = new Set<() => void>();
  const servers = maps.map((m) =>
    // Half-open allowed on both sides: a side that finished sending must not take down what
    // the relay still holds for it (its FIN is passed on once the held bytes went out).
    net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
      stats.connections++;
      stats.open++;
      const upstream = net.connect({
        host: m.host,
        port: m.port,
        localAddress: listenIp,
        allowHalfOpen: true,
      });
      const pipes = [
        new DelayedPipe(
          client,
          upstream,
          m.delayed === 'up' ? settings : undefined,
          random.fork(),
          stats,
        ),
        new DelayedPipe(
          upstream,
          client,
          m.delayed === 'down' ? settings : undefined,
          random.fork(),
          stats,
        ),
      ];
      let closed = false;
      const kill = () => {
        if (closed) return;
        closed = true;
        stats.open--;
        live.delete(kill);
        for (const p of pipes) p.close();
        client.destroy();
        upstream.destroy();
      };
      live.add(kill);
      upstream.once('connect', () => client.resume());
      // An error (a reset, a refused connection) aborts both sides at once; a clean close of
      // one side waits for the other (each side closes once both its directions are done).
      let cleanCloses = 0;
      for (const s of [client, upstream]) {
        s.on('error', kill);
        s.on('close', (hadError: boolean) => {
          if (hadError || ++cleanCloses === 2) kill();
        });
      }
    }),
  );
  await Promise.all(
    servers.map(
      (srv, i) =>
        new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen((maps[i] as Mapping).listenPort, listenIp, () => resolve());
        }),
    ),
  );
  return {
    settings,
    stats,
    reset() {
      settings.delayMs = 0;
      settings.jitterMs = 0;
      for (const k of [...live]) k();
      // Counters start again: each fault reports its own.
      Object.assign(stats, {
        connections: 0,
        open: 0,
        delayedChunks: 0,
        delayedBytes: 0,
        passedChunks: 0,
        minHeldMs: null,
        maxHeldMs: null,
      });
    },
    async close() {
      for (const k of [...live]) k();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`delay-relay: --${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const gid = Number(arg('gid'));
  if (!Number.isInteger(gid) || gid <= 0) throw new Error('delay-relay: --gid must be a group id');
  // Before any socket exists: the node's DNAT rules skip sockets of this group.
  if (!process.setgid) throw new Error('delay-relay: needs POSIX groups (Linux)');
  process.setgid(gid);
  const relay = await startRelay(
    arg('listen-ip'),
    parseMaps(arg('map')),
    new Random(Number(arg('seed'))),
  );
  const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ ready: true, pid: process.pid });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let c: { id?: number; delay?: number; jitter?: number; reset?: boolean; stats?: boolean };
    try {
      c = JSON.parse(line);
    } catch {
      say({ error: `not JSON: ${line.slice(0, 100)}` });
      return;
    }
    if (c.reset) relay.reset();
    if (c.delay !== undefined || c.jitter !== undefined) {
      const d = Number(c.delay ?? 0);
      const j = Number(c.jitter ?? 0);
      if (!Number.isFinite(d) || !Number.isFinite(j) || d < 0 || j < 0 || j > d) {
        say({
          ack: c.id,
          error: `delay ${c.delay} / jitter ${c.jitter}: need 0 <= jitter <= delay`,
        });
        return;
      }
      relay.settings.delayMs = d;
      relay.settings.jitterMs = j;
    }
    say({ ack: c.id, settings: relay.settings, ...(c.stats ? { stats: relay.stats } : {}) });
  });
  // The harness going away (stdin closed) ends the relay.
  rl.on('close', () => {
    void relay.close().then(() => process.exit(0));
  });
}

// Run as a program (not imported by net.ts or a test for its exports).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  main().catch((err) => {
    process.stderr.write(`delay-relay failed: ${(err as Error).stack ?? err}\n`);
    process.exit(2);
  });
