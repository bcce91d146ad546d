/**
 * Convergence under faults: clients write DVV registers, PN counters and OR-sets while the
 * network partitions at random, drops 20% of messages and duplicates some, and nodes crash
 * and rejoin from their stores. After the partitions heal and writes stop, every key range
 * has identical Merkle roots on all its replicas within a bound the test reports and
 * asserts; no acknowledged counter increment or set add is lost.
 *
 * GOSSIP_SEEDS=n runs n seeds (default 2); a failure names its seed.
 */
import t from 'tap';
import type { WriteResult } from '../../actors/gossip/messages.js';
import type { PendingOp } from '../../actors/gossip/testkit.js';
import { LocalCluster } from '../../actors/gossip/testkit.js';

const SEEDS = Number(process.env.GOSSIP_SEEDS ?? 2);
const NODES = ['a', 'b', 'c', 'd', 'e'];
const keyTypes = [
  { prefix: 'pn/', type: 'pn' as const },
  { prefix: 'set/', type: 'orset' as const },
];
/** Virtual ms allowed from heal to identical Merkle roots. */
const CONVERGENCE_BOUND_MS = 30_000;

interface Tracked {
  op: PendingOp<WriteResult>;
  kind: 'inc' | 'add' | 'put';
  key: string;
  by?: number;
  element?: string;
}

async function chaosRun(seed: number, opts: { antiEntropy: boolean }) {
  const c = new LocalCluster({
    seed,
    nodes: NODES,
    replica: {
      keyTypes,
      antiEntropyIntervalMs: opts.antiEntropy ? 500 : 0,
      readRepair: opts.antiEntropy,
      hintIntervalMs: opts.antiEntropy ? 500 : 1e12,
      requestTimeoutMs: 1000,
      swim: { periodMs: 500, pingTimeoutMs: 100 },
    },
    delay: [1, 20],
  });
  await c.boot();
  c.loss = 0.2;
  c.duplicate = 0.05;
  const rnd = c.random.fork();
  const tracked: Tracked[] = [];
  let element = 0;
  const crashed = new Set<string>();
  const WRITE_MS = 30_000;
  const end = c.time + WRITE_MS;
  let nextFault = c.time + 2000;
  while (c.time < end) {
    if (c.time >= nextFault) {
      nextFault = c.time + rnd.between(1000, 4000);
      const roll = rnd.int(4);
      if (roll === 0) {
        const shuffled = rnd.shuffle([...NODES]);
        const cut = rnd.between(1, 4);
        c.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      } else if (roll === 1) {
        c.heal();
      } else if (roll === 2 && crashed.size === 0) {
        const victim = rnd.pick(NODES);
        c.crash(victim);
        crashed.add(victim);
      } else {
        for (const v of crashed) await c.restart(v);
        crashed.clear();
      }
    }
    const node = rnd.pick(NODES);
    const kind = rnd.int(3);
    if (kind === 0) {
      const key = `pn/c${rnd.int(4)}`;
      const by = rnd.between(1, 5);
      tracked.push({
        op: c.write(node, {
          type: 'kv-write',
          key,
          op: { op: 'increment', by },
          w: rnd.pick(['one', 'quorum'] as const),
        }),
        kind: 'inc',
        key,
        by,
      });
    } else if (kind === 1) {
      const key = `set/s${rnd.int(3)}`;
      const el = `e${element++}`;
      tracked.push({
        op: c.write(node, { type: 'kv-write', key, op: { op: 'add', element: el } }),
        kind: 'add',
        key,
        element: el,
      });
    } else {
      const key = `reg/k${rnd.int(20)}`;
      tracked.push({
        op: c.write(node, {
          type: 'kv-write',
          key,
          op: { op: 'put', value: rnd.int(1000) },
          w: 'one',
        }),
        kind: 'put',
        key,
      });
    }
    await c.runFor(rnd.between(5, 40));
  }
  // writes stop; the network heals (message loss continues); crashed nodes come back
  c.heal();
  const healedAt = c.time;
  for (const v of crashed) await c.restart(v);
  const converged = await c.runUntil(
    () => c.divergence() === 0 && c.membershipStable(),
    CONVERGENCE_BOUND_MS,
  );
  return { c, tracked, converged, convergenceMs: c.time - healedAt };
}

/** A read that retries (messages are still being dropped at 20%). */
async function readAll(c: LocalCluster, node: string, key: string) {
  for (let i = 0; i < 20; i++) {
    const r = await c.call(c.get(node, { type: 'kv-get', key, r: 'all' }));
    if (r.ok) return r.ok;
  }
  throw new Error(`seed ${c.options.seed}: cannot read ${key}`);
}

for (let s = 0; s < SEEDS; s++) {
  const seed = 9100 + s;
  t.test(`seed ${seed}: replicas converge and keep every acknowledged CRDT update`, async (t) => {
    const { c, tracked, converged, convergenceMs } = await chaosRun(seed, { antiEntropy: true });
    const acked = tracked.filter((x) => x.op.ok).length;
    const failed = tracked.filter((x) => x.op.err).length;
    const pending = tracked.filter((x) => !x.op.done).length;
    t.comment(
      `seed ${seed}: ${tracked.length} writes (${acked} acked, ${failed} failed, ${pending} unfinished), converged in ${convergenceMs} virtual ms after heal (bound ${CONVERGENCE_BOUND_MS})`,
    );
    t.ok(converged, `Merkle roots equal on all replicas within ${CONVERGENCE_BOUND_MS} ms`);
    t.ok(acked > tracked.length / 3, 'a good share of writes succeeded despite the faults');

    // PN counters: acked ≤ final ≤ acked + indeterminate
    for (let i = 0; i < 4; i++) {
      const key = `pn/c${i}`;
      const incs = tracked.filter((x) => x.kind === 'inc' && x.key === key);
      const ackedSum = incs.filter((x) => x.op.ok).reduce((s, x) => s + (x.by ?? 0), 0);
      const maybe = incs
        .filter((x) => !x.op.done || x.op.err?.code === 'SYNOD_ERR_TIMEOUT')
        .reduce((s, x) => s + (x.by ?? 0), 0);
      const value = (await readAll(c, 'a', key)).value as number;
      t.ok(
        value >= ackedSum && value <= ackedSum + maybe,
        `${key}: ${ackedSum} acked ≤ ${value} ≤ ${ackedSum + maybe}`,
      );
    }
    // OR-sets: every acknowledged add is there (nothing removes)
    for (let i = 0; i < 3; i++) {
      const key = `set/s${i}`;
      const have = new Set((await readAll(c, 'b', key)).value as string[]);
      const lost = tracked.filter(
        (x) => x.kind === 'add' && x.key === key && x.op.ok && !have.has(x.element as string),
      );
      t.equal(lost.length, 0, `${key}: no acknowledged add lost (${have.size} elements)`);
    }
    // registers: every replica of every key holds the same record
    let disagreements = 0;
    for (let i = 0; i < 20; i++) {
      const key = `reg/k${i}`;
      const pref = c.replicas.get('a')?.placement(key).preferred ?? [];
      const texts = new Set(
        pref.map((n) => JSON.stringify(c.replicas.get(n)?.localRecord(key) ?? null)),
      );
      if (texts.size > 1) disagreements++;
    }
    t.equal(disagreements, 0, 'every register identical on its replicas');
  });
}

t.test(
  'negative control: with anti-entropy, read repair and handoff off, replicas stay diverged',
  async (t) => {
    const { c, converged } = await chaosRun(9100, { antiEntropy: false });
    t.notOk(converged, `divergence remains: ${c.divergence()} differing (range, replica) pairs`);
  },
);
