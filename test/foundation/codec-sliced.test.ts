import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { encodeValueSliced } from '../../lib/codec-sliced.js';

const counting = () => {
  let pauses = 0;
  return {
    pause: async () => {
      pauses++;
    },
    get pauses() {
      return pauses;
    },
  };
};

t.test('decodes to what encodeValue gives, for arbitrary values and slice sizes', async (t) => {
  const value = fc.letrec((tie) => ({
    any: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom(null, undefined, true, false),
      fc.double({ noNaN: true }),
      fc.integer(),
      fc.string(),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(tie('any'), { maxLength: 40 }),
      fc.dictionary(fc.string({ maxLength: 6 }), tie('any'), { maxKeys: 20 }),
    ),
  })).any;
  await fc.assert(
    fc.asyncProperty(value, fc.integer({ min: 1, max: 20 }), async (v, sliceItems) => {
      const { pause } = counting();
      const bytes = await encodeValueSliced(v, pause, { sliceItems });
      t.same(decodeValue(bytes), decodeValue(encodeValue(v)));
    }),
    { numRuns: 300, seed: 11 },
  );
});

t.test('large arrays go out in slices, with a pause between them', async (t) => {
  for (const n of [15, 16, 512, 513, 65_536, 70_000]) {
    const items = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, v: i }));
    const image = { v: 1, kvs: items, nested: { events: items.slice(0, 1000) } };
    const c = counting();
    const bytes = await encodeValueSliced(image, c.pause, { sliceItems: 512 });
    t.ok(isDeepStrictEqual(decodeValue(bytes), image), `${n} items decode to the image`);
    if (n > 512) t.ok(c.pauses >= Math.floor(n / 512), `${n} items: ${c.pauses} pauses`);
  }
});

t.test('a value the codec cannot carry fails as encodeValue does', async (t) => {
  await t.rejects(
    encodeValueSliced({ f: 1n << 70n }, async () => {}),
    { code: 'SYNOD_ERR_ENCODE' },
  );
});

t.test(
  'large byte arrays are written as encodeValue writes them (bin 16 and bin 32)',
  async (t) => {
    for (const n of [4095, 4096, 65_535, 65_536, 70_001]) {
      const u8 = new Uint8Array(n);
      for (let i = 0; i < n; i++) u8[i] = (i * 7) & 0xff;
      for (const bytes of [u8, Buffer.from(u8)]) {
        const image = { v: 1, sessions: [['c', 1, null, 2]], user: bytes, tail: bytes.subarray(1) };
        const sliced = Buffer.from(await encodeValueSliced(image, async () => {}));
        const back = decodeValue(sliced) as typeof image;
        const what = `${n} bytes (${bytes.constructor.name})`;
        t.ok(
          Buffer.from(back.user).equals(bytes) && Buffer.from(back.tail).equals(bytes.subarray(1)),
          `${what}: decoded`,
        );
        t.same(back.sessions, image.sessions);
        t.ok(
          sliced.includes(Buffer.from(encodeValue(bytes))),
          `${what}: the bin as encodeValue writes it`,
        );
        t.ok(sliced.includes(Buffer.from(encodeValue(bytes.subarray(1)))), `${what}: a view too`);
      }
    }
  },
);
