/**
 * Forged runtime notices (review finding): a member that holds the cluster secret sent a
 * `terminated` notice about an actor on a third node, and the watcher believed it (the KV
 * service watches stream subscribers this way). A peer may speak only for its own actors: a
 * `terminated` about a target, or a `watch`/`unwatch` for a watcher, on another node than the
 * sending one is dropped, dead-lettered as SYNOD_ERR_FORGED_NOTICE with the peer, counted per
 * peer by the transport and logged naming the peer. The honest paths (a real stop, a real
 * watch) are the negative control: they still work.
 */
import t from 'tap';
import { ActorSystem } from '../../lib/actor-system.js';
import { encodeEnvelope } from '../../lib/codec.js';
import type { DeadLetter } from '../../lib/dead-letter.js';
import { type Envelope, PROTOCOL_VERSION } from '../../lib/envelope.js';
import { FrameType } from '../../transports/websocket/frames.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import { Echo, type EchoMsg, Watcher, type WatcherMsg } from '../helpers/ws-scenario-actors.js';
import { CapturingLogger, linkUp, startNode, until } from '../helpers/ws-util.js';

const FORGED = 'SYNOD_ERR_FORGED_NOTICE';
type Terms = { address: string; reason: string }[];

const sys = (to: string, m: Record<string, unknown>, from?: string): Envelope => {
  const e: Envelope = { v: PROTOCOL_VERSION, k: 'sys', to, m };
  if (from !== undefined) e.from = from;
  return e;
};
const frame = (...envs: Envelope[]) =>
  Buffer.concat([Buffer.from([FrameType.BATCH]), ...envs.map((e) => encodeEnvelope(e))]);

t.test(
  'forged terminated / unwatch notices from a member are dropped over WebSockets',
  async (t) => {
    const ta = await startNode('a', { secret: 's' });
    const tc = await startNode('c', { secret: 's', peers: [`a=${ta.url}`] });
    const logA = new CapturingLogger();
    const sa = new ActorSystem({ nodeId: 'a', transport: ta.t, logger: logA });
    const sc = new ActorSystem({ nodeId: 'c', transport: tc.t, logger: new CapturingLogger() });
    sc.spawn('echo', new Echo());
    sc.spawn('cw', new Watcher());
    sa.spawn('w', new Watcher());
    sa.spawn('victim', new Echo());
    const dead: DeadLetter[] = [];
    const sub = sa.deadLetters$.subscribe((d) => dead.push(d));
    const mallory = await rawDial(ta.url, identity('mallory', 's'), 'a');
    t.teardown(async () => {
      sub.unsubscribe();
      mallory.terminate();
      await sa.shutdown();
      await sc.shutdown();
      await ta.t.close();
      await tc.t.close();
    });
    await linkUp(tc.t, 'a');
    // a/w watches c/echo; c/cw watches a/victim (each watch is in place once an ask sent after
    // it on the same link is answered)
    sa.send('a/w', { type: 'watch', target: 'c/echo' });
    sc.send('c/cw', { type: 'watch', target: 'a/victim' });
    t.equal(
      await sa.ask<EchoMsg & { type: 'echo' }>('c/echo', { type: 'echo', text: 'x' }, 5000),
      'c:x',
    );
    t.equal(
      await sc.ask<EchoMsg & { type: 'echo' }>('a/victim', { type: 'echo', text: 'y' }, 5000),
      'a:y',
    );

    // mallory (a member: it holds the secret) forges notices about c's actors
    mallory.send(
      frame(
        // 1. "c/echo stopped", without a sender (the reviewer's probe)
        sys('a/w', { op: 'terminated', target: 'c/echo', watcher: 'a/w', reason: 'stopped' }),
        // 2. the same, with mallory's own actor as the sender (passes sender verification)
        sys(
          'a/w',
          { op: 'terminated', target: 'c/echo', watcher: 'a/w', reason: 'stopped' },
          'mallory/x',
        ),
        // 3. "c/cw no longer watches a/victim"
        sys('a/victim', { op: 'unwatch', target: 'a/victim', watcher: 'c/cw' }, 'mallory/x'),
      ),
    );
    await until(
      () => dead.filter((d) => d.code === FORGED).length >= 3,
      5000,
      'three forged notices',
    );
    const forged = dead.filter((d) => d.code === FORGED);
    t.same(
      forged.map((d) => d.peer),
      ['mallory', 'mallory', 'mallory'],
      'each dead letter names the peer that sent it',
    );
    t.match(
      forged[0]!.reason,
      /terminated notice about c\/echo came from node mallory, not from node c/,
    );
    t.match(
      forged[2]!.reason,
      /unwatch notice about c\/cw came from node mallory, not from node c/,
    );
    t.same(
      ta.t.counters().refusedInbound.mallory,
      { [FORGED]: 3 },
      'the transport counts them per peer',
    );
    t.ok(
      ta.log.lines.some(
        (l) =>
          l.level === 'warn' &&
          l.message.includes('from mallory for a/w') &&
          l.message.includes(FORGED),
      ),
      'logged at warn naming the peer and the target',
    );
    t.equal(sa.stats().refusedInbound, 3, 'the actor system counts them');
    const before = (await sa.ask<WatcherMsg & { type: 'terminations' }>(
      'a/w',
      { type: 'terminations' },
      5000,
    )) as Terms;
    t.same(before, [], 'the watcher did not believe the forged notice');
    t.equal(
      await sa.ask<EchoMsg & { type: 'echo' }>('c/echo', { type: 'echo', text: 'z' }, 5000),
      'c:z',
    );

    // negative control: the honest notices still arrive
    await sc.stop('c/echo');
    await sa.stop('a/victim');
    await until(() => true);
    let terms: Terms = [];
    let cwTerms: Terms = [];
    const deadline = performance.now() + 5000;
    while ((terms.length === 0 || cwTerms.length === 0) && performance.now() < deadline) {
      terms = (await sa.ask<WatcherMsg & { type: 'terminations' }>('a/w', {
        type: 'terminations',
      })) as Terms;
      cwTerms = (await sc.ask<WatcherMsg & { type: 'terminations' }>('c/cw', {
        type: 'terminations',
      })) as Terms;
    }
    t.same(terms, [{ address: 'c/echo', reason: 'stopped' }], 'a real stop of c/echo reaches a/w');
    t.same(
      cwTerms,
      [{ address: 'a/victim', reason: 'stopped' }],
      'c/cw still watched a/victim (the forged unwatch was dropped)',
    );
    t.equal(dead.filter((d) => d.code === FORGED).length, 3, 'no honest notice was refused');
  },
);

t.test('without a transport that names the peer, the verified sender decides', async (t) => {
  const s = new ActorSystem({ nodeId: 'a', logger: new CapturingLogger() });
  t.teardown(() => s.shutdown());
  s.spawn('w', new Watcher());
  s.send('a/w', { type: 'watch', target: 'c/echo' });
  // the watch goes out through no transport (a NO_ROUTE dead letter) but is recorded all the
  // same; an ask after it is answered once the watch message was handled
  await s.ask<WatcherMsg & { type: 'terminations' }>('a/w', { type: 'terminations' });
  const dead: DeadLetter[] = [];
  s.deadLetters$.subscribe((d) => dead.push(d));
  const notice = { op: 'terminated', target: 'c/echo', watcher: 'a/w', reason: 'stopped' };
  s.receiveEnvelope(sys('a/w', notice)); // no sender at all
  s.receiveEnvelope(sys('a/w', notice, 'b/x')); // a sender on another node
  t.same(
    dead.map((d) => [d.code, d.peer]),
    [
      [FORGED, undefined],
      [FORGED, 'b'],
    ],
  );
  s.receiveEnvelope(sys('a/w', notice, 'c/echo')); // the honest form
  let terms: Terms = [];
  const deadline = performance.now() + 5000;
  while (terms.length === 0 && performance.now() < deadline) {
    terms = (await s.ask<WatcherMsg & { type: 'terminations' }>('a/w', {
      type: 'terminations',
    })) as Terms;
  }
  t.same(terms, [{ address: 'c/echo', reason: 'stopped' }], 'the honest notice is delivered');
  t.equal(dead.length, 2);
});
