/**
 * Retention property: after any sequence of backups (of any type), archive flushes and
 * expires with any policy, every kept backup restores to its exact state, point-in-time
 * recovery works from the oldest kept backup to the archive's tip, nothing is left
 * unreferenced, and the policy's newest fulls are all kept. FC_RUNS=n for more runs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { RepoDriver } from '../../actors/backup/driver.js';
import type { Manifest } from '../../actors/backup/manifest.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { expire, planExpire } from '../../actors/backup/retention.js';
import { MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';

const small = { avgSize: 2048, minSize: 512, maxSize: 8192 };
const factory = () => new MapState();

type Step =
  | { kind: 'backup'; type: 'full' | 'diff' | 'incr'; ops: number }
  | { kind: 'expire'; full: number; diff: number | undefined };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('backup' as const),
      type: fc.constantFrom('full' as const, 'diff' as const, 'incr' as const),
      ops: fc.integer({ min: 0, max: 40 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      full: fc.integer({ min: 1, max: 3 }),
      diff: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
    }),
  },
);

t.test('every kept backup restores after any sequence of backups and expires', async (t) => {
  const runs = Number(process.env.FC_RUNS ?? 12);
  const dirs: string[] = [];
  t.teardown(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArb, { minLength: 1, maxLength: 14 }),
      fc.integer({ min: 1, max: 1e6 }),
      async (steps, seed) => {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-ret-'));
        dirs.push(dir);
        const repo = await Repository.init(dir, { chunker: small, clusterId: 'c' });
        const d = new RepoDriver(repo, 'c', seed, {
          keySpace: 80,
          valueMin: 0,
          valueMax: 120,
          pDelete: 0.2,
          pBatch: 0.1,
        });
        for (const s of steps) {
          if (s.kind === 'backup') {
            d.apply(s.ops);
            await d.flush();
            await d.backup(s.type);
          } else {
            const before = await repo.list();
            const policy = { full: s.full, ...(s.diff !== undefined ? { diff: s.diff } : {}) };
            const want = planExpire(before, [], policy).keep.map((m) => m.id);
            const r = await expire(repo, policy);
            if (JSON.stringify(r.kept) !== JSON.stringify(want))
              throw new Error('kept set differs from the plan');
            const fulls = before.filter((m) => m.type === 'full').slice(-s.full);
            for (const f of fulls)
              if (!r.kept.includes(f.id)) throw new Error(`newest full ${f.id} expired`);
            await d.resync();
          }
        }
        const kept: Manifest[] = await repo.list();
        for (const m of kept) {
          const res = await restore(repo, { kind: 'backup', id: m.id }, { factory });
          if (res.digest !== d.digests.get(m.index)?.digest)
            throw new Error(`kept ${m.id} restores wrong (seed ${seed})`);
          if (m.parent !== null && !kept.some((p) => p.id === m.parent))
            throw new Error(`kept ${m.id} lost its parent`);
        }
        if (kept.length > 0) {
          const oldest = Math.min(...kept.map((m) => m.index));
          for (const idx of [oldest, Math.floor((oldest + d.index) / 2), d.index]) {
            const res = await restore(repo, { kind: 'index', index: idx }, { factory });
            if (res.digest !== d.digests.get(idx)?.digest)
              throw new Error(`PITR to ${idx} wrong (seed ${seed})`);
          }
        }
        const v = await verify(repo);
        if (!v.ok) throw new Error(`verify: ${JSON.stringify(v.problems)}`);
        await rm(dir, { recursive: true, force: true });
      },
    ),
    { numRuns: runs, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) },
  );
  t.pass(`${runs} random sequences`);
});

t.test('planExpire: negative control and dependents', async (t) => {
  const m = (seq: number, type: 'full' | 'diff' | 'incr', parent: string | null) =>
    ({ id: `b${seq}`, seq, type, parent, index: seq * 10 }) as unknown as Manifest;
  const all = [
    m(1, 'full', null),
    m(2, 'incr', 'b1'),
    m(3, 'diff', 'b1'),
    m(4, 'incr', 'b3'),
    m(5, 'full', null),
    m(6, 'incr', 'b5'),
    m(7, 'diff', 'b5'),
    m(8, 'incr', 'b7'),
  ];
  const p = planExpire(
    all,
    [
      { file: '', name: 's', first: 1, last: 45 },
      { file: '', name: 't', first: 46, last: 90 },
    ],
    { full: 1, diff: 1 },
  );
  t.same(
    p.keep.map((x) => x.id),
    ['b5', 'b6', 'b7', 'b8'],
  );
  t.same(
    p.expire.map((x) => x.id),
    ['b4', 'b3', 'b2', 'b1'],
    'children before parents',
  );
  t.same(
    p.segments.map((s) => s.name),
    ['s'],
    'segments up to the oldest kept backup go',
  );
  const q = planExpire(all, [], { full: 2, diff: 0 });
  t.same(
    q.keep.map((x) => x.id),
    ['b1', 'b2', 'b5', 'b6'],
    'diff 0 expires every diff and the incrs on them',
  );
  t.throws(() => planExpire(all, [], { full: 0 }), { code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT' });
});
