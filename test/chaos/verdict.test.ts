/**
 * The chaos harness's own logic, without processes: the nemesis schedule is a function of the
 * seed, the majorities ring gives every node a majority that no two nodes share, histories of
 * several processes merge in time order, and the lost-write check flags a lost acknowledged
 * write (negative controls) while accepting unknown outcomes and overwrites.
 */
import t from 'tap';
import type { HistoryEvent } from '../../lib/history/event.js';
import { ringVisibility, schedule, shuffled } from './harness/nemesis.js';
import { findLostWrites, mergeHistories } from './harness/verdict.js';

t.test('the schedule is a function of the seed and fits the run', async (t) => {
  const a = schedule({ seed: 42, durationMs: 180_000 });
  const b = schedule({ seed: 42, durationMs: 180_000 });
  const c = schedule({ seed: 43, durationMs: 180_000 });
  t.same(a, b, 'same seed, same schedule');
  t.not(JSON.stringify(a), JSON.stringify(c), 'another seed, another schedule');
  t.ok(a.length >= 10, `${a.length} faults in 3 minutes`);
  for (let i = 0; i < a.length; i++) {
    const f = a[i] as (typeof a)[number];
    t.ok(f.at + f.durationMs <= 180_000 - 3000, `fault ${i} ends before the cool-down`);
    if (i > 0) {
      const p = a[i - 1] as (typeof a)[number];
      t.ok(f.at >= p.at + p.durationMs, `fault ${i} starts after fault ${i - 1} ends`);
    }
  }
  const kinds = new Set(schedule({ seed: 1, durationMs: 3_600_000 }).map((f) => f.kind));
  t.equal(kinds.size, 11, 'a long run draws every nemesis');
  t.same(
    schedule({ seed: 1, durationMs: 60_000, kinds: ['kill'] })
      .map((f) => f.kind)
      .filter((k) => k !== 'kill'),
    [],
  );
});

t.test('shuffled is a permutation, deterministic per pick', async (t) => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  for (let pick = 0; pick < 50; pick++) {
    const s = shuffled(ids, pick);
    t.same([...s].sort(), ids);
    t.same(shuffled(ids, pick), s);
  }
});

t.test('majorities ring: each node sees a majority, no two the same one', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const vis = ringVisibility(ids);
  const majorities = new Set<string>();
  for (const id of ids) {
    const seen = [id, ...(vis[id] ?? [])].sort();
    t.equal(seen.length, 3, `${id} sees 3 of 5 (itself included)`);
    majorities.add(seen.join(','));
    for (const o of vis[id] ?? []) t.ok(vis[o]?.includes(id), `${id}-${o} is symmetric`);
  }
  t.equal(majorities.size, 5, 'five different majorities');
});

function ev(
  process: number | string,
  type: HistoryEvent['type'],
  f: string,
  key: string,
  value: unknown,
  time: number,
): HistoryEvent {
  const e: HistoryEvent = { process, type, f, key, time };
  if (value !== undefined) e.value = value;
  return e;
}

t.test('merge orders events of several processes by time', async (t) => {
  const a = [ev(1, 'invoke', 'write', 'k', 'x', 1), ev(1, 'ok', 'write', 'k', 'x', 5)];
  const b = [ev(2, 'invoke', 'read', 'k', undefined, 3), ev(2, 'ok', 'read', 'k', 'x', 7)];
  t.same(
    mergeHistories([a, b]).map((e) => e.time),
    [1, 3, 5, 7],
  );
});

t.test('lost writes', async (t) => {
  const base = [
    ev(1, 'invoke', 'write', 'k', 'a', 1),
    ev(1, 'ok', 'write', 'k', 'a', 2),
    ev(2, 'invoke', 'write', 'k', 'b', 3),
    ev(2, 'ok', 'write', 'k', 'b', 4),
  ];
  const final = (v: unknown) => [
    ev('final', 'invoke', 'read', 'k', undefined, 10),
    ev('final', 'ok', 'read', 'k', v, 11),
  ];
  t.same(
    findLostWrites([...base, ...final('b')], 'final'),
    [],
    'the last acknowledged write survives',
  );
  const lost = findLostWrites([...base, ...final('a')], 'final');
  t.equal(lost.length, 1, 'negative control: an acknowledged overwrite lost is flagged');
  t.match(lost[0]?.problem, /"b".*acknowledged after/);
  t.equal(
    findLostWrites([...base, ...final(null)], 'final').length,
    1,
    'negative control: a key emptied is flagged',
  );
  t.match(
    findLostWrites([...base, ...final('zzz')], 'final')[0]?.problem,
    /never written/,
    'negative control: a value nobody wrote',
  );
  const unknown = [
    ...base,
    ev(3, 'invoke', 'write', 'k', 'c', 5),
    ev(3, 'info', 'write', 'k', undefined, 6),
  ];
  t.same(findLostWrites([...unknown, ...final('c')], 'final'), [], 'an unknown write may have won');
  t.same(findLostWrites([...unknown, ...final('b')], 'final'), [], 'or not');
  const concurrent = [
    ev(1, 'invoke', 'write', 'k', 'a', 1),
    ev(2, 'invoke', 'write', 'k', 'b', 2),
    ev(2, 'ok', 'write', 'k', 'b', 3),
    ev(1, 'ok', 'write', 'k', 'a', 4),
  ];
  t.same(
    findLostWrites([...concurrent, ...final('a')], 'final'),
    [],
    'concurrent writes: either may win',
  );
  t.same(findLostWrites([...concurrent, ...final('b')], 'final'), []);
  const cas = [
    ...base,
    ev(3, 'invoke', 'cas', 'k', ['b', 'c'], 5),
    ev(3, 'ok', 'cas', 'k', ['b', 'c'], 6),
  ];
  t.equal(
    findLostWrites([...cas, ...final('b')], 'final').length,
    1,
    'negative control: an acknowledged cas lost',
  );
  t.same(findLostWrites([...cas, ...final('c')], 'final'), [], 'the cas survives');
  const failedCas = [
    ...base,
    ev(3, 'invoke', 'cas', 'k', ['a', 'c'], 5),
    ev(3, 'ok', 'cas', 'k', false, 6),
  ];
  t.equal(
    findLostWrites([...failedCas, ...final('c')], 'final').length,
    1,
    'a cas that failed its compare wrote nothing',
  );
});
