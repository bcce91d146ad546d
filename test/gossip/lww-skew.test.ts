/**
 * What LWW loses, measured. Three preferred replicas of one key coordinate writes with
 * their own (skewed) physical clocks:
 *  1. concurrent writes (issued at the same instant at the three replicas): LWW keeps
 *     exactly one, the one with the largest HLC timestamp, and silently drops the others;
 *  2. writes ordered in real time but with no message between them (the later one's
 *     replica had not heard of the earlier one): when the later replica's clock is behind,
 *     the later write is the one dropped. HLC cannot help without a causal path.
 * A DVV register under the same workload keeps every concurrent write as a sibling.
 */
import t from 'tap';
import { compareHlc, type HlcTimestamp } from '../../actors/gossip/hlc.js';
import { decodeContext, type KeyRecord } from '../../actors/gossip/record.js';
import type { ReplicaNode } from '../../actors/gossip/replica-node.js';
import { LocalCluster } from '../../actors/gossip/testkit.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const keyTypes = [{ prefix: 'lww/', type: 'lww' as const }];

async function setup(skewOf: (rank: number) => number, key: string) {
  // find the key's preference list first, then give its replicas the skews
  const probe = new LocalCluster({ seed: 1, nodes: NODES, replica: { keyTypes } });
  await probe.boot();
  const pref = (probe.replicas.get('a') as ReplicaNode).placement(key).preferred;
  const skew: Record<string, number> = {};
  pref.forEach((n, i) => {
    skew[n] = skewOf(i);
  });
  const c = new LocalCluster({ seed: 2, nodes: NODES, replica: { keyTypes }, skew });
  await c.boot();
  return { c, pref };
}

function finalOf(c: LocalCluster, node: string, key: string): KeyRecord | undefined {
  return c.replicas.get(node)?.localRecord(key);
}

t.test('concurrent LWW writes: exactly one survives, the largest HLC timestamp', async (t) => {
  const rounds = 20;
  let concurrent = 0;
  let overwritten = 0;
  for (const type of ['lww', 'dvv'] as const) {
    const key = type === 'lww' ? 'lww/x' : 'reg/x';
    const { c, pref } = await setup((i) => [0, 400, -300][i] ?? 0, key);
    let lost = 0;
    let total = 0;
    const wins = [0, 0, 0];
    for (let r = 0; r < rounds; r++) {
      const ops = pref.map((n, i) =>
        c.write(n, { type: 'kv-write', key, op: { op: 'put', value: `r${r}-${i}` }, w: 'one' }),
      );
      for (const op of ops) await c.call(op);
      await c.runUntil(() => c.divergence() === 0, 30_000);
      const acked = ops.filter((o) => o.ok);
      total += acked.length;
      const rec = finalOf(c, pref[0] as string, key);
      const read = await c.call(c.get(pref[0] as string, { type: 'kv-get', key, r: 'all' }));
      const survivors = new Set(read.ok?.values as string[]);
      const mine = acked.map((_, i) => `r${r}-${i}`);
      lost += mine.filter((v) => !survivors.has(v)).length;
      mine.forEach((v, i) => {
        if (survivors.has(v)) wins[i] = (wins[i] ?? 0) + 1;
      });
      if (type === 'lww') {
        const stamps = acked.map(
          (o) => (decodeContext(o.ok?.context as string) as { ts: HlcTimestamp }).ts,
        );
        const max = stamps.reduce((x, y) => (compareHlc(x, y) >= 0 ? x : y));
        t.same(rec?.t === 'lww' ? rec.s.ts : null, max, `round ${r}: the largest timestamp won`);
      }
      // the next round's writes supersede everything (they carry no context: for dvv they
      // are concurrent with the survivors, so clear the key by resolving first)
      if (type === 'dvv') {
        await c.call(
          c.write(pref[0] as string, {
            type: 'kv-write',
            key,
            op: { op: 'delete' },
            context: read.ok?.context as string,
            w: 'all',
          }),
        );
        await c.runUntil(() => c.divergence() === 0, 30_000);
      }
    }
    t.comment(`${type}: ${total} concurrent writes acknowledged, ${lost} silently overwritten`);
    t.comment(`${type}: survivors by replica clock offset +0/+400/-300 ms: ${wins.join('/')}`);
    if (type === 'lww')
      t.equal(wins[1], rounds, 'the replica whose clock runs ahead wins every round');
    if (type === 'lww') {
      concurrent = total;
      overwritten = lost;
      t.equal(
        lost,
        total - rounds,
        'LWW keeps one write per round of concurrent writes and drops the rest',
      );
    } else {
      t.equal(lost, 0, 'a DVV register keeps every concurrent write as a sibling');
    }
  }
  t.ok(
    concurrent > 0 && overwritten > 0,
    `LWW overwrote ${overwritten} of ${concurrent} concurrent writes`,
  );
});

async function realTimeOrderRun(skews: [number, number, number]) {
  const key = 'lww/y';
  const { c, pref } = await setup((i) => skews[i] ?? 0, key);
  const [early, mid, late] = pref as [string, string, string];
  const rounds = 10;
  let laterLost = 0;
  for (let r = 0; r < rounds; r++) {
    // the replica that will write second does not hear the first write...
    c.partition([[early, mid, ...NODES.filter((n) => !pref.includes(n))], [late]]);
    const w1 = await c.call(
      c.write(early, { type: 'kv-write', key, op: { op: 'put', value: `first-${r}` }, w: 2 }),
    );
    await c.runFor(100); // ...and writes 100 ms later in real time
    c.heal();
    const w2 = await c.call(
      c.write(late, { type: 'kv-write', key, op: { op: 'put', value: `second-${r}` }, w: 'one' }),
    );
    if (!w1.ok || !w2.ok) continue;
    await c.runUntil(() => c.divergence() === 0, 30_000);
    const read = await c.call(c.get(mid, { type: 'kv-get', key, r: 'all' }));
    if (read.ok?.values[0] !== `second-${r}`) laterLost++;
    await c.runFor(1000);
  }
  return { rounds, laterLost };
}

t.test(
  'clock skew: a write made later in real time is dropped when its replica clock is behind',
  async (t) => {
    const skewed = await realTimeOrderRun([500, 0, -500]);
    t.comment(
      `skew 1000 ms between the replicas: ${skewed.laterLost} of ${skewed.rounds} later writes lost`,
    );
    t.equal(
      skewed.laterLost,
      skewed.rounds,
      'with 1 s of skew and 100 ms between writes, the later write always loses',
    );
    const synced = await realTimeOrderRun([0, 0, 0]);
    t.comment(`no skew: ${synced.laterLost} of ${synced.rounds} later writes lost`);
    t.equal(synced.laterLost, 0, 'negative control: with synchronized clocks the later write wins');
  },
);
