/** Shared scenario: messages from one sender arrive in the order sent, on every transport. */
import t from 'tap';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, type EchoMsg, Sender } from '../helpers/ws-scenario-actors.js';

const N = 2000;

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: ordering per sender`, async (t) => {
    const c = await make(['a', 'b', 'c'], (node, s) => {
      s.spawn('echo', new Echo());
      if (node !== 'b') s.spawn('sender', new Sender());
    });
    t.teardown(() => c.close());
    c.system('a').send('a/sender', { type: 'go', to: 'b/echo', count: N });
    c.system('c').send('c/sender', { type: 'go', to: 'b/echo', count: N });
    const b = c.system('b');
    const recorded = (from: string) =>
      b.ask<EchoMsg & { type: 'recorded' }>('b/echo', { type: 'recorded', from }, 5000);
    let fromA: number[] = [];
    let fromC: number[] = [];
    const deadline = performance.now() + 30_000;
    while ((fromA.length < N || fromC.length < N) && performance.now() < deadline) {
      fromA = await recorded('a/sender');
      fromC = await recorded('c/sender');
    }
    const expected = Array.from({ length: N }, (_, i) => i);
    t.same(fromA, expected, 'a -> b: all, in order');
    t.same(fromC, expected, 'c -> b: all, in order');
  });
}
