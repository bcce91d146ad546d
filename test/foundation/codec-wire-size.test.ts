import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { assertWireSafe, CodecError, encodeValue, wireSize } from '../../lib/codec.js';

// Values of every wire-safe kind, nested, with short/long and non-ASCII strings.
const wireValue = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 80 }),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.uint8Array({ maxLength: 64 }),
    fc.date({ noInvalidDate: true }),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('node'), { maxKeys: 6 }),
  ),
})).node;

t.test('wireSize is an upper bound of the msgpack size, as maps and as records', async (t) => {
  const records = () =>
    new Packr({ useRecords: true, sequential: true, moreTypes: false, int64AsType: 'number' });
  let checked = 0;
  fc.assert(
    fc.property(wireValue, (v) => {
      const bound = wireSize(v);
      const asMap = encodeValue(v).length;
      // a fresh sequential encoder writes record definitions inline: the largest form
      const asRecord = records().pack(v).length;
      checked++;
      return bound >= asMap && bound >= asRecord;
    }),
    { numRuns: 2000, seed: Number(process.env.SYNOD_SEED ?? 20261127) },
  );
  t.equal(checked >= 2000, true, 'ran the property');
  t.equal(wireSize('x'.repeat(100)), 105, 'long strings are measured exactly');
  t.equal(wireSize('é'.repeat(100)), 205);
});

t.test(
  'wireSize and assertWireSafe refuse what cannot cross a wire, naming the path',
  async (t) => {
    const bad: [unknown, RegExp][] = [
      [{ a: { f: () => 1 } }, /message\.a\.f is a function/],
      [{ a: [1, Symbol('s')] }, /message\.a\[1\] is a symbol/],
      [{ m: new Map() }, /message\.m is a Map/],
      [[new Set()], /message\[0\] is a Set/],
      [{ big: 2n ** 70n }, /message\.big is a bigint outside 64 bits/],
      [{ small: -(2n ** 63n) - 1n }, /bigint outside 64 bits/],
    ];
    for (const [v, re] of bad) {
      t.throws(() => wireSize(v), re);
      t.throws(() => assertWireSafe(v), re);
      t.throws(() => wireSize(v), CodecError);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = { d: deep };
    t.throws(() => wireSize(deep), /nested more than 64 levels/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    t.throws(
      () => wireSize(cyclic),
      /nested more than 64 levels/,
      'a cycle is refused, not a stack overflow',
    );
    // the negative control: what is fine passes
    let ok: unknown = 1;
    for (let i = 0; i < 63; i++) ok = { d: ok };
    t.doesNotThrow(() => wireSize(ok));
    t.doesNotThrow(() => assertWireSafe({ a: [1, 'x', null, true, new Uint8Array(2), { b: 2n }] }));
    t.doesNotThrow(() => assertWireSafe(Object.assign(Object.create(null), { a: 1 })));
  },
);
