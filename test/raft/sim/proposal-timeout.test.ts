/**
 * A proposal that cannot commit fails with a Timeout after its own `timeoutMs`, not before and
 * not later, whatever other timeouts are queued beside it (RaftNode keeps one expiry queue per
 * timeout and checks it on every tick).
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that
 * replays it.
 */
import t from 'tap';
import { ProposeError } from '../../../lib/replicated-log.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(71);

t.test('an isolated leader fails each proposal when its own timeout passes', async (t) => {
  const c = new RaftCluster({ seed: SEED, ids: ['a', 'b', 'c'] });
  await c.start();
  const leader = (await c.waitLeader(3000)) as string;
  t.ok(leader, `a leader (seed ${SEED})`);
  t.ok((await c.proposeOn(leader, { f: 'write', k: 'k', v: 1 })).ok, 'a write commits first');
  c.partition([[leader], ['a', 'b', 'c'].filter((id) => id !== leader)]);
  const start = c.now();
  const settled = new Map<string, { at: number; error: unknown }>();
  const propose = (name: string, timeoutMs: number, seq: number) =>
    c
      .node(leader)
      .propose({ clientId: 'pt', seq, op: { f: 'write', k: 'k', v: seq } }, { timeoutMs })
      .then(
        () => settled.set(name, { at: c.now() - start, error: undefined }),
        (error: unknown) => settled.set(name, { at: c.now() - start, error }),
      );
  // interleave two timeouts so each queue holds proposals the other one does not
  void propose('long-1', 400, 2);
  void propose('short-1', 100, 3);
  void propose('long-2', 400, 4);
  void propose('short-2', 100, 5);
  await c.sim.runFor(90);
  t.equal(settled.size, 0, 'nothing settles before the shortest timeout');
  await c.sim.runFor(60);
  t.same([...settled.keys()].sort(), ['short-1', 'short-2'], 'the 100 ms proposals failed');
  t.notOk(settled.has('long-1') || settled.has('long-2'), 'the 400 ms proposals still wait');
  for (const name of ['short-1', 'short-2']) {
    const s = settled.get(name)!;
    t.ok(s.error instanceof ProposeError, `${name} failed with a ProposeError`);
    const e = s.error as ProposeError;
    // a leader that lost its quorum may instead step down first and fail them as not leader
    t.ok(e.code === 'Timeout' || e.code === 'NotLeader', `${name}: ${e.code} ${e.message}`);
    t.ok(s.at >= 100, `${name} not before its timeout (${s.at} ms)`);
  }
  await c.sim.runFor(400);
  t.equal(settled.size, 4, 'every proposal settled');
  t.notOk(
    [...settled.values()].some((s) => s.error === undefined),
    'none of them was acknowledged',
  );
});
