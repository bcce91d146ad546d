/**
 * The KV state machine: operations and revisions (etcd's rules), cas on value and on
 * revision, range and prefix scans, sessions (exactly once), the bounded watch history and
 * snapshot/restore; then properties against a plain model with fast-check.
 */
import fc from 'fast-check';
import t from 'tap';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp, KvResult, WatchEvent } from '../../actors/kv/types.js';

let idx = 0;
function run(sm: KvStateMachine, op: KvOp): KvResult {
  idx++;
  return sm.apply(op, { index: idx, term: 1 });
}

t.test('put, get and revisions follow etcd', async (t) => {
  const sm = new KvStateMachine();
  t.equal(sm.revision, 0);
  t.same(run(sm, { t: 'put', key: 'a', value: '1' }), { t: 'put', rev: 1, prev: null });
  t.same(sm.get('a'), { key: 'a', value: '1', createRev: 1, modRev: 1, version: 1 });
  run(sm, { t: 'put', key: 'b', value: 'x' });
  const r = run(sm, { t: 'put', key: 'a', value: '2' });
  t.equal(r.t === 'put' && r.prev?.value, '1', 'put returns the previous key');
  t.same(sm.get('a'), { key: 'a', value: '2', createRev: 1, modRev: 3, version: 2 });
  t.equal(sm.revision, 3);
  const d = run(sm, { t: 'del', key: 'a' });
  t.same(d, {
    t: 'del',
    rev: 4,
    deleted: true,
    prev: { key: 'a', value: '2', createRev: 1, modRev: 3, version: 2 },
  });
  t.equal(sm.get('a'), null);
  const d2 = run(sm, { t: 'del', key: 'a' });
  t.same(d2, { t: 'del', rev: 4, deleted: false, prev: null }, 'deleting nothing is no revision');
  run(sm, { t: 'put', key: 'a', value: '3' });
  t.same(sm.get('a'), { key: 'a', value: '3', createRev: 5, modRev: 5, version: 1 }, 'new life');
});

t.test('cas compares the value or the mod revision', async (t) => {
  const sm = new KvStateMachine();
  let r = run(sm, { t: 'cas', key: 'k', if: { value: null }, value: 'v1' });
  t.match(r, { t: 'cas', succeeded: true, rev: 1, prev: null }, 'create if absent');
  r = run(sm, { t: 'cas', key: 'k', if: { value: null }, value: 'v2' });
  t.match(r, { succeeded: false, rev: 1, prev: { value: 'v1' } }, 'absent condition fails');
  r = run(sm, { t: 'cas', key: 'k', if: { value: 'v1' }, value: 'v2' });
  t.match(r, { succeeded: true, rev: 2 });
  r = run(sm, { t: 'cas', key: 'k', if: { modRev: 1 }, value: 'v3' });
  t.match(r, { succeeded: false, rev: 2 }, 'stale modRev fails');
  r = run(sm, { t: 'cas', key: 'k', if: { modRev: 2 }, value: 'v3' });
  t.match(r, { succeeded: true, rev: 3 });
  t.equal(sm.get('k')?.value, 'v3');
  r = run(sm, { t: 'cas', key: 'k', if: { modRev: 3 }, value: null });
  t.match(r, { succeeded: true, rev: 4 }, 'cas can delete');
  t.equal(sm.get('k'), null);
  r = run(sm, { t: 'cas', key: 'k', if: { modRev: 0 }, value: 'again' });
  t.match(r, { succeeded: true, rev: 5 }, 'modRev 0 means absent');
});

t.test('range and prefix scans are ordered, limited and counted', async (t) => {
  const sm = new KvStateMachine();
  for (const k of ['b', 'a/2', 'a/1', 'a', 'a0', 'c', 'a/3'])
    run(sm, { t: 'put', key: k, value: k });
  const p = sm.prefix('a/');
  t.same(
    p.kvs.map((kv) => kv.key),
    ['a/1', 'a/2', 'a/3'],
  );
  t.equal(p.count, 3);
  t.equal(p.more, false);
  const l = sm.prefix('a', 2);
  t.same(
    l.kvs.map((kv) => kv.key),
    ['a', 'a/1'],
  );
  t.equal(l.more, true);
  t.equal(l.count, 5);
  const r = sm.range({ start: 'a0', end: 'c' });
  t.same(
    r.kvs.map((kv) => kv.key),
    ['a0', 'b'],
  );
  t.same(
    sm.range({ start: 'b' }).kvs.map((kv) => kv.key),
    ['b', 'c'],
    'open-ended range',
  );
  t.same(sm.prefix('\uffff').kvs, [], 'prefix of the last code unit');
});

t.test('invalid operations are answered with an error and change nothing', async (t) => {
  const sm = new KvStateMachine({ maxValueLength: 4 });
  const bad = [
    { t: 'put', key: '', value: 'x' },
    { t: 'put', key: 'k', value: 'toolong' },
    { t: 'put', key: 'k', value: 3 },
    { t: 'nope', key: 'k' },
    { t: 'cas', key: 'k', if: {}, value: 'x' },
    { t: 'cas', key: 'k', if: { modRev: -1 }, value: 'x' },
    null,
  ];
  for (const op of bad) {
    const r = run(sm, op as unknown as KvOp);
    t.match(r, { t: 'error', code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' }, JSON.stringify(op));
  }
  t.equal(sm.revision, 0);
});

t.test('sessions apply each command exactly once', async (t) => {
  const sm = new KvStateMachine({ sessionWindow: 4 });
  const put = (q: number, a: number, value: string): KvOp => ({
    t: 'put',
    key: 'k',
    value,
    s: { c: 'c1', q, a },
  });
  const r1 = run(sm, put(1, 0, 'a'));
  const again = run(sm, put(1, 0, 'a'));
  t.same(again, r1, 'a retry gets the first result');
  t.equal(sm.revision, 1, 'and is not applied twice');
  run(sm, put(3, 0, 'c'));
  run(sm, put(2, 0, 'b'));
  t.equal(sm.revision, 3, 'out-of-order seqs within the window apply once each');
  t.same(run(sm, put(2, 0, 'b')), {
    t: 'put',
    rev: 3,
    prev: { key: 'k', value: 'c', createRev: 1, modRev: 2, version: 2 },
  });
  t.equal(sm.revision, 3);
  // Acked seqs are forgotten: a late copy is stale, not applied.
  run(sm, put(4, 3, 'd'));
  const stale = run(sm, put(2, 0, 'b'));
  t.match(stale, { t: 'error', code: 'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT' });
  t.equal(sm.revision, 4);
  // An unknown session that claims acked commands is expired, never applied.
  const exp = run(sm, { t: 'put', key: 'k', value: 'z', s: { c: 'ghost', q: 7, a: 6 } });
  t.match(exp, { t: 'error', code: 'SYNOD_ERR_KV_SESSION_EXPIRED' });
  t.equal(sm.revision, 4);
  // The window bounds memory: results beyond it are forgotten, the seqs stay deduped.
  for (let q = 5; q < 15; q++) run(sm, put(q, 3, `v${q}`));
  t.equal(sm.revision, 14);
  t.match(run(sm, put(6, 3, 'v6')), { code: 'SYNOD_ERR_KV_DUPLICATE_UNKNOWN_RESULT' });
  t.match(run(sm, put(14, 3, 'v14')), { t: 'put', rev: 14 }, 'recent result remembered');
  t.equal(sm.revision, 14);
});

t.test('sessions are evicted least recently used first, deterministically', async (t) => {
  const sm = new KvStateMachine({ maxSessions: 10 });
  for (let i = 0; i < 11; i++)
    run(sm, { t: 'put', key: 'k', value: `${i}`, s: { c: `c${i}`, q: 1, a: 0 } });
  t.equal(sm.sessionCount, 10, 'one evicted');
  const r = run(sm, { t: 'put', key: 'k', value: 'x', s: { c: 'c0', q: 2, a: 1 } });
  t.match(r, { code: 'SYNOD_ERR_KV_SESSION_EXPIRED' }, 'the oldest session expired');
  const ok = run(sm, { t: 'put', key: 'k', value: 'x', s: { c: 'c10', q: 2, a: 1 } });
  t.match(ok, { t: 'put' });
});

t.test('watch history: contiguous, resumable, compacted like etcd', async (t) => {
  const sm = new KvStateMachine({ historyLimit: 5 });
  const live: WatchEvent[] = [];
  const off = sm.onEvent((e) => live.push(e));
  for (let i = 1; i <= 8; i++) run(sm, { t: 'put', key: i % 2 ? 'odd' : 'even', value: `${i}` });
  run(sm, { t: 'del', key: 'odd' });
  off();
  t.equal(live.length, 9);
  t.same(
    live.map((e) => e.rev),
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  t.equal(sm.compactedRevision, 4);
  t.same(
    sm.eventsSince(5, () => true).map((e) => e.rev),
    [5, 6, 7, 8, 9],
  );
  t.same(
    sm.eventsSince(6, (k) => k === 'odd').map((e) => [e.rev, e.type]),
    [
      [7, 'put'],
      [9, 'delete'],
    ],
  );
  t.same(
    sm.eventsSince(10, () => true),
    [],
    'from the future: nothing yet',
  );
  t.throws(() => sm.eventsSince(4, () => true), {
    code: 'SYNOD_ERR_KV_COMPACTED',
    details: { compactRevision: 5 },
  });
  const last = live[8] as WatchEvent;
  t.match(last, { type: 'delete', key: 'odd', value: null, kv: null, prev: { value: '7' } });
});

t.test('snapshot and restore reproduce the state exactly', async (t) => {
  const a = new KvStateMachine({ historyLimit: 3 });
  for (let i = 0; i < 20; i++)
    run(a, { t: 'put', key: `k${i % 7}`, value: `${i}`, s: { c: 'c', q: i + 1, a: i } });
  run(a, { t: 'del', key: 'k3' });
  const img = a.snapshot();
  const b = new KvStateMachine({ historyLimit: 3 });
  let restored = 0;
  b.onRestore(() => restored++);
  b.restore(img);
  t.equal(restored, 1);
  t.same(Buffer.from(b.snapshot()), Buffer.from(img), 'same image after restore');
  t.equal(b.revision, a.revision);
  t.equal(b.appliedIndex, a.appliedIndex);
  t.same(b.prefix('k'), a.prefix('k'));
  t.same(
    b.eventsSince(19, () => true),
    a.eventsSince(19, () => true),
  );
  // The restored session table still dedupes.
  t.same(
    b.apply(
      { t: 'put', key: 'k6', value: '19', s: { c: 'c', q: 20, a: 19 } },
      { index: 999, term: 1 },
    ),
    a.apply(
      { t: 'put', key: 'k6', value: '19', s: { c: 'c', q: 20, a: 19 } },
      { index: 999, term: 1 },
    ),
  );
  t.equal(b.revision, 21);
  t.throws(() => b.restore(new Uint8Array([1, 2, 3])), { code: 'SYNOD_ERR_KV_BAD_SNAPSHOT' });
  t.throws(() => b.restore(new Uint8Array([0xc1])), { code: 'SYNOD_ERR_KV_BAD_SNAPSHOT' });
});

// ------------------------------------------------------------------ properties

const keyArb = fc.constantFrom('a', 'a/b', 'a/c', 'b', 'bb', 'c');
const valArb = fc.constantFrom('x', 'y', 'z', '');
const opArb: fc.Arbitrary<KvOp> = fc.oneof(
  fc.record({ t: fc.constant('put' as const), key: keyArb, value: valArb }),
  fc.record({ t: fc.constant('del' as const), key: keyArb }),
  fc.record({
    t: fc.constant('cas' as const),
    key: keyArb,
    if: fc.oneof(
      fc.record({ value: fc.option(valArb, { nil: null }) }),
      fc.record({ modRev: fc.integer({ min: 0, max: 12 }) }),
    ),
    value: fc.option(valArb, { nil: null }),
  }),
);

t.test(
  'snapshotAsync: the image of the moment it was called, though writes go on during its slices',
  async (t) => {
    const sm = new KvStateMachine({ historyLimit: 3000 });
    const s = (q: number) => ({ c: `c${q % 7}`, q: Math.floor(q / 7) + 1, a: 0 });
    for (let i = 0; i < 4000; i++)
      run(sm, { t: 'put', key: `k${(i * 31) % 2500}`, value: `v${i}`, s: s(i) });
    for (let i = 0; i < 300; i++) run(sm, { t: 'del', key: `k${i * 3}` });
    const expected = sm.snapshot();
    let pauses = 0;
    let n = 4000;
    const image = await sm.snapshotAsync(async () => {
      pauses++;
      // Writes, deletes and session results keep landing between the slices.
      for (let j = 0; j < 5; j++, n++) {
        run(sm, { t: 'put', key: `k${n % 2700}`, value: `late${n}`, s: s(n) });
        run(sm, { t: 'del', key: `k${(n * 7) % 2500}` });
      }
    });
    t.ok(pauses > 5, `the encoding paused ${pauses} times`);
    t.ok(sm.revision >= 4300 + pauses * 5, 'writes were applied during the encoding');
    const a = new KvStateMachine({ historyLimit: 3000 });
    a.restore(image);
    const b = new KvStateMachine({ historyLimit: 3000 });
    b.restore(expected);
    t.same(a.snapshot(), b.snapshot(), 'restores to exactly the state at the call');
    t.equal(a.revision, b.revision);
  },
);

t.test('property: matches a plain map model; revisions, versions and events agree', async (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const sm = new KvStateMachine({ historyLimit: 1000 });
      const events: WatchEvent[] = [];
      sm.onEvent((e) => events.push(e));
      const model = new Map<
        string,
        { value: string; createRev: number; modRev: number; version: number }
      >();
      let rev = 0;
      ops.forEach((op, i) => {
        const prev = model.get(op.key);
        let writes: string | null | undefined; // undefined: no change
        if (op.t === 'put') writes = op.value;
        else if (op.t === 'del') writes = prev ? null : undefined;
        else {
          const c = op.if;
          const holds =
            'modRev' in c ? (prev?.modRev ?? 0) === c.modRev : (prev?.value ?? null) === c.value;
          writes = holds ? (op.value === null && !prev ? undefined : op.value) : undefined;
        }
        const res = sm.apply(op, { index: i + 1, term: 1 });
        if (writes !== undefined) {
          rev++;
          if (writes === null) model.delete(op.key);
          else
            model.set(op.key, {
              value: writes,
              createRev: prev ? prev.createRev : rev,
              modRev: rev,
              version: prev ? prev.version + 1 : 1,
            });
        }
        if (res.t === 'error' || res.rev !== rev)
          throw new Error(`rev ${JSON.stringify(res)} != ${rev}`);
      });
      const all = sm.range({ start: '' });
      const expected = [...model.entries()]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([key, v]) => ({ key, ...v }));
      if (JSON.stringify(all.kvs) !== JSON.stringify(expected))
        throw new Error('state differs from model');
      if (events.length !== rev || events.some((e, i) => e.rev !== i + 1))
        throw new Error('events not one per revision');
      // Replaying the events from an empty map gives the same state.
      const replay = new Map<string, string>();
      for (const e of events) {
        if (e.type === 'put') replay.set(e.key, e.value as string);
        else replay.delete(e.key);
      }
      if (
        JSON.stringify([...replay.entries()].sort()) !==
        JSON.stringify(expected.map((kv) => [kv.key, kv.value]))
      )
        throw new Error('events do not replay to the state');
    }),
    { numRuns: 300 },
  );
  t.pass('300 random op sequences agree with the model');
});

t.test('property: snapshot at any point + the rest of the log = the whole log', async (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.nat(), (ops, cutRaw) => {
      const cut = cutRaw % ops.length;
      const whole = new KvStateMachine({ historyLimit: 8 });
      const head = new KvStateMachine({ historyLimit: 8 });
      ops.forEach((op, i) => {
        whole.apply(op, { index: i + 1, term: 1 });
        if (i < cut) head.apply(op, { index: i + 1, term: 1 });
      });
      const tail = new KvStateMachine({ historyLimit: 8 });
      tail.restore(head.snapshot());
      for (let i = cut; i < ops.length; i++) tail.apply(ops[i] as KvOp, { index: i + 1, term: 1 });
      if (Buffer.compare(Buffer.from(whole.snapshot()), Buffer.from(tail.snapshot())) !== 0)
        throw new Error(`images differ (cut ${cut})`);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random cuts');
});

t.test('property: every command applied at most once however the log duplicates it', async (t) => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ client: fc.integer({ min: 0, max: 2 }), dup: fc.integer({ min: 1, max: 3 }) }),
        {
          maxLength: 30,
        },
      ),
      fc.integer({ min: 0, max: 1000 }),
      (cmds, seed) => {
        // Each client issues seqs 1..n; the log holds each 1..3 times, shuffled within a small window.
        const seqs = [0, 0, 0];
        const log: KvOp[] = [];
        for (const c of cmds) {
          const q = ++seqs[c.client]!;
          for (let d = 0; d < c.dup; d++)
            log.push({
              t: 'put',
              key: `c${c.client}`,
              value: `${q}`,
              s: { c: `c${c.client}`, q, a: Math.max(0, q - 3) },
            });
        }
        let x = seed;
        for (let i = log.length - 1; i > 0; i--) {
          x = (x * 1103515245 + 12345) % 2147483648;
          const j = Math.max(0, i - (x % 3));
          [log[i], log[j]] = [log[j] as KvOp, log[i] as KvOp];
        }
        const sm = new KvStateMachine({ sessionWindow: 8 });
        log.forEach((op, i) => {
          sm.apply(op, { index: i + 1, term: 1 });
        });
        if (sm.revision > cmds.length)
          throw new Error(`${sm.revision} mutations for ${cmds.length} commands`);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('never more mutations than commands');
});
