/** Shared scenario: watching an actor on another node, on every transport. */
import t from 'tap';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, Watcher, type WatcherMsg } from '../helpers/ws-scenario-actors.js';

type Terms = { address: string; reason: string }[];

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: watch across nodes`, async (t) => {
    const c = await make(['a', 'b'], (node, s) => {
      if (node === 'a') s.spawn('watcher', new Watcher());
      if (node === 'b') s.spawn('target', new Echo());
    });
    t.teardown(() => c.close());
    const a = c.system('a');
    const terminations = () =>
      a.ask<WatcherMsg & { type: 'terminations' }>(
        'a/watcher',
        { type: 'terminations' },
        5000,
      ) as Promise<Terms>;
    a.send('a/watcher', { type: 'watch', target: 'b/target' });
    a.send('a/watcher', { type: 'watch', target: 'b/never-existed' });
    let got: Terms = [];
    const deadline = performance.now() + 10_000;
    while (got.length < 1 && performance.now() < deadline) got = await terminations();
    t.same(got, [{ address: 'b/never-existed', reason: 'not-found' }], 'watching a missing actor');
    await c.system('b').stop('b/target');
    while (got.length < 2 && performance.now() < deadline) got = await terminations();
    t.same(got[1], { address: 'b/target', reason: 'stopped' }, 'remote stop reaches the watcher');
  });
}
