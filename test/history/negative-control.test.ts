/**
 * Negative control: a checker that is told a stale read is fine (a broken register model
 * whose reads accept any value ever written) must be caught by the same assertions that the
 * real checker passes. If these assertions could not fail, they would prove nothing.
 */
import fc from 'fast-check';
import t from 'tap';
import { generateHistory } from '../../lib/history/generate.js';
import {
  canonical,
  checkHistory,
  type HistoryEvent,
  hashString,
  type Model,
  type Operation,
  pairEvents,
  registerModel,
} from '../../lib/history/index.js';
import { Random } from '../../lib/random.js';

/** Broken: the state remembers every value ever written; a read of any of them is "fine". */
const staleOk: Model<string> = {
  name: 'stale-ok-register',
  functions: registerModel.functions,
  init: () => JSON.stringify(['null']),
  step(state, input, output) {
    const seen = JSON.parse(state) as string[];
    const add = (v: string) => JSON.stringify([...new Set([...seen, v])].sort());
    switch (input.f) {
      case 'read':
        return { ok: !output.known || seen.includes(canonical(output.value)), next: state };
      case 'write':
        return { ok: true, next: add(canonical(input.value)) };
      case 'delete':
        return { ok: true, next: add('null') };
      case 'cas': {
        const [from, to] = input.value as [unknown, unknown];
        if (output.known && output.value === false) return { ok: true, next: state };
        return seen.includes(canonical(from))
          ? { ok: true, next: add(canonical(to)) }
          : { ok: false, next: state };
      }
      default:
        return { ok: false, next: state };
    }
  },
  equal: (a, b) => a === b,
  hash: hashString,
  readOnly: (input) => input.f === 'read',
  describeOperation: (input, output) => registerModel.describeOperation(input, output),
  describeState: (s) => s,
};

type Checker = (events: HistoryEvent[]) => string;

/** A write W1 overwritten (W1 returned before W2 was invoked) before `read` was invoked. */
function staleWrite(writes: Operation[], read: Operation): Operation | undefined {
  for (const w2 of writes) {
    if (!(w2.ret < read.call)) continue;
    const w1 = writes.find((w) => w.ret < w2.call && w.input !== w2.input);
    if (w1) return w1;
  }
  return undefined;
}

/** The assertions of the suite, as a list of the cases a checker gets wrong. */
function staleReadFailures(check: Checker): string[] {
  const wrong: string[] = [];
  const ev = (
    process: number,
    type: HistoryEvent['type'],
    f: string,
    time: number,
    value?: unknown,
  ): HistoryEvent =>
    value === undefined ? { process, type, f, time } : { process, type, f, time, value };
  const stale = [
    ev(1, 'invoke', 'write', 0, 1),
    ev(1, 'ok', 'write', 1, 1),
    ev(1, 'invoke', 'write', 2, 2),
    ev(1, 'ok', 'write', 3, 2),
    ev(2, 'invoke', 'read', 4),
    ev(2, 'ok', 'read', 5, 1),
  ];
  if (check(stale) !== 'violation') wrong.push('stale read after two writes');
  const newThenOld = [
    ev(1, 'invoke', 'write', 0, 1),
    ev(3, 'invoke', 'read', 1),
    ev(3, 'ok', 'read', 2, 1),
    ev(2, 'invoke', 'read', 3),
    ev(2, 'ok', 'read', 4, null),
    ev(1, 'ok', 'write', 5, 1),
  ];
  if (check(newThenOld) !== 'violation') wrong.push('new-then-old reads');
  // Generated histories with one read made stale.
  const r = new Random(42);
  let tried = 0;
  for (let i = 0; i < 200 && tried < 20; i++) {
    const { events } = generateHistory({
      random: new Random(r.nextUint32()),
      clients: 4,
      operations: 60,
      uniqueValues: true,
      infoRate: 0,
      failRate: 0,
    });
    const { operations } = pairEvents(events);
    const writes = operations.filter((o) => o.f === 'write' && o.outcome === 'ok');
    for (const read of operations.filter((o) => o.f === 'read' && o.outcome === 'ok')) {
      const w1 = staleWrite(writes, read);
      if (!w1) continue;
      const mutated = events.map((e) => ({ ...e }));
      (mutated[read.source?.complete as number] as HistoryEvent).value = w1.input;
      tried++;
      if (check(mutated) !== 'violation') wrong.push(`generated history #${i} with a stale read`);
      break;
    }
  }
  return wrong;
}

t.test('the real checker passes every stale-read assertion', async (t) => {
  const wrong = staleReadFailures((events) => checkHistory(events).result);
  t.same(wrong, [], 'no case wrong');
});

t.test('a checker told that stale reads are fine is caught', async (t) => {
  const wrong = staleReadFailures((events) => checkHistory(events, { model: staleOk }).result);
  t.ok(wrong.includes('stale read after two writes'), 'the classic stale read is caught');
  t.ok(wrong.includes('new-then-old reads'), 'new-then-old is caught');
  t.ok(
    wrong.filter((w) => w.startsWith('generated history')).length >= 10,
    `generated stale reads are caught (${wrong.length} cases)`,
  );
});

t.test('the mutated-read property fails for the broken checker', async (t) => {
  const result = fc.check(
    fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
      const { events } = generateHistory({
        random: new Random(seed),
        clients: 3,
        operations: 40,
        uniqueValues: true,
        infoRate: 0,
        failRate: 0,
      });
      const { operations } = pairEvents(events);
      const writes = operations.filter((o) => o.f === 'write' && o.outcome === 'ok');
      for (const read of operations.filter((o) => o.f === 'read' && o.outcome === 'ok')) {
        const w1 = staleWrite(writes, read);
        if (!w1) continue;
        const mutated = events.map((e) => ({ ...e }));
        (mutated[read.source?.complete as number] as HistoryEvent).value = w1.input;
        return checkHistory(mutated, { model: staleOk }).result === 'violation';
      }
      return true;
    }),
    { numRuns: 200, seed: 7 },
  );
  t.ok(result.failed, 'fast-check finds a counterexample against the broken checker');
});
