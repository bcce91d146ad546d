/**
 * LogKeyStore compaction: the log stays bounded under overwrites, a reload gives the same
 * image, and crashes at random moments (with torn unsynced tails, during checkpoints too) never
 * lose an acknowledged write nor resurrect an older value. Negative control: without
 * compaction the same workload's log grows with every write. SYNOD_SEED=n replays one seed.
 */
import t from 'tap';
import { LogKeyStore } from '../../actors/gossip/log-store.js';
import type { KeyRecord } from '../../actors/gossip/record.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';
import { advance } from '../helpers/virtual-time.js';

const rec = (n: number): KeyRecord => ({ t: 'pn', s: { p: { a: n }, n: {} } });
const counterOf = (r: KeyRecord | undefined): number =>
  r === undefined ? 0 : ((r as unknown as { s: { p: { a: number } } }).s.p.a ?? 0);

t.test('the log stays bounded under overwrites and reloads to the same image', async (t) => {
  const disk = new MemoryDisk();
  const log = await MemoryLogStore.open(disk, { name: 'g' });
  const store = new LogKeyStore(log, {
    compactMinEntries: 100,
    compactRatio: 2,
    checkpointChunk: 7,
  });
  await store.load();
  await store.saveMeta('incarnation', 3);
  const model = new Map<string, number>();
  let maxEntries = 0;
  for (let i = 1; i <= 3000; i++) {
    const key = `k${i % 40}`;
    model.set(key, i);
    const batch =
      i % 50 === 0
        ? [
            { ns: 'data' as const, key, rec: rec(i) },
            { ns: 'hint' as const, target: 'z', key, rec: rec(i) },
          ]
        : [{ ns: 'data' as const, key, rec: rec(i) }];
    await store.write(batch);
    if (i % 50 === 25)
      await store.write([{ ns: 'hint', target: 'z', key: `k${(i + 25) % 40}`, rec: null }]);
    maxEntries = Math.max(maxEntries, store.stats.entries);
  }
  await store.compact();
  t.ok(store.stats.compactions > 10, `compacted ${store.stats.compactions} times`);
  t.ok(maxEntries <= 200, `the log never held more than ${maxEntries} entries (3000 writes)`);
  await store.close();
  const again = new LogKeyStore(await MemoryLogStore.open(disk, { name: 'g' }));
  const image = await again.load();
  t.equal(image.data.length, 40);
  for (const [k, r] of image.data) t.equal(counterOf(r), model.get(k), `${k} has its last value`);
  t.same(image.meta, { incarnation: 3 }, 'meta survives compaction');
  t.ok(image.hints.length > 0, 'hints survive');
  for (const [target, k, r] of image.hints) {
    t.equal(target, 'z');
    t.ok(counterOf(r) > 0, `hint ${k}`);
  }
  await again.close();
});

t.test('negative control: without compaction the log grows with every write', async (t) => {
  const log = await MemoryLogStore.open(new MemoryDisk(), { name: 'g' });
  const store = new LogKeyStore(log, { compactMinEntries: Number.POSITIVE_INFINITY });
  await store.load();
  for (let i = 1; i <= 500; i++)
    await store.write([{ ns: 'data', key: `k${i % 10}`, rec: rec(i) }]);
  t.equal(store.stats.entries, 500);
  t.equal(store.stats.compactions, 0);
});

/** Runs crash rounds; returns the violations found. `lying`: acknowledge before durable. */
async function crashRounds(
  seed: number,
  lying: boolean,
): Promise<{ bad: string[]; compactions: number }> {
  const random = new Random(seed);
  // syncs happen only when virtual time passes: a crash finds unsynced writes to lose or tear
  const clock = new VirtualClock();
  const disk = new MemoryDisk({ clock, syncDelayMs: 5 });
  const acked = new Map<string, number>();
  const written = new Map<string, number>();
  const bad: string[] = [];
  let seq = 0;
  let compactions = 0;
  for (let round = 0; round < 6; round++) {
    const log = await MemoryLogStore.open(disk, { name: 'g' });
    const store = new LogKeyStore(log, {
      compactMinEntries: 30,
      compactRatio: 1.5,
      checkpointChunk: 1 + random.int(5),
    });
    const image = await store.load();
    const loaded = new Map(image.data.map(([k, r]) => [k, counterOf(r)]));
    for (const k of new Set([...acked.keys(), ...loaded.keys()])) {
      const v = loaded.get(k) ?? 0;
      const lo = acked.get(k) ?? 0;
      const hi = written.get(k) ?? 0;
      if (v < lo || v > hi) bad.push(`round ${round}: ${k} = ${v}, acked ${lo}, written ${hi}`);
    }
    // continue from what survived: it is the truth now
    acked.clear();
    for (const [k, v] of loaded) acked.set(k, v);
    const ops = 50 + random.int(200);
    for (let i = 0; i < ops; i++) {
      const key = `k${random.int(12)}`;
      const v = ++seq;
      written.set(key, v);
      const durable = store.write([{ ns: 'data', key, rec: rec(v) }]);
      (lying ? Promise.resolve() : durable).then(
        () => {
          if ((acked.get(key) ?? 0) < v) acked.set(key, v);
        },
        () => {},
      );
      if (random.int(10) === 0) store.compact().catch(() => {});
      if (random.int(4) === 0) await Promise.resolve();
      if (random.int(8) === 0) await advance(clock, random.int(8));
    }
    await advance(clock, random.int(3));
    compactions += store.stats.compactions;
    disk.crash({ tearLastUnsynced: true, random });
  }
  return { bad, compactions };
}

const SEEDS = process.env.SYNOD_SEED
  ? [Number(process.env.SYNOD_SEED)]
  : Array.from({ length: Number(process.env.GOSSIP_STORE_SEEDS ?? 20) }, (_, i) => 700 + i);

t.test('crashes at random moments lose no acknowledged write', async (t) => {
  for (const seed of SEEDS) {
    const { bad, compactions } = await crashRounds(seed, false);
    t.same(bad, [], `seed ${seed}: no acknowledged write lost, nothing older resurrected`);
    t.ok(compactions > 0, `seed ${seed}: ${compactions} compactions across 6 crashes`);
  }
});

t.test('negative control: acknowledging before durable is caught', async (t) => {
  let caught = 0;
  for (const seed of SEEDS) if ((await crashRounds(seed, true)).bad.length > 0) caught++;
  t.ok(
    caught > 0,
    `the checker flagged lost acknowledged writes in ${caught}/${SEEDS.length} seeds`,
  );
});
