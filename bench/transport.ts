/**
 * `npm run bench -- transport`: the WebSocket transport between two processes on loopback,
 * against raw `ws` carrying the same payload bytes, measured in the same run.
 *
 * - one-way: envelopes/s from this process (node a) to a child process (node b), batched by
 *   the transport. Baselines: raw `ws` sending each envelope's encoded bytes as one message
 *   (what an application on bare `ws` does), and raw `ws` sending the same bytes pre-batched
 *   into 256 KiB frames (the pipe's ceiling: no encode, no decode, no validation).
 * - ping-pong: sequential round trips/s (one envelope out, one back), against raw `ws`
 *   echoing the same bytes.
 *
 * Options: --n=<one-way envelopes per run> --rtt=<round trips per run> --runs=<k>
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { encodeEnvelope } from '../lib/codec.js';
import { type Envelope, PROTOCOL_VERSION } from '../lib/envelope.js';
import { Random } from '../lib/random.js';
import { WebSocketTransport } from '../transports/websocket/transport.js';
import { type BenchMain, type Measurement, report, summarize } from './harness.js';

const self = fileURLToPath(import.meta.url);
const silent = { log() {} };

function envelope(i: number): Envelope {
  return { v: PROTOCOL_VERSION, k: 'tell', to: 'b/sink', from: 'a/src', m: { type: 'ping', n: i } };
}

// ---- child process ----------------------------------------------------------------------

async function child(mode: string): Promise<void> {
  const send = (m: unknown) => process.send?.(m);
  let expect = Number.POSITIVE_INFINITY;
  let count = 0;
  let bytes = 0;
  let echo = false;
  const arrived = (n: number, b: number) => {
    count += n;
    bytes += b;
    if (count >= expect) {
      expect = Number.POSITIVE_INFINITY;
      send({ done: count, bytes });
    }
  };
  process.on('message', (m: { expect?: number; echo?: boolean; exit?: boolean }) => {
    if (m.exit) process.exit(0);
    if (m.echo !== undefined) echo = m.echo;
    if (m.expect !== undefined) {
      count = 0;
      bytes = 0;
      expect = m.expect;
    }
    send({ ack: true });
  });
  if (mode === 'synod') {
    const t = await WebSocketTransport.create({
      nodeId: 'b',
      listen: { host: '127.0.0.1', port: 0 },
      logger: silent,
      random: new Random(2),
    });
    t.inbound$.subscribe((e) => {
      if (echo) t.send({ v: PROTOCOL_VERSION, k: 'tell', to: e.from as string, m: e.m });
      else arrived(1, 0);
    });
    send({ port: t.address()!.port });
  } else {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        if (echo) ws.send(data);
        else arrived(1, data.length);
      });
    });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    send({ port: (wss.address() as { port: number }).port });
  }
}

// ---- parent -----------------------------------------------------------------------------

class Child {
  proc!: ChildProcess;
  private listeners: ((m: Record<string, unknown>) => void)[] = [];
  async start(mode: string): Promise<number> {
    this.proc = fork(self, ['--bench-child', mode], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: Record<string, unknown>) => {
      for (const l of [...this.listeners]) l(m);
    });
    const m = await this.next((m) => m.port !== undefined);
    return m.port as number;
  }
  next(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      const l = (m: Record<string, unknown>) => {
        if (!pred(m)) return;
        this.listeners.splice(this.listeners.indexOf(l), 1);
        resolve(m);
      };
      this.listeners.push(l);
    });
  }
  async command(m: object): Promise<void> {
    const ack = this.next((x) => x.ack === true);
    this.proc.send(m);
    await ack;
  }
  stop(): void {
    this.proc.send({ exit: true });
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));

async function synodOneWay(t: WebSocketTransport, c: Child, n: number): Promise<number> {
  await c.command({ expect: n, echo: false });
  const done = c.next((m) => m.done !== undefined);
  const start = performance.now();
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + 2000);
    for (; i < end; i++) {
      if (!t.send(envelope(i))) throw new Error('unexpected dead letter in benchmark');
    }
    await turn();
    while ((t.queueDepth('b')?.envelopes ?? 0) > 40_000) await turn();
  }
  await done;
  return (n / (performance.now() - start)) * 1000;
}

async function rawOneWay(
  ws: WebSocket,
  c: Child,
  n: number,
  payload: Uint8Array[],
): Promise<number> {
  await c.command({ expect: n, echo: false });
  const done = c.next((m) => m.done !== undefined);
  const start = performance.now();
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + 2000);
    for (; i < end; i++) ws.send(payload[i % payload.length] as Uint8Array, { binary: true });
    await turn();
    while (ws.bufferedAmount > 4 * 1024 * 1024) await turn();
  }
  await done;
  return (n / (performance.now() - start)) * 1000;
}

async function rawBatchedOneWay(ws: WebSocket, c: Child, n: number, payload: Uint8Array[]) {
  const perEnv = payload[0]!.length;
  const perFrame = Math.floor((256 * 1024) / perEnv);
  const frame = Buffer.concat(
    Array.from({ length: perFrame }, (_, i) => payload[i % payload.length]!),
  );
  const frames = Math.ceil(n / perFrame);
  const total = frames * frame.length;
  await c.command({ expect: frames, echo: false });
  const finished = c.next((m) => m.done !== undefined);
  const start = performance.now();
  for (let f = 0; f < frames; f++) {
    ws.send(frame, { binary: true });
    while (ws.bufferedAmount > 4 * 1024 * 1024) await turn();
  }
  const m = await finished;
  if ((m.bytes as number) < total) throw new Error('raw batched: bytes missing');
  return ((frames * perFrame) / (performance.now() - start)) * 1000;
}

async function synodPingPong(t: WebSocketTransport, c: Child, rtt: number): Promise<number> {
  await c.command({ echo: true });
  const start = performance.now();
  for (let i = 0; i < rtt; i++) {
    const back = new Promise<void>((resolve) => {
      const sub = t.inbound$.subscribe(() => {
        sub.unsubscribe();
        resolve();
      });
    });
    t.send(envelope(i));
    await back;
  }
  return (rtt / (performance.now() - start)) * 1000;
}

async function rawPingPong(ws: WebSocket, c: Child, rtt: number, payload: Uint8Array[]) {
  await c.command({ echo: true });
  const start = performance.now();
  for (let i = 0; i < rtt; i++) {
    const back = new Promise<void>((resolve) => ws.once('message', () => resolve()));
    ws.send(payload[i % payload.length] as Uint8Array, { binary: true });
    await back;
  }
  return (rtt / (performance.now() - start)) * 1000;
}

function arg(argv: string[], name: string, fallback: number): number {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq === undefined ? fallback : Number(eq.slice(name.length + 3));
}

export const main: BenchMain = async (argv) => {
  const n = arg(argv, 'n', 300_000);
  const rtt = arg(argv, 'rtt', 5_000);
  const runs = arg(argv, 'runs', 5);
  const payload = Array.from({ length: 1024 }, (_, i) => encodeEnvelope(envelope(i)));

  const synodChild = new Child();
  const synodPort = await synodChild.start('synod');
  const a = await WebSocketTransport.create({
    nodeId: 'a',
    peers: [`b=ws://127.0.0.1:${synodPort}`],
    logger: silent,
    random: new Random(1),
  });
  await new Promise<void>((resolve) => {
    const sub = a.links$.subscribe((s) => {
      if (s.state === 'up') {
        queueMicrotask(() => sub.unsubscribe());
        resolve();
      }
    });
  });
  const rawChild = new Child();
  const rawPort = await rawChild.start('raw');
  const raw = new WebSocket(`ws://127.0.0.1:${rawPort}`, { perMessageDeflate: false });
  await new Promise<void>((r) => raw.once('open', () => r()));
  const batchChild = new Child();
  const batchPort = await batchChild.start('raw-batched');
  const rawB = new WebSocket(`ws://127.0.0.1:${batchPort}`, { perMessageDeflate: false });
  await new Promise<void>((r) => rawB.once('open', () => r()));

  // warm-up
  await synodOneWay(a, synodChild, Math.min(n, 50_000));
  await rawOneWay(raw, rawChild, Math.min(n, 50_000), payload);

  const s1: number[] = [];
  const r1: number[] = [];
  const b1: number[] = [];
  const s2: number[] = [];
  const r2: number[] = [];
  for (let k = 0; k < runs; k++) {
    // interleaved so machine load hits both alike
    s1.push(await synodOneWay(a, synodChild, n));
    r1.push(await rawOneWay(raw, rawChild, n, payload));
    b1.push(await rawBatchedOneWay(rawB, batchChild, n, payload));
    s2.push(await synodPingPong(a, synodChild, rtt));
    r2.push(await rawPingPong(raw, rawChild, rtt, payload));
  }
  const framesSent = a.counters().framesSent;
  const envSent = a.counters().sent;
  await a.close();
  raw.close();
  rawB.close();
  synodChild.stop();
  rawChild.stop();
  batchChild.stop();

  const oneWay: Measurement = summarize(
    'one-way envelopes/s (batched)',
    'envelopes/s',
    'higher',
    s1,
    { name: 'raw ws, one message per envelope', runs: r1 },
    '>= 300,000/s and >= 0.6 of raw ws',
  );
  const ceiling = summarize(
    'raw ws, same bytes pre-batched (pipe ceiling)',
    'envelopes/s',
    'higher',
    b1,
  );
  oneWay.extra = {
    ratioToPreBatchedRawWs: oneWay.median / ceiling.median,
    envelopeBytes: payload[0]!.length,
    envelopesPerFrame: envSent / framesSent,
  };
  const pingPong = summarize('ping-pong round trips/s', 'round trips/s', 'higher', s2, {
    name: 'raw ws echo, same bytes',
    runs: r2,
  });
  return report(
    'transport',
    [oneWay, ceiling, pingPong],
    [
      `${n} one-way envelopes and ${rtt} round trips per run, ${runs} runs, sender in this process, receiver in a child process, loopback`,
      `envelope ${payload[0]!.length} bytes msgpack: ${JSON.stringify(envelope(0))}`,
      'taken on a shared 2-core machine loaded by other sessions: absolute numbers are noisy; ratios are measured in the same run, interleaved',
    ],
  );
};

const childAt = process.argv.indexOf('--bench-child');
if (childAt >= 0) await child(process.argv[childAt + 1] as string);
