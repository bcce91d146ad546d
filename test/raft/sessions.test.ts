/**
 * SessionStateMachine keeps its applied order in a linked list through the sessions
 * (instead of a Map delete + set per command). It must behave exactly like the reference
 * below, which is the previous Map-order implementation: same results, same duplicates,
 * same evictions, and byte-identical snapshot images, under random commands (seeded:
 * a failure prints the seed; SYNOD_SEED reproduces it).
 */
import t from 'tap';
import { SessionStateMachine } from '../../actors/raft/session-state-machine.js';
import { encodeValue } from '../../lib/codec.js';
import { Random } from '../../lib/random.js';
import type { StateMachine } from '../../lib/replicated-log.js';

class Counter implements StateMachine<number, number> {
  n = 0;
  apply(op: number): number {
    this.n += op;
    return this.n;
  }
  snapshot(): Uint8Array {
    return encodeValue(this.n);
  }
  restore(image: Uint8Array): void {
    this.n = image.byteLength; // not used: images are compared as bytes
  }
}

/** The Map-order implementation this replaces. */
class Reference {
  sessions = new Map<string, { seq: number; result: unknown; lastIndex: number }>();
  inner = new Counter();
  constructor(readonly max: number) {}
  apply(c: { clientId: string; seq: number; op: number }, index: number) {
    const s = this.sessions.get(c.clientId);
    if (s && c.seq <= s.seq) {
      s.lastIndex = index;
      return { result: c.seq === s.seq ? s.result : undefined, duplicate: true };
    }
    const result = this.inner.apply(c.op);
    if (s) this.sessions.delete(c.clientId);
    this.sessions.set(c.clientId, { seq: c.seq, result, lastIndex: index });
    if (this.sessions.size > this.max) {
      this.sessions.delete(this.sessions.keys().next().value as string);
    }
    return { result, duplicate: false };
  }
  snapshot(): Uint8Array {
    const sessions = [...this.sessions].map(([id, s]) => [id, s.seq, s.result, s.lastIndex]);
    return encodeValue({ v: 1, sessions, user: this.inner.snapshot() });
  }
}

const base = Number(process.env.SYNOD_SEED ?? 1);
const seeds = Number(process.env.SYNOD_RAFT_SESSION_SEEDS ?? 40);

interface Impl {
  apply(
    c: { clientId: string; seq: number; op: number },
    index: number,
  ): { result: unknown; duplicate: boolean };
  snapshot(): Uint8Array;
  /** Replaces the implementation by one restored from its own snapshot (may be a no-op). */
  reload(): void;
}

function real(max: number): Impl {
  let sm = new SessionStateMachine(new Counter(), max);
  return {
    apply: (c, index) => sm.apply(c, { index, term: 1 }),
    snapshot: () => sm.snapshot(),
    reload() {
      const n = (sm.inner as Counter).n;
      const img = sm.snapshot();
      sm = new SessionStateMachine(new Counter(), max);
      sm.restore(img);
      (sm.inner as Counter).n = n;
    },
  };
}

/** Differences from the reference over `seeds` random runs: the failing seeds. */
function compare(make: (max: number) => Impl): number[] {
  const failing: number[] = [];
  for (let seed = base; seed < base + seeds; seed++) {
    const r = new Random(seed);
    const max = 1 + r.int(8);
    const clients = 2 + r.int(12);
    const sm = make(max);
    const ref = new Reference(max);
    const seqs = new Map<string, number>();
    for (let index = 1; index <= 400; index++) {
      const clientId = `c${r.int(clients)}`;
      const last = seqs.get(clientId) ?? 0;
      // mostly new commands, some retries of the last or an older one
      const seq = r.next() < 0.75 ? last + 1 : Math.max(0, last - r.int(3));
      if (seq > last) seqs.set(clientId, seq);
      const cmd = { clientId, seq, op: 1 + r.int(5) };
      const got = sm.apply(cmd, index);
      const want = ref.apply(cmd, index);
      const same =
        got.duplicate === want.duplicate &&
        got.result === want.result &&
        Buffer.from(sm.snapshot()).equals(Buffer.from(ref.snapshot()));
      if (!same) {
        failing.push(seed);
        break;
      }
      // A restored machine continues identically (order included).
      if (index % 97 === 0) sm.reload();
    }
  }
  return failing;
}

t.test('same results, evictions and snapshot images as the Map-order reference', async (t) => {
  const failing = compare(real);
  t.same(failing, [], `${seeds} seeds from ${base} (replay one with SYNOD_SEED=<seed>)`);
});

t.test('negative control: a session table that does not reorder is caught', async (t) => {
  // The reference without moving a re-applied session to the newest end.
  const broken = (max: number): Impl => {
    const ref = new Reference(max);
    return {
      apply(c, index) {
        const s = ref.sessions.get(c.clientId);
        if (s && c.seq <= s.seq) return ref.apply(c, index);
        const result = ref.inner.apply(c.op);
        if (s) Object.assign(s, { seq: c.seq, result, lastIndex: index });
        else ref.sessions.set(c.clientId, { seq: c.seq, result, lastIndex: index });
        if (ref.sessions.size > ref.max) {
          ref.sessions.delete(ref.sessions.keys().next().value as string);
        }
        return { result, duplicate: false };
      },
      snapshot: () => ref.snapshot(),
      reload() {},
    };
  };
  t.ok(compare(broken).length > seeds / 2, 'flagged on most seeds');
  const max = 2;
  const sm = new SessionStateMachine(new Counter(), max);
  const cmds = [
    { clientId: 'a', seq: 1, op: 1 },
    { clientId: 'b', seq: 1, op: 1 },
    { clientId: 'a', seq: 2, op: 1 },
    { clientId: 'c', seq: 1, op: 1 },
  ];
  cmds.forEach((c, i) => {
    sm.apply(c, { index: i + 1, term: 1 });
  });
  t.equal(sm.lastSeq('b'), undefined, 'b, the least recently applied, was evicted');
  t.equal(sm.lastSeq('a'), 2, 'a was kept');
});

t.test('a duplicate keeps its place, a restored duplicate id keeps the first place', async (t) => {
  const sm = new SessionStateMachine(new Counter(), 2);
  sm.apply({ clientId: 'a', seq: 1, op: 1 }, { index: 1, term: 1 });
  sm.apply({ clientId: 'b', seq: 1, op: 1 }, { index: 2, term: 1 });
  const dup = sm.apply({ clientId: 'a', seq: 1, op: 1 }, { index: 3, term: 1 });
  t.ok(dup.duplicate, 'a retry is a duplicate');
  t.equal(dup.result, 1, 'with the original result');
  sm.apply({ clientId: 'c', seq: 1, op: 1 }, { index: 4, term: 1 });
  t.equal(sm.lastSeq('a'), undefined, 'a retry does not refresh a session (a evicted)');
  t.equal(sm.lastSeq('b'), 1);
  const img = encodeValue({
    v: 1,
    sessions: [
      ['x', 1, 10, 1],
      ['y', 1, 11, 2],
      ['x', 3, 12, 3],
    ],
    user: encodeValue(0),
  });
  const r = new SessionStateMachine(new Counter(), 2);
  r.restore(img);
  t.equal(r.lastSeq('x'), 3, 'the later value of a repeated id');
  r.apply({ clientId: 'z', seq: 1, op: 1 }, { index: 4, term: 1 });
  t.equal(r.lastSeq('x'), undefined, 'x kept its first place and is evicted first');
  t.equal(r.lastSeq('y'), 1);
});
