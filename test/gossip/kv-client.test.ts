/**
 * The leaderless store through the KV client API (`LeaderlessKvClient`, lib/kv-client/api.ts):
 * W/R per request, siblings and causal contexts, CRDT operations, outcomes, the `session` level
 * across coordinators (with a negative control at `eventual`), and the refusals (strong,
 * bounded, prefix, cas, scans, watch). Five replicas in one process on a virtual clock.
 */
import t, { type Test } from 'tap';
import { type EventualCluster, startEventualCluster } from '../../actors/gossip/embedded.js';
import { HashRing } from '../../actors/gossip/ring.js';
import type { KvApi } from '../../lib/kv-client/api.js';
import type { KvClient } from '../../lib/kv-client/client.js';
import type { LeaderlessKvClient } from '../../lib/kv-client/leaderless.js';
import type { KvResponse } from '../../lib/kv-client/response.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

// Both clients implement the one API (checked by the compiler).
const _raft: (c: KvClient) => KvApi = (c) => c;
const _leaderless: (c: LeaderlessKvClient) => KvApi = (c) => c;
void _raft;
void _leaderless;

const NODES = ['a', 'b', 'c', 'd', 'e'];

async function settle<T>(clock: VirtualClock, p: Promise<T>, limitMs = 60_000): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      error = e;
    },
  );
  const end = clock.now() + limitMs;
  while (!done && clock.now() < end) await advance(clock, 10);
  if (!done) throw new Error(`not settled within ${limitMs} virtual ms`);
  if (error !== undefined) throw error;
  return value as T;
}

async function start(seed: number): Promise<{ clock: VirtualClock; c: EventualCluster }> {
  const clock = new VirtualClock();
  const c = await settle(
    clock,
    startEventualCluster({
      clock,
      seed,
      nodes: NODES,
      replica: {
        n: 3,
        requestTimeoutMs: 500,
        antiEntropyIntervalMs: 0,
        keyTypes: [
          { prefix: 'pn/', type: 'pn' },
          { prefix: 'set/', type: 'orset' },
        ],
        swim: { periodMs: 200, pingTimeoutMs: 50 },
      },
    }),
  );
  await settle(clock, c.ready());
  return { clock, c };
}

function ok<T>(t: Test, r: KvResponse<T>, what: string): T {
  if (r.outcome !== 'ok') {
    t.fail(`${what}: ${r.outcome} ${r.error.code} ${r.error.message}`);
    throw new Error(what);
  }
  t.pass(what);
  return r.value;
}

t.test('W/R per request, values and outcomes', async (t) => {
  const { clock, c } = await start(1);
  t.teardown(() => c.stop());
  const kv = c.client({ timeoutMs: 3000 });
  for (const w of ['one', 'quorum', 'all', 2] as const) {
    const put = ok(t, await settle(clock, kv.put(`k-${w}`, `v-${w}`, { w })), `put W=${w}`);
    t.ok(put.acks >= (w === 'one' ? 1 : w === 'all' ? 3 : 2), `acks ${put.acks} ≥ W=${w}`);
    t.equal(put.t, 'put');
    for (const r of ['one', 'quorum', 'all', 3] as const) {
      const got = ok(t, await settle(clock, kv.get(`k-${w}`, { r })), `get R=${r}`);
      t.equal(got.value, `v-${w}`);
      t.ok(
        got.replies >= (r === 'one' ? 1 : r === 'quorum' ? 2 : 3),
        `R=${r}: ${got.replies} replies`,
      );
    }
  }
  const absent = ok(t, await settle(clock, kv.get('never-written')), 'absent key');
  t.equal(absent.value, null);
  t.equal(absent.absent, true);
  const badW = await settle(clock, kv.put('k', 'v', { w: 4 }));
  t.equal(badW.outcome, 'failed', 'W > N: failed, nothing applied');
  t.equal(badW.outcome === 'failed' && badW.error.code, 'SYNOD_ERR_BAD_REQUEST');
  const badR = await settle(clock, kv.get('k', { r: 'most' as never }));
  t.equal(badR.outcome === 'failed' && badR.error.code, 'SYNOD_ERR_BAD_REQUEST');
  const del = ok(t, await settle(clock, kv.delete('k-one')), 'delete');
  t.equal(del.t, 'del');
  const gone = ok(t, await settle(clock, kv.get('k-one')), 'read after delete');
  t.equal(gone.value, null);
  t.equal(gone.absent, true);
});

t.test('siblings and causal context through the client API', async (t) => {
  const { clock, c } = await start(2);
  t.teardown(() => c.stop());
  const alice = c.client({ node: 'a' });
  const bob = c.client({ node: 'b' });
  ok(t, await settle(clock, alice.put('doc', 'from alice')), 'alice writes');
  ok(t, await settle(clock, bob.put('doc', 'from bob')), 'bob writes blind (no context)');
  const seen = ok(t, await settle(clock, alice.get('doc', { r: 'all' })), 'read');
  t.same([...seen.siblings].sort(), ['from alice', 'from bob'], 'both writes kept as siblings');
  t.equal(seen.conflict, true);
  t.equal(seen.value, null, 'no single value while in conflict');
  t.equal(seen.absent, false, 'in conflict is not absent');
  t.type(seen.context, 'string');
  // alice resolves: her put carries the context of the read that returned both siblings
  ok(t, await settle(clock, alice.put('doc', 'merged')), 'alice writes back the merge');
  const after = ok(t, await settle(clock, bob.get('doc', { r: 'all' })), 'bob reads');
  t.same(after.siblings, ['merged'], 'the siblings are resolved');
  t.equal(after.value, 'merged');
  t.equal(after.conflict, false);
  // an explicit context: bob passes alice's context, so his write replaces hers
  const carol = c.client({ node: 'c' });
  ok(
    t,
    await settle(clock, carol.put('doc', 'carol', { context: alice.contextOf('doc') as string })),
    'carol writes with alice context',
  );
  const last = ok(t, await settle(clock, carol.get('doc', { r: 'all' })), 'read');
  t.same(last.siblings, ['carol'], 'an explicit context replaces what it covers');
});

t.test('CRDT keys: counters and sets merge instead of conflicting', async (t) => {
  const { clock, c } = await start(3);
  t.teardown(() => c.stop());
  const kv = [c.client({ node: 'a' }), c.client({ node: 'c' }), c.client({ node: 'e' })];
  for (let i = 0; i < 6; i++)
    ok(
      t,
      await settle(clock, (kv[i % 3] as LeaderlessKvClient).increment('pn/hits', 2)),
      `+2 #${i}`,
    );
  ok(t, await settle(clock, (kv[0] as LeaderlessKvClient).increment('pn/hits', -5)), '-5');
  const n = ok(
    t,
    await settle(clock, (kv[1] as LeaderlessKvClient).get('pn/hits', { r: 'all' })),
    'read counter',
  );
  t.equal(n.crdt, 7, 'six +2 and one -5 from three coordinators');
  t.equal(n.type, 'pn');
  const s = kv[2] as LeaderlessKvClient;
  ok(t, await settle(clock, s.add('set/tags', 'x')), 'add x');
  ok(t, await settle(clock, (kv[0] as LeaderlessKvClient).add('set/tags', 'y')), 'add y');
  ok(t, await settle(clock, s.remove('set/tags', 'x')), 'remove x');
  const set = ok(t, await settle(clock, s.get('set/tags', { r: 'all' })), 'read set');
  t.same(set.crdt, ['y']);
  const wrong = await settle(clock, s.put('pn/hits', 'nope'));
  t.equal(
    wrong.outcome === 'failed' && wrong.error.code,
    'SYNOD_ERR_WRONG_TYPE',
    'put on a counter',
  );
});

t.test('refusals: strong, bounded, prefix, cas, scans, watch', async (t) => {
  const { clock, c } = await start(4);
  t.teardown(() => c.stop());
  const kv = c.client();
  const before = kv.stats.requests;
  const strong = await settle(clock, kv.get('k', { level: 'strong' }));
  t.equal(strong.outcome, 'failed');
  t.equal(strong.outcome === 'failed' && strong.error.code, 'SYNOD_ERR_STRONG_UNSUPPORTED');
  for (const read of [{ level: 'bounded', maxLagMs: 100 }, { level: 'prefix' }] as const) {
    const r = await settle(clock, kv.get('k', read));
    t.equal(r.outcome === 'failed' && r.error.code, 'SYNOD_ERR_KV_UNSUPPORTED', read.level);
  }
  for (const r of [
    await kv.cas('k', { value: null }, 'v'),
    await kv.range('a', 'z'),
    await kv.prefix('a'),
  ])
    t.equal(r.outcome === 'failed' && r.error.code, 'SYNOD_ERR_KV_UNSUPPORTED');
  t.equal(kv.stats.requests, before, 'nothing was sent for a refused call');
  const err = await new Promise<unknown>((resolve) => kv.watch('k').subscribe({ error: resolve }));
  t.match(err, { code: 'SYNOD_ERR_KV_UNSUPPORTED' });
});

t.test(
  'session reads never go back, also through another coordinator; eventual does',
  async (t) => {
    const { clock, c } = await start(5);
    t.teardown(() => c.stop());
    // a key that node a replicates; a is cut off from the other replicas (not from the client)
    const ring = new HashRing(NODES, 32);
    const key = Array.from({ length: 100 }, (_, i) => `s${i}`).find(
      (k) => ring.preferenceList(k, 3)[0] === 'a',
    ) as string;
    const others = NODES.filter((n) => n !== 'a');
    c.split(['a'], others);
    const kv = c.client({ node: 'a', timeoutMs: 2000 });
    const w = ok(
      t,
      await settle(clock, kv.put(key, 'new', { w: 'one', node: 'a' })),
      'W=1 write on a',
    );
    t.equal(w.acks, 1);
    // the other replicas missed it: an eventual read through b at R=1 returns the old state
    const stale = ok(
      t,
      await settle(clock, kv.get(key, { level: 'eventual', r: 'one', node: 'b' })),
      'eventual read via b',
    );
    t.equal(stale.value, null, 'negative control: eventual reads the state without the write');
    // a session read through b must cover the client's context: no replica b reaches does
    const session = await settle(clock, kv.get(key, { level: 'session', r: 'one', node: 'b' }));
    t.equal(session.outcome, 'failed', 'session read fails rather than going back');
    t.match(
      session.outcome === 'failed' && session.error.code,
      /SYNOD_ERR_(SESSION_STALE|TIMEOUT|ASK_TIMEOUT)/,
    );
    const other = c.client({ node: 'b' });
    const fresh = await settle(clock, other.get(key, { level: 'session', r: 'one', node: 'b' }));
    t.equal(fresh.outcome, 'ok', 'another session (no context) reads at b');
    c.heal();
    const healed = ok(
      t,
      await settle(clock, kv.get(key, { level: 'session', r: 'one', node: 'b' })),
      'after heal',
    );
    t.equal(healed.value, 'new', 'the session reads its write through b once a is reachable');
  },
);

t.test('a write that cannot reach W replicas in time is indeterminate', async (t) => {
  const { clock, c } = await start(6);
  t.teardown(() => c.stop());
  const ring = new HashRing(NODES, 32);
  const key = Array.from({ length: 100 }, (_, i) => `i${i}`).find(
    (k) => ring.preferenceList(k, 3)[0] === 'a',
  ) as string;
  c.split(
    ['a'],
    NODES.filter((n) => n !== 'a'),
  );
  const kv = c.client({ node: 'a', timeoutMs: 2000 });
  const w = await settle(clock, kv.put(key, 'maybe', { w: 'all', node: 'a' }));
  t.equal(w.outcome, 'indeterminate', 'stored on a, not acknowledged by all');
  t.equal(w.attempts, 1, 'not retried (a leaderless write is not idempotent)');
  c.heal();
  // it was stored on a and spreads (read repair through an R=all read)
  const r = ok(t, await settle(clock, kv.get(key, { r: 'all', node: 'b' })), 'read after heal');
  t.equal(r.value, 'maybe', 'the indeterminate write was in fact applied');
});

t.test(
  "a write's returned context does not claim the coordinator's concurrent siblings (chaos seed 955488)",
  async (t) => {
    // Three clients write one key blind through the same coordinator: dots a:1, a:2, a:3,
    // three concurrent siblings. Carol's acknowledgement must not hand her a context that
    // covers a:1 and a:2 (she never saw them): her next write would silently replace the
    // acknowledged writes of alice and bob.
    const { clock, c } = await start(9);
    t.teardown(() => c.stop());
    const ring = new HashRing(NODES, 32);
    const key = Array.from({ length: 100 }, (_, i) => `dvv${i}`).find(
      (k) => ring.preferenceList(k, 3)[0] === 'a',
    ) as string;
    const alice = c.client({ node: 'a' });
    const bob = c.client({ node: 'a' });
    const carol = c.client({ node: 'a' });
    ok(t, await settle(clock, alice.put(key, 'alice')), 'alice writes blind');
    ok(t, await settle(clock, bob.put(key, 'bob')), 'bob writes blind');
    ok(t, await settle(clock, carol.put(key, 'carol 1')), 'carol writes blind');
    const three = ok(t, await settle(clock, alice.get(key, { r: 'all' })), 'read');
    t.same([...three.siblings].sort(), ['alice', 'bob', 'carol 1'], 'three concurrent siblings');
    ok(t, await settle(clock, carol.put(key, 'carol 2')), 'carol writes again with her context');
    const after = ok(t, await settle(clock, bob.get(key, { r: 'all' })), 'read');
    t.same(
      [...after.siblings].sort(),
      ['alice', 'bob', 'carol 2'],
      "carol's second write replaces only her first: alice's and bob's writes survive",
    );
  },
);
