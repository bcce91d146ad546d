import t from 'tap';
import { RaftCluster } from '../../helpers/raft-sim.js';

t.test('smoke', async (t) => {
  const c = new RaftCluster({ seed: 1, ids: ['a', 'b', 'c'] });
  await c.start();
  const l = await c.waitLeader(3000);
  t.ok(l, `leader ${l}`);
  const r = await c.proposeOn(l!, { f: 'write', k: 'x', v: 1 });
  t.ok(r.ok, JSON.stringify(r));
  await c.sim.runFor(500);
  for (const id of ['a', 'b', 'c']) t.equal(c.machines.get(id)?.data.get('x'), 1, id);
  t.ok(c.inv.checks > 100, `checks ${c.inv.checks}`);
});
