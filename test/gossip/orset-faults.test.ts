/**
 * The OR-set under faults, with removes (issue 9: "an OR-set holds every acknowledged add not
 * causally removed"). Clients add AND remove elements of a few OR-set keys, through random
 * nodes (so writes are forwarded), at W = one or quorum, while the network partitions at
 * random, drops 20% of messages and duplicates 5%, and nodes crash and restart from their
 * stores. Then the network heals, the crashed nodes return, writes stop, and the replicas must
 * converge (equal Merkle roots) within a bound. The checker then asserts, on every replica of
 * every key:
 *
 * 1. every acknowledged add that no remove observed is present. "Observed" is exact, not
 *    guessed: an add's reply names the dot it minted (`dot`) and a remove's reply carries the
 *    causal context its coordinator had seen (`observed`), so an add is causally removed iff
 *    an acknowledged remove of its element observed its dot (also when a later add of the
 *    element had replaced that dot: the later add's context held it). An add is not checked
 *    (counted as "maybe removed") only when a remove of the same element ended indeterminate
 *    (timed out or never finished) and may have been applied after the add was invoked: a
 *    write is applied, if at all, within APPLIED_WITHIN_MS of its invocation (at once by the
 *    node it is sent to, or when its one forward arrives);
 * 2. every element whose adds were all observed by acknowledged removes (and none of whose
 *    adds may have been applied unseen: no indeterminate add) is absent;
 * 3. all replicas hold the same record.
 *
 * Negative controls, which the checker must flag:
 * - a real run on a broken wire that drops the OR-set's tombstone information (every record
 *   sent carries a causal context cut down to the dots still present, i.e. removed dots are
 *   forgotten): removes are undone on the other replicas;
 * - the real final states rewritten as a remove-wins set would leave them (an element with an
 *   acknowledged remove loses the adds that remove did not observe), and as a set that lost a
 *   tombstone (a removed element brought back on one replica).
 *
 * GOSSIP_ORSET_SEEDS=n runs n seeds (default 2); GOSSIP_ORSET_SEED=s replays one. A failure
 * names its seed.
 */
import t from 'tap';
import {
  type CausalContext,
  ccFromDots,
  ccHas,
  type Dot,
} from '../../actors/gossip/causal-context.js';
import { canonical } from '../../actors/gossip/hash.js';
import type { PeerMessage, WriteResult } from '../../actors/gossip/messages.js';
import { type OrSetState, orHas } from '../../actors/gossip/or-set.js';
import type { KeyRecord } from '../../actors/gossip/record.js';
import { LocalCluster, type PendingOp } from '../../actors/gossip/testkit.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];
const KEYS = ['set/s0', 'set/s1', 'set/s2', 'set/s3'];
/** Elements in use at a time per key. */
const ELEMENTS = 3;
const WRITE_MS = 20_000;
/** Virtual ms allowed from heal to identical Merkle roots. */
const CONVERGENCE_BOUND_MS = 30_000;
/** One-way delay range of the simulated network (ms). */
const DELAY: readonly [number, number] = [1, 20];
/**
 * A write is applied by its coordinator when it arrives there: at once when the node it is sent
 * to coordinates it, or when the one forward (never retried) arrives, at most DELAY[1] later
 * (messages are dropped, never held, by partitions and crashes). Doubled for margin.
 */
const APPLIED_WITHIN_MS = 2 * DELAY[1];
/** Error codes that prove a write was not applied anywhere. */
const NOT_APPLIED = new Set([
  'SYNOD_ERR_UNAVAILABLE',
  'SYNOD_ERR_NOT_READY',
  'SYNOD_ERR_BAD_REQUEST',
  'SYNOD_ERR_WRONG_TYPE',
  'SYNOD_ERR_BAD_CONTEXT',
]);

interface SetOp {
  readonly kind: 'add' | 'remove';
  readonly key: string;
  readonly element: string;
  readonly op: PendingOp<WriteResult>;
}

/** Final OR-set state of each key on each of its preferred replicas. */
type Finals = Map<string, Map<string, OrSetState | undefined>>;

const dotKey = (d: readonly [string, number]): string => `${d[0]}:${d[1]}`;
const indeterminate = (o: PendingOp<WriteResult>): boolean =>
  !o.done || (o.err !== undefined && !NOT_APPLIED.has(o.err.code));
const notApplied = (o: PendingOp<WriteResult>): boolean =>
  o.done && o.err !== undefined && NOT_APPLIED.has(o.err.code);

interface Verdict {
  violations: string[];
  mustPresent: number;
  mustAbsent: number;
  /** The elements that must be absent, with the dot of one of their (removed) adds. */
  absent: { key: string; el: string; dot: readonly [string, number] }[];
  maybeRemoved: number;
  causallyRemoved: number;
}

/** The checker (pure: the negative controls feed it rewritten states). */
function checkOrSet(ops: readonly SetOp[], finals: Finals): Verdict {
  const v: Verdict = {
    violations: [],
    mustPresent: 0,
    mustAbsent: 0,
    absent: [],
    maybeRemoved: 0,
    causallyRemoved: 0,
  };
  for (const [key, replicas] of finals) {
    // canonical: the digest's encoding (object key order does not matter, unlike JSON.stringify)
    const texts = new Set([...replicas.values()].map((s) => canonical(s ?? null)));
    if (texts.size > 1)
      v.violations.push(`${key}: replicas differ (${texts.size} distinct states)`);
    const elements = new Set(ops.filter((o) => o.key === key).map((o) => o.element));
    for (const el of elements) {
      const adds = ops.filter((o) => o.key === key && o.element === el && o.kind === 'add');
      const removes = ops.filter((o) => o.key === key && o.element === el && o.kind === 'remove');
      const acked = removes.filter((r) => r.op.ok?.observed !== undefined);
      const observed = (d: Dot): boolean =>
        acked.some((r) => ccHas(r.op.ok?.observed as CausalContext, d));
      const unknownRemoves = removes.filter((r) => indeterminate(r.op));
      for (const a of adds) {
        const dot = a.op.ok?.dot;
        if (dot === undefined) continue;
        if (observed(dot)) {
          v.causallyRemoved++;
          continue;
        }
        // An indeterminate remove was applied, if at all, by APPLIED_WITHIN ms after its
        // invocation; an add invoked later minted its dot after that, unseen by it.
        if (unknownRemoves.some((r) => r.op.invokedAt + APPLIED_WITHIN_MS >= a.op.invokedAt)) {
          v.maybeRemoved++;
          continue;
        }
        v.mustPresent++;
        for (const [node, s] of replicas)
          if (!s || !orHas(s, el))
            v.violations.push(
              `${key} on ${node}: ${el} is missing though its acknowledged add (dot ${dotKey(dot)}) was observed by no remove`,
            );
      }
      const allObserved = adds.every(
        (a) => notApplied(a.op) || (a.op.ok?.dot !== undefined && observed(a.op.ok.dot)),
      );
      const someDot = adds.find((a) => a.op.ok?.dot !== undefined)?.op.ok?.dot;
      if (allObserved && someDot !== undefined) {
        v.mustAbsent++;
        v.absent.push({ key, el, dot: someDot });
        for (const [node, s] of replicas)
          if (s && orHas(s, el))
            v.violations.push(
              `${key} on ${node}: ${el} is present though removes observed all its adds`,
            );
      }
    }
  }
  return v;
}

/** A wire that forgets removed dots: every OR-set record's context shrinks to its live dots. */
function dropTombstones(msg: PeerMessage): PeerMessage {
  const strip = (rec: KeyRecord): KeyRecord => {
    if (rec.t !== 'orset') return rec;
    const live: Dot[] = rec.s.e.flatMap(([, dots]) => dots);
    return { t: 'orset', s: { e: rec.s.e, cc: ccFromDots(live) } };
  };
  switch (msg.type) {
    case 'rep-write':
      return { ...msg, rec: strip(msg.rec) };
    case 'rep-read-ack':
      return msg.rec === null ? msg : { ...msg, rec: strip(msg.rec) };
    case 'hint-deliver':
      return { ...msg, items: msg.items.map(([k, r]) => [k, strip(r)] as const) };
    case 'ae-push':
      return { ...msg, records: msg.records.map(([k, r]) => [k, strip(r)] as const) };
    default:
      return msg;
  }
}

async function run(seed: number, opts: { brokenWire?: boolean } = {}) {
  const c = new LocalCluster({
    seed,
    nodes: NODES,
    replica: {
      keyTypes: [{ prefix: 'set/', type: 'orset' }],
      antiEntropyIntervalMs: 500,
      hintIntervalMs: 500,
      requestTimeoutMs: 1000,
      swim: { periodMs: 500, pingTimeoutMs: 100 },
    },
    delay: DELAY,
    ...(opts.brokenWire ? { mutate: dropTombstones } : {}),
  });
  await c.boot();
  c.loss = 0.2;
  c.duplicate = 0.05;
  const rnd = c.random.fork();
  const ops: SetOp[] = [];
  const crashed = new Set<string>();
  const end = c.time + WRITE_MS;
  let nextFault = c.time + 1000;
  while (c.time < end) {
    if (c.time >= nextFault) {
      nextFault = c.time + rnd.between(1000, 3000);
      const roll = rnd.int(4);
      if (roll === 0) {
        const shuffled = rnd.shuffle([...NODES]);
        const cut = rnd.between(1, 4);
        c.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      } else if (roll === 1) c.heal();
      else if (roll === 2 && crashed.size === 0) {
        const victim = rnd.pick(NODES);
        c.crash(victim);
        crashed.add(victim);
      } else {
        for (const v of crashed) await c.restart(v);
        crashed.clear();
      }
    }
    // Each element lives for a short while (a few adds and removes), then new ones take over.
    const key = rnd.pick(KEYS);
    const element = `e${Math.floor(ops.length / 40) * ELEMENTS + rnd.int(ELEMENTS)}`;
    const kind = rnd.chance(0.55) ? 'add' : 'remove';
    const op = c.write(rnd.pick(NODES), {
      type: 'kv-write',
      key,
      op: kind === 'add' ? { op: 'add', element } : { op: 'remove', element },
      w: rnd.pick(['one', 'quorum'] as const),
    });
    ops.push({ kind, key, element, op });
    await c.runFor(rnd.between(5, 40));
  }
  c.heal();
  const healedAt = c.time;
  for (const v of crashed) await c.restart(v);
  const converged = await c.runUntil(
    () => c.divergence() === 0 && c.membershipStable() && ops.every((o) => o.op.done),
    CONVERGENCE_BOUND_MS,
  );
  const finals: Finals = new Map();
  for (const key of KEYS) {
    const pref = c.replicas.get('a')?.placement(key).preferred ?? [];
    const m = new Map<string, OrSetState | undefined>();
    for (const n of pref) {
      const rec = c.replicas.get(n)?.localRecord(key);
      m.set(n, rec?.t === 'orset' ? rec.s : undefined);
    }
    finals.set(key, m);
  }
  return { c, ops, finals, converged, convergenceMs: c.time - healedAt };
}

function seedList(): number[] {
  const one = process.env.GOSSIP_ORSET_SEED;
  if (one !== undefined && one !== '') return [Number(one)];
  const n = Number(process.env.GOSSIP_ORSET_SEEDS ?? 2);
  return Array.from({ length: Math.max(1, n) }, (_, i) => 9300 + i);
}

for (const seed of seedList()) {
  t.test(`seed ${seed}: OR-set adds and removes under faults`, async (t) => {
    const { ops, finals, converged, convergenceMs } = await run(seed);
    const count = (kind: string, p: (o: PendingOp<WriteResult>) => boolean) =>
      ops.filter((o) => o.kind === kind && p(o.op)).length;
    const v = checkOrSet(ops, finals);
    t.comment(
      `seed ${seed}: ${ops.length} ops; adds ${count('add', (o) => o.ok !== undefined)} acked / ${count('add', indeterminate)} indeterminate / ${count('add', notApplied)} not applied; removes ${count('remove', (o) => o.ok !== undefined)} acked / ${count('remove', indeterminate)} indeterminate / ${count('remove', notApplied)} not applied; converged in ${convergenceMs} virtual ms after heal (bound ${CONVERGENCE_BOUND_MS})`,
    );
    t.comment(
      `seed ${seed}: checked ${v.mustPresent} adds that must be present, ${v.mustAbsent} elements that must be absent; ${v.causallyRemoved} adds causally removed, ${v.maybeRemoved} not checked (an indeterminate remove of the element)`,
    );
    t.ok(converged, `replicas converged within ${CONVERGENCE_BOUND_MS} ms (seed ${seed})`);
    t.same(v.violations, [], `no OR-set violation (seed ${seed})`);
    t.ok(v.mustPresent >= 20, `enough adds checked for presence (${v.mustPresent})`);
    t.ok(v.mustAbsent >= 3, `enough elements checked for absence (${v.mustAbsent})`);
    t.ok(v.causallyRemoved >= 20, `removes observed adds (${v.causallyRemoved})`);
    t.ok(
      v.mustPresent + v.causallyRemoved > 2 * v.maybeRemoved,
      'most acknowledged adds were decided exactly',
    );

    // Negative controls on the checker itself, from this run's real final states.
    // Remove-wins: an element with an acknowledged remove loses the adds it did not observe.
    const removeWins: Finals = new Map();
    let dropped = 0;
    for (const [key, replicas] of finals) {
      const m = new Map<string, OrSetState | undefined>();
      for (const [node, s] of replicas) {
        if (!s) {
          m.set(node, s);
          continue;
        }
        const e = s.e.filter(([el]) => {
          const removedSomething = ops.some(
            (o) => o.key === key && o.element === el && o.kind === 'remove' && o.op.ok,
          );
          if (removedSomething) dropped++;
          return !removedSomething;
        });
        m.set(node, { e, cc: s.cc });
      }
      removeWins.set(key, m);
    }
    const rw = checkOrSet(ops, removeWins);
    t.comment(`remove-wins rewrite dropped ${dropped} (element, replica) entries`);
    t.ok(
      rw.violations.some((x) => x.includes('was observed by no remove')),
      `negative control: remove-wins states are flagged (${rw.violations.length} violations)`,
    );
    // A lost tombstone: an element that must be absent comes back (on every replica alike, so
    // only the absence rule can notice).
    const gone = v.absent[0];
    t.ok(gone, 'an element that must be absent exists');
    if (gone) {
      const back: Finals = new Map(finals);
      const replicas = new Map<string, OrSetState | undefined>();
      for (const [node, s] of finals.get(gone.key) ?? []) {
        const e = [...(s?.e ?? []), [gone.el, [gone.dot]] as const].sort((x, y) =>
          x[0] < y[0] ? -1 : 1,
        );
        replicas.set(node, { e, cc: s?.cc ?? { vv: {}, dc: [] } });
      }
      back.set(gone.key, replicas);
      const bv = checkOrSet(ops, back);
      t.ok(
        bv.violations.some((x) => x.includes(`${gone.el} is present though removes observed`)),
        `negative control: ${gone.key} ${gone.el} brought back is flagged`,
      );
    }
  });
}

t.test('negative control: a wire that drops OR-set tombstones is flagged', async (t) => {
  const seed = seedList()[0] as number;
  const { ops, finals, converged } = await run(seed, { brokenWire: true });
  const v = checkOrSet(ops, finals);
  t.comment(
    `seed ${seed}, broken wire: converged ${converged}; ${v.violations.length} violations, e.g. ${v.violations.slice(0, 3).join(' | ')}`,
  );
  t.ok(
    v.violations.some((x) => x.includes('present though removes observed all its adds')),
    'removed elements come back on replicas that never got the tombstone',
  );
});
