/**
 * Shared scenario: a node can only send as itself, on every transport. An envelope naming a
 * sender on another node is refused by `send` with SYNOD_ERR_FORGED_SENDER (a dead letter with
 * that code), and nothing is delivered; an honest envelope still goes through.
 */
import { filter, firstValueFrom, timeout } from 'rxjs';
import t from 'tap';
import { PROTOCOL_VERSION } from '../../lib/envelope.js';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, type EchoMsg } from '../helpers/ws-scenario-actors.js';

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: a node cannot send as another node`, async (t) => {
    const c = await make(['a', 'b', 'c'], (_n, s) => {
      s.spawn('echo', new Echo());
    });
    t.teardown(() => c.close());
    const transport = c.transport('a');
    const dead = firstValueFrom(
      transport.deadLetters$.pipe(
        filter((d) => d.code === 'SYNOD_ERR_FORGED_SENDER'),
        timeout(10_000),
      ),
    );
    const sent = transport.send({
      v: PROTOCOL_VERSION,
      k: 'tell',
      to: 'b/echo',
      from: 'c/echo',
      m: { type: 'echo', text: 'forged' },
    });
    t.equal(sent, false, 'send refuses a sender on another node');
    const d = await dead;
    t.match(d.reason, /not on this node/, 'the dead letter says why');
    // The node's own actors still talk to b.
    t.equal(
      await c
        .system('a')
        .ask<EchoMsg & { type: 'echo' }>('b/echo', { type: 'echo', text: 'ok' }, 10_000),
      'b:ok',
    );
  });
}
