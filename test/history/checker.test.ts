/**
 * Hand-written histories for each model and for the fail / info / no-completion semantics.
 */
import t from 'tap';
import {
  checkHistory,
  type EventType,
  HistoryError,
  type HistoryEvent,
  type Model,
  registerModel,
} from '../../lib/history/index.js';

/** [process, type, f, value?, key?] — time is the position in the list. */
type Ev = [number | string, EventType, string, unknown?, string?];
function hist(...events: Ev[]): HistoryEvent[] {
  return events.map(([process, type, f, value, key], i) => {
    const e: HistoryEvent = { process, type, f, time: i };
    if (value !== undefined) e.value = value;
    if (key !== undefined) e.key = key;
    return e;
  });
}

t.test('register: basics', async (t) => {
  t.equal(checkHistory([]).result, 'linearizable', 'empty history');
  t.equal(
    checkHistory(hist([1, 'invoke', 'read'], [1, 'ok', 'read', null])).result,
    'linearizable',
    'a fresh register reads null (absent)',
  );
  t.equal(
    checkHistory(hist([1, 'invoke', 'read'], [1, 'ok', 'read', 0])).result,
    'violation',
    'a fresh register does not read 0',
  );
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'write', 1],
        [1, 'ok', 'write', 1],
        [2, 'invoke', 'read'],
        [2, 'ok', 'read', 1],
      ),
    ).result,
    'linearizable',
    'read after write',
  );
  const stale = checkHistory(
    hist(
      [1, 'invoke', 'write', 1],
      [1, 'ok', 'write', 1],
      [1, 'invoke', 'write', 2],
      [1, 'ok', 'write', 2],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 1],
    ),
  );
  t.equal(stale.result, 'violation', 'a stale read after a completed write is a violation');
  const k = stale.violations[0];
  t.equal(k?.key, '');
  t.equal(k?.blocking?.process, 2, 'the stale read is the operation that cannot be placed');
  t.equal(k?.longestPrefix?.length, 2, 'both writes are linearized first');
  t.ok(k?.unplaceable?.includes(k?.blocking?.id ?? -1), 'the read is marked unplaceable');
  t.match(stale.explanation, /process 2: read → 1/);
  t.match(stale.explanation, /impossible in state 2/);
  t.match(stale.summary, /^violation/);
});

t.test('register: concurrency allows either order', async (t) => {
  // write 1 overlaps both reads: one read sees the old value, the other the new one.
  const h = hist(
    [1, 'invoke', 'write', 1],
    [2, 'invoke', 'read'],
    [2, 'ok', 'read', null],
    [3, 'invoke', 'read'],
    [3, 'ok', 'read', 1],
    [1, 'ok', 'write', 1],
  );
  t.equal(checkHistory(h).result, 'linearizable');
  // But once a read saw the new value, a later read cannot see the old one.
  const h2 = hist(
    [1, 'invoke', 'write', 1],
    [3, 'invoke', 'read'],
    [3, 'ok', 'read', 1],
    [2, 'invoke', 'read'],
    [2, 'ok', 'read', null],
    [1, 'ok', 'write', 1],
  );
  t.equal(checkHistory(h2).result, 'violation', 'new-then-old reads are not linearizable');
});

t.test('register: equal times count as concurrent', async (t) => {
  const events: HistoryEvent[] = [
    { process: 1, type: 'invoke', f: 'write', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', value: 1, time: 5 },
    { process: 2, type: 'invoke', f: 'read', time: 5 },
    { process: 2, type: 'ok', f: 'read', value: null, time: 6 },
  ];
  t.equal(checkHistory(events).result, 'linearizable');
  events[2] = { ...(events[2] as HistoryEvent), time: 5.5 };
  t.equal(checkHistory(events).result, 'violation');
});

t.test('register: cas and delete', async (t) => {
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'write', 1],
        [1, 'ok', 'write', 1],
        [1, 'invoke', 'cas', [1, 2]],
        [1, 'ok', 'cas', [1, 2]],
        [2, 'invoke', 'read'],
        [2, 'ok', 'read', 2],
      ),
    ).result,
    'linearizable',
  );
  t.equal(
    checkHistory(hist([1, 'invoke', 'cas', [1, 2]], [1, 'ok', 'cas', [1, 2]])).result,
    'violation',
    'a successful cas from 1 on an absent register',
  );
  t.equal(
    checkHistory(hist([1, 'invoke', 'cas', [null, 2]], [1, 'ok', 'cas'])).result,
    'linearizable',
    'cas from null (absent) succeeds on a fresh register',
  );
  t.equal(
    checkHistory(hist([1, 'invoke', 'cas', { from: null, to: 'a' }], [1, 'ok', 'cas'])).result,
    'linearizable',
    '{from, to} form',
  );
  // ok with value false: compare definitely failed.
  t.equal(
    checkHistory(hist([1, 'invoke', 'cas', [null, 2]], [1, 'ok', 'cas', false])).result,
    'violation',
    'a compare cannot fail when the register holds exactly `from`',
  );
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'cas', [7, 2]],
        [1, 'ok', 'cas', false],
        [2, 'invoke', 'read'],
        [2, 'ok', 'read', null],
      ),
    ).result,
    'linearizable',
    'a failed compare changes nothing',
  );
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'write', 'a'],
        [1, 'ok', 'write'],
        [1, 'invoke', 'delete'],
        [1, 'ok', 'delete'],
        [2, 'invoke', 'read'],
        [2, 'ok', 'read', null],
      ),
    ).result,
    'linearizable',
    'delete makes the register absent',
  );
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'write', { a: 1, b: [1, 2] }],
        [1, 'ok', 'write'],
        [2, 'invoke', 'read'],
        [2, 'ok', 'read', { b: [1, 2], a: 1 }],
      ),
    ).result,
    'linearizable',
    'structured values compare by content, not key order',
  );
});

t.test('fail means the operation did not happen', async (t) => {
  const h = hist(
    [1, 'invoke', 'write', 1],
    [1, 'fail', 'write'],
    [2, 'invoke', 'read'],
    [2, 'ok', 'read', 1],
  );
  t.equal(checkHistory(h).result, 'violation', 'a failed write cannot be read');
  const h2 = hist(
    [1, 'invoke', 'write', 1],
    [1, 'fail', 'write'],
    [2, 'invoke', 'read'],
    [2, 'ok', 'read', null],
  );
  t.equal(checkHistory(h2).result, 'linearizable');
  const h3 = hist([2, 'invoke', 'read'], [2, 'fail', 'read', 99]);
  t.equal(checkHistory(h3).result, 'linearizable', 'a failed read constrains nothing');
});

t.test(
  'info / no completion: may take effect at any time after the invoke, or never',
  async (t) => {
    const late = hist(
      [1, 'invoke', 'write', 1],
      [1, 'info', 'write'],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', null],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 1],
    );
    t.equal(checkHistory(late).result, 'linearizable', 'an info write may land long after');
    const never = hist(
      [1, 'invoke', 'write', 1],
      [1, 'info', 'write'],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', null],
    );
    t.equal(checkHistory(never).result, 'linearizable', 'or never');
    const before = hist(
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 1],
      [1, 'invoke', 'write', 1],
      [1, 'info', 'write'],
    );
    t.equal(checkHistory(before).result, 'violation', 'but not before its invoke');
    const noCompletion = hist(
      [1, 'invoke', 'write', 1],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 1],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', null],
    );
    t.equal(
      checkHistory(noCompletion).result,
      'violation',
      'an uncompleted write takes effect at most once: 1 then null is impossible',
    );
    const twice = hist(
      [1, 'invoke', 'write', 1],
      [3, 'invoke', 'write', 2],
      [3, 'ok', 'write', 2],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 1],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 2],
    );
    t.equal(checkHistory(twice).result, 'violation', 'an unknown write cannot land twice');
    const unknownRead = hist(
      [1, 'invoke', 'write', 1],
      [1, 'ok', 'write', 1],
      [2, 'invoke', 'read'],
      [2, 'info', 'read'],
    );
    t.equal(checkHistory(unknownRead).result, 'linearizable', 'an unknown read constrains nothing');
    const unknownCas = hist(
      [1, 'invoke', 'write', 1],
      [1, 'ok', 'write', 1],
      [1, 'invoke', 'cas', [1, 5]],
      [1, 'info', 'cas'],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 5],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 5],
    );
    t.equal(checkHistory(unknownCas).result, 'linearizable', 'an unknown cas may have applied');
    const unknownCasBadFrom = hist(
      [1, 'invoke', 'write', 1],
      [1, 'ok', 'write', 1],
      [1, 'invoke', 'cas', [3, 5]],
      [1, 'info', 'cas'],
      [2, 'invoke', 'read'],
      [2, 'ok', 'read', 5],
    );
    t.equal(
      checkHistory(unknownCasBadFrom).result,
      'violation',
      'an unknown cas whose compare cannot match did not write',
    );
    const v = checkHistory(noCompletion);
    t.match(v.explanation, /never completed/, 'the explanation says which op never completed');
  },
);

t.test(
  'reusing a process while an op is outstanding: earlier op becomes unknown + warning',
  async (t) => {
    const v = checkHistory(
      hist([1, 'invoke', 'write', 1], [1, 'invoke', 'read'], [1, 'ok', 'read', 1]),
    );
    t.equal(v.result, 'linearizable');
    t.equal(v.warnings.length, 1);
    t.match(v.warnings[0], /still outstanding/);
  },
);

t.test('kv model: get / put / append per key, keys independent', async (t) => {
  const ok = hist(
    [1, 'invoke', 'append', 'a', 'x'],
    [1, 'ok', 'append', 'a', 'x'],
    [2, 'invoke', 'append', 'b', 'x'],
    [2, 'ok', 'append', 'b', 'x'],
    [3, 'invoke', 'get', null, 'x'],
    [3, 'ok', 'get', 'ab', 'x'],
    [3, 'invoke', 'get', null, 'y'],
    [3, 'ok', 'get', '', 'y'],
    [1, 'invoke', 'put', 'z', 'y'],
    [1, 'ok', 'put', 'z', 'y'],
    [1, 'invoke', 'get', null, 'y'],
    [1, 'ok', 'get', 'z', 'y'],
  );
  const v = checkHistory(ok, { model: 'kv' });
  t.equal(v.result, 'linearizable');
  t.equal(v.stats.keys, 2);
  t.equal(v.model, 'kv');
  const bad = hist(
    [1, 'invoke', 'append', 'a', 'x'],
    [1, 'ok', 'append', 'a', 'x'],
    [2, 'invoke', 'append', 'b', 'x'],
    [2, 'ok', 'append', 'b', 'x'],
    [3, 'invoke', 'get', null, 'x'],
    [3, 'ok', 'get', 'ba', 'x'],
    [3, 'invoke', 'get', null, 'y'],
    [3, 'ok', 'get', '', 'y'],
  );
  const vb = checkHistory(bad, { model: 'kv' });
  t.equal(vb.result, 'violation', 'appends in the wrong order');
  t.same(
    vb.violations.map((k) => k.key),
    ['x'],
    'only key x is flagged',
  );
  t.equal(vb.keys.find((k) => k.key === 'y')?.result, 'linearizable', 'key y stays linearizable');
  t.match(vb.explanation, /key "x" \(kv\)/);
  t.equal(
    checkHistory(hist([1, 'invoke', 'get', null, 'k'], [1, 'ok', 'get', null, 'k']), {
      model: 'kv',
    }).result,
    'linearizable',
    'a get of nil reads the empty string',
  );
  t.equal(
    checkHistory(
      hist(
        [1, 'invoke', 'append', 'a', 'k'],
        [1, 'info', 'append', undefined, 'k'],
        [2, 'invoke', 'get', null, 'k'],
        [2, 'ok', 'get', 'a', 'k'],
      ),
      { model: 'kv' },
    ).result,
    'linearizable',
    'an info append may have applied',
  );
});

t.test('budgets: never linearizable when out of budget', async (t) => {
  // A hard, non-linearizable history: many concurrent writes and reads nothing can explain.
  const events: HistoryEvent[] = [];
  let time = 0;
  const n = 14;
  for (let p = 0; p < n; p++)
    events.push({ process: p, type: 'invoke', f: 'write', value: p, time: time++ });
  for (let p = 0; p < n; p++)
    events.push({ process: p, type: 'ok', f: 'write', value: p, time: time++ });
  for (let p = 0; p < n; p++)
    events.push({ process: 100 + p, type: 'invoke', f: 'read', time: time++ });
  for (let p = 0; p < n; p++)
    events.push({ process: 100 + p, type: 'ok', f: 'read', value: p, time: time++ });
  // Without the lookahead pruning, this needs an exhaustive search over write orders.
  const model: Model<string> = { ...registerModel, reachable: undefined };
  const steps = checkHistory(events, { model, maxSteps: 2000 });
  t.equal(steps.result, 'unknown', 'step budget');
  t.match(steps.reason, /step budget/);
  t.match(steps.summary, /^unknown/);

  let now = 0;
  const fakeClock = { now: () => (now += 1) };
  const timed = checkHistory(events, { model, timeoutMs: 500, clock: fakeClock });
  t.equal(timed.result, 'unknown', 'time budget (virtual clock advancing 1 ms per look)');
  t.match(timed.reason, /time budget of 500 ms/);
  t.match(timed.explanation, /not a pass/);

  const mem = checkHistory(events, { model, maxMemoryBytes: 10_000 });
  t.equal(mem.result, 'unknown', 'memory budget');
  t.match(mem.reason, /memory budget/);

  t.equal(checkHistory(events).result, 'violation', 'the full register model decides it');
});

t.test('a violation on one key is reported even when another key is out of budget', async (t) => {
  const events: HistoryEvent[] = [
    { process: 1, type: 'invoke', f: 'write', key: 'a', value: 1, time: 0 },
    { process: 1, type: 'ok', f: 'write', key: 'a', value: 1, time: 1 },
    { process: 2, type: 'invoke', f: 'read', key: 'a', time: 2 },
    { process: 2, type: 'ok', f: 'read', key: 'a', value: 2, time: 3 },
  ];
  let time = 10;
  for (let p = 0; p < 14; p++)
    events.push({ process: 10 + p, type: 'invoke', f: 'write', key: 'b', value: p, time: time++ });
  for (let p = 0; p < 14; p++)
    events.push({ process: 10 + p, type: 'ok', f: 'write', key: 'b', value: p, time: time++ });
  for (let p = 0; p < 14; p++)
    events.push({ process: 50 + p, type: 'invoke', f: 'read', key: 'b', time: time++ });
  for (let p = 0; p < 14; p++)
    events.push({ process: 50 + p, type: 'ok', f: 'read', key: 'b', value: p, time: time++ });
  const v = checkHistory(events, {
    model: { ...registerModel, reachable: undefined },
    maxSteps: 3000,
  });
  t.equal(v.result, 'violation');
  t.equal(v.keys.find((k) => k.key === 'b')?.result, 'unknown');
  t.match(v.explanation, /could not be decided/);
});

t.test('custom model: a counter', async (t) => {
  const counter: Model<number> = {
    name: 'counter',
    functions: ['incr', 'read'],
    init: () => 0,
    step: (s, input, output) => {
      if (input.f === 'incr') return { ok: true, next: s + 1 };
      return { ok: !output.known || output.value === s, next: s };
    },
    equal: (a, b) => a === b,
    hash: (s) => s,
    readOnly: (input) => input.f === 'read',
    describeOperation: (input, output) =>
      input.f === 'read' ? `read → ${output.known ? output.value : '?'}` : 'incr',
    describeState: (s) => String(s),
  };
  const h = hist(
    [1, 'invoke', 'incr'],
    [2, 'invoke', 'incr'],
    [1, 'ok', 'incr'],
    [3, 'invoke', 'read'],
    [3, 'ok', 'read', 1],
    [2, 'ok', 'incr'],
    [3, 'invoke', 'read'],
    [3, 'ok', 'read', 2],
  );
  t.equal(checkHistory(h, { model: counter }).result, 'linearizable');
  const bad = hist(
    [1, 'invoke', 'incr'],
    [1, 'ok', 'incr'],
    [3, 'invoke', 'read'],
    [3, 'ok', 'read', 2],
  );
  const v = checkHistory(bad, { model: counter });
  t.equal(v.result, 'violation');
  t.equal(v.model, 'counter');
  t.match(v.explanation, /read → 2/);
});

t.test('bad input: clear errors with stable codes', async (t) => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err instanceof HistoryError ? `${err.code} ${err.message}` : `other ${String(err)}`;
    }
    return 'no error';
  };
  t.match(
    code(() => checkHistory(hist([1, 'ok', 'read', 1]))),
    /SYNOD_ERR_HISTORY_INVALID event 0: ok for process 1 that has no outstanding invoke/,
  );
  t.match(
    code(() => checkHistory(hist([1, 'invoke', 'read'], [1, 'ok', 'write', 1]))),
    /SYNOD_ERR_HISTORY_INVALID event 1: .*does not match/,
  );
  t.match(
    code(() =>
      checkHistory([
        { process: 1, type: 'invoke', f: 'read', time: 5 },
        { process: 1, type: 'ok', f: 'read', time: 4 },
      ]),
    ),
    /real-time order/,
  );
  t.match(
    code(() =>
      checkHistory([{ process: 1, type: 'begin' as EventType, f: 'read' }], {
        file: 'h.jsonl',
        lines: [7],
      }),
    ),
    /SYNOD_ERR_HISTORY_INVALID h\.jsonl:7: "type" must be/,
  );
  t.match(
    code(() => checkHistory(hist([1, 'invoke', 'frobnicate'], [1, 'ok', 'frobnicate']))),
    /SYNOD_ERR_MODEL_INPUT event 0: .*no function "frobnicate"/,
  );
  t.match(
    code(() => checkHistory(hist([1, 'invoke', 'cas', 5], [1, 'ok', 'cas']))),
    /SYNOD_ERR_MODEL_INPUT .*cas needs \[from, to\]/,
  );
  t.match(
    code(() => checkHistory(hist([1, 'invoke', 'append', { a: 1 }, 'k']), { model: 'kv' })),
    /SYNOD_ERR_MODEL_INPUT .*append needs a string/,
  );
  t.match(
    code(() => checkHistory([], { model: 'queue' as 'kv' })),
    /SYNOD_ERR_MODEL_UNKNOWN unknown model "queue"/,
  );
});

t.test('the linearization found is reported for linearizable keys', async (t) => {
  const v = checkHistory(
    hist(
      [1, 'invoke', 'write', 1],
      [2, 'invoke', 'read'],
      [1, 'ok', 'write', 1],
      [2, 'ok', 'read', 1],
    ),
  );
  t.equal(v.result, 'linearizable');
  t.same(v.keys[0]?.order, [0, 1], 'write (op 0) then read (op 1)');
});
