import t from 'tap';
import type { Envelope } from '../../lib/envelope.js';
import { LinkGate } from '../../lib/node/link-gate.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';

t.test(
  'a gate cuts protocol traffic to and from blocked peers but lets admin through',
  async (t) => {
    const clock = new VirtualClock();
    const net = new MemoryNetwork({ clock, random: new Random(7) });
    const a = new LinkGate(net.connect('a'));
    const b = net.connect('b');
    const c = net.connect('c');
    const at = { a: [] as Envelope[], b: [] as Envelope[], c: [] as Envelope[] };
    a.inbound$.subscribe((e) => at.a.push(e));
    b.inbound$.subscribe((e) => at.b.push(e));
    c.inbound$.subscribe((e) => at.c.push(e));
    const run = () => {
      while (clock.step() !== undefined) {}
    };
    const tell = (from: string, to: string, i: number): Envelope => ({
      v: 1,
      k: 'tell',
      from: `${from}/raft`,
      to: `${to}/raft`,
      m: { i },
    });

    a.block(['b']);
    t.same(a.cut(), ['b']);
    t.equal(a.send(tell('a', 'b', 1)), true, 'a cut send looks accepted, as a lossy network');
    a.send(tell('a', 'c', 2));
    b.send(tell('b', 'a', 3));
    c.send(tell('c', 'a', 4));
    a.send({ v: 1, k: 'ask', from: 'a/$ask', to: 'b/admin', c: 'x1', m: { type: 'node.status' } });
    b.send({ v: 1, k: 'tell', from: 'b/admin', to: 'a/admin', m: { type: 'node.members' } });
    b.send({ v: 1, k: 'reply', to: 'a/$ask', c: 'x1', m: { ok: true } });
    run();
    t.same(
      at.b.map((e) => e.to),
      ['b/admin'],
      'b got only the admin ask',
    );
    t.same(
      at.c.map((e) => (e.m as { i: number }).i),
      [2],
      'c is not cut',
    );
    t.same(
      at.a.map((e) => e.to),
      ['a/raft', 'a/admin', 'a/$ask'],
      'a got c, the admin tell and the reply',
    );
    t.equal((at.a[0]?.m as { i: number } | undefined)?.i, 4, 'the raft message from b was dropped');
    t.ok(a.counters().dropped >= 2, 'dropped messages are counted');

    a.heal();
    t.same(a.cut(), []);
    a.send(tell('a', 'b', 5));
    b.send(tell('b', 'a', 6));
    run();
    t.equal((at.b.at(-1)?.m as { i: number } | undefined)?.i, 5, 'healed: a reaches b');
    t.equal((at.a.at(-1)?.m as { i: number } | undefined)?.i, 6, 'healed: b reaches a');
  },
);
