/**
 * The replica actor on the actor runtime's deterministic simulation (lib/sim): five
 * replica nodes plus a client node, stores on the storage layer's MemoryLogStore over a
 * MemoryDisk (a crash loses unsynced writes), random partitions, 20% loss, a crash and
 * restart, then heal: Merkle roots equal everywhere within a reported bound, no
 * acknowledged increment or add lost. SYNOD_SEED=n replays a run.
 */
import t from 'tap';
import { EventualClient } from '../../actors/gossip/client.js';
import { LogKeyStore } from '../../actors/gossip/log-store.js';
import {
  GossipReplica,
  type InspectResult,
  type ReplicaMessage,
} from '../../actors/gossip/replica.js';
import type { Replies } from '../../lib/actor.js';
import { Simulation, seedFromEnv } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

const REPLICAS = ['a', 'b', 'c', 'd', 'e'];
const keyTypes = [
  { prefix: 'pn/', type: 'pn' as const },
  { prefix: 'set/', type: 'orset' as const },
];
const BOUND_MS = 30_000;

function makeSim(seed: number) {
  const sim = new Simulation<MemoryDisk>({
    seed,
    nodes: [...REPLICAS, 'cl'],
    faults: { delay: { min: 1, max: 10 } },
    createDisk: () => new MemoryDisk(),
  });
  sim.onStart(async (node) => {
    if (node.id === 'cl') return;
    if (process.env.GOSSIP_DEBUG) {
      node.system.failures$.subscribe((f) =>
        console.error(
          'FAILURE',
          node.id,
          String(f.error),
          (f.error as Error).stack,
          JSON.stringify(f.message).slice(0, 200),
          f.decision,
        ),
      );
      node.system.lifecycle$.subscribe((l) =>
        console.error('LIFECYCLE', node.id, sim.clock.now(), l.event, l.address),
      );
    }
    const log = await MemoryLogStore.open(node.disk, { name: 'gossip' });
    // first boot: everyone joins through a; after a crash, through any other replica
    const seeds =
      node.incarnation === 1
        ? node.id === 'a'
          ? []
          : ['a']
        : REPLICAS.filter((r) => r !== node.id);
    node.system.spawn(
      'gossip',
      new GossipReplica({
        store: new LogKeyStore(log),
        seeds,
        keyTypes,
        requestTimeoutMs: 1000,
        antiEntropyIntervalMs: 500,
        swim: { periodMs: 500, pingTimeoutMs: 100 },
      }),
    );
  });
  return sim;
}

async function inspect(
  sim: Simulation<MemoryDisk>,
  node: string,
): Promise<InspectResult | undefined> {
  try {
    return await sim.await(
      sim
        .system('cl')
        .ask(
          `${node}/gossip`,
          { type: 'replica-inspect' } as ReplicaMessage & Replies<InspectResult>,
          500,
        ),
      { timeout: 1000 },
    );
  } catch {
    return undefined;
  }
}

/** Divergent (segment, root) pairs across live replicas; Infinity if some replica did not answer. */
async function divergence(sim: Simulation<MemoryDisk>): Promise<number> {
  const roots = new Map<number, Set<string>>();
  const rings = new Set<string>();
  let hints = 0;
  for (const n of REPLICAS) {
    if (!sim.isUp(n)) continue;
    const r = await inspect(sim, n);
    if (!r) return Number.POSITIVE_INFINITY;
    rings.add(r.ring);
    hints += r.hints;
    for (const [seg, root] of r.roots) {
      const s = roots.get(seg) ?? new Set<string>();
      s.add(root);
      roots.set(seg, s);
    }
  }
  if (rings.size !== 1) return Number.POSITIVE_INFINITY;
  let d = hints;
  for (const s of roots.values()) d += s.size - 1;
  return d;
}

t.test(
  'replica actors converge after partitions, loss and a crash; acknowledged CRDT updates survive',
  async (t) => {
    const seed = seedFromEnv(77);
    const sim = makeSim(seed);
    await sim.start();
    await sim.runFor(10_000); // members join through their seeds
    const client = new EventualClient(sim.system('cl'), {
      replicas: REPLICAS.map((r) => `${r}/gossip`),
      timeoutMs: 3000,
    });
    sim.network.setFaults({ drop: 0.2, delay: { min: 1, max: 10 } });
    const rnd = sim.random.fork();
    let ackedSum = 0;
    let maybeSum = 0;
    const ackedAdds: string[] = [];
    const ops: Promise<void>[] = [];
    let crashed: string | undefined;
    for (let i = 0; i < 300; i++) {
      if (i % 50 === 10) {
        const s = rnd.shuffle([...REPLICAS, 'cl']);
        sim.network.partition([s.slice(0, 3), s.slice(3)]);
      }
      if (i % 50 === 30) sim.network.heal();
      if (i === 120) {
        crashed = rnd.pick(REPLICAS.filter((r) => r !== 'a'));
        sim.crash(crashed);
      }
      if (i === 200 && crashed) {
        await sim.restart(crashed);
        crashed = undefined;
      }
      if (i % 2 === 0) {
        const by = 1 + rnd.int(3);
        ops.push(
          client.increment('pn/total', by, { w: 'quorum' }).then(
            () => {
              ackedSum += by;
            },
            (e: { indeterminate?: boolean }) => {
              if (e.indeterminate) maybeSum += by;
            },
          ),
        );
      } else {
        const el = `x${i}`;
        ops.push(
          client.add('set/all', el, { w: 'one' }).then(
            () => void ackedAdds.push(el),
            () => {},
          ),
        );
      }
      await sim.runFor(50);
      if (process.env.GOSSIP_DEBUG && i % 10 === 0) {
        const line: string[] = [];
        for (const n of REPLICAS) {
          if (!sim.isUp(n)) continue;
          const snap = (await sim
            .await(
              sim.system('cl').ask(`${n}/gossip`, { type: 'replica-snapshot' } as never, 500),
              { timeout: 1000 },
            )
            .catch(() => undefined)) as
            | { members: { id: string; state: string; incarnation: number }[] }
            | undefined;
          line.push(
            `${n}:${snap?.members.map((m) => m.id + m.state[0] + m.incarnation).join(',')}`,
          );
        }
        console.error(i, Math.round(sim.clock.now()), line.join(' | '));
      }
    }
    await sim.await(Promise.all(ops), { timeout: 20_000 });
    sim.network.heal();
    // replicas keep losing 20% of their messages; the observer's own links do not, so
    // that a lost inspection is not mistaken for divergence
    for (const r of REPLICAS) {
      sim.network.setLinkFaults('cl', r, { drop: 0 });
      sim.network.setLinkFaults(r, 'cl', { drop: 0 });
    }
    const healedAt = sim.clock.now();
    let converged = false;
    while (sim.clock.now() - healedAt < BOUND_MS) {
      await sim.runFor(1000);
      if ((await divergence(sim)) === 0) {
        converged = true;
        break;
      }
    }
    const took = sim.clock.now() - healedAt;
    if (!converged || process.env.GOSSIP_DEBUG) {
      for (const n of REPLICAS) {
        const snap = await sim
          .await(sim.system('cl').ask(`${n}/gossip`, { type: 'replica-snapshot' } as never, 500), {
            timeout: 1000,
          })
          .catch((e: unknown) => String(e));
        t.comment(`${n} up=${sim.isUp(n)} ${JSON.stringify(snap)}`);
        const ins = await inspect(sim, n);
        t.comment(`${n} ring=${ins?.ring} keys=${ins?.keys} hints=${ins?.hints}`);
      }
    }
    t.comment(
      `seed ${seed}: ${ackedAdds.length} adds and increments summing to ${ackedSum} acknowledged; converged ${converged} in ≤ ${took} virtual ms (bound ${BOUND_MS})`,
    );
    t.ok(
      converged,
      `seed ${seed}: Merkle roots equal on every replica within ${BOUND_MS} ms of the heal`,
    );
    sim.network.setFaults({ delay: { min: 1, max: 10 } });
    const total = await sim.await(client.get('pn/total', { r: 'all' }), { timeout: 10_000 });
    t.ok(
      (total.value as number) >= ackedSum && (total.value as number) <= ackedSum + maybeSum,
      `seed ${seed}: counter ${String(total.value)} within [${ackedSum}, ${ackedSum + maybeSum}]`,
    );
    const set = await sim.await(client.get('set/all', { r: 'all' }), { timeout: 10_000 });
    const have = new Set(set.value as string[]);
    t.same(
      ackedAdds.filter((e) => !have.has(e)),
      [],
      `seed ${seed}: every acknowledged add present`,
    );
  },
);

t.test('levels through the client: eventual and session work, strong is refused', async (t) => {
  const sim = makeSim(seedFromEnv(78));
  await sim.start();
  await sim.runFor(10_000);
  const client = new EventualClient(sim.system('cl'), { replicas: ['c/gossip'], level: 'session' });
  const w = await sim.await(client.put('greeting', 'hi', { w: 'one' }), { timeout: 5000 });
  t.ok(w.context.length > 0);
  const r = await sim.await(client.get('greeting', { r: 'one' }), { timeout: 5000 });
  t.same(r.values, ['hi'], 'session read sees the write');
  await t.rejects(sim.await(client.put('greeting', 'x', { level: 'strong' }), { timeout: 5000 }), {
    code: 'SYNOD_ERR_STRONG_UNSUPPORTED',
  });
  await t.rejects(sim.await(client.get('greeting', { level: 'strong' }), { timeout: 5000 }), {
    code: 'SYNOD_ERR_STRONG_UNSUPPORTED',
  });
  // siblings through the client: a second client writes blind, the first resolves
  const other = new EventualClient(sim.system('cl'), { replicas: ['e/gossip'] });
  await sim.await(other.put('greeting', 'hello', { w: 'all' }), { timeout: 5000 });
  const both = await sim.await(client.get('greeting', { r: 'all' }), { timeout: 5000 });
  t.same([...both.values].sort(), ['hello', 'hi'], 'concurrent writes are siblings');
  await sim.await(client.put('greeting', 'hi+hello', { w: 'all' }), { timeout: 5000 });
  const one = await sim.await(other.get('greeting', { r: 'all' }), { timeout: 5000 });
  t.same(one.values, ['hi+hello'], 'the resolving write replaced both');
});
