/**
 * The leaderless store's chaos verdict (test/chaos/harness/eventual-verdict.ts) without
 * processes: histories and final states built by hand, with real causal contexts
 * (`encodeContext`). It passes a run where every acknowledged write is present or was replaced
 * by a write that had seen it, and counters lie in their bounds; negative controls: a lost
 * write (its dot gone from the final context), a write missing from the siblings that nothing
 * replaced, a diverged replica (another Merkle root, different final reads, a hint left), a
 * counter below its acknowledged increments — each flagged.
 */
import t from 'tap';
import { encodeContext } from '../../actors/gossip/record.js';
import type { HistoryEvent } from '../../lib/history/event.js';
import {
  ctxOfContext,
  type FinalRead,
  hasDot,
  judgeEventual,
  mintedDot,
  type ReplicaView,
  vvOfContext,
} from './harness/eventual-verdict.js';

const ctx = (vv: Record<string, number>) => encodeContext({ t: 'dvv', vv });

let time = 0;
function put(
  process: number,
  key: string,
  v: string,
  sent: Record<string, number>,
  outcome: 'ok' | 'info' | 'fail',
  minted?: [string, number],
): HistoryEvent[] {
  const s = Object.keys(sent).length ? ctx(sent) : '';
  const inv: HistoryEvent = {
    process,
    type: 'invoke',
    f: 'write',
    key,
    value: { v, sent: s },
    time: time++,
  };
  if (outcome !== 'ok') return [inv, { process, type: outcome, f: 'write', key, time: time++ }];
  const after = { ...sent, ...(minted ? { [minted[0]]: minted[1] } : {}) };
  return [
    inv,
    { process, type: 'ok', f: 'write', key, value: { v, sent: s, ctx: ctx(after) }, time: time++ },
  ];
}
function add(process: number, key: string, outcome: 'ok' | 'info' | 'fail'): HistoryEvent[] {
  return [
    { process, type: 'invoke', f: 'add', key, value: 1, time: time++ },
    { process, type: outcome, f: 'add', key, value: 1, time: time++ },
  ];
}

const NODES = ['n1', 'n2', 'n3'];
const view = (root = 'r1', hints = 0): ReplicaView => ({
  ring: 'ring',
  roots: [
    [1, root],
    [2, 'r2'],
  ],
  hints,
  keys: 3,
});
const replicas = (f: (n: string) => ReplicaView = () => view()) =>
  new Map(NODES.map((n) => [n, f(n)] as [string, ReplicaView | undefined]));
const finals = (m: Record<string, FinalRead>, override?: [string, string, FinalRead]) =>
  new Map(
    NODES.map((n) => [
      n,
      new Map(
        Object.entries(m).map(([k, r]) => [
          k,
          override && override[0] === n && override[1] === k ? override[2] : r,
        ]),
      ),
    ]),
  );

/**
 * A run: p1 writes a (dot n1:1) blindly, p2 writes b blindly (dot n2:1, concurrent: both are
 * siblings), p1 writes c having seen a and b (dot n1:2, replaces both), p2 writes d blindly on
 * k2 (dot n3:1); an indeterminate write of e that had seen d; and on the counter 3 acknowledged
 * increments, 1 indeterminate, 1 failed.
 */
function run(): HistoryEvent[] {
  return [
    ...put(1, 'k1', 'a', {}, 'ok', ['n1', 1]),
    ...put(2, 'k1', 'b', {}, 'ok', ['n2', 1]),
    ...put(1, 'k1', 'c', { n1: 1, n2: 1 }, 'ok', ['n1', 2]),
    ...put(2, 'k2', 'd', {}, 'ok', ['n3', 1]),
    ...put(3, 'k2', 'e', { n3: 1 }, 'info'),
    ...put(3, 'k2', 'f', {}, 'fail'),
    ...add(1, 'pn/c0', 'ok'),
    ...add(2, 'pn/c0', 'ok'),
    ...add(3, 'pn/c0', 'info'),
    ...add(1, 'pn/c0', 'ok'),
    ...add(2, 'pn/c0', 'fail'),
  ];
}
const GOOD: Record<string, FinalRead> = {
  k1: { siblings: ['c'], context: ctx({ n1: 2, n2: 1 }) },
  // e (indeterminate, had seen d) was applied: d replaced, which is allowed
  k2: { siblings: ['e'], context: ctx({ n3: 1, n2: 1 }) },
  'pn/c0': { siblings: [], context: '', crdt: 4 },
};

t.test('contexts and dots', async (t) => {
  t.same(vvOfContext(ctx({ a: 2, b: 1 })), { a: 2, b: 1 });
  t.same(vvOfContext(''), {});
  t.same(vvOfContext('not base64 json'), {});
  t.same(mintedDot({ a: 1 }, { a: 1, b: 3 }), ['b', 3]);
  t.same(mintedDot({ a: 1 }, { a: 1 }), undefined, 'nothing minted');
  t.same(mintedDot({}, { a: 1, b: 1 }), undefined, 'two new entries: not one write');
  // a dot not contiguous with the sent context travels in `dc` (chaos seed 955488)
  const exact = encodeContext({ t: 'dvv', vv: { b: 1 }, dc: [['a', 3]] });
  t.same(ctxOfContext(exact), { vv: { b: 1 }, dc: [['a', 3]] });
  t.same(mintedDot(ctxOfContext(ctx({ b: 1 })), ctxOfContext(exact)), ['a', 3]);
  t.same(
    mintedDot(
      ctxOfContext(exact),
      ctxOfContext(
        encodeContext({
          t: 'dvv',
          vv: { b: 1 },
          dc: [
            ['a', 3],
            ['a', 4],
          ],
        }),
      ),
    ),
    ['a', 4],
    'the dot beyond a sent dc',
  );
  t.ok(hasDot(ctxOfContext(exact), 'a', 3));
  t.notOk(hasDot(ctxOfContext(exact), 'a', 2), 'a:3 in dc does not claim a:2');
});

t.test('a run that kept its promises passes', async (t) => {
  const v = judgeEventual(run(), finals(GOOD), replicas());
  t.same(v.failures, []);
  t.equal(v.stats.writesAcked, 4);
  t.equal(v.stats.writesPresent, 1, 'c present');
  t.equal(v.stats.superseded, 2, 'a and b replaced by c, which had seen them');
  t.equal(v.stats.maybeSuperseded, 1, 'd replaced by the indeterminate e, which had seen it');
  t.same(v.stats.increments['pn/c0'], { acked: 3, indeterminate: 1, final: 4 });
  t.same(
    judgeEventual(
      run(),
      finals({ ...GOOD, 'pn/c0': { ...GOOD['pn/c0'], crdt: 3 } as FinalRead }),
      replicas(),
    ).failures,
    [],
    'the indeterminate increment not applied: fine too',
  );
});

t.test('negative control: a lost write is flagged', async (t) => {
  // d's dot n3:1 is gone from k2's context, and d is not there
  const lostDot = judgeEventual(
    run(),
    finals({ ...GOOD, k2: { siblings: [], context: ctx({}) } }),
    replicas(),
  );
  t.match(
    lostDot.failures.join('\n'),
    /lost write on k2 \(d\): its dot n3:1 is not in the key's final causal context/,
  );
  // b missing from k1 while nothing that had seen b (n2:1) was written: only a (n1:1) and b
  const history = [
    ...put(1, 'k1', 'a', {}, 'ok', ['n1', 1]),
    ...put(2, 'k1', 'b', {}, 'ok', ['n2', 1]),
  ];
  const replaced = judgeEventual(
    history,
    finals({ k1: { siblings: ['a'], context: ctx({ n1: 1, n2: 1 }) } }),
    replicas(),
  );
  t.equal(replaced.lost.length, 1);
  t.match(
    replaced.failures.join('\n'),
    /lost write on k1 \(b\).*no write that had seen it replaced it/,
  );
  // a failed write that had seen b does not excuse b's absence
  const failedCover = judgeEventual(
    [...history, ...put(3, 'k1', 'x', { n2: 1 }, 'fail')],
    finals({ k1: { siblings: ['a'], context: ctx({ n1: 1, n2: 1 }) } }),
    replicas(),
  );
  t.equal(failedCover.lost.length, 1, 'a failed write replaced nothing');
});

t.test('negative control: a diverged replica is flagged', async (t) => {
  const root = judgeEventual(
    run(),
    finals(GOOD),
    replicas((n) => view(n === 'n2' ? 'other' : 'r1')),
  );
  t.match(
    root.failures.join('\n'),
    /not converged: key range 1: 2 different Merkle roots \(n1\+n3 vs n2\)/,
  );
  const reads = judgeEventual(
    run(),
    finals(GOOD, ['n3', 'k1', { siblings: ['b', 'c'], context: ctx({ n1: 2, n2: 1 }) }]),
    replicas(),
  );
  t.match(reads.failures.join('\n'), /not converged: k1: the final reads differ/);
  const hints = judgeEventual(
    run(),
    finals(GOOD),
    replicas((n) => view('r1', n === 'n1' ? 2 : 0)),
  );
  t.match(hints.failures.join('\n'), /n1: 2 hints not delivered/);
  const silent = judgeEventual(run(), finals(GOOD), new Map([...replicas(), ['n3', undefined]]));
  t.match(silent.failures.join('\n'), /n3: did not answer/);
});

t.test('negative control: a counter outside its bounds is flagged', async (t) => {
  const low = judgeEventual(
    run(),
    finals({ ...GOOD, 'pn/c0': { siblings: [], context: '', crdt: 2 } }),
    replicas(),
  );
  t.match(low.failures.join('\n'), /counter pn\/c0 at n1 is 2: outside \[3 acknowledged, 4/);
  const high = judgeEventual(
    run(),
    finals({ ...GOOD, 'pn/c0': { siblings: [], context: '', crdt: 5 } }),
    replicas(),
  );
  t.match(high.failures.join('\n'), /counter pn\/c0 at n1 is 5/, 'a counted-twice increment too');
});
