/**
 * The shared load generator against an in-memory target: every client runs closed loop (one
 * operation at a time), puts carry 100-byte values on the configured key space, reads follow
 * writes, failures are counted by code and kept out of the latency figures; percentiles are
 * exact nearest-rank values.
 */
import t from 'tap';
import type { KvClientSet, KvTarget } from '../../bench/lib/loadgen.js';
import { benchValue, keyName, pct, runLevel } from '../../bench/lib/loadgen.js';

function memoryTarget(opts: { failEvery?: number } = {}) {
  const data = new Map<string, string>();
  const inFlight = new Map<number, number>();
  let maxInFlightPerClient = 0;
  let ops = 0;
  const seen = { puts: 0, gets: 0, sizes: new Set<number>(), keys: new Set<string>() };
  const enter = (i: number) => {
    const n = (inFlight.get(i) ?? 0) + 1;
    inFlight.set(i, n);
    maxInFlightPerClient = Math.max(maxInFlightPerClient, n);
  };
  const leave = (i: number) => inFlight.set(i, (inFlight.get(i) ?? 1) - 1);
  const target: KvTarget = {
    name: 'memory',
    async open(): Promise<KvClientSet> {
      return {
        async put(i, key, value) {
          enter(i);
          await new Promise((r) => setImmediate(r));
          leave(i);
          ops++;
          if (opts.failEvery && ops % opts.failEvery === 0)
            throw Object.assign(new Error('boom'), { code: 'E_TEST' });
          seen.puts++;
          seen.sizes.add(value.length);
          seen.keys.add(key);
          data.set(key, value);
        },
        async get(i, key) {
          enter(i);
          await new Promise((r) => setImmediate(r));
          leave(i);
          seen.gets++;
          data.get(key);
        },
        async close() {},
      };
    },
  };
  return { target, seen, maxInFlight: () => maxInFlightPerClient };
}

t.test('closed loop: one operation per client at a time, puts then gets', async (t) => {
  const m = memoryTarget();
  const r = await runLevel(m.target, { clients: 4, durationMs: 150, warmupMs: 20, keys: 50 });
  t.equal(m.maxInFlight(), 1, 'no client has two operations in flight');
  t.ok(r.write.ops > 0 && r.read && r.read.ops > 0, 'both phases ran');
  t.same([...m.seen.sizes], [100], 'every value is 100 bytes');
  t.ok(
    [...m.seen.keys].every((k) => /^bench\/\d{6}$/.test(k)),
    'keys are in the key space',
  );
  t.ok(m.seen.keys.size <= 50);
  t.equal(r.write.errors, 0);
  t.equal(r.write.latenciesMs.length, r.write.ops, 'one latency per successful op');
  const sorted = [...r.write.latenciesMs].every((v, i, a) => i === 0 || (a[i - 1] as number) <= v);
  t.ok(sorted, 'latencies are sorted');
  t.ok(r.write.p50 <= r.write.p99 && r.write.p99 <= r.write.p999 && r.write.p999 <= r.write.max);
});

t.test('failures are counted by code, not timed', async (t) => {
  const m = memoryTarget({ failEvery: 3 });
  const r = await runLevel(m.target, {
    clients: 2,
    durationMs: 100,
    warmupMs: 0,
    writesOnly: true,
  });
  t.ok(r.write.errors > 0, 'some puts failed');
  t.equal(r.write.errorCodes.E_TEST, r.write.errors, 'counted under their code');
  t.equal(r.read, undefined, 'writesOnly skips the read phase');
  t.equal(r.write.latenciesMs.length, r.write.ops);
});

t.test('pct is nearest-rank; values and keys have fixed shapes', async (t) => {
  const xs = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.equal(pct(xs, 50), 5);
  t.equal(pct(xs, 99), 10);
  t.equal(pct(xs, 10), 1);
  t.ok(Number.isNaN(pct([], 50)));
  t.equal(benchValue(100, 3, 17).length, 100);
  t.match(benchValue(100, 3, 17), /^3\.17\.x+$/);
  t.equal(benchValue(4, 12345, 6789).length, 4);
  t.equal(keyName(42), 'bench/000042');
});
