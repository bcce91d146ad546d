/**
 * Linearizability checker: the Wing–Gong search as improved by Lowe ("just-in-time
 * linearisation" with memoisation of configurations), the algorithm Porcupine uses.
 *
 * The history is split per key (linearizability is compositional: a history is
 * linearizable iff each key's sub-history is), and each key is searched on its own:
 *
 * 1. Operations become call and return entries, sorted by time (calls before returns at
 *    equal times, so touching operations count as concurrent), in a doubly linked list.
 * 2. Walking from the head, a call entry is an operation that could take effect now: if the
 *    model accepts it in the current state and the configuration (set of linearized
 *    operations, new state) was never seen, it is linearized: pushed on a stack and its call
 *    and return entries are unlinked; the walk restarts at the head.
 * 3. Reaching a return entry means that operation must already have taken effect but could
 *    not: backtrack (pop the last linearized operation, relink it, try the next candidate).
 * 4. The key is linearizable once every operation with a known outcome is linearized;
 *    it is a violation when a return entry is reached with nothing left to backtrack.
 *
 * Semantics: `fail` operations are dropped (they did not happen). Operations with an unknown
 * outcome (`info`, or no completion) return at +infinity: they may be linearized at any
 * point after their invoke, or never; reads with an unknown outcome are dropped.
 *
 * The memo is keyed by a Zobrist hash of the linearized set combined with the model's state
 * hash, and compares the bitset and state on a hash hit.
 */
import {
  formatLocation,
  HistoryError,
  type HistoryEvent,
  type Operation,
  type PairOptions,
  pairEvents,
} from './event.js';
import {
  type BuiltinModelName,
  builtinModels,
  type Model,
  type ModelInput,
  type ModelOutput,
} from './model.js';

export type VerdictResult = 'linearizable' | 'violation' | 'unknown';

export interface CheckOptions {
  /** The sequential specification: `register` (default), `kv`, or your own `Model`. */
  model?: BuiltinModelName | Model<unknown>;
  /** Wall-clock budget for the whole check. Out of time: verdict `unknown`. */
  timeoutMs?: number;
  /** Source of time for `timeoutMs` (only `now()` is used). Default: `performance.now`. */
  clock?: { now(): number };
  /** Budget of search steps for the whole check (deterministic alternative to a timeout). */
  maxSteps?: number;
  /** Memory budget: estimated bytes of memoised configurations per key (default 512 MiB). */
  maxMemoryBytes?: number;
  /** For error messages when events came from a file. */
  file?: string;
  /** Per event, its 1-based line in `file`. */
  lines?: number[];
}

/** One operation placed in the longest linearizable prefix, with the state after it. */
export interface PlacedOperation {
  op: Operation;
  description: string;
  stateAfter: string;
}

/** Why an operation could not be the next one at the point where the search got stuck. */
export interface Candidate {
  op: Operation;
  description: string;
  /** `rejected`: the model refuses it in that state; `dead-end`: accepted, but explored. */
  why: 'rejected' | 'dead-end';
}

export interface KeyVerdict {
  key: string;
  result: VerdictResult;
  /** Operations of this key that entered the search (after dropping fail / unknown reads). */
  operations: number;
  /** All operations of this key in the history. */
  totalOperations: number;
  steps: number;
  memoEntries: number;
  /** Estimated heap bytes of the memoised configurations (the memory budget counts these). */
  memoBytes?: number;
  /** linearizable: the op ids (history-wide) in the order found (unknown ones placed). */
  order?: number[];
  /** violation: the longest prefix that could be linearized, in order. */
  longestPrefix?: PlacedOperation[];
  /** violation: the model state after that prefix. */
  stateAtFailure?: string;
  /** violation: the operation that returned before any order could place it. */
  blocking?: Operation;
  /** violation: the operations that were candidates at that point and why each failed. */
  candidates?: Candidate[];
  /** Op ids (history-wide) that the search could not place: the report marks these. */
  unplaceable?: number[];
  /** A paragraph a person can act on. */
  explanation?: string;
  /** unknown: which budget ran out. */
  reason?: string;
  /** violation: `blocking` is impossible in any order (found before the search). */
  impossible?: boolean;
}

export interface Verdict {
  result: VerdictResult;
  model: string;
  /** One line, e.g. `violation on key "x": read → 3 by process 4 ...`. */
  summary: string;
  /** Multi-line text for a person (every violating key explained). */
  explanation: string;
  /** unknown: which budget ran out. */
  reason?: string;
  keys: KeyVerdict[];
  violations: KeyVerdict[];
  operations: Operation[];
  warnings: string[];
  stats: {
    events: number;
    operations: number;
    keys: number;
    steps: number;
    memoEntries: number;
    /** Estimated bytes of memoised configurations, summed over keys. */
    memoBytes: number;
    elapsedMs: number;
  };
}

export function resolveModel(model: CheckOptions['model']): Model<unknown> {
  if (model === undefined) return builtinModels.register as Model<unknown>;
  if (typeof model === 'string') {
    const m = (builtinModels as Record<string, Model<string>>)[model];
    if (!m)
      throw new HistoryError(
        'SYNOD_ERR_MODEL_UNKNOWN',
        `unknown model "${model}" (built in: ${Object.keys(builtinModels).join(', ')})`,
      );
    return m as Model<unknown>;
  }
  return model as Model<unknown>;
}

const defaultClock = { now: () => performance.now() };

export interface Budget {
  clock: { now(): number };
  deadline: number;
  timeoutMs?: number;
  maxSteps: number;
  steps: number;
  maxMemoryBytes: number;
  exhausted?: string;
}

/** Checks a history (events in the Jepsen convention) for linearizability. */
export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions = {}): Verdict {
  const pairOpts: PairOptions = {};
  if (options.file !== undefined) pairOpts.file = options.file;
  if (options.lines !== undefined) pairOpts.lines = options.lines;
  const { operations, warnings } = pairEvents(events, pairOpts);
  return checkOperations(operations, options, { events: events.length, warnings });
}

/** Checks already-paired operations (see `pairEvents`). */
export function checkOperations(
  operations: readonly Operation[],
  options: CheckOptions = {},
  extra: { events?: number; warnings?: string[] } = {},
): Verdict {
  const model = resolveModel(options.model);
  const clock = options.clock ?? defaultClock;
  const start = clock.now();
  const budget: Budget = {
    clock,
    deadline:
      options.timeoutMs !== undefined ? start + options.timeoutMs : Number.POSITIVE_INFINITY,
    maxSteps: options.maxSteps ?? Number.POSITIVE_INFINITY,
    steps: 0,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    maxMemoryBytes: options.maxMemoryBytes ?? 512 * 1024 * 1024,
  };

  // Validate every operation against the model before searching anything.
  for (const op of operations) {
    const why = model.validate?.(inputOf(op), outputOf(op));
    if (why !== undefined) {
      const loc: { file?: string; line?: number; index?: number } = {};
      if (options.file !== undefined) loc.file = options.file;
      if (op.source?.unit === 'line') loc.line = op.source.invoke;
      else if (op.source) loc.index = op.source.invoke;
      throw new HistoryError(
        'SYNOD_ERR_MODEL_INPUT',
        `process ${op.process} ${op.f} on key ${JSON.stringify(op.key)}: ${why}`,
        Object.keys(loc).length > 0 ? loc : undefined,
      );
    }
  }

  const byKey = new Map<string, Operation[]>();
  for (const op of operations) {
    let list = byKey.get(op.key);
    if (!list) {
      list = [];
      byKey.set(op.key, list);
    }
    list.push(op);
  }

  const keys: KeyVerdict[] = [];
  // Small keys first: a budget runs out on the hard ones, after the easy ones are settled.
  const ordered = [...byKey.entries()].sort((a, b) => a[1].length - b[1].length);
  for (const [key, ops] of ordered) {
    if (budget.exhausted) {
      keys.push({
        key,
        result: 'unknown',
        operations: 0,
        totalOperations: ops.length,
        steps: 0,
        memoEntries: 0,
        reason: `not checked: ${budget.exhausted}`,
      });
      continue;
    }
    keys.push(checkKey(model, key, ops, budget));
  }
  keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  const violations = keys.filter((k) => k.result === 'violation');
  const unknown = keys.filter((k) => k.result === 'unknown');
  const result: VerdictResult =
    violations.length > 0 ? 'violation' : unknown.length > 0 ? 'unknown' : 'linearizable';
  const elapsedMs = clock.now() - start;
  const verdict: Verdict = {
    result,
    model: model.name,
    summary: '',
    explanation: '',
    keys,
    violations,
    operations: [...operations],
    warnings: extra.warnings ?? [],
    stats: {
      events: extra.events ?? operations.length * 2,
      operations: operations.length,
      keys: keys.length,
      steps: budget.steps,
      memoEntries: keys.reduce((s, k) => s + k.memoEntries, 0),
      memoBytes: keys.reduce((s, k) => s + (k.memoBytes ?? 0), 0),
      elapsedMs,
    },
  };
  if (result === 'unknown') verdict.reason = budget.exhausted ?? unknown[0]?.reason ?? 'unknown';
  verdict.summary = summarise(verdict);
  verdict.explanation = explainVerdict(verdict);
  return verdict;
}

function inputOf(op: Operation): ModelInput {
  return { f: op.f, value: op.input };
}

function outputOf(op: Operation): ModelOutput {
  return op.outcome === 'ok' ? { known: true, value: op.output } : { known: false };
}

function zobrist(i: number): number {
  let z = Math.imul(i + 1, 0x9e3779b1) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Estimated heap bytes of one memo entry besides its window of words: the entry object, its
 * typed array (view and buffer), the antichain array and the Map slot.
 */
const MEMO_ENTRY_BYTES = 260;

interface MemoEntry<S> {
  /** Every exactly tracked operation numbered below 32 × `low` is linearized. */
  low: number;
  /** The words of the linearized set from `low` up to its last set bit. */
  bits: Uint32Array;
  state: S;
  /** Linearized unknown-outcome operations, one bitmask per seen configuration (antichain). */
  sets: number[];
  next: MemoEntry<S> | undefined;
}

/** Search steps spent looking for a fuller explanation of a key already refuted. */
const REFUTED_SEARCH_STEPS = 200_000;

/** Searches one key. Exported for tests and custom drivers. */
export function checkKey<S>(
  model: Model<S>,
  key: string,
  allOps: readonly Operation[],
  budget: Budget,
): KeyVerdict {
  // Drop what constrains nothing: failed operations, and reads with an unknown outcome.
  let ops = allOps.filter(
    (op) => op.outcome === 'ok' || (op.outcome === 'unknown' && !model.readOnly(inputOf(op))),
  );
  if (model.unobservable) {
    const unknown = ops.filter((op) => op.outcome === 'unknown');
    if (unknown.length > 0) {
      const known = ops
        .filter((op) => op.outcome === 'ok')
        .map((op) => ({ input: inputOf(op), output: outputOf(op) }));
      const flags = model.unobservable(unknown.map(inputOf), known);
      const drop = new Set(unknown.filter((_, i) => flags[i] === true));
      if (drop.size > 0) ops = ops.filter((op) => !drop.has(op));
    }
  }
  const n = ops.length;
  const base: KeyVerdict = {
    key,
    result: 'linearizable',
    operations: n,
    totalOperations: allOps.length,
    steps: 0,
    memoEntries: 0,
  };
  const rawInputs = ops.map(inputOf);
  const rawOutputs = ops.map(outputOf);
  const inputs: ModelInput[] = [];
  const outputs: ModelOutput[] = [];
  for (let k = 0; k < n; k++) {
    const p = model.prepare
      ? model.prepare(rawInputs[k] as ModelInput, rawOutputs[k] as ModelOutput)
      : { input: rawInputs[k] as ModelInput, output: rawOutputs[k] as ModelOutput };
    inputs.push(p.input);
    outputs.push(p.output);
  }
  const definite = ops.map((op) => op.outcome === 'ok');
  let remaining = definite.filter(Boolean).length;
  if (remaining === 0) return base;

  // Entries: call of op k = 2k, return of op k = 2k + 1; HEAD and TAIL sentinels.
  const HEAD = 2 * n;
  const TAIL = 2 * n + 1;
  const order: number[] = [];
  for (let k = 0; k < n; k++) order.push(2 * k, 2 * k + 1);
  const timeOf = (e: number) => {
    const op = ops[e >> 1] as Operation;
    return e & 1 ? op.ret : op.call;
  };
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = TAIL;
  prev[TAIL] = last;
  next[TAIL] = -1;
  prev[HEAD] = -1;

  const lift = (call: number) => {
    const ret = call + 1;
    next[prev[call] as number] = next[call] as number;
    prev[next[call] as number] = prev[call] as number;
    next[prev[ret] as number] = next[ret] as number;
    prev[next[ret] as number] = prev[ret] as number;
  };
  const unlift = (call: number) => {
    const ret = call + 1;
    next[prev[ret] as number] = ret;
    prev[next[ret] as number] = ret;
    next[prev[call] as number] = call;
    prev[next[call] as number] = call;
  };

  // Memo slots. Operations with a known outcome are tracked exactly in a bitset hashed with
  // Zobrist keys. Up to 30 operations with an unknown outcome are tracked in a separate
  // bitmask `uset` that is not hashed: configurations that differ only in which unknown
  // operations were linearized share a memo entry, where the subsumption test prunes them
  // (beyond 30, the extra unknown operations are tracked exactly like the others).
  //
  // Exact operations are numbered in call order, so the linearized set is nearly always a
  // prefix plus a few operations concurrent with its end: every word of the bitset below
  // `lowWord` is all ones and every word above `highWord` is zero, and a memo entry stores
  // only the words in between (a few words, where a full copy would take n/8 bytes per
  // entry: 1.5 GB for 100,000 operations linearized in a row).
  const exactIndex = new Int32Array(n).fill(-1);
  const unknownBit = new Int32Array(n);
  let exactCount = 0;
  let unknownCount = 0;
  for (const e of order) {
    if (e & 1) continue;
    const k = e >> 1;
    if (!definite[k] && unknownCount < 30) unknownBit[k] = 1 << unknownCount++;
    else exactIndex[k] = exactCount++;
  }
  const words = Math.max(1, (exactCount + 31) >>> 5);
  const bits = new Uint32Array(words);
  let lowWord = 0;
  let highWord = -1;
  const zob = new Uint32Array(n);
  for (let k = 0; k < n; k++)
    if ((exactIndex[k] as number) >= 0) zob[k] = zobrist(exactIndex[k] as number);
  let setHash = 0;
  let uset = 0;
  const toggle = (k: number) => {
    const x = exactIndex[k] as number;
    if (x < 0) {
      uset ^= unknownBit[k] as number;
      return;
    }
    const w = x >>> 5;
    const word = ((bits[w] as number) ^ (1 << (x & 31))) >>> 0;
    bits[w] = word;
    setHash ^= zob[k] as number;
    if (word & (1 << (x & 31))) {
      if (w > highWord) highWord = w;
      while (lowWord < words && bits[lowWord] === 0xffffffff) lowWord++;
    } else {
      if (w < lowWord) lowWord = w;
      while (highWord >= 0 && bits[highWord] === 0) highWord--;
    }
  };
  const memo = new Map<number, MemoEntry<S>>();
  let memoEntries = 0;
  let memoBytes = 0;

  /**
   * Adds the configuration (linearized set, state) to the memo; false if it is already
   * known to fail. A seen configuration with the same state, the same known-outcome
   * operations and a SUBSET of the unknown-outcome ones subsumes the current one: whatever
   * can follow the current configuration can follow it too (an unknown operation not yet
   * linearized may still be linearized later, or never), so if it failed, this fails.
   */
  const remember = (state: S): boolean => {
    // 30 bits: small integers stay unboxed as Map keys.
    const h = (setHash ^ Math.imul(model.hash(state) | 0, 0x27d4eb2d)) & 0x3fffffff;
    const head = memo.get(h);
    const width = Math.max(0, highWord + 1 - lowWord);
    for (let m = head; m !== undefined; m = m.next) {
      if (m.low !== lowWord || m.bits.length !== width || !model.equal(m.state, state)) continue;
      let same = true;
      for (let w = 0; w < width; w++) {
        if (m.bits[w] !== bits[lowWord + w]) {
          same = false;
          break;
        }
      }
      if (!same) continue;
      const sets = m.sets;
      for (let i = 0; i < sets.length; i++) {
        if (((sets[i] as number) & ~uset) === 0) return false;
      }
      // Keep an antichain: drop the seen sets that the new, smaller one subsumes.
      let j = 0;
      for (let i = 0; i < sets.length; i++) {
        const e = sets[i] as number;
        if ((uset & ~e) !== 0) sets[j++] = e;
      }
      sets.length = j;
      sets.push(uset);
      memoEntries++;
      memoBytes += 8;
      return true;
    }
    memo.set(h, {
      low: lowWord,
      bits: bits.slice(lowWord, lowWord + width),
      state,
      sets: [uset],
      next: head,
    });
    memoEntries++;
    memoBytes += MEMO_ENTRY_BYTES + 4 * width;
    return true;
  };

  const stackOp = new Int32Array(n);
  const stackState: S[] = new Array(n);
  // Per frame: the pass it was found in, or FORCED for a read linearized greedily.
  const stackPass = new Uint8Array(n);
  const FORCED = 2;
  // Partial-order reduction for reads: if a read with a known result is a candidate and fits
  // the current state, some linearization exists from here iff one exists with the read
  // placed right now (it changes nothing; every op that had to precede it already did, and
  // moving it earlier breaks no real-time constraint). So a fitting read is taken without
  // branching, and if that fails, the configuration fails.
  const readOnly = new Uint8Array(n);
  for (let k = 0; k < n; k++)
    if (definite[k] && model.readOnly(rawInputs[k] as ModelInput)) readOnly[k] = 1;
  let depth = 0;
  // Each configuration is explored in two passes over the candidates (the call entries
  // before the first return entry): pass 0 tries operations with a known outcome, pass 1
  // those with an unknown outcome. Known ones first finds a linearization much sooner;
  // unknown ones (which may also never take effect) are placed only when needed.
  let pass = 0;
  let state = model.init();
  let entry = next[HEAD] as number;
  let steps = 0;
  // The deepest dead end, by operations with a known outcome placed (then fewer unknown).
  let bestDefinite = -1;
  let bestDepth = 0;
  const totalDefinite = remaining;
  let best: { state: S; blocking: number; candidates: number[] } | undefined;
  // Its prefix, kept up to date incrementally: frames below `lowWater` (the lowest depth
  // since it was recorded) are unchanged, so a new record copies only the frames above.
  // Copying the whole stack at every new deepest dead end is O(n²) on long histories.
  const bestOps = new Int32Array(n);
  const bestStates: S[] = new Array(n);
  let bestLen = 0;
  let lowWater = 0;

  // Set when an operation is refuted before the search (below); the search then only runs
  // on a small step budget, to find the fuller explanation (the longest prefix) if it can.
  let refutation: KeyVerdict | undefined;
  let savedMaxSteps = budget.maxSteps;
  const finish = (result: KeyVerdict): KeyVerdict => {
    result.steps = steps;
    result.memoEntries = memoEntries;
    result.memoBytes = memoBytes;
    budget.steps += steps;
    if (!refutation) return result;
    budget.maxSteps = savedMaxSteps;
    if (
      budget.exhausted &&
      budget.steps <= budget.maxSteps &&
      budget.clock.now() <= budget.deadline
    )
      budget.exhausted = undefined;
    if (result.result === 'linearizable')
      throw new Error(
        `linearizability checker inconsistency on key ${JSON.stringify(key)}: the model refuted an operation the search placed; please report this history`,
      );
    if (result.result === 'violation') return result;
    refutation.steps = steps;
    refutation.memoEntries = memoEntries;
    refutation.memoBytes = memoBytes;
    return refutation;
  };

  // Global refutation first (models with `reachable`): an operation whose result no order
  // of the operations invoked before it returned can produce, starting from the initial
  // state, refutes the key outright. Without this the search would have to exhaust every
  // configuration before that operation to find out (exponential for a long prefix).
  if (model.reachable || model.producible || model.producer || model.refute) {
    let impossible = firstUnreachable(model, order, ops, inputs, outputs, definite);
    let why: string | undefined;
    if (impossible === undefined && model.refute) {
      const refuted = model.refute(
        ops.map((op, k) => ({
          input: inputs[k] as ModelInput,
          output: outputs[k] as ModelOutput,
          call: op.call,
          ret: definite[k] ? op.ret : Number.POSITIVE_INFINITY,
        })),
      );
      if (refuted) {
        impossible = refuted.index;
        why = refuted.why;
      }
    }
    if (impossible !== undefined) {
      const op = ops[impossible] as Operation;
      const description = model.describeOperation(
        rawInputs[impossible] as ModelInput,
        rawOutputs[impossible] as ModelOutput,
      );
      const verdict: KeyVerdict = {
        ...base,
        result: 'violation',
        longestPrefix: [],
        stateAtFailure: model.describeState(model.init()),
        blocking: op,
        candidates: [{ op, description, why: 'rejected' }],
        unplaceable: [op.id],
        impossible: true,
      };
      verdict.explanation = [
        `key ${JSON.stringify(key)} (${model.name}): not linearizable.`,
        why !== undefined
          ? `${describeOp(op, description)} is impossible wherever it is placed: ${why}.`
          : `${describeOp(op, description)} has a result that no order of the operations invoked before it returned can produce, starting from ${model.describeState(model.init())}: it is impossible wherever it is placed.`,
      ].join('\n');
      refutation = verdict;
      savedMaxSteps = budget.maxSteps;
      budget.maxSteps = Math.min(budget.maxSteps, budget.steps + REFUTED_SEARCH_STEPS);
    }
  }

  // Lookahead (models with `reachable`): on entering a configuration, each of the next few
  // pending operations (by return) must be placed before anything invoked after its return;
  // if no order of the operations that may precede one of them can make the model accept
  // it, give up on this configuration right away.
  const between: ModelInput[] = [];
  const LOOKAHEAD = 16;
  const reachable = model.reachable?.bind(model);
  let fresh = true;
  for (;;) {
    steps++;
    if (fresh) {
      // Entering a configuration: prune by lookahead, else take a fitting read first.
      fresh = false;
      between.length = 0;
      let checked = 0;
      let seenReturn = false;
      let fittingRead = -1;
      let pruned = false;
      for (let e = next[HEAD] as number; e !== TAIL; e = next[e] as number) {
        const k = e >> 1;
        if ((e & 1) === 0) {
          if (
            !seenReturn &&
            fittingRead < 0 &&
            readOnly[k] &&
            model.step(state, inputs[k] as ModelInput, outputs[k] as ModelOutput).ok
          )
            fittingRead = e;
          if (reachable) between.push(inputs[k] as ModelInput);
          continue;
        }
        seenReturn = true;
        if (!reachable || checked >= LOOKAHEAD) break;
        if (!definite[k]) continue;
        checked++;
        const target = { input: inputs[k] as ModelInput, output: outputs[k] as ModelOutput };
        if (!reachable(state, target, between)) {
          entry = e;
          pass = 1;
          pruned = true;
          break;
        }
      }
      if (!pruned && fittingRead >= 0) entry = fittingRead;
    }
    if ((steps & 1023) === 0) {
      if (budget.steps + steps > budget.maxSteps)
        budget.exhausted = `step budget of ${budget.maxSteps} search steps used up`;
      else if (budget.clock.now() > budget.deadline)
        budget.exhausted = `time budget of ${budget.timeoutMs} ms reached`;
      else if (memoBytes > budget.maxMemoryBytes)
        budget.exhausted = `memory budget of ${budget.maxMemoryBytes} bytes reached (${memoEntries} memoised configurations)`;
      if (budget.exhausted) {
        return finish({ ...base, result: 'unknown', reason: budget.exhausted });
      }
    }
    if (entry === TAIL || entry < 0) {
      // Cannot happen (a definite operation's return always precedes TAIL); be safe anyway.
      throw new Error('linearizability search walked off the list');
    }
    let dead = false;
    if ((entry & 1) === 0) {
      const k = entry >> 1;
      if ((pass === 0) !== definite[k]) {
        entry = next[entry] as number;
        continue;
      }
      const r = model.step(state, inputs[k] as ModelInput, outputs[k] as ModelOutput);
      if (r.ok) {
        toggle(k);
        if (remember(r.next)) {
          stackOp[depth] = k;
          stackState[depth] = state;
          stackPass[depth] = readOnly[k] ? FORCED : pass;
          depth++;
          state = r.next;
          lift(entry);
          if (definite[k] && --remaining === 0) {
            const order: number[] = [];
            for (let i = 0; i < depth; i++) order.push((ops[stackOp[i] as number] as Operation).id);
            return finish({ ...base, order });
          }
          entry = next[HEAD] as number;
          pass = 0;
          fresh = true;
          continue;
        }
        toggle(k);
        // A read that fits leads to a configuration already known to fail: so does this one.
        if (readOnly[k]) dead = true;
      }
      if (!dead) {
        entry = next[entry] as number;
        continue;
      }
    } else if (pass === 0) {
      // A return entry: that operation had to be linearized by now. Known-outcome
      // candidates are exhausted; try the unknown-outcome ones.
      pass = 1;
      entry = next[HEAD] as number;
      continue;
    } else {
      // Dead end: no candidate works in this configuration.
      const placed = totalDefinite - remaining;
      if (placed > bestDefinite || (placed === bestDefinite && depth < bestDepth)) {
        bestDefinite = placed;
        bestDepth = depth;
        const candidates: number[] = [];
        for (let e = next[HEAD] as number; e !== entry; e = next[e] as number) {
          if ((e & 1) === 0) candidates.push(e >> 1);
        }
        for (let i = Math.max(0, Math.min(lowWater, bestLen) - 1); i < depth; i++) {
          bestOps[i] = stackOp[i] as number;
          bestStates[i] = i + 1 < depth ? (stackState[i + 1] as S) : state;
        }
        bestLen = depth;
        lowWater = depth;
        best = { state, blocking: entry >> 1, candidates };
      }
    }
    // Backtrack. Popping a forced read means its configuration failed, and so did the one
    // before it (the read could have gone first in any linearization): keep popping.
    let frame = FORCED;
    while (frame === FORCED && depth > 0) {
      depth--;
      if (depth < lowWater) lowWater = depth;
      const k = stackOp[depth] as number;
      state = stackState[depth] as S;
      stackState[depth] = undefined as S;
      toggle(k);
      if (definite[k]) remaining++;
      unlift(2 * k);
      entry = next[2 * k] as number;
      frame = stackPass[depth] as number;
    }
    if (frame === FORCED) break; // popped everything: no linearization exists
    pass = frame;
  }

  // Violation: explain with the deepest dead end.
  const b = best as NonNullable<typeof best>;
  const describe = (k: number) =>
    model.describeOperation(rawInputs[k] as ModelInput, rawOutputs[k] as ModelOutput);
  const longestPrefix: PlacedOperation[] = Array.from(bestOps.subarray(0, bestLen), (k, i) => ({
    op: ops[k] as Operation,
    description: describe(k),
    stateAfter: model.describeState(bestStates[i] as S),
  }));
  const candidates: Candidate[] = [b.blocking, ...b.candidates.filter((k) => k !== b.blocking)]
    .filter((k, i, all) => all.indexOf(k) === i)
    .map((k) => ({
      op: ops[k] as Operation,
      description: describe(k),
      why: model.step(b.state, inputs[k] as ModelInput, outputs[k] as ModelOutput).ok
        ? 'dead-end'
        : 'rejected',
    }));
  const blocking = ops[b.blocking] as Operation;
  const verdict: KeyVerdict = {
    ...base,
    result: 'violation',
    longestPrefix,
    stateAtFailure: model.describeState(b.state),
    blocking,
    candidates,
    unplaceable: candidates.filter((c) => c.why === 'rejected').map((c) => c.op.id),
  };
  if (!verdict.unplaceable?.includes(blocking.id)) verdict.unplaceable?.unshift(blocking.id);
  verdict.explanation = explainKey(model.name, verdict);
  return finish(verdict);
}

/**
 * The first operation with a known result (by return time) that `model.reachable` says no
 * order of the operations invoked before its return can produce from the initial state.
 * `order` is the call/return entries sorted by time (call of op k = 2k, return = 2k + 1).
 */
function firstUnreachable<S>(
  model: Model<S>,
  order: readonly number[],
  ops: readonly Operation[],
  inputs: readonly ModelInput[],
  outputs: readonly ModelOutput[],
  definite: readonly boolean[],
): number | undefined {
  const init = model.init();
  let producer = model.producer?.(init);
  if (!producer) {
    // Without an accumulator: the model's question over the growing list (O(n) each).
    const reachable = (model.producible ?? model.reachable)?.bind(model);
    if (!reachable) return undefined;
    const between: ModelInput[] = [];
    producer = {
      add: (input) => between.push(input),
      producible: (target) => reachable(init, target, between),
    };
  }
  for (const e of order) {
    const k = e >> 1;
    if ((e & 1) === 0) {
      producer.add(inputs[k] as ModelInput);
      continue;
    }
    if (!definite[k] || (ops[k] as Operation).outcome !== 'ok') continue;
    if (!producer.producible({ input: inputs[k] as ModelInput, output: outputs[k] as ModelOutput }))
      return k;
  }
  return undefined;
}

function fmtTime(t: number): string {
  if (t === Number.POSITIVE_INFINITY) return '∞';
  return Number.isInteger(t) ? String(t) : t.toFixed(3);
}

function where(op: Operation): string {
  if (!op.source) return '';
  return op.source.unit === 'line' ? ` (line ${op.source.invoke})` : ` (event ${op.source.invoke})`;
}

/** `process 3: read → 2 [invoked 10, returned 12]`. */
export function describeOp(op: Operation, description: string): string {
  const ret =
    op.outcome === 'unknown'
      ? op.completedAt !== undefined
        ? `outcome unknown since ${fmtTime(op.completedAt)}`
        : 'never completed'
      : `returned ${fmtTime(op.ret)}`;
  return `process ${op.process}: ${description} [invoked ${fmtTime(op.call)}, ${ret}]${where(op)}`;
}

function explainKey(modelName: string, v: KeyVerdict): string {
  const prefix = v.longestPrefix ?? [];
  const blocking = v.blocking as Operation;
  const blockingDesc =
    v.candidates?.find((c) => c.op.id === blocking.id)?.description ?? blocking.f;
  const lines: string[] = [];
  lines.push(
    `key ${JSON.stringify(v.key)} (${modelName}): not linearizable. At most ${prefix.length} of its ${v.operations} operations can be put in an order consistent with real time; after them the state is ${v.stateAtFailure}.`,
  );
  lines.push(
    `Then ${describeOp(blocking, blockingDesc)} must have taken effect before it returned, but no operation that could come next fits:`,
  );
  for (const c of v.candidates ?? []) {
    lines.push(
      `  - ${describeOp(c.op, c.description)}: ${
        c.why === 'rejected'
          ? `impossible in state ${v.stateAtFailure}`
          : 'possible here, but every order that continues from it fails later'
      }`,
    );
  }
  const shown = prefix.slice(-8);
  if (prefix.length > 0) {
    lines.push(
      `Longest linearizable prefix${prefix.length > shown.length ? ` (last ${shown.length} of ${prefix.length})` : ''}:`,
    );
    for (const p of shown)
      lines.push(`  ${describeOp(p.op, p.description)} → state ${p.stateAfter}`);
  } else {
    lines.push('No operation of this key can even be placed first.');
  }
  return lines.join('\n');
}

function summarise(v: Verdict): string {
  const s = `${v.stats.operations} operations on ${v.stats.keys} key(s), model ${v.model}`;
  if (v.result === 'linearizable') return `linearizable: ${s}`;
  if (v.result === 'unknown') return `unknown (${v.reason}): ${s}`;
  const first = v.violations[0] as KeyVerdict;
  const blocking = first.blocking as Operation;
  const desc = first.candidates?.find((c) => c.op.id === blocking.id)?.description ?? blocking.f;
  if (first.impossible)
    return `violation on ${v.violations.length} key(s), first ${JSON.stringify(first.key)}: ${describeOp(blocking, desc)} has a result no order of the earlier operations can produce (${s})`;
  return `violation on ${v.violations.length} key(s), first ${JSON.stringify(first.key)}: ${describeOp(blocking, desc)} cannot be placed after ${first.longestPrefix?.length ?? 0} linearized operations (${s})`;
}

/** The full human explanation of a verdict. */
export function explainVerdict(v: Verdict): string {
  const lines = [v.summary];
  if (v.result === 'violation') {
    for (const k of v.violations) lines.push('', k.explanation ?? '');
    const unknownKeys = v.keys.filter((k) => k.result === 'unknown');
    if (unknownKeys.length > 0)
      lines.push('', `${unknownKeys.length} other key(s) could not be decided within the budget.`);
  } else if (v.result === 'unknown') {
    const unknownKeys = v.keys.filter((k) => k.result === 'unknown');
    lines.push(
      `${unknownKeys.length} key(s) undecided (${unknownKeys
        .slice(0, 10)
        .map((k) => JSON.stringify(k.key))
        .join(
          ', ',
        )}${unknownKeys.length > 10 ? ', …' : ''}); the others are linearizable. This is not a pass: raise the budget (--timeout) or shorten the history.`,
    );
  }
  for (const w of v.warnings.slice(0, 20)) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

export { formatLocation };
