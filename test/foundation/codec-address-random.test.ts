import t from 'tap';
import { formatAddress, isValidAddress, parseAddress } from '../../lib/address.js';
import {
  assertWireSafe,
  CodecError,
  decodeEnvelope,
  encodeEnvelope,
  encodeValue,
} from '../../lib/codec.js';
import { Random } from '../../lib/random.js';

t.test('addresses: parse, print, validate', async (t) => {
  t.same(parseAddress('a/raft'), { node: 'a', path: 'raft' });
  t.same(parseAddress('laptop-2/chat/room-1'), { node: 'laptop-2', path: 'chat/room-1' });
  t.equal(formatAddress('n1', 'kv/session'), 'n1/kv/session');
  for (const bad of ['', 'a', '/x', 'a/', 'a//b', 'a b/c', 'a/c d', 'é/x']) {
    t.notOk(isValidAddress(bad), `"${bad}" is invalid`);
    t.throws(() => parseAddress(bad), { code: 'SYNOD_ERR_BAD_ADDRESS' });
  }
});

t.test(
  'codec: envelopes round-trip; malformed input is a CodecError with a stable code',
  async (t) => {
    const env = {
      v: 1,
      k: 'ask' as const,
      to: 'b/x',
      from: 'a/y',
      c: 'id1',
      m: { type: 't', data: new Uint8Array([1, 2]) },
    };
    const back = decodeEnvelope(encodeEnvelope(env));
    t.equal(back.to, 'b/x');
    t.same([...(back.m as { data: Uint8Array }).data], [1, 2]);
    t.throws(() => decodeEnvelope(new Uint8Array([0x82, 0xa1])), { code: 'SYNOD_ERR_DECODE' });
    const wrong = [
      42,
      [1, 2],
      { v: 2, k: 'tell', to: 'a/b', m: 1 },
      { v: 1, k: 'shout', to: 'a/b', m: 1 },
      { v: 1, k: 'tell', to: '', m: 1 },
      { v: 1, k: 'ask', to: 'a/b', m: 1 },
      { v: 1, k: 'tell', to: 'a/b' },
    ];
    for (const w of wrong) {
      t.throws(() => decodeEnvelope(encodeValue(w)), CodecError, JSON.stringify(w));
    }
    t.throws(() => assertWireSafe({ f: () => 1 }), { code: 'SYNOD_ERR_ENCODE' });
    t.throws(() => assertWireSafe({ m: new Map() }), /Map/);
    t.doesNotThrow(() => assertWireSafe({ a: [1, 'x', null, true, new Uint8Array(2), { b: 2n }] }));
  },
);

t.test('random: seeded, reproducible, and roughly uniform', async (t) => {
  const a = new Random(123);
  const b = new Random(123);
  const xs = Array.from({ length: 100 }, () => a.next());
  t.same(
    xs,
    Array.from({ length: 100 }, () => b.next()),
  );
  const c = new Random(9);
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) buckets[c.int(10)]++;
  t.ok(
    buckets.every((n) => Math.abs(n - 10_000) < 500),
    `buckets ${buckets.join(',')}`,
  );
  t.throws(() => c.int(0), RangeError);
  const v = c.between(5, 7);
  t.ok(v >= 5 && v <= 7);
});
