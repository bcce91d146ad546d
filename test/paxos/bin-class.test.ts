/**
 * A `bin` inside a command reaches every replica's state machine as the same class (a
 * Buffer), whichever path brought the bytes: the leader's own proposal, an accept unpacked
 * from a message, a restarted acceptor's journal, a catch-up reply, or a snapshot. msgpack
 * gives a bin the class of its input, and before the fix a follower got a Uint8Array (its
 * bytes were a view into an unpacked message) where a replica restored from a snapshot got
 * a Buffer: a state machine that looks at the class (or calls toString) would diverge.
 */
import t from 'tap';
import { PaxosActorCluster } from '../../actors/paxos/sim-actors.js';

const w = (key: string, value: unknown) => ({ f: 'write', key, value });

t.test('bins are Buffers on every replica, live, replayed and restored', async (t) => {
  const nodes = ['a', 'b', 'c'];
  // snapshotEvery 10 and nothing kept behind it: the node that restarts last installs a
  // snapshot; the one that restarts first replays its acceptor's journal.
  const c = new PaxosActorCluster({
    seed: 11,
    nodes,
    node: { snapshotEvery: 10, keepAfterSnapshot: 0 },
  });
  await c.start();
  const leader = await c.waitForLeader();
  const [f1, f2] = nodes.filter((n) => n !== leader) as [string, string];
  const bin = (i: number) => Buffer.from([i, 1, 2, 3]);
  await c.sim.await(c.propose(leader, 'cl', 1, w('x', bin(1))), { timeout: 3000 });
  await c.sim.runUntil(() => nodes.every((n) => c.appliedIndex(n) >= c.appliedIndex(leader)), {
    timeout: 3000,
  });
  const isBuffer = (n: string, key: string) => Buffer.isBuffer(c.member(n).sm.read(key));
  for (const n of nodes) t.ok(isBuffer(n, 'x'), `${n} (live) holds a Buffer`);

  // f1 crashes and restarts with its journal: it re-learns slots from its acceptor and peers.
  c.sim.crash(f1);
  await c.sim.await(c.propose(leader, 'cl', 2, w('y', bin(2))), { timeout: 3000 });
  await c.sim.restart(f1);
  // f2 misses enough slots that it can only catch up through a snapshot.
  c.sim.crash(f2);
  for (let i = 3; i <= 40; i++) {
    await c.sim.await(c.propose(leader, 'cl', i, w(`k${i % 5}`, bin(i))), { timeout: 3000 });
  }
  await c.sim.restart(f2);
  const ok = await c.sim.runUntil(
    () => nodes.every((n) => c.appliedIndex(n) >= c.appliedIndex(leader)),
    { timeout: 5000 },
  );
  t.ok(ok, 'every replica caught up');
  t.ok(
    (c.member(f2).paxos.learner.getSnapshot()?.snapshotIndex ?? 0) > 0,
    `${f2} installed a snapshot`,
  );
  for (const n of nodes) {
    for (const key of ['x', 'y', 'k0', 'k1', 'k2', 'k3', 'k4']) {
      t.ok(isBuffer(n, key), `${n}: ${key} is a Buffer`);
    }
    t.same(c.member(n).sm.snapshot(), c.member(leader).sm.snapshot(), `${n}: same state`);
  }
  c.stop();
});
