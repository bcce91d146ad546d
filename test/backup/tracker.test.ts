/**
 * The tracker keeps its digest and change indices lazily (tracker.ts): these tests hold it to
 * the eager algorithm it replaced (subtract the old record's hash and add the new one's after
 * every apply), on randomized workloads with captures, forgets and noted changes at random
 * points, including keys touched without a change and more pending keys than SETTLE_KEYS.
 */
import t, { type Test } from 'tap';
import { StateDigest } from '../../actors/backup/digest.js';
import { SessionState } from '../../actors/backup/sessions.js';
import { compareKeys, type KeyedState, type MapOp, MapState } from '../../actors/backup/state.js';
import { SETTLE_KEYS, TrackedState } from '../../actors/backup/tracker.js';
import { keyName, randomValue } from '../../actors/backup/workload.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';

/** The eager tracker as it was before the lazy one (the reference). */
class EagerTracker<Op> {
  readonly digest = new StateDigest();
  readonly changedAt = new Map<string, number>();
  constructor(readonly state: KeyedState<Op>) {}
  apply(op: Op, index: number): void {
    const keys = [...new Set(this.state.keysTouched(op))];
    const before = keys.map((k) => this.state.get(k));
    this.state.apply(op, { index, term: 1 });
    keys.forEach((k, i) => {
      const old = before[i];
      const now = this.state.get(k);
      if (old === now) return;
      if (old !== undefined) this.digest.remove(k, old);
      if (now !== undefined) this.digest.add(k, now);
      this.changedAt.set(k, index);
    });
  }
  changes(since: number): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const [k, at] of this.changedAt) {
      if (at <= since) continue;
      const v = this.state.get(k);
      out.push([k, v === undefined ? '-' : Buffer.from(v).toString('hex')]);
    }
    return out.sort((a, b) => compareKeys(a[0], b[0]));
  }
  forgetUpTo(index: number): void {
    for (const [k, at] of this.changedAt) if (at <= index) this.changedAt.delete(k);
  }
  noteChanged(keys: Iterable<string>, index: number): void {
    for (const k of keys) if (!this.changedAt.has(k)) this.changedAt.set(k, index);
  }
}

function snapshot(state: KeyedState<unknown>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of state.entries()) m.set(k, Buffer.from(v).toString('hex'));
  return m;
}

/**
 * The lazy tracker's changes must be the eager one's, except that it may leave out a delete
 * of a key that was absent at `since` too (put and deleted again between two captures: the
 * eager tracker recorded the delete, a no-op on the parent's state). Both must turn the state
 * at `since` into the current one. Returns what is wrong, or undefined.
 */
function compareChanges(
  got: Array<[string, string]>,
  want: Array<[string, string]>,
  atSince: Map<string, string>,
  current: Map<string, string>,
): string | undefined {
  const g = new Map(got);
  const w = new Map(want);
  for (const [k, v] of got) if (w.get(k) !== v) return `extra record ${k}=${v}`;
  for (const [k, v] of want) {
    if (g.has(k)) continue;
    if (v !== '-' || atSince.has(k)) return `missing record ${k}=${v}`;
  }
  const rebuilt = new Map(atSince);
  for (const [k, v] of got) {
    if (v === '-') rebuilt.delete(k);
    else rebuilt.set(k, v);
  }
  if (rebuilt.size !== current.size) return `rebuilt ${rebuilt.size} keys, want ${current.size}`;
  for (const [k, v] of current) if (rebuilt.get(k) !== v) return `rebuilt ${k} differs`;
  return undefined;
}

function hexRecords(
  records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
): Array<[string, string]> {
  return records.map(([k, v]) => [k, v === undefined ? '-' : Buffer.from(v).toString('hex')]);
}

/**
 * Ops over `keySpace` keys: puts of new values, puts that store the key's current value
 * object again (touched, not changed), deletes (often of absent keys), batches.
 */
function op(r: Random, keySpace: number, current: (k: string) => Uint8Array | undefined): MapOp {
  const one = (): MapOp => {
    const key = keyName(r.int(keySpace));
    const x = r.int(10);
    if (x < 2) return { type: 'delete', key };
    const cur = current(key);
    if (x < 3 && cur !== undefined) return { type: 'put', key, value: cur };
    return { type: 'put', key, value: randomValue(r, 0, 40) };
  };
  if (r.chance(0.1)) return { type: 'batch', ops: [one(), one(), one()] };
  return one();
}

function run(
  t: Test,
  seed: number,
  keySpace: number,
  steps: number,
  clients: number,
  pCapture = 0.01,
): { captures: number; settledBehind: number } {
  const r = new Random(seed);
  const lazy = new TrackedState<Command<MapOp>>(new SessionState(new MapState()));
  const eager = new EagerTracker<Command<MapOp>>(new SessionState(new MapState()));
  const seqs = new Array<number>(clients).fill(0);
  const captureIdx: number[] = [0];
  /** The state (key → hex value) at each capture index. */
  const states = new Map<number, Map<string, string>>([[0, new Map()]]);
  let captures = 0;
  let settledBehind = 0;
  for (let index = 1; index <= steps; index++) {
    const c = r.int(clients);
    // A retried (duplicate) command now and then: the session rule skips it, nothing changes.
    const last = seqs[c] as number;
    const seq = r.chance(0.05) && last > 0 ? last : last + 1;
    seqs[c] = seq;
    const cmd: Command<MapOp> = {
      clientId: `c${c}`,
      seq,
      op: op(r, keySpace, (k) => eager.state.get(k)),
    };
    lazy.apply(cmd, { index, term: 1, time: index });
    eager.apply(cmd, index);
    if (lazy.settled().index < index) settledBehind++;
    if (r.chance(pCapture)) {
      captures++;
      const full = lazy.captureFull();
      const ok =
        full.stateDigest === eager.digest.hex() &&
        full.keyCount === eager.digest.count &&
        lazy.settled().index === index;
      if (!ok) {
        t.fail(`seed ${seed}: digest or key count differs at ${index}`);
        return { captures, settledBehind };
      }
      const current = snapshot(eager.state);
      for (const since of captureIdx) {
        const got = hexRecords(lazy.captureChanges(since).records);
        const want = eager.changes(since);
        const problem = compareChanges(
          got,
          want,
          states.get(since) as Map<string, string>,
          current,
        );
        if (problem) {
          t.fail(`seed ${seed}: changes since ${since}, captured at ${index}: ${problem}`);
          return { captures, settledBehind };
        }
      }
      states.set(index, current);
      captureIdx.push(index);
      if (r.chance(0.3) && captureIdx.length > 2) {
        // A new full: forget what no later backup's parent can need.
        const upTo = captureIdx[captureIdx.length - 2] as number;
        lazy.forgetUpTo(upTo);
        eager.forgetUpTo(upTo);
        for (const i of captureIdx.splice(0, captureIdx.length - 2)) states.delete(i);
      }
      if (r.chance(0.2)) {
        const keys = [keyName(r.int(keySpace)), keyName(r.int(keySpace))];
        lazy.noteChanged(keys, index);
        eager.noteChanged(keys, index);
      }
    }
  }
  t.equal(lazy.digestHex, eager.digest.hex(), `seed ${seed}: digest at the end`);
  t.equal(lazy.keyCount, eager.digest.count, `seed ${seed}: key count at the end`);
  return { captures, settledBehind };
}

t.test('the lazy tracker captures exactly what the eager one did', async (t) => {
  let captures = 0;
  let behind = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const r = run(t, seed, 200, 3000, 8);
    captures += r.captures;
    behind += r.settledBehind;
  }
  t.ok(captures > 500, `captured at ${captures} random points`);
  // The point of it: between captures, applies do not settle the digest.
  t.ok(behind > 20 * 2500, `the settled digest lagged the index after ${behind} applies`);
});

t.test('more pending keys than SETTLE_KEYS settle on their own, still exactly', async (t) => {
  const r = run(t, 99, SETTLE_KEYS + 5000, SETTLE_KEYS * 2, 4, 0.0002);
  t.ok(r.captures > 0);
  const lazy = new TrackedState<Command<MapOp>>(new SessionState(new MapState()));
  let seq = 0;
  for (let i = 0; i < SETTLE_KEYS + 10; i++) {
    lazy.apply(
      {
        clientId: 'c',
        seq: ++seq,
        op: { type: 'put', key: keyName(i), value: Buffer.from([i & 255]) },
      },
      { index: seq, term: 1, time: seq },
    );
  }
  const s = lazy.settled();
  t.ok(s.index > 0 && s.index < seq, `settled by itself at ${s.index} of ${seq}`);
  t.equal(lazy.keyCount, SETTLE_KEYS + 11, 'every key and the session counted');
  t.equal(lazy.settled().index, seq, 'keyCount settles');
});

t.test('a key touched without a change is not a change', async (t) => {
  const lazy = new TrackedState<MapOp>(new MapState());
  const v = Buffer.from('v');
  lazy.apply({ type: 'put', key: 'a', value: v }, { index: 1, term: 1, time: 1 });
  t.same(
    lazy.captureChanges(0).records.map((x) => x[0]),
    ['a'],
  );
  lazy.apply({ type: 'put', key: 'a', value: v }, { index: 2, term: 1, time: 2 });
  lazy.apply({ type: 'delete', key: 'b' }, { index: 3, term: 1, time: 3 });
  // put then delete within one settle window: absent before and after
  lazy.apply({ type: 'put', key: 'c', value: v }, { index: 4, term: 1, time: 4 });
  lazy.apply({ type: 'delete', key: 'c' }, { index: 5, term: 1, time: 5 });
  t.same(lazy.captureChanges(1).records, [], 'nothing changed after index 1');
  t.equal(lazy.keyCount, 1);
});
