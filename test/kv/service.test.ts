/**
 * The KV service and client on a test-double log (actors/kv/testing/fake-cluster.ts), where a
 * replica can be placed exactly N entries behind: each read level's rule, redirects, outcomes,
 * exactly-once under duplicated proposals, and watch. Runs in the deterministic simulation.
 */
import { firstValueFrom, take, toArray } from 'rxjs';
import t from 'tap';
import { KvService } from '../../actors/kv/service.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import { FakeCluster, type FakeLog } from '../../actors/kv/testing/fake-cluster.js';
import type { WatchEvent } from '../../actors/kv/types.js';
import { KvClient } from '../../lib/kv-client/client.js';
import { Simulation } from '../../lib/sim/simulation.js';

const NODES = ['a', 'b', 'c'];

async function setup(seed = 1, opts: { historyLimit?: number; freshnessIntervalMs?: number } = {}) {
  const sim = new Simulation({
    seed,
    nodes: [...NODES, 'cl'],
    faults: { delay: { min: 1, max: 3 } },
  });
  const cluster = new FakeCluster(sim.clock);
  const logs = new Map<string, FakeLog>();
  const sms = new Map<string, KvStateMachine>();
  sim.onStart((n) => {
    if (!NODES.includes(n.id)) return;
    const sm = new KvStateMachine({ historyLimit: opts.historyLimit ?? 1000 });
    const log = cluster.add(n.id, sm, n.clock);
    logs.set(n.id, log);
    sms.set(n.id, sm);
    n.system.spawn(
      'kv',
      new KvService({ log: log as never, sm, freshnessIntervalMs: opts.freshnessIntervalMs ?? 50 }),
    );
  });
  await sim.start();
  cluster.setLeader('a');
  const client = (o: Partial<ConstructorParameters<typeof KvClient>[0]> = {}) =>
    new KvClient({ system: sim.system('cl'), nodes: NODES, ...o });
  const run = <T>(p: Promise<T>, timeout = 10_000) => sim.await(p, { timeout });
  return { sim, cluster, logs, sms, client, run };
}

t.test('writes and strong reads, redirected to the leader', async (t) => {
  const { client, run, sms } = await setup();
  const kv = client({ readNode: 'c' });
  const w = await run(kv.put('x', '1'));
  t.equal(w.outcome, 'ok');
  if (w.outcome === 'ok') {
    t.equal(w.servedBy, 'a', 'the leader applied it');
    t.match(w.value, { t: 'put', rev: 1, prev: null });
    t.ok(w.token.index >= 1, 'the token carries the log index');
  }
  const r = await run(kv.get('x'));
  t.equal(r.outcome, 'ok');
  if (r.outcome === 'ok') t.equal(r.value.value, '1');
  t.equal(sms.get('c')?.get('x')?.value, '1', 'replicated');
  const c = await run(kv.cas('x', { value: '0' }, '2'));
  t.match(c, { outcome: 'ok', value: { t: 'cas', succeeded: false } }, 'cas compare failed is ok');
  const c2 = await run(kv.cas('x', { modRev: 1 }, '2'));
  t.match(c2, { outcome: 'ok', value: { succeeded: true, rev: 2 } });
  const d = await run(kv.delete('x'));
  t.match(d, { outcome: 'ok', value: { deleted: true } });
  const bad = await run(kv.put('', 'v'));
  t.match(bad, { outcome: 'failed', error: { code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' } });
  await run(kv.put('p/1', 'a'));
  await run(kv.put('p/2', 'b'));
  await run(kv.put('q', 'c'));
  const scan = await run(kv.prefix('p/'));
  t.match(scan, { outcome: 'ok', value: { count: 2, more: false } });
  if (scan.outcome === 'ok')
    t.same(
      scan.value.kvs.map((k) => k.key),
      ['p/1', 'p/2'],
    );
  const rng = await run(kv.range('p/2', 'r', { level: 'eventual', limit: 1 }));
  t.match(rng, { outcome: 'ok', value: { count: 2, more: true } });
});

t.test('a duplicated proposal is applied once (sessions)', async (t) => {
  const { client, run, cluster, sms } = await setup();
  cluster.duplicateProposals = 3;
  const kv = client();
  for (let i = 0; i < 5; i++) t.equal((await run(kv.put('k', `${i}`))).outcome, 'ok');
  t.equal(sms.get('b')?.revision, 5, 'five writes, five revisions, although the log holds 15');
  t.equal(cluster.commitIndex, 15);
});

t.test('isolated leader: writes are indeterminate, strong reads fail, never stale', async (t) => {
  const { client, run, logs } = await setup();
  const kv = client({ timeoutMs: 800, attemptTimeoutMs: 300, readNode: 'a' });
  await run(kv.put('k', 'v1'));
  (logs.get('a') as FakeLog).isolated = true;
  const w = await run(kv.put('k', 'v2'));
  t.equal(w.outcome, 'indeterminate', 'a write that timed out may have been applied');
  const r = await run(kv.get('k', { level: 'strong' }));
  t.equal(r.outcome, 'failed', 'no read index on an isolated leader: no answer, not a stale one');
  const e = await run(kv.get('k', { level: 'eventual' }));
  t.match(e, { outcome: 'ok', servedBy: 'a', value: { value: 'v1' } }, 'eventual answers locally');
});

t.test('session reads: token makes a lagging replica wait, forward or fail', async (t) => {
  const { client, run, logs, sim } = await setup();
  const kv = client({ readNode: 'c' });
  (logs.get('c') as FakeLog).hold();
  await run(kv.put('k', 'mine'));
  const ev = await run(kv.get('k', { level: 'eventual' }));
  t.match(ev, { outcome: 'ok', servedBy: 'c', value: { value: null } }, 'eventual: stale');
  const s = await run(kv.get('k', { level: 'session' }));
  t.match(s, { outcome: 'ok', value: { value: 'mine' } }, 'session: reads its write');
  t.not(s.outcome === 'ok' && s.servedBy, 'c', 'served by a node that has the write');
  const nf = await run(
    sim.system('cl').ask('c/kv', {
      type: 'kv.get',
      key: 'k',
      read: { level: 'session', token: kv.token, forward: false, waitMs: 100 },
    } as never),
  );
  t.match(
    nf,
    { ok: false, outcome: 'failed', code: 'SYNOD_ERR_KV_SESSION_NOT_CAUGHT_UP' },
    'the service alone: fails',
  );
  const nf2 = await run(kv.get('k', { level: 'session', forward: false, waitMs: 100 }));
  t.match(nf2, { outcome: 'ok', value: { value: 'mine' } }, 'the client then tries another node');
  const noToken = await run(kv.get('k', { level: 'session', token: { index: 0, rev: 0 } }));
  t.match(
    noToken,
    { outcome: 'ok', servedBy: 'c', value: { value: null } },
    'without the token: stale',
  );
  // Waiting replica is served as soon as it catches up.
  const pending = kv.get('k', { level: 'session', forward: false, waitMs: 500 });
  await run(new Promise((r) => setTimeout(r, 0)));
  (logs.get('c') as FakeLog).release();
  const late = await run(pending);
  t.match(late, { outcome: 'ok', servedBy: 'c', value: { value: 'mine' } });
});

t.test('bounded reads: served locally only within the bound', async (t) => {
  const { client, run, logs, sim } = await setup(3, { freshnessIntervalMs: 20 });
  const kv = client({ readNode: 'c' });
  await run(kv.put('k', '0'));
  await sim.runFor(100);
  const c = logs.get('c') as FakeLog;
  c.hold();
  for (let i = 1; i <= 4; i++) await run(kv.put('k', `${i}`));
  const v4 = await run(kv.get('k', { level: 'bounded', maxLagVersions: 4 }));
  t.match(v4, { outcome: 'ok', servedBy: 'c', value: { value: '0' } }, '4 behind, bound 4: local');
  const v3 = await run(
    kv.get('k', { level: 'bounded', maxLagVersions: 3, forward: false, waitMs: 50 }),
  );
  t.match(v3, { outcome: 'failed', error: { code: 'SYNOD_ERR_KV_STALENESS_BOUND_EXCEEDED' } });
  const v3f = await run(kv.get('k', { level: 'bounded', maxLagVersions: 3, waitMs: 50 }));
  t.match(v3f, { outcome: 'ok', servedBy: 'a', value: { value: '4' } }, 'forwarded to the leader');
  const ms = await run(
    kv.get('k', { level: 'bounded', maxLagMs: 1000, forward: false, waitMs: 50 }),
  );
  t.match(
    ms,
    { outcome: 'failed', error: { code: 'SYNOD_ERR_KV_STALENESS_BOUND_EXCEEDED' } },
    'held replica has no fresh proof',
  );
  c.release();
  await sim.runFor(100);
  const ok = await run(kv.get('k', { level: 'bounded', maxLagMs: 100, forward: false }));
  t.match(
    ok,
    { outcome: 'ok', servedBy: 'c', value: { value: '4' } },
    'caught-up replica serves locally',
  );
  const bad = await run(kv.get('k', { level: 'bounded' }));
  t.match(bad, { outcome: 'failed', error: { code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' } });
});

t.test('watch: history replay, live events, compaction, failover exactly once', async (t) => {
  const { client, run, sim } = await setup(5, { historyLimit: 5 });
  const kv = client({ readNode: 'b' });
  for (let i = 1; i <= 3; i++) await run(kv.put(`w/${i}`, `${i}`));
  const seen: WatchEvent[] = [];
  const sub = kv
    .watch('w/', { prefix: true, fromRev: 2, node: 'b' })
    .subscribe((e) => seen.push(e));
  await sim.runFor(50);
  t.same(
    seen.map((e) => e.rev),
    [2, 3],
    'replayed from rev 2',
  );
  await run(kv.put('w/4', '4'));
  await run(kv.put('other', 'x'));
  await run(kv.delete('w/1'));
  await sim.runFor(50);
  t.same(
    seen.map((e) => [e.rev, e.type, e.key]),
    [
      [2, 'put', 'w/2'],
      [3, 'put', 'w/3'],
      [4, 'put', 'w/4'],
      [6, 'delete', 'w/1'],
    ],
  );
  // The node serving the watch dies: the watch resumes elsewhere without gap or duplicate.
  sim.crash('b');
  await run(kv.put('w/5', '5'));
  await run(kv.put('w/6', '6'));
  await sim.runFor(3000);
  t.same(
    seen.map((e) => e.rev),
    [2, 3, 4, 6, 7, 8],
    'exactly once, in order, across the failover',
  );
  sub.unsubscribe();
  const err = await run(
    firstValueFrom(
      kv.watch('w/', { prefix: true, fromRev: 1, node: 'a' }).pipe(take(1), toArray()),
    ).then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  t.match(err, { code: 'SYNOD_ERR_KV_COMPACTED', details: { compactRevision: 4 } });
});

t.test('prefix reads wait until the replica caught up after starting', async (t) => {
  const { client, run, sim } = await setup(7);
  const kv = client({ readNode: 'b' });
  await run(kv.put('k', 'v'));
  const s = await run(kv.status('b'));
  t.match(s, { outcome: 'ok', value: { ready: true, nodeId: 'b' } });
  const p = await run(kv.get('k', { level: 'prefix' }));
  t.match(p, { outcome: 'ok', value: { value: 'v' } });
  await sim.runFor(10);
});
