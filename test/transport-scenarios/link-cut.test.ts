/** Shared scenario: a link is cut and healed, on every transport. */
import t from 'tap';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, type EchoMsg, Watcher, type WatcherMsg } from '../helpers/ws-scenario-actors.js';

type Terms = { address: string; reason: string }[];

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: a link cut and healed`, async (t) => {
    const c = await make(['a', 'b', 'c'], (node, s) => {
      s.spawn('echo', new Echo());
      if (node === 'a') s.spawn('watcher', new Watcher());
    });
    t.teardown(() => c.close());
    const a = c.system('a');
    const ask = (to: string, ms = 3000) =>
      a.ask<EchoMsg & { type: 'echo' }>(`${to}/echo`, { type: 'echo', text: 'x' }, ms);
    t.equal(await ask('b'), 'b:x');
    a.send('a/watcher', { type: 'watch', target: 'b/echo' });
    t.equal(await ask('b'), 'b:x', 'watch registered');

    c.cut('a', 'b');
    await c.waitLink('a', 'b', 'down');
    await c.waitLink('b', 'a', 'down');
    t.pass('both sides see the link down');
    await t.rejects(ask('b', 500), 'an ask across the cut fails');
    t.equal(await ask('c'), 'c:x', 'other links unaffected');
    const terms = (await a.ask<WatcherMsg & { type: 'terminations' }>(
      'a/watcher',
      { type: 'terminations' },
      5000,
    )) as Terms;
    t.same(terms, [{ address: 'b/echo', reason: 'node-down' }], 'watcher told the node is down');

    c.heal();
    await c.waitLink('a', 'b', 'up');
    let answer: string | undefined;
    const deadline = performance.now() + 15_000;
    while (answer === undefined && performance.now() < deadline) {
      answer = await ask('b').catch(() => undefined);
    }
    t.equal(answer, 'b:x', 'asks work again after the heal');
    t.equal(
      await c
        .system('b')
        .ask<EchoMsg & { type: 'echo' }>('a/echo', { type: 'echo', text: 'y' }, 3000),
      'a:y',
    );
  });
}
