/**
 * The replica logic on an in-process virtual network (actors/gossip/testkit.ts): the
 * request paths, siblings, levels, hinted handoff, read repair and anti-entropy.
 */
import t from 'tap';
import { decodeContext } from '../../actors/gossip/record.js';
import { LocalCluster } from '../../actors/gossip/testkit.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const keyTypes = [
  { prefix: 'lww/', type: 'lww' as const },
  { prefix: 'mv/', type: 'mv' as const },
  { prefix: 'pn/', type: 'pn' as const },
  { prefix: 'set/', type: 'orset' as const },
];

async function cluster(
  seed: number,
  extra: Partial<ConstructorParameters<typeof LocalCluster>[0]> = {},
) {
  const c = new LocalCluster({ seed, nodes: NODES, replica: { keyTypes }, ...extra });
  await c.boot();
  return c;
}

t.test('put then get at another node, W=R=quorum', async (t) => {
  const c = await cluster(1);
  const w = await c.call(
    c.write('a', { type: 'kv-write', key: 'k1', op: { op: 'put', value: 'hello' } }),
  );
  t.ok(w.ok, `write ok ${JSON.stringify(w.err)}`);
  t.ok((w.ok?.acks ?? 0) >= 2);
  const r = await c.call(c.get('e', { type: 'kv-get', key: 'k1' }));
  t.same(r.ok?.values, ['hello']);
  t.equal(r.ok?.absent, false);
  const missing = await c.call(c.get('b', { type: 'kv-get', key: 'nope' }));
  t.equal(missing.ok?.absent, true);
  t.same(missing.ok?.values, []);
});

t.test(
  'concurrent blind writes become siblings; a write with the read context resolves them',
  async (t) => {
    const c = await cluster(2);
    const w1 = c.write('a', { type: 'kv-write', key: 'doc', op: { op: 'put', value: 'from-a' } });
    const w2 = c.write('c', { type: 'kv-write', key: 'doc', op: { op: 'put', value: 'from-c' } });
    await c.call(w1);
    await c.call(w2);
    t.ok(w1.ok && w2.ok);
    const r = await c.call(c.get('b', { type: 'kv-get', key: 'doc', r: 'all' }));
    t.same([...(r.ok?.values ?? [])].sort(), ['from-a', 'from-c'], 'both concurrent writes kept');
    const ctx = r.ok?.context as string;
    t.equal(decodeContext(ctx).t, 'dvv');
    const w3 = await c.call(
      c.write('d', {
        type: 'kv-write',
        key: 'doc',
        op: { op: 'put', value: 'merged' },
        context: ctx,
      }),
    );
    t.ok(w3.ok);
    const r2 = await c.call(c.get('e', { type: 'kv-get', key: 'doc', r: 'all' }));
    t.same(r2.ok?.values, ['merged']);
    const del = await c.call(
      c.write('a', {
        type: 'kv-write',
        key: 'doc',
        op: { op: 'delete' },
        context: r2.ok?.context as string,
      }),
    );
    t.ok(del.ok);
    const r3 = await c.call(c.get('b', { type: 'kv-get', key: 'doc', r: 'all' }));
    t.equal(r3.ok?.absent, true);
  },
);

t.test('CRDT keys: counter, set, MV and LWW through the coordinator', async (t) => {
  const c = await cluster(3);
  for (const [node, by] of [
    ['a', 5],
    ['b', -2],
    ['c', 10],
  ] as const) {
    const w = await c.call(
      c.write(node, { type: 'kv-write', key: 'pn/hits', op: { op: 'increment', by } }),
    );
    t.ok(w.ok, `increment at ${node}`);
  }
  t.equal((await c.call(c.get('d', { type: 'kv-get', key: 'pn/hits' }))).ok?.value, 13);
  await c.call(c.write('a', { type: 'kv-write', key: 'set/s', op: { op: 'add', element: 'x' } }));
  await c.call(c.write('b', { type: 'kv-write', key: 'set/s', op: { op: 'add', element: 'y' } }));
  await c.call(
    c.write('c', { type: 'kv-write', key: 'set/s', op: { op: 'remove', element: 'x' } }),
  );
  t.same((await c.call(c.get('e', { type: 'kv-get', key: 'set/s' }))).ok?.value, ['y']);
  await c.call(c.write('a', { type: 'kv-write', key: 'lww/r', op: { op: 'put', value: 1 } }));
  await c.call(c.write('b', { type: 'kv-write', key: 'lww/r', op: { op: 'put', value: 2 } }));
  t.same((await c.call(c.get('c', { type: 'kv-get', key: 'lww/r' }))).ok?.values, [2]);
  await c.call(c.write('a', { type: 'kv-write', key: 'mv/r', op: { op: 'put', value: 'p' } }));
  t.same((await c.call(c.get('c', { type: 'kv-get', key: 'mv/r' }))).ok?.values, ['p']);
  const wrong = await c.call(
    c.write('a', { type: 'kv-write', key: 'pn/hits', op: { op: 'add', element: 'x' } }),
  );
  t.equal(wrong.err?.code, 'SYNOD_ERR_WRONG_TYPE');
});

t.test('levels and bad input: strong refused with a stable code, nothing applied', async (t) => {
  const c = await cluster(4);
  const s = await c.call(
    c.write('a', { type: 'kv-write', key: 'k', op: { op: 'put', value: 1 }, level: 'strong' }),
  );
  t.equal(s.err?.code, 'SYNOD_ERR_STRONG_UNSUPPORTED');
  const sr = await c.call(c.get('a', { type: 'kv-get', key: 'k', level: 'strong' }));
  t.equal(sr.err?.code, 'SYNOD_ERR_STRONG_UNSUPPORTED');
  t.equal(
    (await c.call(c.get('b', { type: 'kv-get', key: 'k', r: 'all' }))).ok?.absent,
    true,
    'nothing written',
  );
  const badW = await c.call(
    c.write('a', { type: 'kv-write', key: 'k', op: { op: 'put', value: 1 }, w: 4 }),
  );
  t.equal(badW.err?.code, 'SYNOD_ERR_BAD_REQUEST');
  const badKey = await c.call(
    c.write('a', { type: 'kv-write', key: '', op: { op: 'put', value: 1 } }),
  );
  t.equal(badKey.err?.code, 'SYNOD_ERR_BAD_REQUEST');
  const badOp = await c.call(
    c.write('a', { type: 'kv-write', key: 'k', op: { op: 'explode' } as never }),
  );
  t.equal(badOp.err?.code, 'SYNOD_ERR_BAD_REQUEST');
  const badCtx = await c.call(
    c.write('a', { type: 'kv-write', key: 'k', op: { op: 'put', value: 1 }, context: '!!' }),
  );
  t.equal(badCtx.err?.code, 'SYNOD_ERR_BAD_CONTEXT');
  const badLevel = await c.call(
    c.get('a', { type: 'kv-get', key: 'k', level: 'linearizable' as never }),
  );
  t.equal(badLevel.err?.code, 'SYNOD_ERR_BAD_REQUEST');
});

t.test("session: a read at W=R=1 sees the session's own write, or says it cannot", async (t) => {
  const c = await cluster(5);
  const w = await c.call(
    c.write('a', { type: 'kv-write', key: 'sess', op: { op: 'put', value: 'mine' }, w: 'one' }),
  );
  t.ok(w.ok);
  // eventual at R=1 may or may not see it; session must
  for (const node of NODES) {
    const r = await c.call(
      c.get(node, {
        type: 'kv-get',
        key: 'sess',
        r: 'one',
        level: 'session',
        context: w.ok?.context as string,
      }),
    );
    t.same(r.ok?.values, ['mine'], `session read at ${node}`);
  }
});

t.test(
  'sloppy quorum: writes succeed with a preferred replica down; hints reach it when it returns',
  async (t) => {
    const c = await cluster(6);
    const key = 'hinted-key';
    const pref = (
      c.replicas.get('a') as import('../../actors/gossip/replica-node.js').ReplicaNode
    ).placement(key).preferred;
    const victim = pref[1] as string;
    c.crash(victim);
    const coordinator = pref[0] as string;
    await c.runUntil(() => c.replicas.get(coordinator)?.swim.stateOf(victim) === 'dead', 60_000);
    const w = await c.call(
      c.write(coordinator, { type: 'kv-write', key, op: { op: 'put', value: 'v' }, w: 'all' }),
    );
    t.ok(w.ok, `W=all with a hint: ${JSON.stringify(w.err)}`);
    t.equal(w.ok?.hinted, 1);
    await c.restart(victim);
    const delivered = await c.runUntil(
      () => c.replicas.get(victim)?.localRecord(key) !== undefined && c.divergence() === 0,
      60_000,
    );
    t.ok(delivered, 'the hint was handed off and dropped');
  },
);

t.test('read repair fixes a stale replica on read', async (t) => {
  const c = await cluster(7, { replica: { keyTypes, antiEntropyIntervalMs: 0 } });
  const key = 'rr';
  const pref = (
    c.replicas.get('a') as import('../../actors/gossip/replica-node.js').ReplicaNode
  ).placement(key).preferred;
  // the third replica misses the write (partitioned), anti-entropy is off
  const lagging = pref[2] as string;
  c.partition([NODES.filter((n) => n !== lagging), [lagging]]);
  const w = await c.call(
    c.write(pref[0] as string, { type: 'kv-write', key, op: { op: 'put', value: 'x' }, w: 2 }),
  );
  t.ok(w.ok);
  c.heal();
  const r = await c.call(c.get(pref[0] as string, { type: 'kv-get', key, r: 'all' }));
  t.same(r.ok?.values, ['x']);
  await c.runFor(100);
  t.ok(c.replicas.get(lagging)?.localRecord(key), 'the lagging replica was repaired');
  t.ok((c.replicas.get(pref[0] as string)?.stats.readRepairs ?? 0) >= 1);
});

t.test(
  'session vs eventual: a stale replica answers an eventual R=1 read, never a session read',
  async (t) => {
    const c = await cluster(8, {
      replica: { keyTypes, antiEntropyIntervalMs: 0, readRepair: false },
    });
    const key = 'sess-stale';
    const pref = (
      c.replicas.get('a') as import('../../actors/gossip/replica-node.js').ReplicaNode
    ).placement(key).preferred;
    const [p0, p1, p2] = pref as [string, string, string];
    c.partition([[p0], NODES.filter((n) => n !== p0)]);
    const w = await c.call(
      c.write(p0, { type: 'kv-write', key, op: { op: 'put', value: 'new' }, w: 'one' }),
    );
    t.ok(w.ok, 'W=1 write acknowledged by the coordinator alone');
    c.heal();
    // p1 and p2 have not seen it; a read coordinated at p1 gets p1's own (stale) answer first
    const ev = await c.call(c.get(p1, { type: 'kv-get', key, r: 'one' }));
    t.equal(
      ev.ok?.absent,
      true,
      'eventual R=1 may return the stale (absent) value: negative control',
    );
    const se = await c.call(
      c.get(p1, {
        type: 'kv-get',
        key,
        r: 'one',
        level: 'session',
        context: w.ok?.context as string,
      }),
    );
    t.same(se.ok?.values, ['new'], 'session R=1 waits for a replica that has the write');
    c.partition([[p0], NODES.filter((n) => n !== p0)]);
    const stale = await c.call(
      c.get(p2, {
        type: 'kv-get',
        key,
        r: 'one',
        level: 'session',
        context: w.ok?.context as string,
      }),
    );
    t.ok(
      stale.err?.code === 'SYNOD_ERR_SESSION_STALE' || stale.err?.code === 'SYNOD_ERR_TIMEOUT',
      `without the only up-to-date replica the session read refuses: ${stale.err?.code}`,
    );
  },
);

t.test(
  'ring changes move data: a joining node receives its keys, a leaving node hands them over',
  async (t) => {
    const c = new LocalCluster({ seed: 11, nodes: NODES, replica: { keyTypes } });
    for (const n of ['a', 'b', 'c', 'd']) await c.startNode(n, n === 'a' ? [] : ['a']);
    t.ok(await c.runUntil(() => c.membershipStable(), 60_000), 'four nodes stable');
    const keys = Array.from({ length: 150 }, (_, i) => `moving-${i}`);
    for (const key of keys) {
      const w = await c.call(
        c.write('a', { type: 'kv-write', key, op: { op: 'put', value: key }, w: 'all' }),
      );
      t.ok(w.ok, `write ${key}`);
    }
    const everyReplicaHolds = () =>
      keys.every((key) => {
        const pref = (
          c.replicas.get('a') as import('../../actors/gossip/replica-node.js').ReplicaNode
        ).placement(key).preferred;
        return pref.every((n) => c.replicas.get(n)?.localRecord(key) !== undefined);
      });
    await c.startNode('e', ['c']);
    t.ok(
      await c.runUntil(
        () => c.membershipStable() && everyReplicaHolds() && c.divergence() === 0,
        60_000,
      ),
      'after e joined, every key is on its (new) replicas',
    );
    const eKeys = keys.filter((k) => c.replicas.get('e')?.localRecord(k) !== undefined).length;
    t.ok(eKeys > 0 && eKeys < keys.length, `e received ${eKeys} of ${keys.length} keys`);
    (c.replicas.get('b') as import('../../actors/gossip/replica-node.js').ReplicaNode).leave();
    const leftEverywhere = () =>
      ['a', 'c', 'd', 'e'].every((n) => c.replicas.get(n)?.swim.stateOf('b') === 'left');
    t.ok(await c.runUntil(leftEverywhere, 60_000), 'b is marked left everywhere');
    c.crash('b'); // gone for good
    t.ok(
      await c.runUntil(() => everyReplicaHolds() && c.divergence() === 0, 60_000),
      'after b left, every key is on its replicas among the remaining nodes',
    );
    for (const key of keys.slice(0, 20)) {
      const r = await c.call(c.get('d', { type: 'kv-get', key, r: 'all' }));
      t.same(r.ok?.values, [key]);
    }
  },
);

t.test('a duplicated forwarded increment is applied once', async (t) => {
  const c = await cluster(12, { duplicate: 1 }); // every message delivered twice
  const key = 'pn/dup';
  const pref = (
    c.replicas.get('a') as import('../../actors/gossip/replica-node.js').ReplicaNode
  ).placement(key).preferred;
  const outsider = NODES.find((n) => !pref.includes(n)) as string;
  for (let i = 0; i < 10; i++) {
    const w = await c.call(
      c.write(outsider, { type: 'kv-write', key, op: { op: 'increment', by: 1 } }),
    );
    t.ok(w.ok, 'forwarded increment acknowledged');
  }
  const r = await c.call(c.get(outsider, { type: 'kv-get', key, r: 'all' }));
  t.equal(r.ok?.value, 10, 'ten increments, counted once each');
  t.ok((c.replicas.get(outsider)?.stats.writesForwarded ?? 0) >= 10);
});
