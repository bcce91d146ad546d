/**
 * Reading yields to the event loop: a connection delivers at most READ_BUDGET_ENVELOPES
 * (plus what is already buffered) before it pauses its socket until the next turn, so a fast
 * peer cannot pour hundreds of thousands of envelopes into actor mailboxes before any actor
 * runs, and nothing is lost: every envelope arrives, in order.
 */
import t from 'tap';
import { encodeEnvelope } from '../../lib/codec.js';
import { READ_BUDGET_ENVELOPES } from '../../transports/websocket/connection.js';
import { FrameType } from '../../transports/websocket/frames.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import { env, startNode, until } from '../helpers/ws-util.js';

t.test('a flood of frames is delivered in turns, in order, completely', async (t) => {
  const target = await startNode('target');
  t.teardown(() => target.t.close());
  const PER_FRAME = 4096;
  const FRAMES = 40;
  const perTurn: number[] = [];
  let inTurn = 0;
  let turnMarked = false;
  let next = 0;
  let outOfOrder = 0;
  const sub = target.t.inbound$.subscribe((e) => {
    if ((e.m as number) !== next) outOfOrder++;
    next = (e.m as number) + 1;
    inTurn++;
    if (!turnMarked) {
      turnMarked = true;
      setImmediate(() => {
        perTurn.push(inTurn);
        inTurn = 0;
        turnMarked = false;
      });
    }
  });
  t.teardown(() => sub.unsubscribe());
  const peer = await rawDial(target.url, identity('flood'), 'target');
  t.teardown(() => peer.terminate());
  // all frames written at once: they sit in the socket buffers before the node reads any
  for (let f = 0; f < FRAMES; f++) {
    const parts = [Buffer.from([FrameType.BATCH])];
    for (let i = 0; i < PER_FRAME; i++) {
      parts.push(Buffer.from(encodeEnvelope(env('target/x', f * PER_FRAME + i, 'flood/y'))));
    }
    peer.send(Buffer.concat(parts));
  }
  const total = FRAMES * PER_FRAME;
  await until(() => next === total, 60_000, `${total} envelopes`);
  await until(() => !turnMarked, 5_000, 'the last turn');
  t.equal(outOfOrder, 0, 'in order');
  t.equal(
    perTurn.reduce((a, b) => a + b, 0),
    total,
    'every envelope delivered exactly once',
  );
  const most = Math.max(...perTurn);
  t.comment(`turns: ${perTurn.length}, most envelopes in one turn: ${most}`);
  // the frame that crosses the budget, and those already parsed from the same read, finish
  t.ok(
    most <= READ_BUDGET_ENVELOPES + 3 * PER_FRAME,
    `at most the budget plus what was buffered per turn (${most})`,
  );
  t.ok(perTurn.length >= Math.ceil(total / (READ_BUDGET_ENVELOPES + 3 * PER_FRAME)));
});
