/**
 * Merkle-tree anti-entropy on its own (issue 9: "anti-entropy by Merkle trees per key range
 * exchanged periodically between replicas"). Read repair is off, hinted handoff never delivers
 * (its interval is 10^12 ms), and the test makes no reads, so after the heal the only way data
 * can move between replicas is the anti-entropy exchange:
 *
 * 1. 2,000 keys are written at W = all on 5 nodes (N = 3) and the replicas agree;
 * 2. node `c` is partitioned away and 40 keys it replicates are written at W = one through the
 *    others; the coordinators' resends give up (timeout 1 s) long before the heal;
 * 3. the partition heals; the keys whose replicas differ are recorded (the test asserts there
 *    are some), and every peer message from then on is counted by type.
 *
 * With anti-entropy every key range's Merkle roots become equal on all its replicas within a
 * bound, and no write, hint delivery, read or read repair happened after the heal. And the
 * exchange moves only what differs: every record pushed belongs to a key that differed, and
 * every key range whose leaves were exchanged holds such a key; the counts (ranges compared,
 * ranges that differed, leaf digests and key digests exchanged, records pushed) are printed
 * next to the totals. Negative control: the same run with anti-entropy off stays divergent.
 *
 * GOSSIP_AE_SEEDS=n runs n seeds (default 1); GOSSIP_AE_SEED=s replays one.
 */
import t from 'tap';
import { canonical } from '../../actors/gossip/hash.js';
import type { PeerMessage, WriteResult } from '../../actors/gossip/messages.js';
import { LocalCluster, type PendingOp } from '../../actors/gossip/testkit.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const VICTIM = 'c';
const KEYS = 2000;
const UPDATES = 40;
/** Virtual ms allowed from the heal to equal Merkle roots. */
const CONVERGENCE_BOUND_MS = 20_000;

/** Key ranges whose Merkle roots differ between their live replicas (hints not counted). */
function rangesDiffering(c: LocalCluster): number {
  const roots = new Map<number, Set<string>>();
  for (const [n, r] of c.replicas) {
    if (c.down.has(n)) continue;
    for (const [seg, root] of r.segmentRoots()) {
      const s = roots.get(seg) ?? new Set<string>();
      roots.set(seg, s);
      s.add(root);
    }
  }
  let diff = 0;
  for (const s of roots.values()) if (s.size > 1) diff++;
  return diff;
}

/** Keys whose preferred replicas do not all hold the same record. */
function keysDiffering(c: LocalCluster, keys: readonly string[]): Set<string> {
  const out = new Set<string>();
  const a = c.replicas.get('a');
  for (const key of keys) {
    const pref = a?.placement(key).preferred ?? [];
    const texts = new Set(pref.map((n) => canonical(c.replicas.get(n)?.localRecord(key) ?? null)));
    if (texts.size > 1) out.add(key);
  }
  return out;
}

interface Traffic {
  byType: Map<string, number>;
  rootsSent: number;
  leafSegments: Set<number>;
  leafDigests: number;
  keyDigests: number;
  pushedRecords: number;
  pushedKeys: Set<string>;
}

async function run(seed: number, antiEntropy: boolean) {
  const c = new LocalCluster({
    seed,
    nodes: NODES,
    replica: {
      readRepair: false,
      hintIntervalMs: 1e12,
      antiEntropyIntervalMs: antiEntropy ? 500 : 0,
      requestTimeoutMs: 1000,
      swim: { periodMs: 500, pingTimeoutMs: 100 },
    },
    delay: [1, 10],
  });
  await c.boot();
  const rnd = c.random.fork();
  const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
  // 1. the base data, on every replica
  for (let i = 0; i < KEYS; i += 100) {
    const batch: PendingOp<WriteResult>[] = keys
      .slice(i, i + 100)
      .map((key) =>
        c.write(rnd.pick(NODES), { type: 'kv-write', key, op: { op: 'put', value: 0 }, w: 'all' }),
      );
    await c.runUntil(() => batch.every((o) => o.done), 10_000);
    const failed = batch.filter((o) => !o.ok);
    if (failed.length > 0)
      throw new Error(`seed ${seed}: base write failed: ${JSON.stringify(failed[0]?.err)}`);
  }
  const baseDiff = keysDiffering(c, keys).size;
  // 2. c misses some writes
  c.partition([[VICTIM], NODES.filter((n) => n !== VICTIM)]);
  const onVictim = keys.filter((k) => c.replicas.get('a')?.placement(k).preferred.includes(VICTIM));
  const updates: PendingOp<WriteResult>[] = [];
  for (const key of rnd.shuffle([...onVictim]).slice(0, UPDATES)) {
    const via = rnd.pick(NODES.filter((n) => n !== VICTIM));
    updates.push(c.write(via, { type: 'kv-write', key, op: { op: 'put', value: 1 }, w: 'one' }));
    await c.runFor(rnd.between(5, 30));
  }
  await c.runUntil(() => updates.every((o) => o.done), 10_000);
  await c.runFor(3000); // every coordinator has given up resending to c
  // 3. heal; from now on only anti-entropy can move data
  c.heal();
  const differing = keysDiffering(c, keys);
  const rangesBefore = rangesDiffering(c);
  const traffic: Traffic = {
    byType: new Map(),
    rootsSent: 0,
    leafSegments: new Set(),
    leafDigests: 0,
    keyDigests: 0,
    pushedRecords: 0,
    pushedKeys: new Set(),
  };
  c.onSend = (_from, _to, msg: PeerMessage) => {
    traffic.byType.set(msg.type, (traffic.byType.get(msg.type) ?? 0) + 1);
    if (msg.type === 'ae-roots') traffic.rootsSent += msg.roots.length;
    if (msg.type === 'ae-leaves')
      for (const [seg, leaves] of msg.segs) {
        traffic.leafSegments.add(seg);
        traffic.leafDigests += leaves.length;
      }
    if (msg.type === 'ae-keys') for (const [, , kd] of msg.items) traffic.keyDigests += kd.length;
    if (msg.type === 'ae-push') {
      traffic.pushedRecords += msg.records.length;
      for (const [k] of msg.records) traffic.pushedKeys.add(k);
    }
  };
  const healedAt = c.time;
  const converged = await c.runUntil(() => rangesDiffering(c) === 0, CONVERGENCE_BOUND_MS);
  const stats = [...c.replicas.values()].map((r) => r.snapshot().stats);
  return {
    c,
    keys,
    baseDiff,
    updates,
    differing,
    rangesBefore,
    converged,
    convergenceMs: c.time - healedAt,
    after: keysDiffering(c, keys),
    traffic,
    readRepairs: stats.reduce((s, x) => s + x.readRepairs, 0),
    hintsDelivered: stats.reduce((s, x) => s + x.hintsDelivered, 0),
    segmentOf: (k: string) => c.replicas.get('a')?.segmentOf(k) as number,
  };
}

function seedList(): number[] {
  const one = process.env.GOSSIP_AE_SEED;
  if (one !== undefined && one !== '') return [Number(one)];
  const n = Number(process.env.GOSSIP_AE_SEEDS ?? 1);
  return Array.from({ length: Math.max(1, n) }, (_, i) => 9400 + i);
}

for (const seed of seedList()) {
  t.test(`seed ${seed}: anti-entropy alone repairs what differs, and only that`, async (t) => {
    const r = await run(seed, true);
    const tr = r.traffic;
    const acked = r.updates.filter((o) => o.ok).length;
    t.equal(r.baseDiff, 0, 'the base data was identical on every replica');
    t.ok(acked >= UPDATES / 2, `updates acknowledged while ${VICTIM} was away (${acked})`);
    t.ok(r.differing.size > 0, `replicas diverged: ${r.differing.size} keys differ at the heal`);
    const segmentsTotal = new Set(r.keys.map(r.segmentOf)).size;
    const differingSegments = new Set([...r.differing].map(r.segmentOf));
    t.comment(
      `seed ${seed}: ${r.differing.size} of ${KEYS} keys (${r.rangesBefore} key ranges) differed at the heal; converged in ${r.convergenceMs} virtual ms (bound ${CONVERGENCE_BOUND_MS})`,
    );
    t.comment(
      `seed ${seed}: after the heal: ${tr.byType.get('ae-roots') ?? 0} root exchanges (${tr.rootsSent} range roots), leaves of ${tr.leafSegments.size} ranges exchanged (of ${segmentsTotal} ranges holding keys; ${differingSegments.size} hold a differing key), ${tr.leafDigests} leaf digests, ${tr.keyDigests} key digests, ${tr.pushedRecords} records pushed for ${tr.pushedKeys.size} distinct keys (of ${KEYS} keys × 3 replicas = ${KEYS * 3} records); messages by type ${JSON.stringify(Object.fromEntries(tr.byType))}`,
    );
    t.ok(r.converged, `Merkle roots equal within ${CONVERGENCE_BOUND_MS} ms (seed ${seed})`);
    t.equal(r.after.size, 0, 'every key identical on its replicas');
    t.equal(tr.byType.get('rep-write') ?? 0, 0, 'no replica write after the heal');
    t.equal(tr.byType.get('hint-deliver') ?? 0, 0, 'no hint delivered');
    t.equal(tr.byType.get('rep-read') ?? 0, 0, 'no read');
    t.equal(r.readRepairs, 0, 'no read repair');
    t.equal(r.hintsDelivered, 0, 'no hinted handoff');
    t.ok((tr.byType.get('ae-push') ?? 0) > 0, 'anti-entropy pushed records');
    const strayKeys = [...tr.pushedKeys].filter((k) => !r.differing.has(k));
    t.same(strayKeys, [], 'every record pushed belongs to a key that differed');
    t.same(
      [...r.differing].filter((k) => !tr.pushedKeys.has(k)),
      [],
      'every differing key was pushed',
    );
    const strayRanges = [...tr.leafSegments].filter((s) => !differingSegments.has(s));
    t.same(strayRanges, [], 'leaves were exchanged only for key ranges holding a differing key');
    t.ok(
      tr.pushedRecords <= 4 * r.differing.size,
      `records pushed (${tr.pushedRecords}) ≤ 4 × differing keys (${r.differing.size}), not the ${KEYS * 3} records held`,
    );
    t.ok(
      tr.keyDigests <= 0.1 * KEYS * 3,
      `key digests exchanged (${tr.keyDigests}) ≤ 10% of the ${KEYS * 3} records held`,
    );
  });
}

t.test('negative control: with anti-entropy off the replicas stay divergent', async (t) => {
  const seed = seedList()[0] as number;
  const r = await run(seed, false);
  t.ok(r.differing.size > 0, `replicas diverged (${r.differing.size} keys)`);
  t.notOk(r.converged, `no convergence in ${CONVERGENCE_BOUND_MS} ms`);
  t.equal(r.after.size, r.differing.size, `still ${r.after.size} keys differ: nothing repaired`);
  t.equal(r.traffic.byType.get('ae-push') ?? 0, 0, 'no anti-entropy traffic');
});
