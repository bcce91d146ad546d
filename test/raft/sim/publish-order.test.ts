/**
 * RaftNode publishes only once `status()` reflects the change: whenever role$, term$,
 * leader$, commitIndex$ or appliedIndex$ emits, status() already shows that value (or a
 * later one), and a resolved proposal's index is already applied in status(). Before the
 * fix appliedIndex$ emitted (and proposals resolved) before the core's applied index moved,
 * which forced LocalCluster.waitFor to poll.
 */
import t from 'tap';
import { RaftCluster } from '../../helpers/raft-sim.js';

t.test('streams and proposal results never run ahead of status()', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: 7, ids });
  await c.start();
  const stale: string[] = [];
  let emissions = 0;
  for (const id of ids) {
    const n = c.node(id);
    const check = (what: string, ok: () => boolean) => {
      emissions++;
      if (n.started && !ok()) stale.push(`${id} ${what}`);
    };
    n.role$.subscribe((r) => check(`role ${r}`, () => n.status().role === r));
    n.term$.subscribe((x) => check(`term ${x}`, () => n.status().term >= x));
    n.leader$.subscribe((l) => check(`leader ${l}`, () => n.status().leader === l));
    n.commitIndex$.subscribe((x) => check(`commit ${x}`, () => n.status().commit >= x));
    n.appliedIndex$.subscribe((x) => check(`applied ${x}`, () => n.status().applied >= x));
  }
  const l1 = (await c.waitLeader(2000)) as string;
  t.ok(l1, 'a leader');
  let behind = 0;
  let last = 0;
  for (let i = 0; i < 20; i++) {
    const p = c.node(l1).propose({ clientId: 'p', seq: i + 1, op: { f: 'write', k: 'x', v: i } });
    const index = await c.sim.await(
      p.then((r) => {
        if (c.node(l1).status().applied < r.index) behind++;
        return r.index;
      }),
      { timeout: 2000 },
    );
    if (index > last) last = index;
  }
  t.ok(last >= 20, `20 proposals resolved, the last at index ${last}`);
  c.partition([[l1], ids.filter((i) => i !== l1)]);
  t.ok(
    await c.waitLeader(
      3000,
      ids.filter((i) => i !== l1),
    ),
    'a new leader after a partition',
  );
  c.heal();
  await c.sim.runFor(500);
  t.equal(behind, 0, 'every proposal resolved after status() showed it applied');
  t.same(stale, [], `${emissions} emissions, none ahead of status()`);
});
