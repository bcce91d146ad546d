/**
 * The verdict of a chaos run on the leaderless store: not linearizability (the store does not
 * promise it) but what docs/eventual.md promises.
 *
 * - **Convergence**: after the heal every replica holds the same state: one ring, one Merkle
 *   root per key range across the replicas, no hint left, and the final reads of every key
 *   through every node equal (siblings, causal context, counter). The runner measures how long
 *   after the heal this took and holds it to a bound.
 * - **No acknowledged write lost** (`dvv` registers, written at W = quorum): an acknowledged
 *   put minted a dot (coordinator, counter), read from its contexts — the one it returned is the
 *   one it sent joined with its dot. At the end the key's causal context must contain that dot
 *   (else the write vanished), and its value must be one of the siblings unless a write that
 *   had seen it (its sent context contains the dot) replaced it: an acknowledged one
 *   (`superseded`), or one whose outcome is unknown (`maybeSuperseded`: it may have been
 *   applied). Anything else is a lost write.
 * - **Counters** (`pn` keys): every replica's final value lies between the sum of the
 *   acknowledged increments and that sum plus the indeterminate ones (a leaderless increment
 *   is not retried, docs/eventual.md).
 */
import type { HistoryEvent } from '../../../lib/history/event.js';
import { type PairedOp as Op, pairOps } from './verdict.js';

/** A version vector (node → counter), the `vv` of a `dvv` causal context token. */
export type VV = Readonly<Record<string, number>>;

/**
 * A `dvv` causal context: the vector plus the dots seen beyond it (`dc`, absent in tokens
 * of replicas before it existed and whenever the dots are contiguous with the vector).
 */
export interface Ctx {
  vv: VV;
  dc: ReadonlyArray<readonly [string, number]>;
}

/** An encoded `dvv` context (`encodeContext`); empty for '' or another type. */
export function ctxOfContext(text: string): Ctx {
  const empty: Ctx = { vv: {}, dc: [] };
  if (!text) return empty;
  try {
    const tok = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as {
      t?: string;
      vv?: unknown;
      dc?: unknown;
    };
    if (tok.t !== 'dvv' || typeof tok.vv !== 'object' || tok.vv === null) return empty;
    const vv: Record<string, number> = {};
    for (const [k, v] of Object.entries(tok.vv as Record<string, unknown>))
      if (typeof v === 'number') vv[k] = v;
    const dc = Array.isArray(tok.dc)
      ? tok.dc.filter(
          (d): d is [string, number] =>
            Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'number',
        )
      : [];
    return { vv, dc };
  } catch {
    return empty;
  }
}

/** The `vv` of an encoded `dvv` context, {} for '' or another type. */
export function vvOfContext(text: string): VV {
  return ctxOfContext(text).vv;
}

function asCtx(c: VV | Ctx): Ctx {
  return typeof (c as Ctx).vv === 'object' && Array.isArray((c as Ctx).dc)
    ? (c as Ctx)
    : { vv: c as VV, dc: [] };
}

/** True when the context contains the dot `node:n`. */
export function hasDot(c: VV | Ctx, node: string, n: number): boolean {
  const x = asCtx(c);
  return (x.vv[node] ?? 0) >= n || x.dc.some(([k, m]) => k === node && m === n);
}

/** The one dot in `after` beyond `before` (the dot a write minted), or undefined. */
export function mintedDot(before: VV | Ctx, after: VV | Ctx): [string, number] | undefined {
  const b = asCtx(before);
  const a = asCtx(after);
  const grew: Array<[string, number]> = Object.entries(a.vv).filter(
    ([k, n]) => n > (b.vv[k] ?? 0) && !hasDot(b, k, n),
  );
  for (const [k, n] of a.dc) if (!hasDot(b, k, n)) grew.push([k, n]);
  return grew.length === 1 ? grew[0] : undefined;
}

/** What a replica answered for one key at the end (R = all through that node). */
export interface FinalRead {
  siblings: string[];
  context: string;
  crdt?: number;
}

/** A replica's convergence data (`replica-inspect`). */
export interface ReplicaView {
  ring: string;
  roots: Array<[number, string]>;
  hints: number;
  keys: number;
}

export interface EventualVerdict {
  /** Problems that fail the run, one line each. */
  failures: string[];
  lost: { key: string; value: string; problem: string }[];
  /** Nodes or keys on which the replicas disagree. */
  diverged: string[];
  stats: {
    writesAcked: number;
    writesPresent: number;
    superseded: number;
    maybeSuperseded: number;
    writesIndeterminate: number;
    writesFailed: number;
    increments: Record<string, { acked: number; indeterminate: number; final: number | null }>;
  };
}

export function judgeEventual(
  history: readonly HistoryEvent[],
  /** node → key → its final read. */
  finals: ReadonlyMap<string, ReadonlyMap<string, FinalRead>>,
  /** node → its convergence data (undefined: did not answer). */
  replicas: ReadonlyMap<string, ReplicaView | undefined>,
): EventualVerdict {
  const failures: string[] = [];
  const lost: EventualVerdict['lost'] = [];
  const diverged: string[] = [];

  // ---- convergence of the replicas
  const views = [...replicas];
  for (const [node, v] of views) if (!v) diverged.push(`${node}: did not answer`);
  const answered = views.filter((x): x is [string, ReplicaView] => x[1] !== undefined);
  if (new Set(answered.map(([, v]) => v.ring)).size > 1)
    diverged.push(
      `ring views differ: ${answered.map(([n, v]) => `${n}=${v.ring.slice(0, 12)}`).join(' ')}`,
    );
  for (const [node, v] of answered)
    if (v.hints > 0) diverged.push(`${node}: ${v.hints} hints not delivered`);
  const roots = new Map<number, Map<string, string[]>>();
  for (const [node, v] of answered)
    for (const [seg, root] of v.roots) {
      const m = roots.get(seg) ?? new Map<string, string[]>();
      m.set(root, [...(m.get(root) ?? []), node]);
      roots.set(seg, m);
    }
  for (const [seg, m] of roots)
    if (m.size > 1)
      diverged.push(
        `key range ${seg}: ${m.size} different Merkle roots (${[...m.values()].map((ns) => ns.join('+')).join(' vs ')})`,
      );

  // ---- final reads equal at every node
  const nodes = [...finals.keys()];
  const keys = new Set<string>();
  for (const m of finals.values()) for (const k of m.keys()) keys.add(k);
  const final = new Map<string, FinalRead>();
  for (const key of keys) {
    const reads = nodes.map((n) => [n, finals.get(n)?.get(key)] as const);
    const shape = (r: FinalRead | undefined) =>
      r === undefined
        ? 'none'
        : JSON.stringify([
            [...r.siblings].sort(),
            r.crdt ?? null,
            Object.entries(vvOfContext(r.context)).sort(),
            ctxOfContext(r.context).dc,
          ]);
    const shapes = new Set(reads.map(([, r]) => shape(r)));
    if (shapes.size > 1)
      diverged.push(
        `${key}: the final reads differ (${reads.map(([n, r]) => `${n}: ${r ? `[${[...r.siblings].sort().join(',')}]${r.crdt !== undefined ? ` ${r.crdt}` : ''}` : 'no answer'}`).join('; ')})`,
      );
    const first = reads.find(([, r]) => r !== undefined)?.[1];
    if (first) final.set(key, first);
  }

  // ---- acknowledged writes
  const ops = pairOps(history);
  const writes = ops.filter((o) => o.f === 'write');
  const stats: EventualVerdict['stats'] = {
    writesAcked: 0,
    writesPresent: 0,
    superseded: 0,
    maybeSuperseded: 0,
    writesIndeterminate: writes.filter((w) => w.type === 'info' || w.type === 'open').length,
    writesFailed: writes.filter((w) => w.type === 'fail').length,
    increments: {},
  };
  const sentOf = (o: Op) => ctxOfContext(String((o.value as { sent?: unknown })?.sent ?? ''));
  for (const w of writes) {
    if (w.type !== 'ok') continue;
    stats.writesAcked++;
    const inv = w.value as { v?: unknown; sent?: unknown };
    const res = w.result as { ctx?: unknown } | undefined;
    const value = String(inv?.v);
    const dot = mintedDot(sentOf(w), ctxOfContext(String(res?.ctx ?? '')));
    if (!dot) {
      lost.push({
        key: w.key,
        value,
        problem: 'its acknowledgement names no single new dot (cannot be accounted for)',
      });
      continue;
    }
    const [node, n] = dot;
    const end = final.get(w.key);
    if (!end) {
      lost.push({ key: w.key, value, problem: 'no replica answered the final read of its key' });
      continue;
    }
    if (!hasDot(ctxOfContext(end.context), node, n)) {
      lost.push({
        key: w.key,
        value,
        problem: `its dot ${node}:${n} is not in the key's final causal context: the write vanished`,
      });
      continue;
    }
    if (end.siblings.includes(value)) {
      stats.writesPresent++;
      continue;
    }
    const seenBy = writes.filter(
      (o) => o !== w && o.key === w.key && hasDot(sentOf(o), node, n) && o.type !== 'fail',
    );
    if (seenBy.some((o) => o.type === 'ok')) stats.superseded++;
    else if (seenBy.length > 0) stats.maybeSuperseded++;
    else
      lost.push({
        key: w.key,
        value,
        problem: `acknowledged (dot ${node}:${n}) but not among the final siblings [${end.siblings.join(', ')}], and no write that had seen it replaced it`,
      });
  }

  // ---- counters
  for (const o of ops) {
    if (o.f !== 'add') continue;
    const s = stats.increments[o.key] ?? { acked: 0, indeterminate: 0, final: null };
    stats.increments[o.key] = s;
    if (o.type === 'ok') s.acked += Number(o.value);
    else if (o.type === 'info' || o.type === 'open') s.indeterminate += Number(o.value);
  }
  for (const [key, s] of Object.entries(stats.increments)) {
    for (const n of nodes) {
      const r = finals.get(n)?.get(key);
      const v = r?.crdt ?? (r ? 0 : undefined);
      if (v === undefined) continue;
      s.final ??= v;
      if (v < s.acked || v > s.acked + s.indeterminate)
        failures.push(
          `counter ${key} at ${n} is ${v}: outside [${s.acked} acknowledged, ${s.acked + s.indeterminate} with the indeterminate increments]`,
        );
    }
    if (s.final === null) failures.push(`counter ${key}: no replica answered the final read`);
  }

  for (const l of lost) failures.push(`lost write on ${l.key} (${l.value}): ${l.problem}`);
  for (const d of diverged) failures.push(`not converged: ${d}`);
  return { failures, lost, diverged, stats };
}
