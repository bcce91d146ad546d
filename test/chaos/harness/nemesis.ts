/**
 * Nemeses, scheduled from the seed: the schedule (which fault, when, for how long, which
 * victims by rank) is a pure function of the seed and the run length, so a seed names a run.
 * Victims that depend on the cluster's state ("the leader") are resolved when the fault
 * starts and written to the nemesis log.
 */
import { Random } from '../../../lib/random.js';

export const NEMESES = [
  'kill',
  'kill-leader',
  'pause',
  'pause-leader',
  'partition-halves',
  'partition-leader',
  'partition-ring',
  'partition-one-way',
  'loss',
  'slow',
  'membership',
] as const;
export type NemesisKind = (typeof NEMESES)[number];

export interface ScheduledFault {
  kind: NemesisKind;
  /** ms after the workload starts. */
  at: number;
  /** How long the fault lasts (ms). */
  durationMs: number;
  /** Picks among the nodes (a permutation seed): victims = shuffle(nodes, pick). */
  pick: number;
}

export interface ScheduleOptions {
  seed: number;
  durationMs: number;
  kinds?: readonly NemesisKind[];
  /** Quiet time before the first fault and after the last heal (ms). */
  warmupMs?: number;
  cooldownMs?: number;
  minFaultMs?: number;
  maxFaultMs?: number;
  minCalmMs?: number;
  maxCalmMs?: number;
}

export function schedule(o: ScheduleOptions): ScheduledFault[] {
  const r = new Random(o.seed);
  const kinds = o.kinds ?? NEMESES;
  const warm = o.warmupMs ?? 3000;
  const cool = o.cooldownMs ?? 3000;
  const minF = o.minFaultMs ?? 2500;
  const maxF = o.maxFaultMs ?? 8000;
  const minC = o.minCalmMs ?? 1500;
  const maxC = o.maxCalmMs ?? 4000;
  const out: ScheduledFault[] = [];
  let t = warm;
  for (;;) {
    const durationMs = minF + r.int(maxF - minF + 1);
    if (t + durationMs > o.durationMs - cool) break;
    out.push({
      kind: kinds[r.int(kinds.length)] as NemesisKind,
      at: t,
      durationMs,
      pick: r.nextUint32(),
    });
    t += durationMs + minC + r.int(maxC - minC + 1);
  }
  return out;
}

/** A deterministic shuffle of `ids` by `pick`. */
export function shuffled(ids: readonly string[], pick: number): string[] {
  const r = new Random(pick);
  const a = [...ids];
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [a[i], a[j]] = [a[j] as string, a[i] as string];
  }
  return a;
}

/** Jepsen's majorities ring: each node hears its two ring neighbours, a majority of five. */
export function ringVisibility(ids: readonly string[]): Record<string, string[]> {
  const n = ids.length;
  const reach = Math.floor(n / 2) / 2;
  const out: Record<string, string[]> = {};
  ids.forEach((id, i) => {
    const vis: string[] = [];
    for (let d = 1; d <= Math.max(1, Math.floor(reach)); d++) {
      vis.push(ids[(i + d) % n] as string, ids[(i - d + n) % n] as string);
    }
    out[id] = vis;
  });
  return out;
}
