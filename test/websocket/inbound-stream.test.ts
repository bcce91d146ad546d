/**
 * `inbound$` is a hot multicast stream (it used to be a `Subject`; it is now a lighter
 * emitter with the same semantics): every subscriber gets every envelope delivered while it
 * is subscribed, a subscriber added during an emission starts with the next envelope, one
 * that unsubscribes during an emission gets nothing more, and `close()` completes current and
 * later subscribers.
 */
import t from 'tap';
import type { Envelope } from '../../lib/envelope.js';
import { env, linkUp, startNode, until } from '../helpers/ws-util.js';

t.test('inbound$ multicasts like a Subject and completes on close', async (t) => {
  const b = await startNode('b');
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  const first: number[] = [];
  const second: number[] = [];
  const late: number[] = [];
  const quitter: number[] = [];
  let lateAdded = false;
  b.t.inbound$.subscribe((e: Envelope) => {
    first.push(e.m as number);
    if (e.m === 2 && !lateAdded) {
      lateAdded = true;
      b.t.inbound$.subscribe((x: Envelope) => late.push(x.m as number));
    }
  });
  const q = b.t.inbound$.subscribe((e: Envelope) => {
    quitter.push(e.m as number);
    if (e.m === 1) q.unsubscribe();
  });
  b.t.inbound$.subscribe((e: Envelope) => second.push(e.m as number));
  for (let i = 0; i < 5; i++) a.t.send(env('b/x', i, 'a/y'));
  await until(() => second.length === 5, 10_000, 'five envelopes');
  t.same(first, [0, 1, 2, 3, 4], 'first subscriber: all');
  t.same(second, [0, 1, 2, 3, 4], 'second subscriber: all');
  t.same(quitter, [0, 1], 'unsubscribed during an emission: nothing after');
  t.same(late, [3, 4], 'subscribed during an emission: from the next envelope on');
  t.equal(b.t.counters().delivered, 5, 'delivered counts envelopes, not subscribers');
  let completed = 0;
  b.t.inbound$.subscribe({ complete: () => completed++ });
  await b.t.close();
  t.equal(completed, 1, 'close completes current subscribers');
  b.t.inbound$.subscribe({ complete: () => completed++ });
  t.equal(completed, 2, 'a subscriber after close completes at once');
});
