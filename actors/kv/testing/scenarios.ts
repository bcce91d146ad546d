/**
 * The KV simulation scenarios of issue 8, written once against `KvBackend` and run on Raft and
 * on Multi-Paxos by test/kv/sim-raft.test.ts and test/kv/sim-paxos.test.ts. Every scenario has a
 * negative control: the same kind of run with the guarantee switched off, which the check must
 * flag — otherwise the check proves nothing.
 *
 * Seeds: `SYNOD_KV_SEEDS` (default 1) runs per scenario; a failure names its seed; replay one
 * with `SYNOD_SEED=<seed>`.
 */
import { checkHistory } from '../../../lib/history/checker.js';
import type { KvClient } from '../../../lib/kv-client/client.js';
import type { ReadDefault, ReadOptions } from '../messages.js';
import type { ReadLevel, WatchEvent } from '../types.js';
import { type KvBackend, KvSim, type ReadSample } from './sim-cluster.js';

/** The subset of tap's Test the scenarios use. */
export interface T {
  ok(v: unknown, msg?: string): void;
  equal(a: unknown, b: unknown, msg?: string): void;
  same(a: unknown, b: unknown, msg?: string): void;
  test(name: string, fn: (t: T) => Promise<void>): Promise<void> | void;
  comment(...args: unknown[]): void;
}

export function seeds(base: number): number[] {
  const fixed = process.env.SYNOD_SEED;
  if (fixed !== undefined && fixed !== '') return [Number(fixed)];
  const n = Number(process.env.SYNOD_KV_SEEDS ?? '1');
  return Array.from({ length: Math.max(1, n) }, (_, i) => base + i * 7919);
}

const FAULTS = { drop: 0.01, delay: { min: 1, max: 6 } } as const;

/** Leader isolation, crash-restart and message loss while 4 clients run. */
function faultScript(k: KvSim) {
  return (t0: number): void => {
    let isolated: string | undefined;
    k.at(t0 + 500, () => {
      isolated = k.leader();
      if (isolated) k.sim.network.isolate(isolated);
    });
    k.at(t0 + 1300, () => k.sim.network.heal());
    let crashed: string | undefined;
    k.at(t0 + 1700, () => {
      crashed = k.leader() ?? k.nodes[0];
      if (crashed) k.sim.crash(crashed);
    });
    k.at(t0 + 2300, async () => {
      if (crashed) await k.sim.restart(crashed);
    });
    void isolated;
  };
}

export async function strongScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const run = async (level: 'strong' | 'eventual') => {
    const k = new KvSim({ backend, seed, faults: FAULTS });
    await k.start();
    const leader = await k.waitLeader();
    // One follower hears everything late: it lags, which eventual reads there expose.
    const slow = k.nodes.find((n) => n !== leader) as string;
    for (const n of k.nodes)
      if (n !== slow) k.sim.network.setLinkFaults(n, slow, { delay: { min: 30, max: 90 } });
    const r = await k.workload({
      clients: 4,
      keys: 3,
      durationMs: 3000,
      read: { level },
      readVia: 'spread',
      client: { timeoutMs: 1500, attemptTimeoutMs: 400 },
      // Half the clients witness every strong read (docs/kv.md), half never do.
      clientFor: (p) => ({ witnessReads: p % 2 === 0 }),
      faults: faultScript(k),
    });
    return { r, verdict: checkHistory(r.events, { maxSteps: 5_000_000 }) };
  };
  const strong = await run('strong');
  t.comment(
    `${backend.name} seed ${seed}: strong ops ${JSON.stringify(strong.r.ops)}, ${strong.r.witnessed} witnessed read attempts`,
  );
  t.ok(strong.r.witnessed > 20, 'strong: witnessed reads were part of the history');
  t.ok(strong.r.ops.ok > 50, `strong: the cluster made progress (${strong.r.ops.ok} ok ops)`);
  t.equal(strong.verdict.result, 'linearizable', `strong history is linearizable (seed ${seed})`);
  const eventual = await run('eventual');
  t.equal(
    eventual.verdict.result,
    'violation',
    `negative control: the same run read at eventual is flagged (seed ${seed})`,
  );
}

/** A follower with a slow inbound link lags; bounded reads must stay within their bound. */
export async function boundedScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const measure = async (read: {
    level: 'bounded' | 'eventual';
    maxLagMs?: number;
    maxLagVersions?: number;
  }) => {
    const k = new KvSim({ backend, seed, faults: { delay: { min: 1, max: 4 } } });
    await k.start();
    const leader = await k.waitLeader();
    const slow = k.nodes.find((n) => n !== leader) as string;
    // Everything the slow follower hears arrives 40-120 ms late: it lags the commit.
    for (const n of k.nodes)
      if (n !== slow) k.sim.network.setLinkFaults(n, slow, { delay: { min: 40, max: 120 } });
    const r = await k.workload({
      clients: 4,
      keys: 2,
      durationMs: 2000,
      mix: { read: 3, write: 2, cas: 0 },
      read: { ...read, forward: true },
      readVia: slow,
      client: { timeoutMs: 2000, attemptTimeoutMs: 800 },
    });
    const worst = { versions: 0, ms: 0 };
    let local = 0;
    for (const s of r.reads) {
      const st = k.staleness(s.index, s.invokedAt);
      worst.versions = Math.max(worst.versions, st.versions);
      worst.ms = Math.max(worst.ms, st.ms);
      if (s.servedBy === slow) local++;
    }
    return { worst, reads: r.reads.length, local, failed: r.ops.failed };
  };
  const ms = await measure({ level: 'bounded', maxLagMs: 150 });
  t.comment(`${backend.name} seed ${seed}: maxLagMs 150 → ${JSON.stringify(ms)}`);
  t.ok(ms.reads > 20, 'bounded (ms) reads completed');
  t.ok(ms.worst.ms <= 150, `time staleness ${ms.worst.ms} ms ≤ 150 ms (seed ${seed})`);
  const v = await measure({ level: 'bounded', maxLagVersions: 2 });
  t.comment(`${backend.name} seed ${seed}: maxLagVersions 2 → ${JSON.stringify(v)}`);
  t.ok(v.reads > 20, 'bounded (versions) reads completed');
  t.ok(v.worst.versions <= 2, `version staleness ${v.worst.versions} ≤ 2 (seed ${seed})`);
  const neg = await measure({ level: 'eventual' });
  t.comment(`${backend.name} seed ${seed}: eventual on the slow follower → ${JSON.stringify(neg)}`);
  t.ok(
    neg.worst.versions > 2 && neg.worst.ms > 20,
    `negative control: eventual reads on the slow follower exceed the bounds (${JSON.stringify(neg.worst)})`,
  );
}

/**
 * Each client writes its own key (values p.0, p.1, ...) and reads it back at `session` from a
 * different node each time, while the leader is isolated and a node crashes: it must always read
 * its last acknowledged write or later (read-your-writes), and never an older value than it read
 * before (monotonic reads).
 */
export async function sessionScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const run = async (dropToken: boolean) => {
    const k = new KvSim({ backend, seed, faults: { delay: { min: 1, max: 4 } } });
    await k.start();
    const leader = await k.waitLeader();
    const slow = k.nodes.find((n) => n !== leader) as string;
    for (const n of k.nodes)
      if (n !== slow) k.sim.network.setLinkFaults(n, slow, { delay: { min: 30, max: 90 } });
    faultScript(k)(k.sim.clock.now() + 500);
    const violations: string[] = [];
    let reads = 0;
    const stopAt = k.sim.clock.now() + 3000;
    const loop = async (p: number) => {
      const kv = k.client({ timeoutMs: 1500, attemptTimeoutMs: 500 });
      let acked = -1;
      let seen = -1;
      let n = 0;
      let i = p;
      while (k.sim.clock.now() < stopAt) {
        const w = await kv.put(`own${p}`, `${n}`);
        if (w.outcome === 'ok') acked = n;
        n++;
        const node = k.nodes[i++ % k.nodes.length] as string;
        const r = await kv.get(`own${p}`, {
          level: 'session',
          node,
          ...(dropToken ? { token: { index: 0, rev: 0 } } : {}),
        });
        if (r.outcome !== 'ok') continue;
        reads++;
        const got = r.value.value === null ? -1 : Number(r.value.value);
        if (got < acked)
          violations.push(
            `p${p} read ${got} after its write ${acked} was acked (via ${r.servedBy})`,
          );
        if (got < seen)
          violations.push(`p${p} read ${got} after reading ${seen} (via ${r.servedBy})`);
        seen = Math.max(seen, got);
      }
    };
    await k.run(Promise.all([0, 1, 2, 3].map(loop)), 60_000);
    return { violations, reads };
  };
  const withToken = await run(false);
  t.comment(`${backend.name} seed ${seed}: session reads ${withToken.reads}`);
  t.ok(withToken.reads > 20, 'session reads completed');
  t.same(
    withToken.violations,
    [],
    `no read-your-writes or monotonic-read violation (seed ${seed})`,
  );
  const without = await run(true);
  t.comment(`${backend.name} seed ${seed}: without token ${without.violations.length} violations`);
  t.ok(
    without.violations.length > 0,
    'negative control: without the token, violations appear under lag',
  );
}

/**
 * prefix and eventual: every value read was committed; a replica never goes backwards (prefix is
 * also probed right after a crash-restart of the replica). Negative control: the same check per
 * client, on eventual reads that rotate over the replicas while one lags, flags time going
 * backwards — eventual promises nothing across replicas.
 */
export async function prefixScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const run = async (level: 'prefix' | 'eventual', crash: boolean, via: 'spread' | 'rotate') => {
    const probes: ReadSample[] = [];
    const k = new KvSim({ backend, seed, faults: { delay: { min: 1, max: 6 } } });
    await k.start();
    const leader = await k.waitLeader();
    const victim = k.nodes.find((n) => n !== leader) as string;
    for (const n of k.nodes)
      if (n !== victim) k.sim.network.setLinkFaults(n, victim, { delay: { min: 20, max: 60 } });
    const r = await k.workload({
      clients: 6,
      keys: 3,
      durationMs: 2500,
      mix: { read: 4, write: 2, cas: 0 },
      read: { level },
      readVia: via,
      client: { timeoutMs: 1500, attemptTimeoutMs: 400 },
      faults: (t0) => {
        if (!crash) return;
        k.at(t0 + 800, () => k.sim.crash(victim));
        k.at(t0 + 1200, async () => {
          await k.sim.restart(victim);
          // Probe the restarted replica at once, as a client that stayed with it would.
          const probe = k.client({ readNode: victim, timeoutMs: 300, attemptTimeoutMs: 300 });
          for (let i = 0; i < 40; i++) {
            const invokedAt = k.sim.clock.now();
            const g = await probe.get('k0', { level, node: victim });
            if (g.outcome === 'ok' && g.servedBy === victim)
              probes.push({
                process: -1,
                key: 'k0',
                level,
                invokedAt,
                completedAt: k.sim.clock.now(),
                servedBy: victim,
                index: g.value.index,
                value: g.value.value,
                modRev: g.value.kv?.modRev ?? 0,
              });
            await new Promise<void>((r) => k.sim.clock.setTimer(5, r));
          }
        });
      },
    });
    r.reads.push(...probes);
    const uncommitted = r.reads.filter((s) => s.value !== null && !k.committedValues.has(s.value));
    const backwards = (by: (s: ReadSample) => string): string[] => {
      const out: string[] = [];
      const last = new Map<string, ReadSample>();
      for (const s of [...r.reads].sort((a, b) => a.completedAt - b.completedAt)) {
        const prev = last.get(by(s));
        if (prev && s.index < prev.index && s.invokedAt > prev.completedAt)
          out.push(`${by(s)}: index ${prev.index} then ${s.index}`);
        last.set(by(s), s);
      }
      return out;
    };
    return {
      reads: r.reads.length,
      probes: probes.length,
      uncommitted: uncommitted.length,
      replicaBackwards: backwards((s) => s.servedBy),
      clientBackwards: backwards((s) => `p${s.process}`),
    };
  };
  // prefix is probed across a crash-restart; eventual only promises this within an incarnation.
  for (const [level, crash] of [
    ['prefix', true],
    ['eventual', false],
  ] as const) {
    const r = await run(level, crash, 'spread');
    t.comment(
      `${backend.name} seed ${seed}: ${level} ${JSON.stringify({ ...r, replicaBackwards: r.replicaBackwards.length, clientBackwards: r.clientBackwards.length })}`,
    );
    t.ok(r.reads > 50, `${level}: reads completed`);
    t.equal(r.uncommitted, 0, `${level}: every value read was committed (seed ${seed})`);
    t.same(r.replicaBackwards, [], `${level}: no replica went backwards (seed ${seed})`);
  }
  const restarted = await run('eventual', true, 'spread');
  t.comment(
    `${backend.name} seed ${seed}: eventual across a crash-restart: ${restarted.replicaBackwards.length} backward steps (allowed; prefix had none)`,
  );
  t.equal(restarted.uncommitted, 0, 'eventual across a crash-restart: values were committed');
  const neg = await run('eventual', false, 'rotate');
  t.comment(
    `${backend.name} seed ${seed}: eventual rotating over replicas: ${neg.clientBackwards.length} backward steps seen by clients`,
  );
  t.same(neg.replicaBackwards, [], 'eventual rotating: still no replica went backwards');
  t.ok(
    neg.clientBackwards.length > 0,
    'negative control: the check flags a client whose eventual reads hop between replicas',
  );
}

/** A watcher on a follower sees every committed change exactly once, in order, across failover. */
export async function watchScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const k = new KvSim({ backend, seed, faults: FAULTS, sm: { historyLimit: 100_000 } });
  await k.start();
  const leader = await k.waitLeader();
  const watchNode = k.nodes.find((n) => n !== leader) as string;
  const watcher = k.client({ readNode: watchNode });
  const got: WatchEvent[] = [];
  let error: unknown;
  const sub = watcher.watch('k', { prefix: true, fromRev: 1, node: watchNode }).subscribe({
    next: (e) => got.push(e),
    error: (e: unknown) => {
      error = e;
    },
  });
  await k.workload({
    clients: 3,
    keys: 4,
    durationMs: 2500,
    mix: { read: 0, write: 3, cas: 1 },
    read: { level: 'eventual' },
    client: { timeoutMs: 1500, attemptTimeoutMs: 400 },
    faults: (t0) => {
      k.at(t0 + 400, () => {
        const l = k.leader();
        if (l) k.sim.network.isolate(l);
      });
      k.at(t0 + 1100, () => k.sim.network.heal());
      k.at(t0 + 1500, () => k.sim.crash(watchNode));
      k.at(t0 + 2000, async () => {
        await k.sim.restart(watchNode);
      });
    },
  });
  await k.sim.runFor(3000);
  sub.unsubscribe();
  const ref = k.nodes
    .filter((n) => k.sim.isUp(n))
    .map((n) => k.sms.get(n))
    .sort((a, b) => (b?.revision ?? 0) - (a?.revision ?? 0))[0];
  const expected = ref ? ref.eventsSince(1, (key) => key.startsWith('k')) : [];
  t.equal(error, undefined, 'the watch did not fail');
  t.ok(expected.length > 20, `changes were made (${expected.length})`);
  t.same(
    got.map((e) => [e.rev, e.key, e.value]),
    expected.map((e) => [e.rev, e.key, e.value]),
    `watch delivered every change exactly once, in order, across the leader change and a crash (seed ${seed})`,
  );
  // Negative control for the checker of this scenario: dropping one event is noticed.
  const broken = got.filter((_, i) => i !== 3);
  t.ok(
    JSON.stringify(broken.map((e) => e.rev)) !== JSON.stringify(expected.map((e) => e.rev)),
    'negative control: a missing event would be flagged',
  );
}

/** What one probe read returned. */
interface Probe {
  readonly outcome: string;
  readonly value: string | null | undefined;
  readonly level: ReadLevel | undefined;
  readonly servedBy: string | undefined;
  readonly code: string | undefined;
}

/**
 * The cluster-wide default read level (`KvService` option `defaultRead`, `synod node
 * --read-level`): a read that names no level gets it, and a read that names one gets that one,
 * weaker or stronger.
 *
 * Part 1, a deterministic probe per cluster default: key `k` is written `v1`, follower F applies
 * it, F is cut off from the other replicas (the client still reaches it), `k` is written `v2`
 * through the majority, and 500 virtual ms pass. Then reads at F: with no level, with `eventual`
 * and with `strong`, from a fresh client, and with no level from the writer's own client (its
 * session token covers `v2`). `v1` is the stale answer. What each default must give:
 *
 * | cluster default       | no level (fresh)  | no level (writer) | `eventual` | `strong` |
 * | --------------------- | ----------------- | ----------------- | ---------- | -------- |
 * | none (→ strong)       | never v1          | never v1          | v1 from F  | never v1 |
 * | eventual              | v1 from F         | v1 from F         | v1 from F  | never v1 |
 * | bounded(maxLagMs 100) | never v1          | never v1          | v1 from F  | never v1 |
 * | session               | v1 from F (no token needed) | never v1 | v1 from F | never v1 |
 *
 * The eventual rows are the negative control of the "never v1" check: the same probe does see
 * the stale value when the level allows it.
 *
 * Part 2, Jepsen-style: the strong scenario's workload (slow follower, leader isolation,
 * crash-restart, message loss) on a cluster whose default is `eventual`: reads that name no level
 * are flagged by the linearizability checker; the same run with every read naming `strong` is
 * linearizable.
 */
export async function defaultLevelScenario(t: T, backend: KvBackend, seed: number): Promise<void> {
  const probeCluster = async (defaultRead: ReadDefault | undefined) => {
    const k = new KvSim({
      backend,
      seed,
      faults: { delay: { min: 1, max: 4 } },
      ...(defaultRead ? { service: { defaultRead } } : {}),
    });
    await k.start();
    const leader = await k.waitLeader();
    const f = k.nodes.find((n) => n !== leader) as string;
    const writer = k.client({ timeoutMs: 3000, attemptTimeoutMs: 500 });
    const w1 = await k.run(writer.put('k', 'v1'));
    t.equal(w1.outcome, 'ok', `${backend.name}: v1 written`);
    await k.sim.runUntil(() => k.sms.get(f)?.get('k')?.value === 'v1', { timeout: 5000 });
    for (const n of k.nodes) {
      if (n === f) continue;
      k.sim.network.cut(n, f);
      k.sim.network.cut(f, n);
    }
    const w2 = await k.run(writer.put('k', 'v2'));
    t.equal(w2.outcome, 'ok', `${backend.name}: v2 written by the majority without ${f}`);
    await k.sim.runFor(500);
    t.equal(k.sms.get(f)?.get('k')?.value, 'v1', `${f} still holds the stale v1`);
    const read = async (kv: KvClient, opts: ReadOptions): Promise<Probe> => {
      const r = await k.run(kv.get('k', { ...opts, node: f }), 20_000);
      return r.outcome === 'ok'
        ? {
            outcome: 'ok',
            value: r.value.value,
            level: r.value.level,
            servedBy: r.servedBy,
            code: undefined,
          }
        : {
            outcome: r.outcome,
            value: undefined,
            level: undefined,
            servedBy: undefined,
            code: r.error.code,
          };
    };
    const fresh = () => k.client({ readNode: f, timeoutMs: 1500, attemptTimeoutMs: 400 });
    const status = await k.run(writer.status(f));
    return {
      f,
      status: status.outcome === 'ok' ? status.value.defaultRead : undefined,
      none: await read(fresh(), {}),
      writerNone: await read(writer, {}),
      eventual: await read(fresh(), { level: 'eventual' }),
      strong: await read(fresh(), { level: 'strong' }),
      // A scan that names no level, from a fresh client whose read node is F.
      scan: await k.run(fresh().prefix('k'), 20_000),
    };
  };
  const stale = (p: Probe, f: string) => p.outcome === 'ok' && p.value === 'v1' && p.servedBy === f;
  const neverStale = (p: Probe) => !(p.outcome === 'ok' && p.value === 'v1');
  const cases: {
    name: string;
    d: ReadDefault | undefined;
    expect: ReadLevel;
    noneStale: boolean;
    writerStale: boolean;
  }[] = [
    { name: 'none (strong)', d: undefined, expect: 'strong', noneStale: false, writerStale: false },
    {
      name: 'eventual',
      d: { level: 'eventual' },
      expect: 'eventual',
      noneStale: true,
      writerStale: true,
    },
    {
      name: 'bounded(maxLagMs 100)',
      d: { level: 'bounded', maxLagMs: 100 },
      expect: 'bounded',
      noneStale: false,
      writerStale: false,
    },
    {
      name: 'session',
      d: { level: 'session' },
      expect: 'session',
      noneStale: true,
      writerStale: false,
    },
  ];
  for (const c of cases) {
    const r = await probeCluster(c.d);
    const { scan, ...probes } = r;
    t.comment(
      `${backend.name} seed ${seed}: default ${c.name} → ${JSON.stringify(probes)}, scan ${scan.outcome === 'ok' ? `${scan.value.level} ${scan.value.kvs[0]?.value} by ${scan.servedBy}` : scan.error.code}`,
    );
    t.same(r.status, c.d ?? { level: 'strong' }, `default ${c.name}: the node reports it`);
    const tag = `default ${c.name} (seed ${seed})`;
    if (c.noneStale) {
      t.ok(
        stale(r.none, r.f),
        `${tag}: a read naming no level is served at ${c.expect} by ${r.f}: v1`,
      );
      t.equal(r.none.level, c.expect, `${tag}: the reply says ${c.expect}`);
    } else {
      t.ok(neverStale(r.none), `${tag}: a read naming no level never returns the stale v1`);
      if (r.none.outcome === 'ok') t.equal(r.none.level, c.expect, `${tag}: served at ${c.expect}`);
      else t.comment(`${tag}: no-level read failed with ${r.none.code}`);
    }
    if (c.writerStale) t.ok(stale(r.writerNone, r.f), `${tag}: the writer's no-level read sees v1`);
    else t.ok(neverStale(r.writerNone), `${tag}: the writer's no-level read never sees v1`);
    t.ok(stale(r.eventual, r.f), `${tag}: an explicit eventual read relaxes it: v1 from ${r.f}`);
    t.equal(r.eventual.level, 'eventual', `${tag}: explicit eventual served at eventual`);
    t.ok(neverStale(r.strong), `${tag}: an explicit strong read strengthens it: never v1`);
    if (r.strong.outcome === 'ok') t.equal(r.strong.level, 'strong', `${tag}: served at strong`);
    if (r.scan.outcome === 'ok') {
      const got = r.scan.value.kvs[0]?.value;
      t.equal(
        r.scan.value.level,
        c.expect,
        `${tag}: a scan naming no level is served at ${c.expect}`,
      );
      if (c.noneStale) t.equal(got, 'v1', `${tag}: the scan at ${c.expect} sees v1 on ${r.f}`);
      else t.ok(got !== 'v1', `${tag}: the scan never sees the stale v1`);
    } else
      t.ok(
        !c.noneStale,
        c.noneStale
          ? `${tag}: the scan at ${c.expect} should have been served (${r.scan.error.code})`
          : `${tag}: the scan failed (${r.scan.error.code}) rather than return stale data`,
      );
  }

  // Part 2: histories.
  const run = async (read: ReadOptions) => {
    const k = new KvSim({
      backend,
      seed,
      faults: FAULTS,
      service: { defaultRead: { level: 'eventual' } },
    });
    await k.start();
    const leader = await k.waitLeader();
    const slow = k.nodes.find((n) => n !== leader) as string;
    for (const n of k.nodes)
      if (n !== slow) k.sim.network.setLinkFaults(n, slow, { delay: { min: 30, max: 90 } });
    const r = await k.workload({
      clients: 4,
      keys: 3,
      durationMs: 2500,
      read,
      readVia: 'spread',
      client: { timeoutMs: 1500, attemptTimeoutMs: 400 },
      faults: faultScript(k),
    });
    const levels = [...new Set(r.reads.map((s) => s.level))];
    return { r, levels, verdict: checkHistory(r.events, { maxSteps: 5_000_000 }) };
  };
  const none = await run({});
  t.comment(
    `${backend.name} seed ${seed}: default eventual, no level: ${JSON.stringify(none.r.ops)} levels ${none.levels}`,
  );
  t.same(none.levels, ['eventual'], 'reads naming no level were served at the default, eventual');
  t.equal(
    none.verdict.result,
    'violation',
    `default eventual, reads naming no level: the checker flags stale reads (seed ${seed})`,
  );
  const strong = await run({ level: 'strong' });
  t.comment(
    `${backend.name} seed ${seed}: default eventual, reads name strong: ${JSON.stringify(strong.r.ops)}`,
  );
  t.same(strong.levels, ['strong'], 'reads naming strong were served at strong');
  t.ok(strong.r.ops.ok > 50, `the cluster made progress (${strong.r.ops.ok} ok ops)`);
  t.equal(
    strong.verdict.result,
    'linearizable',
    `default eventual, every read names strong: linearizable (seed ${seed})`,
  );
}
