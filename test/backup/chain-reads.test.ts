/**
 * A restore reads each chunk once, however long the chain (restore.ts, executeRestore): a
 * full, a diff and a run of incrs whose changes overlap (the same keys set to the same values
 * again, so later layers store chunks earlier layers already hold) restored through a chunk
 * store that counts its reads. Every distinct chunk of the chain is read exactly once, and the
 * rebuilt state's digest is the one recorded at backup time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { StateDigest } from '../../actors/backup/digest.js';
import type { Manifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { type MapOp, MapState } from '../../actors/backup/state.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { Random } from '../../lib/random.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 1010);
const small = { avgSize: 1024, minSize: 256, maxSize: 4096 };
const key = (i: number) => `k${String(i).padStart(4, '0')}`;
/** The same bytes for the same (key, version): a toggled group writes identical records. */
const value = (i: number, version: number) =>
  new TextEncoder().encode(`${key(i)}=v${version}:${'x'.repeat(40 + (i % 23))}`);

t.test(`each chunk is read once across a chain of 12 backups (seed ${SEED})`, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-chain-reads-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { chunker: small, clusterId: 'c1' });
  const r = new Random(SEED);
  const tracked = new TrackedState(new MapState());
  let index = 0;
  const apply = (op: MapOp) => {
    index++;
    tracked.apply(op, { index, term: 1, time: 1000 + index });
  };
  for (let i = 0; i < 600; i++) apply({ type: 'put', key: key(i), value: value(i, 0) });

  const expected = new Map<string, string>();
  let full: Manifest | undefined;
  let last: Manifest | undefined;
  for (let round = 0; round <= 14; round++) {
    if (round > 0) {
      // Keys 100..299 toggle between two versions: the incrs of rounds r and r + 2 hold the
      // same records for them, so the same chunks. A few keys elsewhere change every round.
      for (let i = 100; i < 300; i++)
        apply({ type: 'put', key: key(i), value: value(i, round % 2 ? 1 : 2) });
      for (let j = 0; j < 5; j++) {
        const i = 400 + r.int(200);
        apply(
          r.chance(0.2)
            ? { type: 'delete', key: key(i) }
            : { type: 'put', key: key(i), value: value(i, 10 + round) },
        );
      }
    }
    const type = round === 0 ? 'full' : round === 4 ? 'diff' : 'incr';
    const cap =
      type === 'full'
        ? tracked.captureFull()
        : tracked.captureChanges(type === 'diff' ? (full?.index ?? 0) : (last?.index ?? 0));
    const m = await repo.writeBackup({
      type,
      ...(type === 'diff' ? { parent: full } : type === 'incr' ? { parent: last } : {}),
      index: cap.index,
      term: cap.term,
      time: cap.time,
      clusterId: 'c1',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 1_700_000_000_000 + round,
    } as Parameters<Repository['writeBackup']>[0]);
    if (type === 'full') full = m;
    last = m;
    const d = new StateDigest();
    for (const [k, v] of tracked.state.entries()) d.add(k, v);
    expected.set(m.id, d.hex());
  }

  // Count every chunk read (get() goes through getWithDigests()).
  const reads = new Map<string, number>();
  const inner = repo.chunks.getWithDigests.bind(repo.chunks);
  repo.chunks.getWithDigests = (id, size, records) => {
    reads.set(id, (reads.get(id) ?? 0) + 1);
    return inner(id, size, records);
  };

  const tip = last as Manifest;
  const res = await restore(
    repo,
    { kind: 'backup', id: tip.id },
    { factory: () => new MapState() },
  );
  t.equal(res.chain.length, 12, 'full + diff + 10 incrs');
  t.equal(res.digest, expected.get(tip.id), 'the restored digest is the recorded one');
  t.equal(res.digest, tip.stateDigest);

  const chain = await Promise.all(res.chain.map((id) => repo.get(id)));
  const refs = chain.flatMap((m) => m.chunks.map((c) => c.id));
  const distinct = new Set(refs);
  t.ok(
    refs.length >= distinct.size + 10,
    `the chain's layers share chunks (${refs.length} references, ${distinct.size} distinct)`,
  );
  t.same(new Set(reads.keys()), distinct, 'every chunk of the chain is read, and no other');
  const twice = [...reads].filter(([, n]) => n !== 1);
  t.same(twice, [], 'no chunk is read more than once');
  t.equal(res.chunksRead, distinct.size, 'chunksRead counts distinct chunks');

  // Every backup of the chain, restored on its own, is its recorded state, each chunk once.
  for (const m of chain.slice(0, -1)) {
    reads.clear();
    const one = await restore(
      repo,
      { kind: 'backup', id: m.id },
      { factory: () => new MapState() },
    );
    t.equal(one.digest, expected.get(m.id), `${m.id} (${m.type}) restores to its digest`);
    t.ok(
      [...reads.values()].every((n) => n === 1),
      `${m.id}: each chunk read once`,
    );
  }
});
