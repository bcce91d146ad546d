/**
 * Messages for actors that do not exist (review finding: they were only counted in the total
 * of dead letters and logged at debug without the peer). Each is now a dead letter with its
 * reason and the peer node, counted per peer in the transport's `counters().refusedInbound`,
 * and logged at warn naming the peer and the target, rate limited (20 lines per 10 s per code
 * and peer) while the counters count every one. An ask is still answered at once.
 */
import t from 'tap';
import { ActorSystem } from '../../lib/actor-system.js';
import type { DeadLetter } from '../../lib/dead-letter.js';
import { CapturingLogger, linkUp, startNode, until } from '../helpers/ws-util.js';

const NO_SUCH_ACTOR = 'SYNOD_ERR_NO_SUCH_ACTOR';

t.test('messages for unknown actors name the peer, are counted per peer and warned', async (t) => {
  const a = await startNode('a');
  const b = await startNode('b', { peers: [`a=${a.url}`] });
  const sa = new ActorSystem({ nodeId: 'a', transport: a.t, logger: new CapturingLogger() });
  const sb = new ActorSystem({ nodeId: 'b', transport: b.t, logger: new CapturingLogger() });
  const dead: DeadLetter[] = [];
  const sub = sa.deadLetters$.subscribe((d) => dead.push(d));
  t.teardown(async () => {
    sub.unsubscribe();
    await sa.shutdown();
    await sb.shutdown();
    await a.t.close();
    await b.t.close();
  });
  await linkUp(b.t, 'a');
  sb.send('a/nobody', { type: 'hi' });
  sb.send('a/nobody', { type: 'hi' }, 'b/someone');
  const asked = await sb.ask('a/nobody', { type: 'hi' } as never, 5000).then(
    () => 'answered',
    (err: Error & { code?: string }) => err.code,
  );
  t.equal(asked, NO_SUCH_ACTOR, 'an ask is answered with the code at once');
  await until(() => dead.length >= 3, 5000, 'three dead letters');
  t.same(
    dead.map((d) => [d.code, d.peer, d.to]),
    [
      [NO_SUCH_ACTOR, 'b', 'a/nobody'],
      [NO_SUCH_ACTOR, 'b', 'a/nobody'],
      [NO_SUCH_ACTOR, 'b', 'a/nobody'],
    ],
    'each dead letter names the peer, also for a tell without a sender',
  );
  t.equal(dead[0]!.reason, 'no actor at a/nobody (sent by node b)');
  t.same(a.t.counters().refusedInbound, { b: { [NO_SUCH_ACTOR]: 3 } }, 'counted per peer');
  const warns = () =>
    a.log.lines.filter(
      (l) =>
        l.level === 'warn' &&
        l.message.includes('from b for a/nobody') &&
        l.message.includes(NO_SUCH_ACTOR),
    );
  t.equal(warns().length, 3, 'one warn line each, naming the peer and the target');
  t.same(warns()[0]!.fields, { peer: 'b', to: 'a/nobody', code: NO_SUCH_ACTOR }, 'with fields');

  // a flood: every one counted, the log rate limited
  for (let i = 0; i < 200; i++) sb.send('a/nobody', { type: 'flood', i });
  await until(() => dead.length >= 203, 5000, 'the flood dead-lettered');
  t.equal(a.t.counters().refusedInbound.b?.[NO_SUCH_ACTOR], 203, 'every one counted');
  t.equal(warns().length, 20, 'at most 20 warn lines per 10 s');
  t.equal(sa.stats().refusedInbound, 203);
});
