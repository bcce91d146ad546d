/**
 * The closed-loop KV load generator shared by the Synod and etcd benchmarks: C concurrent
 * clients, each issuing one operation at a time and the next as soon as the previous returns.
 * A level runs a write phase (puts of `valueSize`-byte values on `keys` keys) and then a read
 * phase (linearizable gets of the same keys), each for `durationMs` after a short warm-up
 * that is not recorded. Every successful operation's latency is kept (exact percentiles);
 * failures are counted by code and not in the latency figures.
 */

import { ownCpuMs } from './procs.js';

/** What a system under test provides: `n` independent clients. */
export interface KvTarget {
  readonly name: string;
  open(n: number): Promise<KvClientSet>;
  /** CPU time used so far (ms) by each server process, by role label (e.g. `leader`, `follower`). */
  cpu?(): Record<string, number>;
}

export interface KvClientSet {
  /** Client `i` writes `value` at `key`; rejects (or throws) on failure. */
  put(i: number, key: string, value: string): Promise<void>;
  /** Client `i` reads `key` linearizably; rejects on failure. */
  get(i: number, key: string): Promise<void>;
  close(): Promise<void>;
}

export interface LoadSpec {
  clients: number;
  durationMs: number;
  /** Not-recorded warm-up before each phase (default min(1000, durationMs / 5)). */
  warmupMs?: number;
  valueSize?: number;
  keys?: number;
  /** Skip the read phase. */
  writesOnly?: boolean;
}

export interface PhaseResult {
  ops: number;
  errors: number;
  errorCodes: Record<string, number>;
  durationMs: number;
  opsPerSec: number;
  /** Latencies of successful operations in ms, sorted ascending. */
  latenciesMs: Float64Array;
  p50: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
  /** CPU time per successful operation (µs) by process (servers by role, and `client`). */
  cpuUsPerOp?: Record<string, number>;
}

export interface LevelResult {
  target: string;
  clients: number;
  write: PhaseResult;
  read?: PhaseResult;
}

/** Exact percentile of a sorted array (nearest rank). */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

class Recorder {
  private buf = new Float64Array(1 << 16);
  private n = 0;
  errors = 0;
  readonly codes: Record<string, number> = {};
  add(ms: number): void {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = ms;
  }
  fail(err: unknown): void {
    this.errors++;
    const e = err as { code?: unknown; message?: unknown };
    const code =
      typeof e?.code === 'string'
        ? e.code
        : typeof e?.code === 'number'
          ? `code ${e.code}`
          : String(e?.message ?? err).slice(0, 60);
    this.codes[code] = (this.codes[code] ?? 0) + 1;
  }
  result(durationMs: number): PhaseResult {
    const lat = this.buf.slice(0, this.n).sort();
    let sum = 0;
    for (const v of lat) sum += v;
    return {
      ops: this.n,
      errors: this.errors,
      errorCodes: this.codes,
      durationMs,
      opsPerSec: (this.n * 1000) / durationMs,
      latenciesMs: lat,
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      p999: pct(lat, 99.9),
      mean: this.n ? sum / this.n : Number.NaN,
      max: this.n ? (lat[this.n - 1] as number) : Number.NaN,
    };
  }
}

export function keyName(i: number): string {
  return `bench/${String(i).padStart(6, '0')}`;
}

export function benchValue(size: number, client: number, n: number): string {
  const head = `${client}.${n}.`;
  return head.length >= size ? head.slice(0, size) : head + 'x'.repeat(size - head.length);
}

async function phase(
  target: KvTarget,
  clients: number,
  durationMs: number,
  warmupMs: number,
  op: (i: number, n: number) => Promise<void>,
): Promise<PhaseResult> {
  const rec = new Recorder();
  const t0 = performance.now();
  const recordFrom = t0 + warmupMs;
  const end = recordFrom + durationMs;
  let lastDone = recordFrom;
  let cpu0: Record<string, number> | undefined;
  const cpuTimer = setTimeout(() => {
    cpu0 = { ...(target.cpu?.() ?? {}), client: ownCpuMs() };
  }, warmupMs);
  const loop = async (i: number): Promise<void> => {
    let n = 0;
    for (;;) {
      const s = performance.now();
      if (s >= end) return;
      try {
        await op(i, n++);
        const f = performance.now();
        if (s >= recordFrom) {
          rec.add(f - s);
          if (f > lastDone) lastDone = f;
        }
      } catch (err) {
        if (s >= recordFrom) rec.fail(err);
        // A failing system must not turn the loop into a busy spin.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (let i = 0; i < clients; i++) loops.push(loop(i));
  await Promise.all(loops);
  clearTimeout(cpuTimer);
  const result = rec.result(Math.max(durationMs, lastDone - recordFrom));
  if (cpu0 && result.ops > 0) {
    const cpu1: Record<string, number> = { ...(target.cpu?.() ?? {}), client: ownCpuMs() };
    const per: Record<string, number> = {};
    for (const [k, v] of Object.entries(cpu1)) {
      const before = cpu0[k];
      if (before !== undefined) per[k] = ((v - before) * 1000) / result.ops;
    }
    result.cpuUsPerOp = per;
  }
  return result;
}

/** Runs one level (write phase, then read phase) against `target` with fresh clients. */
export async function runLevel(target: KvTarget, spec: LoadSpec): Promise<LevelResult> {
  const valueSize = spec.valueSize ?? 100;
  const keys = spec.keys ?? 10_000;
  const warmupMs = spec.warmupMs ?? Math.min(1000, spec.durationMs / 5);
  const set = await target.open(spec.clients);
  try {
    // Client i walks the key space from its own offset, so concurrent clients hit different keys.
    const stride = Math.max(1, Math.floor(keys / spec.clients));
    const write = await phase(target, spec.clients, spec.durationMs, warmupMs, (i, n) =>
      set.put(i, keyName((i * stride + n) % keys), benchValue(valueSize, i, n)),
    );
    const result: LevelResult = { target: target.name, clients: spec.clients, write };
    if (!spec.writesOnly) {
      result.read = await phase(target, spec.clients, spec.durationMs, warmupMs, (i, n) =>
        set.get(i, keyName((i * stride + n * 7) % keys)),
      );
    }
    return result;
  } finally {
    await set.close();
  }
}

/** One line per phase, for progress output. */
export function describe(r: LevelResult): string {
  const f = (p: PhaseResult, what: string): string =>
    `${what} ${Math.round(p.opsPerSec).toLocaleString('en-US')}/s p50 ${p.p50.toFixed(2)} p99 ${p.p99.toFixed(2)} p999 ${p.p999.toFixed(2)} ms${p.errors ? ` (${p.errors} errors: ${JSON.stringify(p.errorCodes)})` : ''}`;
  return `${r.target} C=${r.clients}: ${f(r.write, 'puts')}${r.read ? `; ${f(r.read, 'gets')}` : ''}`;
}
