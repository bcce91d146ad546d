/**
 * The fast command writer and reader (actors/raft/command-codec.ts) against msgpackr, the
 * codec they stand in for: the writer must produce msgpackr's bytes exactly and only for
 * commands that decode to themselves; the reader must give msgpackr's value or give up,
 * on valid and on corrupted bytes. fast-check, SYNOD_RAFT_CODEC_RUNS for more runs; a
 * failure prints fast-check's seed.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { decodeCommandFast, encodeCommandFast } from '../../actors/raft/command-codec.js';
import { decodeCommand, encodeCommand } from '../../actors/raft/raft-node.js';
import { decodesToItself, decodeValue, encodeValue, wellFormed } from '../../lib/codec.js';

const runs = Number(process.env.SYNOD_RAFT_CODEC_RUNS ?? 1000);

function sparse(): unknown[] {
  const a: unknown[] = [1];
  a[2] = 3;
  return a;
}

const weird = fc.oneof(
  fc.constant(-0),
  fc.constant(undefined),
  fc.constant('\uD800'),
  fc.constant('a\uDC00b'),
  fc.bigInt(),
  fc.uint8Array({ maxLength: 4 }),
  fc.date({ noInvalidDate: true }),
  fc.constant(Object.create(null)),
  fc.constant(JSON.parse('{"__proto__": 1}')),
  fc.constant(sparse()),
  fc.constant(new Map([[1, 2]])),
);
const num = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32 - 1, 2 ** 32, 2 ** 53),
  fc.constantFrom(-0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -(2 ** 31), -(2 ** 31) - 1),
);
const str = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.nat(70_000).map((n) => 'x'.repeat(n % 300 === 0 ? n : n % 300)),
  fc.nat(120).map((n) => 'é'.repeat(n)),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    str,
    num,
    fc.boolean(),
    fc.constant(null),
    weird,
    fc.array(tie('v'), { maxLength: 20 }),
    fc.dictionary(str, tie('v'), { maxKeys: 18 }),
  ),
})).v;
const clientId = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.constant('c\uD800'));
const seq = fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32, 2 ** 53 - 1));

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), b) === 0;
}

t.test("the writer gives msgpackr's bytes, exactly for self-decoding commands", async (t) => {
  let fast = 0;
  fc.assert(
    fc.property(clientId, seq, value, (c, s, op) => {
      const bytes = encodeCommandFast(c, s, op);
      const self = wellFormed(c) && decodesToItself(op);
      if (bytes === undefined) return !self;
      fast++;
      return self && bytesEqual(bytes, Buffer.from(encodeValue([c, s, op])));
    }),
    { numRuns: runs },
  );
  t.ok(fast > runs / 5, `fast path taken for ${fast} of ${runs} commands (not vacuous)`);
});

t.test('negative control: a writer with other (valid) headers is caught', async (t) => {
  const preferred = new Packr({ useRecords: false, variableMapSize: true });
  const r = fc.check(
    fc.property(clientId, seq, value, (c, s, op) => {
      const bytes = encodeCommandFast(c, s, op);
      return bytes === undefined || bytesEqual(bytes, preferred.pack([c, s, op]));
    }),
    { numRuns: runs },
  );
  t.ok(r.failed, 'fixmap headers differ from the map16 msgpackr writes');
});

/** msgpackr's reading of `bytes` as a command, or 'error'. */
function slow(bytes: Uint8Array): unknown {
  try {
    const v = decodeValue(Buffer.from(bytes));
    return Array.isArray(v) && v.length === 3 ? { clientId: v[0], seq: v[1], op: v[2] } : 'other';
  } catch {
    return 'error';
  }
}

t.test("the reader gives msgpackr's value or gives up", async (t) => {
  let fast = 0;
  fc.assert(
    fc.property(clientId, seq, value, (c, s, op) => {
      let bytes: Uint8Array;
      try {
        bytes = encodeValue([c, s, op]);
      } catch {
        return true; // not encodable at all (e.g. a bigint beyond 64 bits)
      }
      const got = decodeCommandFast(bytes);
      if (got === undefined) return true;
      fast++;
      return isDeepStrictEqual(got, slow(bytes));
    }),
    { numRuns: runs },
  );
  t.ok(fast > runs / 5, `read fast for ${fast} of ${runs} commands (not vacuous)`);
});

t.test(
  'corrupted bytes: the same value as msgpackr, or give up (never a different value)',
  async (t) => {
    let fast = 0;
    let refusedBySlow = 0;
    fc.assert(
      fc.property(
        clientId,
        seq,
        value,
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        (c, s, op, flips, cut) => {
          let bytes: Uint8Array;
          try {
            bytes = new Uint8Array(encodeValue([c, s, op]));
          } catch {
            return true;
          }
          for (const [at, b] of flips) bytes[1 + (at % Math.max(1, bytes.length - 1))] = b;
          if (cut % 3 === 0) bytes = bytes.subarray(0, cut % (bytes.length + 1));
          const got = decodeCommandFast(bytes);
          const want = slow(bytes);
          if (want === 'error') refusedBySlow++;
          if (got === undefined) return true;
          fast++;
          return isDeepStrictEqual(got, want);
        },
      ),
      { numRuns: runs },
    );
    t.ok(fast > 0 && refusedBySlow > 0, `read ${fast}, msgpackr refused ${refusedBySlow}`);
  },
);

t.test('outputs stay intact across slab changes; big commands', async (t) => {
  const kept: [Uint8Array, { clientId: string; seq: number; op: unknown }][] = [];
  for (let i = 0; i < 5_000; i++) {
    const cmd = { clientId: `c${i % 97}`, seq: i, op: { k: `k${i}`, v: 'v'.repeat(i % 50) } };
    kept.push([encodeCommand(cmd), cmd]);
  }
  const big = { clientId: 'big', seq: 1, op: { blob: 'z'.repeat(200_000), list: [1, 2, 3] } };
  kept.push([encodeCommand(big), big]);
  kept.push([
    encodeCommand({ clientId: 'after', seq: 2, op: 'x' }),
    { clientId: 'after', seq: 2, op: 'x' },
  ]);
  let bad = 0;
  for (const [bytes, cmd] of kept) {
    if (!isDeepStrictEqual(decodeCommand(bytes), cmd)) bad++;
    if (!bytesEqual(bytes, Buffer.from(encodeValue([cmd.clientId, cmd.seq, cmd.op])))) bad++;
  }
  t.equal(bad, 0, `${kept.length} commands written earlier still decode to themselves`);
});

t.test('the fallbacks: old map format, bin, ext and 64-bit integers still decode', async (t) => {
  const old = encodeValue({ c: 'c1', s: 3, o: { k: 'a' } });
  t.equal(decodeCommandFast(old), undefined, 'the old {c, s, o} form is left to msgpackr');
  t.same(decodeCommand(old), { clientId: 'c1', seq: 3, op: { k: 'a' } });
  const bin = encodeValue(['c', 1, { b: new Uint8Array([1, 2]) }]);
  t.equal(decodeCommandFast(bin), undefined, 'bin is left to msgpackr');
  t.ok(Buffer.isBuffer((decodeCommand(bin).op as { b: unknown }).b), 'and decodes to a Buffer');
  const u64 = Buffer.from([0x93, 0xa1, 0x63, 0x01, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
  t.equal(decodeCommandFast(u64), undefined, 'uint64 is left to msgpackr');
  t.equal(decodeCommand(u64).op, 2 ** 32);
  const proto = Buffer.from([
    0x93,
    0xa1,
    0x63,
    0x01,
    0x81,
    0xa9,
    ...Buffer.from('__proto__'),
    0x01,
  ]);
  t.equal(decodeCommandFast(proto), undefined, '__proto__ keys are left to msgpackr');
  const deep = Buffer.concat([
    Buffer.from([0x93, 0xa1, 0x63, 0x01]),
    Buffer.alloc(100, 0x91),
    Buffer.from([0x01]),
  ]);
  t.equal(decodeCommandFast(deep), undefined, 'nesting beyond 64 levels is left to msgpackr');
  t.equal(encodeCommandFast('c', 1, { a: -0 }), undefined, '-0 is written by msgpackr');
  t.equal(encodeCommandFast('c\uDC00', 1, 1), undefined, 'a lone surrogate in the id too');
  const throwing = {
    get x(): number {
      throw new Error('boom');
    },
  };
  t.equal(encodeCommandFast('c', 1, throwing), undefined, 'a throwing getter: left to msgpackr');
  t.throws(
    () => encodeCommand({ clientId: 'c', seq: 1, op: throwing }),
    { code: 'SYNOD_ERR_ENCODE' },
    'which reports it with the codec error code, as before',
  );
  const after = encodeCommand({ clientId: 'c', seq: 2, op: { k: 'x' } });
  t.same(decodeCommand(after), { clientId: 'c', seq: 2, op: { k: 'x' } }, 'the writer goes on');
});
