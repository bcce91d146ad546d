import t from 'tap';
import { encodeEnvelope } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';

function setup(nodes: string[], seed = 1) {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock, random: new Random(seed) });
  const received = new Map<string, Envelope[]>();
  const transports = nodes.map((n) => {
    const tr = net.connect(n);
    received.set(n, []);
    tr.inbound$.subscribe((e) => received.get(n)?.push(e));
    return tr;
  });
  const run = () => {
    while (clock.step() !== undefined) {}
  };
  const env = (to: string, i: number): Envelope => ({
    v: 1,
    k: 'tell',
    to: `${to}/x`,
    m: { type: 'm', i },
  });
  return { clock, net, transports, received, run, env };
}

t.test('drop probability: measured rate within tolerance over many messages', async (t) => {
  const { net, transports, received, run, env } = setup(['a', 'b']);
  net.setFaults({ drop: 0.3 });
  const N = 20_000;
  for (let i = 0; i < N; i++) transports[0]?.send(env('b', i));
  run();
  const got = received.get('b')?.length ?? 0;
  const rate = 1 - got / N;
  t.ok(Math.abs(rate - 0.3) < 0.02, `drop rate ${rate.toFixed(4)} ≈ 0.3`);
  t.equal(net.counters.dropped + net.counters.delivered, N);
});

t.test('duplication and FIFO without reordering', async (t) => {
  const { net, transports, received, run, env } = setup(['a', 'b']);
  net.setFaults({ duplicate: 0.2, delay: { min: 1, max: 50 } });
  const N = 10_000;
  for (let i = 0; i < N; i++) transports[0]?.send(env('b', i));
  run();
  const got = (received.get('b') ?? []).map((e) => (e.m as { i: number }).i);
  const dupRate = got.length / N - 1;
  t.ok(Math.abs(dupRate - 0.2) < 0.02, `duplicate rate ${dupRate.toFixed(4)} ≈ 0.2`);
  let ordered = true;
  for (let i = 1; i < got.length; i++)
    if ((got[i] as number) < (got[i - 1] as number)) ordered = false;
  t.ok(ordered, 'a link without reorder is FIFO even with random delays');
  t.equal(net.counters.duplicated, got.length - N);
});

t.test('reordering and delay bounds', async (t) => {
  const { clock, net, transports, received, env } = setup(['a', 'b']);
  net.setFaults({ delay: { min: 10, max: 30 }, reorder: 0.5, reorderWindowMs: 40 });
  const times: number[] = [];
  transports[1]?.inbound$.subscribe(() => times.push(clock.now()));
  for (let i = 0; i < 2_000; i++) transports[0]?.send(env('b', i));
  while (clock.step() !== undefined) {}
  const got = (received.get('b') ?? []).map((e) => (e.m as { i: number }).i);
  let inversions = 0;
  for (let i = 1; i < got.length; i++)
    if ((got[i] as number) < (got[i - 1] as number)) inversions++;
  t.ok(inversions > 100, `messages were reordered (${inversions} inversions)`);
  t.ok(Math.min(...times) >= 10, 'no message faster than the minimum delay');
  t.ok(Math.max(...times) <= 30 + 40, 'none slower than max delay plus the reorder window');
});

t.test('partitions block exactly the cut links; one-way cuts; heal', async (t) => {
  const nodes = ['a', 'b', 'c', 'd', 'e'];
  const { net, transports, received, run, env } = setup(nodes);
  const sendAll = (tag: number) => {
    transports.forEach((tr, i) => {
      for (const to of nodes) if (to !== nodes[i]) tr.send(env(to, tag));
    });
    run();
  };
  const pairs = () => {
    const out = new Set<string>();
    for (const [to, envs] of received)
      for (const e of envs) out.add(`${(e.m as { from?: string }).from ?? ''}${to}`);
    return out;
  };
  void pairs;
  const delivered = () => {
    const m = new Map<string, number>();
    for (const [to, envs] of received) m.set(to, envs.length);
    for (const k of received.keys()) received.set(k, []);
    return m;
  };
  net.partition([
    ['a', 'b'],
    ['c', 'd', 'e'],
  ]);
  sendAll(1);
  const d1 = delivered();
  t.same(
    Object.fromEntries(d1),
    { a: 1, b: 1, c: 2, d: 2, e: 2 },
    'each node hears only its own group',
  );
  for (const from of nodes) {
    for (const to of nodes) {
      const same = ['a', 'b'].includes(from) === ['a', 'b'].includes(to);
      t.equal(net.connected(from, to), same, `${from}→${to}`);
    }
  }
  net.heal();
  net.cut('a', 'b');
  sendAll(2);
  const d2 = delivered();
  t.equal(d2.get('b'), 3, 'b misses only a');
  t.equal(d2.get('a'), 4, 'but a still hears b (one-way cut)');
  net.heal();
  net.isolate('c');
  sendAll(3);
  const d3 = delivered();
  t.same(Object.fromEntries(d3), { a: 3, b: 3, c: 0, d: 3, e: 3 });
  net.heal();
  sendAll(4);
  t.same(Object.fromEntries(delivered()), { a: 4, b: 4, c: 4, d: 4, e: 4 }, 'healed');
});

t.test('per-link faults, filter hook, counters and bad input', async (t) => {
  const { net, transports, received, run, env } = setup(['a', 'b', 'c']);
  net.setLinkFaults('a', 'b', { drop: 1 });
  transports[0]?.send(env('b', 1));
  transports[0]?.send(env('c', 1));
  run();
  t.equal(received.get('b')?.length, 0, 'a→b drops everything');
  t.equal(received.get('c')?.length, 1, 'a→c unaffected');
  net.setLinkFaults('a', 'b', undefined);
  net.setFilter(({ message }) => ((message as { i: number }).i === 13 ? 'drop' : 'deliver'));
  for (let i = 10; i < 16; i++) transports[0]?.send(env('b', i));
  run();
  t.same(
    received.get('b')?.map((e) => (e.m as { i: number }).i),
    [10, 11, 12, 14, 15],
    'the filter drops exactly the chosen message',
  );
  net.setFilter(undefined);
  t.throws(() => net.setFaults({ drop: 1.5 }), RangeError);
  t.throws(() => net.setFaults({ delay: { min: 5, max: 1 } }), RangeError);
  const dead: string[] = [];
  transports[0]?.deadLetters$.subscribe((d) => dead.push(d.code));
  t.notOk(transports[0]?.send(env('zz', 1)), 'unknown peer rejected');
  t.notOk(
    transports[0]?.send({ v: 1, k: 'tell', to: 'b/x', m: { type: 'f', fn: () => 1 } as unknown }),
    'a message that cannot be encoded is rejected',
  );
  t.same(dead, ['SYNOD_ERR_UNKNOWN_PEER', 'SYNOD_ERR_ENCODE']);
  t.ok(encodeEnvelope(env('b', 1)).length > 0);
});
