/**
 * `npm run bench -- transport`: the WebSocket transport between two processes on loopback,
 * against raw `ws` carrying the same payload bytes, measured in the same run.
 *
 * - one-way: envelopes/s from this process (node a) to an actor in a child process (node b),
 *   batched by the transport; counted by the receiving actor (`b/sink`), so decoding,
 *   validation, sender verification, routing and the mailbox are all inside the measure.
 *   Baselines, each in the same run, interleaved:
 *   - raw `ws` sending each envelope's encoded bytes as one message (what an application on
 *     bare `ws` does; the baseline), the receiver counting messages;
 *   - hand-rolled batching on raw `ws`: the same envelopes, in the same bursts, packed by
 *     msgpackr as one array per burst and unpacked by the receiver (the same batching
 *     opportunity, with encode and decode but no validation, queue bounds or actors);
 *   - raw `ws` sending the same bytes pre-batched into 256 KiB frames (the pipe's ceiling:
 *     no encode, no decode, no validation).
 * - ping-pong: sequential round trips/s (one envelope out to an echo actor, one back),
 *   against raw `ws` echoing the same bytes.
 *
 * Options: --n=<one-way envelopes per run> --rtt=<round trips per run> --runs=<k>
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Packr, Unpackr } from 'msgpackr';
import { WebSocket, WebSocketServer } from 'ws';
import { Actor } from '../lib/actor.js';
import { ActorSystem } from '../lib/actor-system.js';
import { encodeEnvelope } from '../lib/codec.js';
import { type Envelope, PROTOCOL_VERSION } from '../lib/envelope.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import { WebSocketTransport } from '../transports/websocket/transport.js';
import { type BenchMain, loadNote, type Measurement, report, summarize } from './harness.js';

const self = fileURLToPath(import.meta.url);
const silent = { log() {} };

function envelope(i: number, to = 'b/sink'): Envelope {
  return { v: PROTOCOL_VERSION, k: 'tell', to, from: 'a/src', m: { type: 'ping', n: i } };
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
    const system = new ActorSystem({
      nodeId: 'b',
      transport: t,
      random: new Random(3),
      logger: silentLogger,
    });
    let dead = 0;
    system.deadLetters$.subscribe((d) => {
      if (dead++ === 0) send({ deadLetter: true, code: d.code, reason: d.reason });
    });
    class Sink extends Actor<{ type: 'ping'; n: number }> {
      receive(): void {
        arrived(1, 0);
      }
    }
    class Echo extends Actor<{ type: 'ping'; n: number }> {
      receive(msg: { type: 'ping'; n: number }): void {
        this.ctx.send(this.ctx.sender as string, msg);
      }
    }
    system.spawn('sink', new Sink());
    system.spawn('echo', new Echo());
    send({ port: t.address()!.port });
  } else if (mode === 'raw-msgpack') {
    const unpackr = new Unpackr({ useRecords: false, moreTypes: false, int64AsType: 'number' });
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        const batch = unpackr.unpack(data) as unknown[];
        arrived(batch.length, data.length);
      });
    });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    send({ port: (wss.address() as { port: number }).port });
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

const BURST = 2000;

async function synodOneWay(t: WebSocketTransport, c: Child, n: number): Promise<number> {
  await c.command({ expect: n, echo: false });
  const done = c.next((m) => m.done !== undefined);
  const start = performance.now();
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + BURST);
    for (; i < end; i++) {
      if (!t.send(envelope(i, 'b/sink'))) throw new Error('unexpected dead letter in benchmark');
    }
    await turn();
    while ((t.queueDepth('b')?.envelopes ?? 0) > 40_000) await turn();
  }
  await done;
  return (n / (performance.now() - start)) * 1000;
}

/** Hand-rolled batching: each burst packed as one msgpack array, one ws message. */
async function rawMsgpackOneWay(ws: WebSocket, c: Child, n: number): Promise<number> {
  const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });
  await c.command({ expect: n, echo: false });
  const done = c.next((m) => m.done !== undefined);
  const start = performance.now();
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + BURST);
    const burst: Envelope[] = [];
    for (; i < end; i++) burst.push(envelope(i, 'b/sink'));
    ws.send(packr.pack(burst), { binary: true });
    await turn();
    while (ws.bufferedAmount > 4 * 1024 * 1024) await turn();
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
    const end = Math.min(n, i + BURST);
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
    t.send(envelope(i, 'b/echo'));
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
  void synodChild
    .next((m) => m.deadLetter === true)
    .then(() => {
      console.error('transport bench: the receiving actor system reported a dead letter');
      process.exit(1);
    });
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
  const dial = async (mode: string): Promise<[Child, WebSocket]> => {
    const c = new Child();
    const port = await c.start(mode);
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    await new Promise<void>((r) => ws.once('open', () => r()));
    return [c, ws];
  };
  const [rawChild, raw] = await dial('raw');
  const [packChild, rawP] = await dial('raw-msgpack');
  const [batchChild, rawB] = await dial('raw-batched');

  // warm-up
  await synodOneWay(a, synodChild, Math.min(n, 50_000));
  await rawOneWay(raw, rawChild, Math.min(n, 50_000), payload);
  await rawMsgpackOneWay(rawP, packChild, Math.min(n, 50_000));

  const s1: number[] = [];
  const r1: number[] = [];
  const p1: number[] = [];
  const b1: number[] = [];
  const s2: number[] = [];
  const r2: number[] = [];
  let oneWayFrames = 0;
  let oneWayEnvelopes = 0;
  for (let k = 0; k < runs; k++) {
    // interleaved so machine load hits all alike
    const before = a.counters();
    s1.push(await synodOneWay(a, synodChild, n));
    const after = a.counters();
    oneWayFrames += after.framesSent - before.framesSent;
    oneWayEnvelopes += after.sent - before.sent;
    r1.push(await rawOneWay(raw, rawChild, n, payload));
    p1.push(await rawMsgpackOneWay(rawP, packChild, n));
    b1.push(await rawBatchedOneWay(rawB, batchChild, n, payload));
    s2.push(await synodPingPong(a, synodChild, rtt));
    r2.push(await rawPingPong(raw, rawChild, rtt, payload));
  }
  await a.close();
  for (const ws of [raw, rawP, rawB]) ws.close();
  for (const c of [synodChild, rawChild, packChild, batchChild]) c.stop();

  const oneWay: Measurement = summarize(
    'one-way envelopes/s to an actor (batched)',
    'envelopes/s',
    'higher',
    s1,
    { name: 'raw ws, one message per envelope', runs: r1 },
    '>= 300,000/s and >= 0.6 of raw ws',
  );
  const handRolled = summarize(
    'one-way envelopes/s to an actor (same runs)',
    'envelopes/s',
    'higher',
    s1,
    { name: 'raw ws + msgpackr, hand-rolled batches of 2,000', runs: p1 },
  );
  const ceiling = summarize(
    'raw ws, same bytes pre-batched (pipe ceiling)',
    'envelopes/s',
    'higher',
    b1,
  );
  oneWay.extra = {
    ratioToHandRolledBatches: oneWay.median / handRolled.baseline!.median,
    ratioToPreBatchedRawWs: oneWay.median / ceiling.median,
    envelopeBytes: payload[0]!.length,
    envelopesPerFrame: oneWayEnvelopes / oneWayFrames,
  };
  const pingPong = summarize('ping-pong round trips/s', 'round trips/s', 'higher', s2, {
    name: 'raw ws echo, same bytes',
    runs: r2,
  });
  return report(
    'transport',
    [oneWay, handRolled, ceiling, pingPong],
    [
      `${n} one-way envelopes and ${rtt} round trips per run, ${runs} runs, sender in this process, receiver in a child process, loopback; Synod counts what the receiving actor handled`,
      `envelope ${payload[0]!.length} bytes msgpack: ${JSON.stringify(envelope(0))}`,
      `one-way vs the pre-batched pipe ceiling: ${(oneWay.median / ceiling.median).toFixed(2)}; ${(oneWayEnvelopes / oneWayFrames).toFixed(0)} envelopes per frame in the one-way runs`,
      loadNote(),
    ],
  );
};

const childAt = process.argv.indexOf('--bench-child');
if (childAt >= 0) await child(process.argv[childAt + 1] as string);
