/** Shared scenario: ask/reply across nodes, on every transport. */
import t from 'tap';
import { CLUSTERS } from '../helpers/ws-clusters.js';
import { Echo, type EchoMsg } from '../helpers/ws-scenario-actors.js';

for (const { name, make } of CLUSTERS) {
  t.test(`${name}: ask/reply across nodes`, async (t) => {
    const c = await make(['a', 'b'], (_n, s) => {
      s.spawn('echo', new Echo());
    });
    t.teardown(() => c.close());
    const a = c.system('a');
    t.equal(
      await a.ask<EchoMsg & { type: 'echo' }>('b/echo', { type: 'echo', text: 'hi' }, 5000),
      'b:hi',
    );
    const many = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        a.ask<EchoMsg & { type: 'echo' }>('b/echo', { type: 'echo', text: String(i) }, 10_000),
      ),
    );
    t.same(
      many,
      Array.from({ length: 200 }, (_, i) => `b:${i}`),
      'every reply matched to its ask',
    );
    const back = await c
      .system('b')
      .ask<EchoMsg & { type: 'echo' }>('a/echo', { type: 'echo', text: 'x' }, 5000);
    t.equal(back, 'a:x', 'the other direction');
    await t.rejects(
      a.ask<EchoMsg & { type: 'echo' }>('b/nobody', { type: 'echo', text: 'x' }, 5000),
      { code: 'SYNOD_ERR_NO_SUCH_ACTOR' },
      "an ask to an actor that does not exist fails with the runtime's code",
    );
  });
}
