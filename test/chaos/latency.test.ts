/**
 * The `slow` nemesis really adds latency between two namespaced nodes (root; skips otherwise).
 * On this kernel there is no netem, so the delay relay (harness/delay-relay.ts) does it; with
 * netem the same assertions hold for `tc netem delay`.
 *
 * Two namespaces, an echo server on each node's address and port, and ping clients started
 * inside a namespace. The assertions on time are lower bounds only: a round trip through a
 * link that holds every byte for D ms cannot take less than D, however loaded the machine is
 * (load only makes it longer), so they cannot fail for the wrong reason — and they fail at once
 * on the old fallback (a tbf rate limit adds no delay to small messages).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import t from 'tap';
import { ChaosNet, NODE_PORT, netUnavailableReason } from './harness/net.js';

const unavailable = netUnavailableReason();

/** An echo server on `ip:port` that answers each line with the line and the peer's address. */
const ECHO = `
const net = require('node:net');
const [ip, port] = process.argv.slice(1);
net.createServer((s) => {
  let buf = '';
  s.on('data', (b) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      s.write(JSON.stringify({ line, from: s.remoteAddress }) + '\\n');
    }
  });
  s.on('error', () => {});
}).listen(Number(port), ip, () => console.log('listening'));
`;

/** Opens one connection to ip:port, sends \`count\` pings one after the other, prints the RTTs. */
const PING = `
const net = require('node:net');
const [ip, port, count] = process.argv.slice(1);
const s = net.connect(Number(port), ip);
const rtts = [];
let from = '';
let sent = 0;
let buf = '';
const ping = () => { sent = performance.now(); s.write('ping\\n'); };
s.on('connect', ping);
s.on('data', (b) => {
  buf += b.toString();
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    from = JSON.parse(buf.slice(0, i)).from;
    buf = buf.slice(i + 1);
    rtts.push(performance.now() - sent);
    if (rtts.length < Number(count)) ping();
    else { console.log(JSON.stringify({ rtts, from })); s.end(); }
  }
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message, rtts })); process.exit(0); });
`;

function pings(
  net: ChaosNet,
  from: string,
  toIp: string,
  count = 5,
  timeoutMs = 60_000,
): { rtts: number[]; from: string } {
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      net.node(from).ns,
      process.execPath,
      '-e',
      PING,
      toIp,
      String(NODE_PORT),
      String(count),
    ],
    { encoding: 'utf8', timeout: timeoutMs },
  );
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as {
    rtts?: number[];
    from?: string;
    error?: string;
  };
  if (out.error || !out.rtts)
    throw new Error(`ping ${from} -> ${toIp} failed: ${out.error ?? r.stderr}`);
  return { rtts: out.rtts, from: out.from ?? '' };
}

async function echoServer(net: ChaosNet, id: string): Promise<ChildProcess> {
  const n = net.node(id);
  const child = spawn(
    'ip',
    ['netns', 'exec', n.ns, process.execPath, '-e', ECHO, n.ip, String(NODE_PORT)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', () => resolve());
    child.once('exit', (c) => reject(new Error(`echo server in ${id} exited ${c}`)));
  });
  return child;
}

/** Connects, says so, and says when the connection is gone. */
const HOLD = `
const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
s.on('connect', () => console.log('connected'));
s.on('error', () => {});
s.on('close', () => { console.log('closed'); process.exit(0); });
`;

const min = (a: number[]) => Math.min(...a);
const fmt = (a: number[]) => a.map((x) => x.toFixed(1)).join(', ');

t.test('slow adds latency to what a node sends to its peers', { skip: unavailable }, async (t) => {
  const net = new ChaosNet(['n1', 'n2', 'n3']);
  const servers: ChildProcess[] = [];
  t.teardown(() => {
    for (const s of servers) s.kill('SIGKILL');
    net.teardown();
  });
  net.setup();
  t.comment(
    `latency by ${net.capabilities.latency} (netem in the kernel: ${net.capabilities.netem})`,
  );
  t.not(
    net.capabilities.latency,
    'none',
    `a way to add latency exists: ${net.capabilities.latencyProblem ?? ''}`,
  );
  await net.startRelays(1);
  for (const id of ['n1', 'n2', 'n3']) servers.push(await echoServer(net, id));
  const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => net.node(id));
  if (!n1 || !n2 || !n3) throw new Error('nodes');

  const before = pings(net, 'n1', n2.ip);
  t.comment(`n1 -> n2 before: ${fmt(before.rtts)} ms`);
  t.equal(before.from, n1.ip, 'the peer sees n1 itself');

  // A connection open before the fault: with the relay it is closed (ss -K) so that it comes
  // back through the relay; netem slows it where it is.
  const held = spawn(
    'ip',
    ['netns', 'exec', n1.ns, process.execPath, '-e', HOLD, n2.ip, String(NODE_PORT)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  servers.push(held);
  const heldLines = createInterface({ input: held.stdout as NodeJS.ReadableStream });
  const heldEvents: string[] = [];
  const closed = new Promise<void>((resolve) =>
    heldLines.on('line', (l) => {
      heldEvents.push(l);
      if (l === 'closed') resolve();
    }),
  );
  await new Promise<void>((resolve) => heldLines.once('line', () => resolve()));

  const delay = 120;
  const jitter = 20;
  const how = await net.slow('n1', delay, jitter);
  t.comment(`n1 slowed by ${how}: ${delay} ± ${jitter} ms`);
  if (how === 'relay') {
    await closed;
    t.same(
      heldEvents,
      ['connected', 'closed'],
      'an established peer connection is closed, to come back relayed',
    );
  }

  // n1 dials n2: what n1 sends is held; every round trip takes at least delay - jitter.
  const out = pings(net, 'n1', n2.ip);
  t.comment(`n1 -> n2 slowed: ${fmt(out.rtts)} ms`);
  t.ok(
    min(out.rtts) >= delay - jitter,
    `n1 -> n2 round trips >= ${delay - jitter} ms (${fmt(out.rtts)})`,
  );
  t.equal(out.from, n1.ip, 'a relayed connection still comes from n1 (partitions by source apply)');

  // n2 dials n1: n1's answers are held.
  const back = pings(net, 'n2', n1.ip);
  t.comment(`n2 -> n1 slowed: ${fmt(back.rtts)} ms`);
  t.ok(
    min(back.rtts) >= delay - jitter,
    `n2 -> n1 round trips >= ${delay - jitter} ms (${fmt(back.rtts)})`,
  );

  // Between two other nodes nothing changes: n2 -> n3 is not held (no lower bound to check,
  // but it must not go through n1's relay).
  if (how === 'relay') {
    const s = await net.relayStats('n1');
    t.equal(s.connections, 2, 'n1 relayed exactly its two connections with n2');
    t.ok(
      (s.minHeldMs ?? 0) >= delay - jitter - 1,
      `each chunk was held >= ${delay - jitter} ms (min ${s.minHeldMs})`,
    );
    pings(net, 'n2', n3.ip, 2);
    t.equal((await net.relayStats('n1')).connections, 2, 'n2 <-> n3 does not touch n1');

    // A partition still cuts a slowed node: iptables drops by source, which the relay keeps.
    net.partition([['n1'], ['n2', 'n3']]);
    t.throws(
      () => pings(net, 'n2', n1.ip, 1, 3000),
      'n2 cannot reach a slowed n1 across a partition',
    );
  }

  net.heal();
  const after = pings(net, 'n1', n2.ip);
  t.comment(`n1 -> n2 after heal: ${fmt(after.rtts)} ms`);
  t.equal(after.from, n1.ip, 'direct again');
  if (how === 'relay') {
    const s = await net.relayStats('n1');
    t.equal(s.open, 0, 'the relay holds no connection after heal');
    t.equal(s.connections, 0, 'new connections after heal bypass the relay');
  }
});
