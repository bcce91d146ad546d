/**
 * The dashboard source of the leaderless store on a virtual clock: five replica cards with
 * ring shares that sum to 100 %, a converged narration; isolating a replica shows the
 * partition and the others' SWIM views mark it dead, a write during the split leaves the
 * store diverged (hints), and after heal the view says converged again.
 */
import t from 'tap';
import { startEventualCluster } from '../../actors/gossip/embedded.js';
import { EventualDashboardSource } from '../../lib/dashboard/eventual-source.js';
import type { ClusterView } from '../../lib/dashboard/view.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

t.test('the leaderless store on the dashboard: ring, SWIM views, convergence', async (t) => {
  const clock = new VirtualClock();
  /** Advances virtual time until `p` settles (bounded). */
  const settle = async <T>(p: Promise<T>, ms = 60_000): Promise<T> => {
    let done = false;
    p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    const end = clock.now() + ms;
    while (!done && clock.now() < end) await advance(clock, 20);
    return p;
  };
  const cluster = await settle(
    startEventualCluster({
      clock,
      seed: 3,
      replica: {
        n: 3,
        vnodes: 32,
        antiEntropyIntervalMs: 200,
        hintIntervalMs: 100,
        swim: { periodMs: 200, pingTimeoutMs: 50 },
      },
    }),
  );
  await settle(cluster.ready());
  const source = new EventualDashboardSource(cluster, { clock, vnodes: 32 });
  t.teardown(async () => {
    source.stop();
    await settle(cluster.stop());
  });
  /** Advances virtual time until the view satisfies `pred` (bounded). */
  const until = async (what: string, pred: (v: ClusterView) => boolean, ms = 60_000) => {
    const end = clock.now() + ms;
    for (;;) {
      await advance(clock, 100);
      await settle(source.poll());
      const v = source.view();
      if (pred(v)) return v;
      if (clock.now() > end) throw new Error(`no view where ${what}: ${JSON.stringify(v)}`);
    }
  };
  const converged = (v: ClusterView) => /^converged/.test(v.narration?.[0] ?? '');

  const v0 = await until('five replicas, converged', (v) => v.nodes.length === 5 && converged(v));
  t.ok(
    v0.nodes.every((n) => n.up && n.protocol === 'gossip' && n.role === 'replica'),
    'five replica cards',
  );
  const shares = v0.nodes.map((n) => Number.parseFloat(String(n.extra?.['ring share'])));
  t.ok(
    Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5,
    `ring shares sum to 100 % (${shares.join(', ')})`,
  );
  t.ok(
    shares.every((s) => s > 5),
    'every replica owns part of the ring',
  );

  const cut = await source.control({ op: 'isolate', node: 'e' });
  t.equal(cut.ok, true, cut.message);
  const split = await until('the others see e dead', (v) =>
    v.nodes.filter((n) => n.id !== 'e').every((n) => String(n.extra?.['sees dead']).includes('e')),
  );
  t.same(split.partitions, [['e'], ['a', 'b', 'c', 'd']], 'the partition is shown');
  // The client picks a coordinator per request: writes coordinated by the majority side
  // succeed (sloppy quorum, hints for e); one coordinated by the isolated e cannot reach a
  // quorum and says so.
  const results = [];
  for (let i = 0; i < 20; i++)
    results.push(await settle(source.control({ op: 'put', key: `k${i}`, value: `v${i}` })));
  const oks = results.filter((r) => r.ok).length;
  t.ok(oks >= 10, `${oks} of 20 writes during the split succeeded`);
  for (const r of results.filter((r) => !r.ok))
    t.match(
      r.message,
      /^put k\d+: (failed|indeterminate)/,
      `a refused write says why: ${r.message}`,
    );
  await until('diverged during the split', (v) => /^diverged/.test(v.narration?.[0] ?? ''));
  t.pass('the narration says the store diverged');

  t.equal((await source.control({ op: 'heal' })).ok, true, 'heal');
  const healed = await until('converged after heal', converged, 120_000);
  t.notOk(healed.partitions, 'no partition shown');
  t.ok(
    healed.nodes.every((n) => n.extra?.['pending hints'] === 0),
    'no replica holds a hint',
  );
  const refused = await source.control({ op: 'backup' });
  t.equal(refused.ok, false, 'a backup does not apply to the leaderless store');
});
