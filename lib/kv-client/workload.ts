/**
 * Closed-loop workload against a KV cluster: N clients, each issuing one operation at a time
 * (read / write / cas by weight) on K keys for a duration, recording a Jepsen history and the
 * latency of every operation. Used by `synod kv workload` and bench/kv.ts.
 *
 * Written values are unique (`<client>.<n>.` padded to the value size), so a history checker
 * can tell every write apart.
 */
import type { ReadOptions } from '../../actors/kv/messages.js';
import type { Clock } from '../clock.js';
import type { HistoryRecorder } from '../history/recorder.js';
import type { Random } from '../random.js';
import type { KvClient } from './client.js';

export interface WorkloadMix {
  read: number;
  write: number;
  cas: number;
}

export interface WorkloadSpec {
  clients: number;
  keys: number;
  mix: WorkloadMix;
  valueSize: number;
  durationMs: number;
  read: ReadOptions;
  /** Records the history (optional). */
  recorder?: HistoryRecorder;
}

export interface OpStats {
  count: number;
  ok: number;
  failed: number;
  indeterminate: number;
  /** Operations per second (all outcomes). */
  opsPerSec: number;
  /** Latency percentiles in ms (all outcomes). */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
}

export interface WorkloadReport {
  durationMs: number;
  clients: number;
  total: OpStats;
  ops: Record<'read' | 'write' | 'cas', OpStats>;
  /** Failure codes seen, with counts. */
  errors: Record<string, number>;
}

export class WorkloadError extends Error {
  readonly code = 'SYNOD_ERR_KV_INVALID_ARGUMENT';
}

/** Parses `read:2,write:2,cas:1`. */
export function parseMix(text: string): WorkloadMix {
  const mix: WorkloadMix = { read: 0, write: 0, cas: 0 };
  for (const part of text.split(',')) {
    const [name, weight] = part.split(':');
    if (name !== 'read' && name !== 'write' && name !== 'cas')
      throw new WorkloadError(`--mix: unknown operation "${name}" (read, write, cas)`);
    const w = Number(weight);
    if (!Number.isFinite(w) || w < 0)
      throw new WorkloadError(`--mix: bad weight "${weight}" for ${name}`);
    mix[name] = w;
  }
  if (mix.read + mix.write + mix.cas <= 0) throw new WorkloadError('--mix: all weights are zero');
  return mix;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

function stats(
  lat: number[],
  outcomes: { ok: number; failed: number; indeterminate: number },
  ms: number,
): OpStats {
  const s = [...lat].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    count: s.length,
    ...outcomes,
    opsPerSec: ms > 0 ? (s.length * 1000) / ms : 0,
    latencyMs: {
      p50: percentile(s, 50),
      p90: percentile(s, 90),
      p99: percentile(s, 99),
      max: s.length ? (s[s.length - 1] as number) : 0,
      mean: s.length ? sum / s.length : 0,
    },
  };
}

export async function runWorkload(
  spec: WorkloadSpec,
  makeClient: (i: number) => KvClient,
  clock: Clock,
  random: Random,
): Promise<WorkloadReport> {
  const kinds = ['read', 'write', 'cas'] as const;
  const lat = { read: [] as number[], write: [] as number[], cas: [] as number[] };
  const outs = {
    read: { ok: 0, failed: 0, indeterminate: 0 },
    write: { ok: 0, failed: 0, indeterminate: 0 },
    cas: { ok: 0, failed: 0, indeterminate: 0 },
  };
  const errors: Record<string, number> = {};
  const weight = spec.mix.read + spec.mix.write + spec.mix.cas;
  const rec = spec.recorder;
  const t0 = clock.now();
  const stopAt = t0 + spec.durationMs;
  const value = (p: number, n: number): string => {
    const head = `${p}.${n}.`;
    return head.length >= spec.valueSize ? head : head + 'x'.repeat(spec.valueSize - head.length);
  };
  const lastWritten = new Map<string, string>();
  const loop = async (p: number): Promise<void> => {
    const kv = makeClient(p);
    let n = 0;
    while (clock.now() < stopAt) {
      const key = `k${random.int(spec.keys)}`;
      const x = random.next() * weight;
      const kind =
        x < spec.mix.read ? 'read' : x < spec.mix.read + spec.mix.write ? 'write' : 'cas';
      const start = clock.now();
      let outcome: 'ok' | 'failed' | 'indeterminate';
      let code: string | undefined;
      if (kind === 'read') {
        const h = rec?.invoke(p, 'read', key);
        const r = await kv.get(key, spec.read);
        outcome = r.outcome;
        if (r.outcome === 'ok') h?.ok(r.value.value);
        else {
          code = r.error.code;
          h?.fail(code);
        }
      } else if (kind === 'write') {
        const v = value(p, n++);
        const h = rec?.invoke(p, 'write', key, v);
        const r = await kv.put(key, v);
        outcome = r.outcome;
        if (r.outcome === 'ok') {
          h?.ok();
          lastWritten.set(key, v);
        } else {
          code = r.error.code;
          if (r.outcome === 'failed') h?.fail(code);
          else h?.info(code);
        }
      } else {
        const from = lastWritten.get(key) ?? null;
        const to = value(p, n++);
        const h = rec?.invoke(p, 'cas', key, [from, to]);
        const r = await kv.cas(key, { value: from }, to);
        outcome = r.outcome;
        if (r.outcome === 'ok') {
          if (r.value.t === 'cas' && !r.value.succeeded) h?.ok(false);
          else {
            h?.ok();
            lastWritten.set(key, to);
          }
        } else {
          code = r.error.code;
          if (r.outcome === 'failed') h?.fail(code);
          else h?.info(code);
        }
      }
      lat[kind].push(clock.now() - start);
      outs[kind][outcome]++;
      if (code !== undefined) errors[code] = (errors[code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: spec.clients }, (_, i) => loop(i)));
  const ms = clock.now() - t0;
  const all = [...lat.read, ...lat.write, ...lat.cas];
  const tot = { ok: 0, failed: 0, indeterminate: 0 };
  for (const k of kinds) {
    tot.ok += outs[k].ok;
    tot.failed += outs[k].failed;
    tot.indeterminate += outs[k].indeterminate;
  }
  return {
    durationMs: ms,
    clients: spec.clients,
    total: stats(all, tot, ms),
    ops: {
      read: stats(lat.read, outs.read, ms),
      write: stats(lat.write, outs.write, ms),
      cas: stats(lat.cas, outs.cas, ms),
    },
    errors,
  };
}
