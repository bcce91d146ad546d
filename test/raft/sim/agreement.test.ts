/**
 * MIT 6.5840 Raft lab scenarios, part B (log agreement), on RaftNode actors in the
 * deterministic simulation, invariants checked after every step.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that
 * replays it.
 */
import t from 'tap';
import type { RaftMessage } from '../../../actors/raft/core/types.js';
import { encodeValue } from '../../../lib/codec.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(11);

const w = (k: string, v: unknown): KvOp => ({ f: 'write', k, v });

/** Commits `op` through whichever node leads (retrying), like the lab's one(). */
async function one(c: RaftCluster, op: KvOp, among?: string[], timeout = 5000) {
  const end = c.now() + timeout;
  while (c.now() < end) {
    const l = await c.waitLeader(1000, among);
    if (!l) continue;
    const r = await c.proposeOn(l, op, 1000);
    if (r.ok) return r.index as number;
    await c.sim.runFor(50);
  }
  throw new Error(`one(${JSON.stringify(op)}) failed to commit within ${timeout} ms`);
}

/** Nodes (up) whose state machine applied `v` under key `k`. */
function holders(c: RaftCluster, k: string, v: unknown, ids = c.opts.ids): string[] {
  return ids.filter((id) => c.machines.get(id)?.data.get(k) === v);
}

t.test('BasicAgree', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED, ids });
  await c.start();
  await c.waitLeader(1000);
  let prev = 0;
  for (let i = 1; i <= 3; i++) {
    t.equal(
      ids.filter((id) => (c.machines.get(id)?.applied ?? 0) >= i).length,
      0,
      'nothing commits before it is proposed',
    );
    const idx = await one(c, w('x', i));
    if (prev) t.equal(idx, prev + 1, `command ${i} at the next index`);
    prev = idx;
    await c.sim.runFor(200);
    t.same(holders(c, 'x', i), ids, `command ${i} applied everywhere`);
  }
});

t.test('RPCBytes', async (t) => {
  const ids = ['a', 'b', 'c'];
  let bytes = 0;
  const c = new RaftCluster({
    seed: SEED + 1,
    ids,
    node: { onSend: (_to, body) => (bytes += encodeValue(body).byteLength) },
  });
  await c.start();
  await one(c, w('x', 0));
  await c.sim.runFor(200);
  const before = bytes;
  let sent = 0;
  for (let i = 0; i < 10; i++) {
    const payload = 'p'.repeat(5000) + i;
    sent += payload.length;
    await one(c, w('x', payload));
  }
  const used = bytes - before;
  t.ok(used <= ids.length * sent + 50_000, `${used} bytes for ${sent} bytes of commands`);
});

t.test('FollowerFailure', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 2, ids });
  await c.start();
  await one(c, w('x', 101));
  const l = (await c.waitLeader())!;
  const [f1, f2] = ids.filter((i) => i !== l) as [string, string];
  c.crash(f1);
  await one(c, w('x', 102));
  await c.sim.runFor(500);
  await one(c, w('x', 103));
  await c.sim.runFor(200);
  t.same(holders(c, 'x', 103, [l, f2]), [l, f2], 'progress with one follower down');
  c.crash(f2);
  const l2 = c.leaders()[0] ?? l;
  const before = c.core(l2)!.log.committed;
  const p = c
    .node(l2)
    .propose({ clientId: 'z', seq: 1, op: w('x', 104) })
    .catch(() => 'rejected');
  await c.sim.runFor(2000);
  t.equal(c.core(l2)!.log.committed, before, 'with both followers down nothing commits');
  t.ok(c.core(l2)!.log.lastIndex() > before, 'though the proposal was accepted into the log');
  void p;
});

t.test('LeaderFailure', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 3, ids });
  await c.start();
  await one(c, w('x', 101));
  const l1 = (await c.waitLeader())!;
  c.crash(l1);
  const rest = ids.filter((i) => i !== l1);
  await one(c, w('x', 102), rest);
  await c.sim.runFor(500);
  await one(c, w('x', 103), rest);
  const l2 = (await c.waitLeader(1000, rest))!;
  c.crash(l2);
  const last = rest.find((i) => i !== l2)!;
  await c.sim.runFor(300);
  const before = c.core(last)!.log.committed;
  for (const id of [last])
    c.node(id)
      .propose({ clientId: 'z', seq: 1, op: w('x', 104) })
      .catch(() => {});
  await c.sim.runFor(2000);
  t.equal(c.core(last)!.log.committed, before, 'no commit without a majority');
  t.same(holders(c, 'x', 104), [], 'nothing applied');
});

t.test('FailAgree', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 4, ids });
  await c.start();
  await one(c, w('x', 101));
  const l = (await c.waitLeader())!;
  const f = ids.find((i) => i !== l)!;
  c.partition([[f], ids.filter((i) => i !== f)]);
  for (let i = 102; i <= 106; i++)
    await one(
      c,
      w('x', i),
      ids.filter((x) => x !== f),
    );
  c.heal();
  await one(c, w('x', 107));
  await c.sim.runFor(500);
  t.same(holders(c, 'x', 107), ids, 'the cut-off follower caught up');
  const a = c.core('a')!;
  for (const id of ids) {
    const o = c.core(id)!;
    for (
      let i = Math.max(a.log.snapIndex, o.log.snapIndex) + 1;
      i <= Math.min(a.log.committed, o.log.committed);
      i++
    ) {
      t.equal(c.entryAt(id, i), c.entryAt('a', i), `${id} agrees at ${i}`);
    }
  }
});

t.test('FailNoAgree', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const c = new RaftCluster({ seed: SEED + 5, ids });
  await c.start();
  await one(c, w('x', 10));
  const l = (await c.waitLeader())!;
  const fs = ids.filter((i) => i !== l);
  const cut = fs.slice(0, 3);
  c.partition([[l, fs[3]!], ...cut.map((x) => [x])]);
  const before = c.core(l)!.log.committed;
  c.node(l)
    .propose({ clientId: 'z', seq: 1, op: w('x', 20) })
    .catch(() => {});
  await c.sim.runFor(2000);
  t.equal(c.core(l)!.log.committed, before, 'nothing commits with 3 of 5 cut off');
  c.heal();
  await one(c, w('x', 30));
  await c.sim.runFor(500);
  t.same(holders(c, 'x', 30), ids, 'after repair the cluster converges');
});

t.test('ConcurrentStarts', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 6, ids });
  await c.start();
  await one(c, w('x', 0));
  const l = (await c.waitLeader())!;
  const term = c.core(l)!.term;
  const ps = [0, 1, 2, 3, 4].map((i) =>
    c.node(l).propose({ clientId: `cs${i}`, seq: 1, op: w(`k${i}`, i) }),
  );
  const ok = await c.drive(ps, 2000);
  t.ok(ok);
  const rs = await Promise.all(ps);
  t.ok(
    rs.every((r) => r.term === term),
    'all in one term',
  );
  t.equal(new Set(rs.map((r) => r.index)).size, 5, 'at five distinct indexes');
});

t.test('Rejoin', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 7, ids });
  await c.start();
  await one(c, w('x', 101));
  const l1 = (await c.waitLeader())!;
  c.partition([[l1], ids.filter((i) => i !== l1)]);
  const oldTerm = c.core(l1)!.term;
  const firstOld = c.core(l1)!.log.lastIndex() + 1;
  for (let i = 0; i < 3; i++)
    c.node(l1)
      .propose({ clientId: 'old', seq: i + 1, op: w('x', 1000 + i) })
      .catch(() => {});
  await c.sim.runFor(100);
  const lastOld = c.core(l1)!.log.lastIndex();
  t.equal(
    lastOld - firstOld + 1,
    3,
    `the cut-off leader appended its 3 entries (${firstOld}–${lastOld})`,
  );
  const rest = ids.filter((i) => i !== l1);
  await one(c, w('x', 103), rest);
  const l2 = (await c.waitLeader(1000, rest))!;
  const third = rest.find((i) => i !== l2)!;
  c.partition([[l2], [l1, third]]);
  await one(c, w('x', 104), [l1, third]);
  c.heal();
  await one(c, w('x', 105));
  await c.sim.runFor(500);
  t.same(holders(c, 'x', 105), ids);
  for (const id of ids) {
    const applied = [...c.appliedCmds.get(id)!].filter((cmd) => cmd.startsWith('old:'));
    t.same(applied, [], `${id} never applied the stale leader's entries`);
  }
  const log = c.core(l1)!.log;
  for (let i = firstOld; i <= lastOld; i++) {
    t.not(log.term(i), oldTerm, `the old leader's entry at ${i} (term ${oldTerm}) was overwritten`);
  }
});

t.test('Backup', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  let rejects = 0;
  let counting = false;
  const c = new RaftCluster({
    seed: SEED + 8,
    ids,
    node: {
      onSend: (_to, body) => {
        if (!counting) return;
        for (const m of body.ms as RaftMessage[])
          if (m.type === 'appendResp' && m.reject) rejects++;
      },
    },
  });
  await c.start();
  await one(c, w('x', 0));
  const l1 = (await c.waitLeader())!;
  const others = ids.filter((i) => i !== l1);
  // leader + one follower in a minority pile up 50 uncommitted entries
  c.partition([[l1, others[0]!], others.slice(1)]);
  for (let i = 0; i < 50; i++)
    c.node(l1)
      .propose({ clientId: 'm1', seq: i + 1, op: w('x', `lost1-${i}`) })
      .catch(() => {});
  await c.sim.runFor(200);
  const maj = others.slice(1);
  for (let i = 0; i < 50; i++) await one(c, w('y', i), maj);
  // the majority's new leader is cut down to a minority and piles up 50 more
  const l2 = (await c.waitLeader(1000, maj))!;
  const other2 = maj.find((i) => i !== l2)!;
  counting = true;
  c.partition([
    [l2, other2],
    [l1, others[0]!, maj.find((i) => i !== l2 && i !== other2)!],
  ]);
  for (let i = 0; i < 50; i++)
    c.node(l2)
      .propose({ clientId: 'm2', seq: i + 1, op: w('x', `lost2-${i}`) })
      .catch(() => {});
  await c.sim.runFor(200);
  const group = [l1, others[0]!, maj.find((i) => i !== l2 && i !== other2)!];
  for (let i = 0; i < 50; i++) await one(c, w('z', i), group);
  c.heal();
  await one(c, w('done', 1));
  await c.sim.runFor(500);
  t.same(holders(c, 'done', 1), ids, 'everyone converged');
  t.ok(rejects <= 20, `${rejects} rejected appends to back up over ~100 conflicting entries`);
});

t.test('Count', async (t) => {
  const ids = ['a', 'b', 'c'];
  let rpcs = 0;
  const requests = new Set([
    'vote',
    'preVote',
    'append',
    'heartbeat',
    'snapshot',
    'timeoutNow',
    'readIndex',
  ]);
  const c = new RaftCluster({
    seed: SEED + 9,
    ids,
    node: {
      onSend: (_to, body) => {
        for (const m of body.ms as RaftMessage[]) if (requests.has(m.type)) rpcs++;
      },
    },
  });
  await c.start();
  await c.waitLeader(1000);
  t.ok(rpcs <= 30, `${rpcs} RPCs to elect a leader`);
  await c.sim.runFor(200);
  const before = rpcs;
  const iters = 10;
  for (let i = 0; i < iters; i++) await one(c, w('x', i));
  const used = rpcs - before;
  t.ok(used <= (iters + 4) * ids.length, `${used} RPCs to commit ${iters} entries`);
  await c.sim.runFor(1000);
  const idle0 = rpcs;
  await c.sim.runFor(1000);
  t.ok(rpcs - idle0 <= 60, `${rpcs - idle0} RPCs in an idle second`);
});
