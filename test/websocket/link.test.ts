import t from 'tap';
import { wireSize } from '../../lib/codec.js';
import { BATCH_OVERHEAD } from '../../transports/websocket/frames.js';
import { collect, env, linkUp, startNode } from '../helpers/ws-util.js';

t.test('two nodes exchange envelopes in order over one link', async (t) => {
  const b = await startNode('b');
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  const up = await linkUp(a.t, 'b');
  t.equal(up.incarnation, b.t.incarnation, 'a learns b incarnation');
  await linkUp(b.t, 'a');
  const got = collect(b.t.inbound$, 1000);
  let accepted = 0;
  for (let i = 0; i < 1000; i++) if (a.t.send(env('b/x', { n: i }, 'a/y'))) accepted++;
  t.equal(accepted, 1000, 'all accepted');
  const envs = await got;
  t.same(
    envs.map((e) => (e.m as { n: number }).n),
    Array.from({ length: 1000 }, (_, i) => i),
    'in order',
  );
  t.ok(a.t.counters().framesSent < 1000, `batched: ${a.t.counters().framesSent} frames`);
  // reply direction over the same link (b did not dial a)
  const back = collect(a.t.inbound$, 1);
  t.ok(b.t.send(env('a/y', 'pong')));
  t.equal((await back)[0]!.m, 'pong');
  t.same(a.t.peers(), ['b']);
  t.same(b.t.peers(), ['a']);
});

t.test(
  'a send that fills a batch writes full batches and leaves the tail for the run',
  async (t) => {
    const b = await startNode('b');
    const a = await startNode('a', { peers: [`b=${b.url}`] });
    t.teardown(async () => {
      await a.t.close();
      await b.t.close();
    });
    await linkUp(a.t, 'b');
    const size = wireSize(env('b/x', 1, 'a/y'));
    const perFrame = Math.floor((a.t.options.batchBytes - BATCH_OVERHEAD) / size);
    const n = perFrame * 2 + 10; // two full batches and a tail, in one synchronous run
    const before = a.t.counters().framesSent;
    const got = collect(b.t.inbound$, n);
    for (let i = 0; i < n; i++) a.t.send(env('b/x', i, 'a/y'));
    const envs = await got;
    t.same(
      envs.map((e) => e.m),
      Array.from({ length: n }, (_, i) => i),
      'all, in order',
    );
    // (before: each batch that filled up mid-run was followed by a frame of one envelope)
    t.equal(
      a.t.counters().framesSent - before,
      3,
      `3 frames for ${n} envelopes (${perFrame} a frame)`,
    );
  },
);
