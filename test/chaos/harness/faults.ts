/**
 * What both chaos runners (run.ts for Raft and Multi-Paxos, eventual-run.ts for the
 * leaderless store) do the same way: apply one network or process fault to victims already
 * chosen and undo it after the fault's duration (`runFault`), the victims a fault takes from
 * the schedule's pick when nothing about the cluster's state decides them (`victimsFromPick`),
 * the restart of a node that exited by itself (`restartCrashed`), and the RSS sampler with
 * its memory verdict (`RssSampler`). Each runner keeps its own choices: run.ts the
 * leader-aware victims and membership, eventual-run.ts the kinds it skips.
 *
 * Every fault writes a `start` event before it is applied and an `end` event once undone
 * (`kind` is the scheduled kind, e.g. `kill-leader`), or a single `skip` event saying why it
 * could not be applied; nemesis.jsonl is these events in order.
 */
import { writeFileSync } from 'node:fs';
import { Random } from '../../../lib/random.js';
import { monotonicNow } from './clock.js';
import type { ChaosCluster } from './cluster.js';
import { ringVisibility, type ScheduledFault, shuffled } from './nemesis.js';
import type { ChaosNet } from './net.js';

/** Records one nemesis event (nemesis.jsonl) and logs it. */
export type NoteFn = (e: Record<string, unknown>) => void;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** Polls `probe` every `everyMs` until it answers something, or throws after `deadlineMs`. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  deadlineMs: number,
  everyMs: number,
): Promise<T> {
  const end = monotonicNow() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (monotonicNow() > end)
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** One network or process fault with its victims resolved. */
export type FaultAction =
  | { do: 'kill'; node: string }
  | { do: 'pause'; node: string }
  | { do: 'partition'; groups: string[][] }
  | { do: 'restrict'; visible: Record<string, string[]> }
  /** `to` stops receiving from `from`; what `to` sends still arrives. */
  | { do: 'drop-from'; from: string; to: string }
  | { do: 'loss'; nodes: string[]; probability: number }
  | { do: 'slow'; nodes: string[]; delayMs: number; jitterMs: number };

/** The jitter of the `slow` nemesis. */
const SLOW_JITTER_MS = 25;

/**
 * The victims of a fault that depend on nothing but the schedule's pick (victims =
 * shuffle(nodes, pick)); undefined for the kinds whose victims the runner must choose
 * (kill-leader, pause-leader, partition-leader, membership).
 */
export function victimsFromPick(
  f: ScheduledFault,
  ids: readonly string[],
): FaultAction | undefined {
  const order = shuffled(ids, f.pick);
  const victim = order[0] as string;
  switch (f.kind) {
    case 'kill':
      return { do: 'kill', node: victim };
    case 'pause':
      return { do: 'pause', node: victim };
    case 'partition-halves': {
      const cut = Math.floor(ids.length / 2);
      return { do: 'partition', groups: [order.slice(0, cut), order.slice(cut)] };
    }
    case 'partition-ring':
      return { do: 'restrict', visible: ringVisibility(order) };
    case 'partition-one-way':
      return { do: 'drop-from', from: order[0] as string, to: order[1] as string };
    case 'loss':
      return {
        do: 'loss',
        nodes: order.slice(0, 3),
        probability: 0.1 + new Random(f.pick).int(30) / 100,
      };
    case 'slow':
      return {
        do: 'slow',
        nodes: order.slice(0, 2),
        delayMs: 50 + (f.pick % 150),
        jitterMs: SLOW_JITTER_MS,
      };
    default:
      return undefined;
  }
}

/**
 * Applies `a` for the fault's duration, then undoes it, noting `start` (with the victims) and
 * `end`. A `slow` fault where the kernel offers no way to add latency is noted as `skip` and
 * only waits out its duration; one applied through the delay relay (no netem) ends with what
 * each relay held (connections, delayed chunks, shortest and longest hold).
 */
export async function runFault(
  c: ChaosCluster,
  net: ChaosNet,
  f: ScheduledFault,
  a: FaultAction,
  note: NoteFn,
): Promise<void> {
  const start = (extra: Record<string, unknown>) =>
    note({ event: 'start', kind: f.kind, durationMs: f.durationMs, ...extra });
  const end = (extra: Record<string, unknown> = {}) =>
    note({ event: 'end', kind: f.kind, ...extra });
  switch (a.do) {
    case 'kill':
      start({ node: a.node });
      await c.kill(a.node);
      await sleep(f.durationMs);
      c.start(a.node);
      end({ node: a.node });
      return;
    case 'pause':
      start({ node: a.node });
      c.pause(a.node);
      await sleep(f.durationMs);
      c.resume(a.node);
      end({ node: a.node });
      return;
    case 'slow':
      await runSlow(net, f, a, note, start, end);
      return;
    case 'partition':
      start({ groups: a.groups });
      net.partition(a.groups);
      break;
    case 'restrict':
      start({ visible: a.visible });
      net.restrict(a.visible);
      break;
    case 'drop-from':
      start({ from: a.from, to: a.to, note: `${a.to} no longer receives from ${a.from}` });
      net.dropFrom(a.to, a.from);
      break;
    case 'loss':
      start({ nodes: a.nodes, probability: a.probability });
      net.loss(a.nodes, a.probability);
      break;
  }
  await sleep(f.durationMs);
  net.heal();
  end();
}

async function runSlow(
  net: ChaosNet,
  f: ScheduledFault,
  a: Extract<FaultAction, { do: 'slow' }>,
  note: NoteFn,
  start: (extra: Record<string, unknown>) => void,
  end: (extra?: Record<string, unknown>) => void,
): Promise<void> {
  if (net.capabilities.latency === 'none') {
    note({
      event: 'skip',
      kind: f.kind,
      why: `no way to add latency here: ${net.capabilities.latencyProblem ?? 'unknown'}`,
    });
    await sleep(f.durationMs);
    return;
  }
  const how: string[] = [];
  for (const v of a.nodes) how.push(await net.slow(v, a.delayMs, a.jitterMs));
  const relay = how[0] === 'relay';
  start({
    nodes: a.nodes,
    how: how[0],
    delayMs: a.delayMs,
    jitterMs: a.jitterMs,
    note: relay
      ? 'no netem in this kernel: a delaying TCP relay holds what the node sends to its peers'
      : 'netem delay on the node interface',
  });
  await sleep(f.durationMs);
  const held = relay
    ? await Promise.all(a.nodes.map((v) => net.relayStats(v).catch(() => undefined)))
    : [];
  net.heal();
  const ms = (v: number | null | undefined) => (v === null ? null : Math.round(v ?? 0));
  end(
    relay
      ? {
          relayed: a.nodes.map((v, i) => ({
            node: v,
            connections: held[i]?.connections,
            delayedChunks: held[i]?.delayedChunks,
            minHeldMs: ms(held[i]?.minHeldMs),
            maxHeldMs: ms(held[i]?.maxHeldMs),
          })),
        }
      : {},
  );
}

/** A node that exited by itself fails the run; it is restarted so the run goes on. */
export function restartCrashed(c: ChaosCluster, note: NoteFn, failures: string[]): void {
  for (const p of c.procs.values()) {
    const last = p.exits[p.exits.length - 1];
    if (p.state === 'down' && last && !last.expected) {
      note({ event: 'restart-crashed', node: p.id, code: last.code, signal: last.signal });
      failures.push(
        `${p.id} crashed by itself (code ${last.code}); last lines: ${p.tail.slice(-5).join(' | ')}`,
      );
      last.expected = true;
      c.start(p.id);
    }
  }
}

/** Each node's exits that nobody asked for, as failures. */
export function unexpectedExits(c: ChaosCluster): string[] {
  return [...c.procs.values()].flatMap((p) =>
    p.exits
      .filter((e) => !e.expected)
      .map((e) => `${p.id} exited by itself (code ${e.code}, signal ${e.signal})`),
  );
}

export interface MemorySummary {
  first: number;
  max: number;
  last: number;
}

/** Samples every node's RSS every 2 s from construction until `stop`. */
export class RssSampler {
  private readonly samples: Record<string, number[]>;
  private readonly lines: string[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    c: ChaosCluster,
    private readonly ids: readonly string[],
  ) {
    this.samples = Object.fromEntries(ids.map((id) => [id, []]));
    this.timer = setInterval(() => {
      const t = monotonicNow();
      for (const id of ids) {
        const v = c.rss(id);
        if (v === undefined) continue;
        this.samples[id]?.push(v);
        this.lines.push(JSON.stringify({ time: t, node: id, rss: v }));
      }
    }, 2000);
  }

  /** Stops sampling and writes every sample to `file` (rss.jsonl). */
  stop(file: string): void {
    clearInterval(this.timer);
    writeFileSync(file, `${this.lines.join('\n')}\n`);
  }

  /**
   * Each sampled node's first, highest and last RSS; a node above `limitBytes` adds a failure
   * to `failures`.
   */
  judge(limitBytes: number, failures: string[]): Record<string, MemorySummary> {
    const memory: Record<string, MemorySummary> = {};
    for (const id of this.ids) {
      const s = this.samples[id] ?? [];
      if (!s.length) continue;
      const m = { first: s[0] as number, max: Math.max(...s), last: s[s.length - 1] as number };
      memory[id] = m;
      if (m.max > limitBytes)
        failures.push(`${id} RSS reached ${mb(m.max)} (limit ${mb(limitBytes)})`);
    }
    return memory;
  }
}

function mb(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
