import { Packr } from 'msgpackr';
import t from 'tap';
import { encodeEnvelope } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import {
  BatchDecoder,
  BatchEncoder,
  decodeBatch,
  FrameType,
  MAX_RECORD_STRUCTURES,
} from '../../transports/websocket/frames.js';
import { env } from '../helpers/ws-util.js';

const batch = (from: number, n: number): Envelope[] =>
  Array.from({ length: n }, (_, i) => env('b/x', { type: 'ping', n: from + i, s: `#${from + i}` }));

t.test('encoders and decoders do not share structure state', async (t) => {
  const e1 = new BatchEncoder();
  const e2 = new BatchEncoder();
  const d1 = new BatchDecoder();
  d1.decode(e1.encode(batch(0, 2)), 'b');
  // e2 never wrote a frame, so its first frame must define its structures itself
  t.same(new BatchDecoder().decode(e2.encode(batch(2, 2)), 'b'), batch(2, 2));
  t.same(d1.decode(e1.encode(batch(4, 2)), 'b'), batch(4, 2));
});

t.test('a connection shares record structures across frames', async (t) => {
  const enc = new BatchEncoder();
  const dec = new BatchDecoder();
  const f1 = enc.encode(batch(0, 10));
  const f2 = enc.encode(batch(10, 10));
  t.equal(f1[0], FrameType.BATCH);
  t.equal(f2[0], FrameType.BATCH);
  t.ok(
    f2.length < f1.length,
    `the second frame omits the structures (${f2.length} < ${f1.length})`,
  );
  t.same(dec.decode(f1, 'b'), batch(0, 10));
  t.same(dec.decode(f2, 'b'), batch(10, 10), 'decoded with the structures of frame 1');
  // negative control: a decoder that did not see frame 1 cannot read frame 2
  t.throws(() => new BatchDecoder().decode(f2, 'b'));
  // records are smaller than plain maps
  const plain = batch(0, 10).reduce((n, e) => n + encodeEnvelope(e).length, 1);
  t.ok(f2.length < plain, `records ${f2.length} bytes < plain maps ${plain} bytes`);
});

t.test('reset: the encoder starts over and tells the decoder with BATCH_RESET', async (t) => {
  const enc = new BatchEncoder();
  const dec = new BatchDecoder();
  t.same(dec.decode(enc.encode(batch(0, 3)), 'b'), batch(0, 3));
  // a frame encoded and then discarded (never written): the structures it defined are lost
  enc.encode([env('b/x', { other: 1, shape: 2 })]);
  enc.reset();
  const f = enc.encode([env('b/x', { other: 3, shape: 4 }), ...batch(3, 2)]);
  t.equal(f[0], FrameType.BATCH_RESET);
  t.same(dec.decode(f, 'b'), [env('b/x', { other: 3, shape: 4 }), ...batch(3, 2)]);
  const g = enc.encode(batch(5, 2));
  t.equal(g[0], FrameType.BATCH, 'only the first frame after a reset carries the flag');
  t.same(dec.decode(g, 'b'), batch(5, 2));
  // an encode error resets by itself
  t.throws(() => enc.encode([env('b/x', { big: 2n ** 70n })]));
  const h = enc.encode(batch(7, 1));
  t.equal(h[0], FrameType.BATCH_RESET);
  t.same(dec.decode(h, 'b'), batch(7, 1));
});

t.test('plain concatenated envelopes (wire v1 batches) are still read', async (t) => {
  const es = batch(0, 3);
  const frame = Buffer.concat([Buffer.from([FrameType.BATCH]), ...es.map(encodeEnvelope)]);
  t.same(decodeBatch(frame, 'b'), es);
  t.same(new BatchDecoder().decode(frame, 'b'), es);
});

t.test('bad batches are refused whole with a stable code', async (t) => {
  const enc = new BatchEncoder();
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return (err as { code?: string }).code;
    }
    return 'no error';
  };
  t.equal(
    code(() => decodeBatch(Buffer.from([FrameType.BATCH]), 'b')),
    ErrorCode.BAD_FRAME,
  );
  t.equal(
    code(() => decodeBatch(Buffer.from([FrameType.BATCH, 0x92, 0x01]), 'b')), // truncated
    ErrorCode.DECODE,
  );
  t.equal(
    code(() => decodeBatch(enc.encode([...batch(0, 2), { v: 1, k: 'tell' } as never]), 'b')),
    ErrorCode.BAD_ENVELOPE,
  );
  t.equal(
    code(() => new BatchDecoder().decode(new BatchEncoder().encode([env('c/x', 1)]), 'b')),
    ErrorCode.MISROUTED,
  );
  t.equal(
    code(() =>
      new BatchDecoder().decode(new BatchEncoder().encode([[env('b/x', 1)]] as never), 'b'),
    ),
    ErrorCode.BAD_ENVELOPE,
    'an array nested in the batch array is not an envelope',
  );
  t.equal(
    code(() => new BatchDecoder().decode(new BatchEncoder().encode([]), 'b')),
    ErrorCode.BAD_ENVELOPE,
    'an empty batch array is refused',
  );
  t.same(
    new BatchDecoder().decode(new BatchEncoder().encode([env('b', 1)]), 'b').length,
    1,
    'a bare node address is this node',
  );
  // a peer defining structure after structure is cut off
  const flood = new BatchEncoder();
  const dec = new BatchDecoder();
  let refused: string | undefined;
  for (let i = 0; i < MAX_RECORD_STRUCTURES * 2 && refused === undefined; i++) {
    refused = code(() => dec.decode(flood.encode([env('b/x', { [`k${i}`]: i })]), 'b'));
    if (refused === 'no error') refused = undefined;
  }
  // our encoder cycles through at most 64 ids, so an honest peer never trips the limit
  t.equal(refused, undefined, 'an honest encoder never exceeds the structure limit');
  // a hostile encoder that keeps defining new structures is refused
  const hostile = new Packr({ useRecords: true, sequential: true, maxOwnStructures: 2000 });
  const victim = new BatchDecoder();
  let hostileRefused: string | undefined;
  for (let i = 0; i < 1000 && hostileRefused === undefined; i++) {
    const body = hostile.pack([env('b/x', { [`k${i}`]: i })]);
    const r = code(() => victim.decode(Buffer.concat([Buffer.from([FrameType.BATCH]), body]), 'b'));
    if (r !== 'no error') hostileRefused = r;
  }
  t.equal(hostileRefused, ErrorCode.BAD_FRAME, 'too many structures: refused');
});
