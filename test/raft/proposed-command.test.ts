/**
 * The leader applies its own proposals from the command object instead of decoding the
 * bytes it encoded, but only when `decodesToItself` says the codec reproduces the command
 * exactly; followers decode. These tests check that claim against the codec on arbitrary
 * values (fast-check; SYNOD_RAFT_CODEC_RUNS for more runs, a failure prints fast-check's
 * seed), and on a running cluster that leader and followers apply equal commands.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { packEntries, unpackEntries } from '../../actors/raft/entry-codec.js';
import { decodeCommand, encodeCommand } from '../../actors/raft/raft-node.js';
import { decodesToItself, decodeValue, encodeValue } from '../../lib/codec.js';
import { RaftCluster } from '../helpers/raft-sim.js';

const runs = Number(process.env.SYNOD_RAFT_CODEC_RUNS ?? 2000);

/** Whether the decoded copy is indistinguishable from `v` (types, prototypes, key order, -0). */
function sameAfterCodec(v: unknown): boolean {
  let d: unknown;
  try {
    d = decodeValue(encodeValue(v));
  } catch {
    return false;
  }
  return identical(v, d);
}

function identical(a: unknown, b: unknown): boolean {
  if (typeof a !== typeof b) return false;
  if (typeof a === 'number') return Object.is(a, b);
  if (typeof a !== 'object' || a === null || b === null) return a === b;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) {
      if (i in a !== i in bb || !identical(a[i], bb[i])) return false;
    }
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  if (!isDeepStrictEqual(ka, kb)) return false;
  for (const k of ka) {
    if (!identical((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) {
      return false;
    }
  }
  return true;
}

/** [1, <hole>, 3] */
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
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ unit: 'binary' }),
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    weird,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'binary' }), tie('v'), { maxKeys: 4 }),
  ),
})).v;

t.test('decodesToItself(v) implies the codec gives back an identical value', async (t) => {
  let claimed = 0;
  fc.assert(
    fc.property(value, (v) => {
      if (!decodesToItself(v)) return true;
      claimed++;
      return sameAfterCodec(v);
    }),
    { numRuns: runs },
  );
  t.ok(claimed > runs / 10, `claimed for ${claimed} of ${runs} values (the check is not vacuous)`);
});

t.test('negative control: a check that accepts -0 and lone surrogates is caught', async (t) => {
  const lax = (v: unknown): boolean =>
    typeof v === 'number' || typeof v === 'string' || decodesToItself(v);
  const r = fc.check(
    fc.property(value, (v) => !lax(v) || sameAfterCodec(v)),
    { numRuns: runs },
  );
  t.ok(r.failed, `flagged: ${r.failed ? JSON.stringify(String(r.counterexample?.[0])) : ''}`);
  t.notOk(decodesToItself(-0));
  t.notOk(decodesToItself('\uD800'));
  t.notOk(decodesToItself({ a: 1n }));
  t.notOk(decodesToItself([new Uint8Array(1)]));
  t.ok(decodesToItself({ k: 'x', v: [1, 2.5, -3, 'é😀', null, true, { n: {} }] }));
});

t.test('leader and followers apply identical commands, plain data or not', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: 5, ids });
  await c.start();
  const leader = await c.waitLeader(2000);
  t.ok(leader, 'a leader');
  const values: [string, unknown][] = [
    ['plain', { n: 1.5, s: 'é😀', a: [1, null, true, { x: -3 }] }],
    ['-0', -0],
    ['bytes', new Uint8Array([1, 2])],
    ['lone surrogate', 'a\uD800'],
    ['undefined inside', { u: undefined }],
    ['bigint', 7n],
  ];
  for (const [k, v] of values) {
    const r = await c.proposeOn(leader as string, { f: 'write', k, v }, 2000);
    t.ok(r.ok, `${k} committed`);
  }
  await c.sim.runFor(300);
  for (const [k, v] of values) {
    const on = ids.map((id) => c.machines.get(id)?.data.get(k));
    t.ok(
      on.every((x) => identical(x, on[0])),
      `${k}: the leader applied exactly what the followers decoded`,
    );
    // The control: where the codec changes the value, the proposed object differs from
    // what was applied, so a leader applying the object would have been caught above.
    if (!sameAfterCodec(v)) t.notOk(identical(v, on[0]), `${k}: the codec changes it`);
  }
  t.same(c.fatal, [], 'no node stopped');
});

t.test(
  'a command decodes alike from a Buffer or a Uint8Array (restarted vs live replicas)',
  async (t) => {
    const bytes = encodeCommand({ clientId: 'c', seq: 1, op: { v: new Uint8Array([1, 2]) } });
    const fromBuffer = decodeCommand(Buffer.from(bytes)).op as { v: Uint8Array };
    const fromPlain = decodeCommand(new Uint8Array(bytes)).op as { v: Uint8Array };
    t.ok(Buffer.isBuffer(fromBuffer.v) && Buffer.isBuffer(fromPlain.v), 'both Buffers');
    // The control: the codec alone follows the class of its input.
    const raw = decodeValue(new Uint8Array(bytes)) as [string, number, { v: Uint8Array }];
    t.notOk(Buffer.isBuffer(raw[2].v), 'decodeValue on a Uint8Array gives a Uint8Array');
  },
);

t.test('commands decode by range from the message or batch that holds them', async (t) => {
  const cmds = Array.from({ length: 50 }, (_, i) => ({
    clientId: `c${i}`,
    seq: i,
    op: { k: `k${i}`, v: i % 3 === 0 ? 'x'.repeat(i) : i },
  }));
  const entries = cmds.map((c, i) => ({
    index: i + 1,
    term: 1,
    type: 'normal' as const,
    data: encodeCommand(c),
  }));
  const views = unpackEntries(packEntries(entries));
  t.same(
    views.map((e) => decodeCommand(e.data)),
    cmds,
    'every entry decodes to its own command (views of one buffer)',
  );
  t.same(
    views.map((e) => (e.data as { dataView?: unknown }).dataView),
    views.map(() => undefined),
    'nothing is attached to the long-lived entry views',
  );
  // Bytes that only make sense with their neighbours are refused, not read across.
  const one = encodeCommand(cmds[1] as (typeof cmds)[number]);
  const two = new Uint8Array(one.byteLength * 2);
  two.set(one, 0);
  two.set(one, one.byteLength);
  t.throws(() => decodeCommand(two), { code: 'SYNOD_ERR_DECODE' }, 'two values: refused');
  t.throws(
    () => decodeCommand(two.subarray(0, one.byteLength - 1)),
    { code: 'SYNOD_ERR_DECODE' },
    'a value cut short is refused, although the next bytes would complete it',
  );
  t.throws(() => decodeCommand(two.subarray(3, 3)), { code: 'SYNOD_ERR_DECODE' }, 'empty: refused');
  t.same(decodeCommand(two.subarray(one.byteLength)), cmds[1], 'the second copy alone decodes');
});
