import t from 'tap';
import { encodeEnvelope } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import type { MemoryTransport } from '../../transports/memory/memory-transport.js';

function setup(nodes: string[], seed = 1) {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ clock, random: new Random(seed) });
  const received = new Map<string, Envelope[]>();
  /** Every delivery as `from>to#i@time`, in order. */
  const log: { from: string; to: string; i: number; at: number }[] = [];
  const transports = nodes.map((n) => {
    const tr = net.connect(n);
    received.set(n, []);
    tr.inbound$.subscribe((e) => {
      received.get(n)?.push(e);
      const from = (e.from ?? '?').split('/')[0] ?? '?';
      log.push({ from, to: n, i: (e.m as { i: number }).i, at: clock.now() });
    });
    return tr;
  });
  const byNode = new Map(nodes.map((n, k) => [n, transports[k] as MemoryTransport]));
  const run = () => {
    while (clock.step() !== undefined) {}
  };
  /** An envelope to `to` (sent from node `from`; the first node by default). */
  const env = (to: string, i: number, from = nodes[0] as string): Envelope => ({
    v: 1,
    k: 'tell',
    to: `${to}/x`,
    from: `${from}/x`,
    m: { type: 'm', i },
  });
  const send = (from: string, to: string, i: number) => byNode.get(from)?.send(env(to, i, from));
  return { clock, net, transports, byNode, received, log, run, env, send };
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
  const { net, send, log, run } = setup(nodes);
  /** Every node sends to every other; returns the (from>to) pairs that were delivered. */
  const sendAll = (tag: number): string[] => {
    log.length = 0;
    for (const from of nodes) for (const to of nodes) if (to !== from) send(from, to, tag);
    run();
    t.ok(
      log.every((d) => d.i === tag),
      'only this round',
    );
    return log.map((d) => `${d.from}>${d.to}`).sort();
  };
  const all = (except: (from: string, to: string) => boolean): string[] => {
    const out: string[] = [];
    for (const from of nodes)
      for (const to of nodes) if (from !== to && !except(from, to)) out.push(`${from}>${to}`);
    return out.sort();
  };
  const ab = (n: string) => n === 'a' || n === 'b';

  net.partition([
    ['a', 'b'],
    ['c', 'd', 'e'],
  ]);
  t.same(
    sendAll(1),
    all((from, to) => ab(from) !== ab(to)),
    'each node hears exactly its own group',
  );
  for (const from of nodes) {
    for (const to of nodes) t.equal(net.connected(from, to), ab(from) === ab(to), `${from}→${to}`);
  }

  net.heal();
  net.cut('a', 'b');
  t.same(
    sendAll(2),
    all((from, to) => from === 'a' && to === 'b'),
    'a one-way cut blocks only a→b (b→a still flows)',
  );
  t.equal(net.connected('b', 'a'), true);

  net.heal();
  net.isolate('c');
  t.same(
    sendAll(3),
    all((from, to) => from === 'c' || to === 'c'),
    'an isolated node neither hears nor is heard',
  );

  net.heal();
  t.same(
    sendAll(4),
    all(() => false),
    'healed: every pair',
  );
});

t.test('delay distributions: uniform and exponential', async (t) => {
  const { clock, net, send, log, run } = setup(['a', 'b'], 5);
  /** Delay of each of `n` messages, each sent after the previous one arrived (no FIFO wait). */
  const delays = (n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const at = clock.now();
      log.length = 0;
      send('a', 'b', i);
      run();
      out.push((log[0]?.at ?? Number.NaN) - at);
    }
    return out;
  };
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

  net.setFaults({ delay: { min: 10, max: 90 } });
  const uniform = delays(5_000);
  t.ok(Math.min(...uniform) >= 10 && Math.max(...uniform) <= 90, 'uniform within [10, 90]');
  t.ok(Math.abs(mean(uniform) - 50) < 1.5, `uniform mean ${mean(uniform).toFixed(2)} ≈ 50`);

  // exponential with mean (90-10)/4 = 20 above min, capped at max: E = 10 + 20(1 - e^-4)
  net.setFaults({ delay: { min: 10, max: 90, distribution: 'exponential' } });
  const expo = delays(5_000);
  const expected = 10 + 20 * (1 - Math.exp(-4));
  t.ok(Math.min(...expo) >= 10 && Math.max(...expo) <= 90, 'exponential within [10, 90]');
  t.ok(
    Math.abs(mean(expo) - expected) < 1.5,
    `exponential mean ${mean(expo).toFixed(2)} ≈ ${expected.toFixed(2)}`,
  );
  const under30 = expo.filter((d) => d < 30).length / expo.length;
  t.ok(
    Math.abs(under30 - (1 - Math.exp(-1))) < 0.03,
    `P(delay < min + mean) ${under30.toFixed(3)} ≈ 1 - 1/e (uniform would give 0.25)`,
  );
});

t.test('per-link faults override the global ones field by field', async (t) => {
  const { net, send, log, run } = setup(['a', 'b', 'c'], 7);
  net.setFaults({ delay: { min: 5, max: 5 } });
  net.setLinkFaults('a', 'b', { duplicate: 1 });
  net.setLinkFaults('a', 'c', { delay: { min: 40, max: 40 } });
  for (let i = 0; i < 3; i++) {
    send('a', 'b', i);
    send('a', 'c', i);
    send('b', 'a', i);
  }
  run();
  const seen = (from: string, to: string) =>
    log.filter((d) => d.from === from && d.to === to).map((d) => [d.i, d.at]);
  t.same(
    seen('a', 'b'),
    [
      [0, 5],
      [0, 5],
      [1, 5],
      [1, 5],
      [2, 5],
      [2, 5],
    ],
    'a→b: every message twice (its own duplicate), with the global delay',
  );
  t.same(
    seen('a', 'c'),
    [
      [0, 40],
      [1, 40],
      [2, 40],
    ],
    'a→c: its own delay, once each',
  );
  t.same(
    seen('b', 'a'),
    [
      [0, 5],
      [1, 5],
      [2, 5],
    ],
    'b→a (the reverse of a faulty link): global faults only',
  );

  // reordering on one link only
  log.length = 0;
  net.setFaults({ delay: { min: 10, max: 30 } });
  net.setLinkFaults('a', 'b', { reorder: 1, reorderWindowMs: 100 });
  net.setLinkFaults('a', 'c', undefined);
  for (let i = 0; i < 500; i++) {
    send('a', 'b', i);
    send('a', 'c', i);
  }
  run();
  const inversions = (to: string) => {
    const got = log.filter((d) => d.to === to).map((d) => d.i);
    let n = 0;
    for (let k = 1; k < got.length; k++) if ((got[k] as number) < (got[k - 1] as number)) n++;
    return { n, count: got.length };
  };
  t.ok(inversions('b').n > 100, `a→b reorders (${inversions('b').n} inversions)`);
  t.same(inversions('c'), { n: 0, count: 500 }, 'a→c stays FIFO');

  log.length = 0;
  net.clearFaults();
  send('a', 'b', 1);
  run();
  t.same(
    log.map((d) => d.at - log[0]!.at),
    [0],
    'clearFaults removes per-link faults too',
  );
});

t.test('filter hook: drop or delay chosen messages', async (t) => {
  const { clock, net, send, log, run } = setup(['a', 'b', 'c']);
  net.setFilter(({ from, to, message }) => {
    const i = (message as { i: number }).i;
    if (i === 13) return 'drop';
    if (i === 12 && to === 'b') return { delayMs: 100 };
    t.equal(from, 'a', 'the filter sees the sender');
    return 'deliver';
  });
  const start = clock.now();
  for (let i = 10; i < 16; i++) send('a', 'b', i);
  send('a', 'c', 12);
  run();
  t.same(
    log.filter((d) => d.to === 'b').map((d) => [d.i, d.at - start]),
    [
      [10, 0],
      [11, 0],
      [12, 100],
      [14, 100],
      [15, 100],
    ],
    'the filter drops 13 and delays 12 by 100 ms; the link stays FIFO, so 14 and 15 wait behind it',
  );
  t.same(
    log.filter((d) => d.to === 'c').map((d) => [d.i, d.at - start]),
    [[12, 0]],
    'the same message on another link is not delayed',
  );
  net.setFilter(undefined);
});

t.test('counters: network-wide, and per transport', async (t) => {
  const { net, byNode, send, received, run, clock } = setup(['a', 'b', 'c'], 11);
  net.setLinkFaults('a', 'b', { drop: 0.5, duplicate: 0.5 });
  for (let i = 0; i < 400; i++) send('a', 'b', i);
  for (let i = 0; i < 100; i++) send('b', 'c', i);
  net.cut('c', 'a');
  for (let i = 0; i < 10; i++) send('c', 'a', i);
  run();
  net.heal();
  // a message in flight to a node that goes down is lost
  net.setLinkFaults('a', 'c', { delay: { min: 50, max: 50 } });
  for (let i = 0; i < 5; i++) send('a', 'c', i);
  clock.advanceTo(clock.now() + 10);
  net.disconnect('c');
  run();

  const c = net.counters;
  t.equal(c.sent, 400 + 100 + 10 + 5, 'sent counts every accepted send');
  const got = (n: string) => received.get(n)?.length ?? 0;
  t.equal(c.delivered, got('a') + got('b') + got('c'), 'delivered counts every delivery');
  t.equal(got('c'), 100, 'b→c all arrived');
  t.equal(got('a'), 0, 'c→a was cut');
  t.equal(
    c.sent - c.dropped + c.duplicated,
    c.delivered,
    'sent − dropped + duplicated = delivered',
  );
  t.ok(c.dropped > 150 && c.dropped < 250, `about half of a→b dropped (${c.dropped - 15})`);
  t.ok(
    c.duplicated > 70 && c.duplicated < 130,
    `about half of the rest duplicated (${c.duplicated})`,
  );

  const per = ['a', 'b', 'c'].map((n) => byNode.get(n)?.counters());
  const sum = (k: 'sent' | 'delivered' | 'dropped' | 'duplicated') =>
    per.reduce((s, x) => s + (x?.[k] ?? 0), 0);
  t.same(per[0] && { sent: per[0].sent, duplicated: per[0].duplicated }, {
    sent: 405,
    duplicated: c.duplicated,
  });
  t.equal(per[0]?.dropped, c.dropped - 10, "a's dropped: its a→b losses and the 5 lost in flight");
  t.equal(per[2]?.dropped, 10, "c's dropped: its 10 messages into the cut");
  t.equal(per[1]?.dropped, 0);
  t.equal(per[1]?.delivered, got('b'));
  for (const k of ['sent', 'delivered', 'dropped', 'duplicated'] as const) {
    t.equal(sum(k), c[k], `per-transport ${k} add up to the network's`);
  }
});

t.test('bad input', async (t) => {
  const { net, transports, env } = setup(['a', 'b']);
  t.throws(() => net.setFaults({ drop: 1.5 }), RangeError);
  t.throws(() => net.setFaults({ delay: { min: 5, max: 1 } }), RangeError);
  t.throws(() => net.setLinkFaults('a', 'b', { reorder: -1 }), RangeError);
  t.throws(() => net.partition([['a', 'b'], ['b']]), /appears in two partition groups/);
  const dead: string[] = [];
  transports[0]?.deadLetters$.subscribe((d) => dead.push(d.code));
  t.notOk(transports[0]?.send(env('zz', 1)), 'unknown peer rejected');
  t.notOk(
    transports[0]?.send({ v: 1, k: 'tell', to: 'b/x', m: { type: 'f', fn: () => 1 } as unknown }),
    'a message that cannot be encoded is rejected',
  );
  t.same(dead, ['SYNOD_ERR_UNKNOWN_PEER', 'SYNOD_ERR_ENCODE']);
  t.equal(net.counters.sent, 0, 'rejected sends are not sent');
  t.equal(net.counters.deadLettered, 2, 'but dead-lettered');
  t.equal(transports[0]?.counters().deadLettered, 2);
  t.ok(encodeEnvelope(env('b', 1)).length > 0);
});
