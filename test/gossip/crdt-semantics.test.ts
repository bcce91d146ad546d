import t from 'tap';
import { EMPTY_CONTEXT } from '../../actors/gossip/causal-context.js';
import { HybridLogicalClock } from '../../actors/gossip/hlc.js';
import { LWW_EMPTY, lwwMerge, lwwSet, lwwValue } from '../../actors/gossip/lww-register.js';
import { MV_EMPTY, mvMerge, mvValues, mvWrite } from '../../actors/gossip/mv-register.js';
import {
  ORSET_EMPTY,
  orAdd,
  orHas,
  orMerge,
  orRemove,
  orValues,
} from '../../actors/gossip/or-set.js';
import {
  PN_EMPTY,
  pnCovers,
  pnIncrement,
  pnMerge,
  pnValue,
} from '../../actors/gossip/pn-counter.js';
import {
  applyOp,
  covers,
  decodeContext,
  emptyRecord,
  encodeContext,
  isKeyRecord,
  readValue,
  tokenOf,
} from '../../actors/gossip/record.js';

t.test(
  'OR-set: add wins over a concurrent remove; a remove deletes what it observed',
  async (t) => {
    const a1 = orAdd(ORSET_EMPTY, 'a', 'x').state;
    const b1 = orMerge(ORSET_EMPTY, a1); // b saw the add
    const bRemoved = orRemove(b1, 'x').state;
    const aReAdded = orAdd(a1, 'a', 'x').state; // concurrent with b's remove
    t.ok(orHas(orMerge(bRemoved, aReAdded), 'x'), 'concurrent add wins');
    t.notOk(orHas(orMerge(bRemoved, a1), 'x'), 'the observed add is removed');
    const both = orAdd(orAdd(ORSET_EMPTY, 'a', 'y').state, 'a', 'x').state;
    t.same(orValues(both), ['x', 'y'], 'sorted elements');
  },
);

t.test('PN counter: value is increments minus decrements across replicas', async (t) => {
  let a = pnIncrement(PN_EMPTY, 'a', 5).state;
  a = pnIncrement(a, 'a', -2).state;
  const b = pnIncrement(PN_EMPTY, 'b', 10).state;
  const m = pnMerge(a, b);
  t.equal(pnValue(m), 13);
  t.ok(pnCovers(m, a) && pnCovers(m, b));
  t.notOk(pnCovers(a, m));
  t.throws(() => pnIncrement(PN_EMPTY, 'a', 0.5), RangeError);
});

t.test(
  'MV register: concurrent writes at two replicas both survive; a later write replaces them',
  async (t) => {
    const a = mvWrite(MV_EMPTY, 'a', 'x').state;
    const b = mvWrite(MV_EMPTY, 'b', 'y').state;
    const m = mvMerge(a, b);
    t.same(mvValues(m), ['x', 'y']);
    const w = mvWrite(m, 'a', 'z').state;
    t.same(mvValues(mvMerge(w, b)), ['z'], 'the write saw y, so y is gone for good');
  },
);

t.test('LWW register: the larger HLC timestamp wins; deletes are timestamped too', async (t) => {
  const early = lwwSet(LWW_EMPTY, [100, 0, 'a'], 'early').state;
  const late = lwwSet(LWW_EMPTY, [101, 0, 'b'], 'late').state;
  t.same(lwwValue(lwwMerge(early, late)), ['late']);
  t.same(lwwValue(lwwMerge(late, early)), ['late']);
  const del = lwwSet(late, [102, 0, 'a'], undefined, true).state;
  t.same(lwwValue(del), []);
});

t.test('applyOp refuses operations that do not fit the type', async (t) => {
  const hlc = new HybridLogicalClock('a', { physical: () => 1 });
  t.throws(
    () =>
      applyOp(
        undefined,
        'orset',
        { op: 'increment', by: 1 },
        { id: 'a', hlc, context: EMPTY_CONTEXT },
      ),
    {
      code: 'SYNOD_ERR_WRONG_TYPE',
    },
  );
  t.throws(
    () =>
      applyOp(
        emptyRecord('pn'),
        'orset',
        { op: 'add', element: 'x' },
        { id: 'a', hlc, context: EMPTY_CONTEXT },
      ),
    {
      code: 'SYNOD_ERR_WRONG_TYPE',
    },
  );
  t.throws(
    () =>
      applyOp(
        undefined,
        'pn',
        { op: 'increment', by: Number.NaN },
        { id: 'a', hlc, context: EMPTY_CONTEXT },
      ),
    {
      code: 'SYNOD_ERR_BAD_REQUEST',
    },
  );
});

t.test('causal context tokens round-trip and express "has seen"', async (t) => {
  const hlc = new HybridLogicalClock('a', { physical: () => 1 });
  for (const [type, op] of [
    ['dvv', { op: 'put', value: 1 }],
    ['lww', { op: 'put', value: 1 }],
    ['mv', { op: 'put', value: 1 }],
    ['pn', { op: 'increment', by: 3 }],
    ['orset', { op: 'add', element: 'x' }],
  ] as const) {
    const r1 = applyOp(undefined, type, op, { id: 'a', hlc, context: EMPTY_CONTEXT }).record;
    const r2 = applyOp(r1, type, op, { id: 'a', hlc, context: EMPTY_CONTEXT }).record;
    const token = decodeContext(encodeContext(tokenOf(r2)));
    t.ok(covers(r2, token), `${type}: a record covers its own token`);
    t.notOk(covers(r1, token), `${type}: an older record does not`);
    t.ok(covers(r1, decodeContext(encodeContext(tokenOf(r1)))));
    t.ok(isKeyRecord(r2), `${type}: record passes the wire check`);
    t.equal(readValue(undefined, type).absent, true);
  }
  t.throws(() => decodeContext('%%%'), { code: 'SYNOD_ERR_BAD_CONTEXT' });
  t.throws(() => decodeContext(Buffer.from('{"t":"nope"}').toString('base64url')), {
    code: 'SYNOD_ERR_BAD_CONTEXT',
  });
  t.notOk(isKeyRecord({ t: 'dvv', sibs: [{ n: 'a', c: -1, vv: {} }] }));
  t.notOk(isKeyRecord({ t: 'what' }));
});

t.test('HLC: monotonic, follows remote timestamps, refuses excessive drift', async (t) => {
  let now = 1000;
  const a = new HybridLogicalClock('a', { physical: () => now, maxDriftMs: 500 });
  const t1 = a.now();
  const t2 = a.now();
  t.ok(t2[0] === t1[0] && t2[1] === t1[1] + 1, 'same ms: logical counter');
  const r = a.update([1200, 4, 'b']);
  t.same(r, [1200, 5, 'a'], 'jumps to the remote wall time, after its logical');
  now = 900; // the physical clock goes backwards
  const t3 = a.now();
  t.ok(t3[0] === 1200 && t3[1] === 6, 'never goes backwards');
  t.throws(() => a.update([5000, 0, 'c']), { code: 'SYNOD_ERR_CLOCK_DRIFT' });
});

t.test(
  'dvv records and contexts without `dc` (written before it existed) read as before',
  async (t) => {
    const hlc = new HybridLogicalClock('a', { physical: () => 1 });
    // a record and a context token exactly as an older replica encoded them
    const old = {
      t: 'dvv',
      sibs: [
        { n: 'a', c: 1, vv: {}, v: 'x' },
        { n: 'a', c: 2, vv: {}, v: 'y' },
      ],
    };
    t.ok(isKeyRecord(old), 'an old record is valid');
    const oldToken = Buffer.from(JSON.stringify({ t: 'dvv', vv: { a: 2 } }), 'utf8').toString(
      'base64url',
    );
    const tok = decodeContext(oldToken);
    t.same(tok, { t: 'dvv', vv: { a: 2 } });
    t.ok(covers(old as never, tok), 'the old record covers the old context');
    t.equal(encodeContext(tokenOf(old as never)), oldToken, 'same token text as before');
    const r = applyOp(
      old as never,
      'dvv',
      { op: 'put', value: 'z' },
      {
        id: 'a',
        hlc,
        context: { vv: { a: 2 }, dc: [] },
      },
    );
    t.same(readValue(r.record, 'dvv').values, ['z'], 'the old context replaces what it covers');
    t.notOk(
      'dc' in (r.delta as unknown as { sibs: object[] }).sibs[0]!,
      'no `dc` field when it is empty',
    );
    t.notOk(isKeyRecord({ t: 'dvv', sibs: [{ n: 'a', c: 1, vv: {}, dc: 'x' }] }), 'bad dc refused');
    t.throws(
      () =>
        decodeContext(
          Buffer.from(JSON.stringify({ t: 'dvv', vv: {}, dc: [['a']] })).toString('base64url'),
        ),
      { code: 'SYNOD_ERR_BAD_CONTEXT' },
      'a malformed dc is a clear error',
    );
  },
);
