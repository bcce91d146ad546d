/**
 * lazyCommitHardState: a save that changes only the commit index returns without waiting for
 * the write; a change of term or vote waits; the write order is kept; a failed background
 * write makes the next save and flush/close reject.
 */
import t from 'tap';
import { lazyCommitHardState } from '../../lib/node/lazy-commit.js';
import type { HardStateStore, RaftHardState } from '../../lib/storage/types.js';

/** A store whose saves resolve only when the test says so. */
function manualStore(initial?: RaftHardState) {
  const saves: { state: RaftHardState; resolve: () => void; reject: (e: Error) => void }[] = [];
  let closed = false;
  const store: HardStateStore<RaftHardState> = {
    load: async () => initial,
    save: (state) =>
      new Promise<void>((resolve, reject) => {
        saves.push({ state: { ...state }, resolve, reject });
      }),
    close: async () => {
      closed = true;
    },
  };
  return { store, saves, isClosed: () => closed };
}

function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  return new Promise((r) => setImmediate(() => r(done)));
}

t.test('commit-only saves do not wait; term or vote changes do', async (t) => {
  const m = manualStore({ term: 1, vote: 'a', commit: 3 });
  const hs = lazyCommitHardState(m.store);
  t.same(await hs.load(), { term: 1, vote: 'a', commit: 3 });
  const c1 = hs.save({ term: 1, vote: 'a', commit: 4 });
  t.ok(await settled(c1), 'a commit-only save resolves before the write is durable');
  t.equal(m.saves.length, 1, 'but the write was issued');
  t.same(m.saves[0]?.state, { term: 1, vote: 'a', commit: 4 });
  const v = hs.save({ term: 2, vote: 'b', commit: 4 });
  t.notOk(await settled(v), 'a term/vote change waits for the write');
  const c2 = hs.save({ term: 2, vote: 'b', commit: 5 });
  t.notOk(await settled(c2), 'a commit-only save never resolves before an earlier term/vote save');
  m.saves[1]?.resolve();
  t.ok(await settled(v), 'the term/vote save resolves once durable');
  t.ok(await settled(c2));
  t.same(
    m.saves.map((s) => s.state),
    [
      { term: 1, vote: 'a', commit: 4 },
      { term: 2, vote: 'b', commit: 4 },
      { term: 2, vote: 'b', commit: 5 },
    ],
    'every save reaches the store in order',
  );
  t.equal(hs.deferred, 2);
  const f = hs.flush();
  t.notOk(await settled(f), 'flush waits for the deferred writes');
  m.saves[0]?.resolve();
  m.saves[2]?.resolve();
  await f;
  await hs.close();
  t.ok(m.isClosed(), 'close closes the inner store');
});

t.test('the first save after load of an empty store waits', async (t) => {
  const m = manualStore(undefined);
  const hs = lazyCommitHardState(m.store);
  await hs.load();
  const p = hs.save({ term: 1, vote: null, commit: 0 });
  t.notOk(await settled(p), 'nothing known durable yet: wait');
  m.saves[0]?.resolve();
  await p;
});

t.test('a failed background write is reported by the next save and by close', async (t) => {
  const m = manualStore({ term: 1, vote: 'a', commit: 1 });
  const hs = lazyCommitHardState(m.store);
  await hs.load();
  await hs.save({ term: 1, vote: 'a', commit: 2 });
  m.saves[0]?.reject(new Error('EIO: disk gone'));
  await new Promise((r) => setImmediate(r));
  await t.rejects(hs.save({ term: 1, vote: 'a', commit: 3 }), /EIO/);
  await t.rejects(hs.flush(), /EIO/);
  await t.rejects(hs.close(), /EIO/);
  t.ok(m.isClosed(), 'the inner store is closed even so');
});
