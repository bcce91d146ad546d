/** Shared scenario: a peer node restarts (new incarnation), on every transport. */
import t from 'tap';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, type EchoMsg, Watcher, type WatcherMsg } from '../helpers/ws-scenario-actors.js';

type Terms = { address: string; reason: string }[];

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: a peer restarting`, async (t) => {
    let boots = 0;
    const c = await make(['a', 'b'], (node, s) => {
      if (node === 'a') s.spawn('watcher', new Watcher());
      if (node === 'b') {
        boots++;
        s.spawn('echo', new Echo());
      }
    });
    t.teardown(() => c.close());
    const a = c.system('a');
    const ask = () =>
      a.ask<EchoMsg & { type: 'echo' }>('b/echo', { type: 'echo', text: 'x' }, 3000);
    t.equal(await ask(), 'b:x');
    a.send('a/watcher', { type: 'watch', target: 'b/echo' });
    // the watch has reached b once an ask sent after it is answered (same link, in order)
    t.equal(await ask(), 'b:x');
    await c.restart('b');
    t.equal(boots, 2, 'b booted twice');
    await c.waitLink('a', 'b', 'up');
    // a new incarnation of b answers
    let answer: string | undefined;
    const deadline = performance.now() + 15_000;
    while (answer === undefined && performance.now() < deadline) {
      answer = await ask().catch(() => undefined);
    }
    t.equal(answer, 'b:x', 'the restarted node answers');
    const terms = (await a.ask<WatcherMsg & { type: 'terminations' }>(
      'a/watcher',
      { type: 'terminations' },
      5000,
    )) as Terms;
    t.ok(
      terms.some((x) => x.address === 'b/echo' && ['node-down', 'stopped'].includes(x.reason)),
      `the watcher learnt that the old b/echo is gone (${JSON.stringify(terms)})`,
    );
  });
}
