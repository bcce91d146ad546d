/**
 * Sizes: an incremental grows with the keys changed, not with the database; a backup when
 * nothing changed is its manifest and nothing more; a second full of a barely changed state
 * stores only the chunks around the changes (content-defined chunking keeps the others).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import { Repository } from '../../actors/backup/repository.js';
import { keyName, randomValue } from '../../actors/backup/workload.js';

const chunker = { avgSize: 8192, minSize: 2048, maxSize: 32768 };

async function loaded(t: { teardown(fn: () => unknown): void }, keys: number, seed: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-size-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { chunker, clusterId: 'c' });
  const d = new RepoDriver(repo, 'c', seed);
  for (let i = 0; i < keys; i++)
    d.applyOp({ type: 'put', key: keyName(i), value: randomValue(d.random, 100, 100) });
  await d.backup('full');
  return d;
}

function change(d: RepoDriver, n: number, keySpace: number): number {
  let bytes = 0;
  const seen = new Set<number>();
  while (seen.size < n) {
    const k = d.random.int(keySpace);
    if (seen.has(k)) continue;
    seen.add(k);
    const value = randomValue(d.random, 100, 100);
    bytes += keyName(k).length + value.length;
    d.applyOp({ type: 'put', key: keyName(k), value });
  }
  return bytes;
}

t.test('incremental size follows the changed keys, not the database size', async (t) => {
  const smallDb = await loaded(t, 2_000, 1);
  const bigDb = await loaded(t, 20_000, 2);
  change(smallDb, 100, 2_000);
  change(bigDb, 100, 20_000);
  const a = await smallDb.backup('incr');
  const b = await bigDb.backup('incr');
  t.equal(a.records, 101, '100 keys and the client session');
  t.equal(b.records, 101);
  t.ok(
    b.storedBytes < a.storedBytes * 1.5 && a.storedBytes < b.storedBytes * 1.5,
    `100 changed keys: ${a.storedBytes} B with 2k keys, ${b.storedBytes} B with 20k keys`,
  );
  change(bigDb, 1_000, 20_000);
  const c = await bigDb.backup('incr');
  t.ok(
    c.storedBytes > b.storedBytes * 5,
    `1000 changed keys store ${c.storedBytes} B vs ${b.storedBytes} B for 100`,
  );
  const full = bigDb.lastFull;
  t.ok(full && c.storedBytes < full.storedBytes / 10, 'far below a full');
});

t.test('a backup when nothing changed is its manifest alone', async (t) => {
  const d = await loaded(t, 5_000, 3);
  for (const type of ['incr', 'diff', 'full'] as const) {
    const m = await d.backup(type);
    const manifestBytes = await d.repo.manifestSize(m.id);
    t.equal(m.storedBytes, 0, `${type}: no new chunk bytes (manifest ${manifestBytes} B)`);
    if (type !== 'full') t.equal(m.chunks.length, 0);
  }
});

t.test('a second full stores only the chunks around the changes', async (t) => {
  const d = await loaded(t, 20_000, 4);
  const first = d.lastFull;
  change(d, 10, 20_000);
  const m = await d.backup('full');
  t.ok(
    first && m.storedBytes < first.storedBytes * 0.25,
    `second full stored ${m.storedBytes} B of ${m.bytes} (first: ${first?.storedBytes})`,
  );
  // negative control: with every key changed nothing deduplicates
  const all = change(d, 20_000, 20_000);
  const n = await d.backup('full');
  t.ok(n.storedBytes > (all / 2) * 0.5, `all keys changed: ${n.storedBytes} B stored`);
});
