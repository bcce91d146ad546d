/**
 * Sequential specifications ("models") that the linearizability checker checks a history
 * against. A model describes ONE key: the checker splits a history per key and checks each
 * key on its own, starting from `init()`.
 *
 * Add your own by implementing `Model`: `init`, `step`, `equal` and `hash` of states, and a
 * way to describe operations and states for reports. `step` must be a pure function.
 */

/** An operation's argument as the checker hands it to a model. */
export interface ModelInput {
  f: string;
  /** The invoke event's `value` (`null` when absent). */
  value: unknown;
}

/**
 * An operation's result. `known: false` means the outcome is unknown (an `info` completion or
 * no completion): if the operation took effect, it did so as if it succeeded. Reads with an
 * unknown outcome never reach the model (they constrain nothing).
 */
export type ModelOutput = { known: true; value: unknown } | { known: false };

export interface StepResult<S> {
  /** Whether the operation, applied to `state`, could have produced `output`. */
  ok: boolean;
  /** The state after the operation (ignored when `ok` is false). */
  next: S;
}

/** See `Model.producer`. */
export interface Producer {
  add(input: ModelInput): void;
  producible(target: { input: ModelInput; output: ModelOutput }): boolean;
}

export interface Model<S = unknown> {
  /** Short name shown in reports (`register`, `kv`). */
  readonly name: string;
  /** The functions (`f`) this model understands. Any other `f` is an input error. */
  readonly functions: readonly string[];
  /** The state of a key that no operation touched yet. */
  init(): S;
  /** Applies one operation. Pure: must not mutate `state`. */
  step(state: S, input: ModelInput, output: ModelOutput): StepResult<S>;
  /** State equality (used with `hash` to memoise the search). */
  equal(a: S, b: S): boolean;
  /** A 32-bit hash of a state, consistent with `equal`. */
  hash(state: S): number;
  /**
   * True if the operation never changes the state (a read). Such an operation with an
   * unknown outcome constrains nothing and is dropped before the search.
   */
  readOnly(input: ModelInput): boolean;
  /**
   * Optional: turns an operation into the form `step` works on, once before the search
   * (e.g. canonical text of values, so `step` compares strings instead of serialising on
   * every call). `step` then only sees prepared operations; `describeOperation` and
   * `validate` always see the original ones. Default: the operation as recorded.
   */
  prepare?(input: ModelInput, output: ModelOutput): { input: ModelInput; output: ModelOutput };
  /**
   * Optional pruning: given the operations of one key, says which operations with an
   * unknown outcome no completed operation could ever observe. Those are dropped before the
   * search (the "never took effect" choice, always allowed for them), which is sound only
   * if any linearization that includes such an operation stays valid without it.
   * Operations come as recorded (not prepared). Returns one flag per `unknown` entry.
   */
  unobservable?(
    unknown: readonly ModelInput[],
    known: ReadonlyArray<{ input: ModelInput; output: ModelOutput }>,
  ): boolean[];
  /**
   * Optional pruning: could `target` (an operation with a known result) still be accepted
   * after applying some of `between`, in some order, to `state`? The checker asks this about
   * the operation that must be linearized next at the latest, with `between` the operations
   * that may still come before it; `false` abandons the configuration. Must be conservative:
   * answer `true` when unsure. Operations are prepared (see `prepare`).
   */
  reachable?(
    state: S,
    target: { input: ModelInput; output: ModelOutput },
    between: readonly ModelInput[],
  ): boolean;
  /**
   * Optional refutation before the search, a stronger (and slower) `reachable`: could
   * `target` be accepted after applying some of `between` to `state`, in some order, each at
   * most once? Asked once per operation with a known result, with the initial state and every
   * operation invoked before the target returned; `false` makes the key a violation without
   * searching. Must be conservative. Defaults to `reachable`.
   */
  producible?(
    state: S,
    target: { input: ModelInput; output: ModelOutput },
    between: readonly ModelInput[],
  ): boolean;
  /**
   * Optional: `producible` (or `reachable`) for the refutation pass, incrementally. The pass
   * asks about every operation of a key in return order, each time with every operation
   * invoked before it; with an accumulator it costs O(1) per operation instead of O(n)
   * (O(n²) per key: minutes at 100,000 operations). `add` is called with each operation as
   * it is invoked (prepared), `producible` must answer exactly as `producible(state, target,
   * everything added so far)` would.
   */
  producer?(state: S): Producer;
  /**
   * Optional refutation from real time, before the search: an operation that no
   * linearization can include, and why in words, or `undefined`. `ops` are prepared, with
   * their call and return times (`ret` is +Infinity for an unknown outcome). Must be sound:
   * only answer when every order that respects real time fails.
   */
  refute?(
    ops: ReadonlyArray<{ input: ModelInput; output: ModelOutput; call: number; ret: number }>,
  ): { index: number; why: string } | undefined;
  /** Why an operation is malformed for this model, or `undefined` if it is fine. */
  validate?(input: ModelInput, output: ModelOutput): string | undefined;
  /** One short human description, e.g. `read → 3`, `cas 1→2`, `append "x"`. */
  describeOperation(input: ModelInput, output: ModelOutput): string;
  /** One short human description of a state, e.g. `3`, `absent`, `"ab"`. */
  describeState(state: S): string;
}

/** FNV-1a over a string's UTF-16 code units, 32-bit. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** JSON with object keys sorted, so equal values have equal text. */
export function canonical(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`)
    .join(',')}}`;
}

/** Can a register in `state` come to hold exactly `v` using some of `between` (prepared)? */
function canHold(state: string, v: string, between: readonly ModelInput[]): boolean {
  if (state === v) return true;
  for (let i = 0; i < between.length; i++) {
    const b = between[i] as ModelInput;
    if (b.f === 'write' && b.value === v) return true;
    if (b.f === 'cas' && (b.value as [string, string])[1] === v) return true;
    if (b.f === 'delete' && v === 'null') return true;
  }
  return false;
}

function casArgs(value: unknown): [unknown, unknown] | undefined {
  if (Array.isArray(value) && value.length === 2) return [value[0], value[1]];
  if (value !== null && typeof value === 'object' && 'from' in value && 'to' in value) {
    const v = value as { from: unknown; to: unknown };
    return [v.from, v.to];
  }
  return undefined;
}

function short(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * A single register per key. The state is the canonical JSON text of the value; `null`
 * means absent (never written, or deleted). `step` works on prepared operations (values
 * already canonical text; a cas output is `true` for success, `false` for compare failed).
 *
 * - `read`: ok value = the value read (`null` when absent);
 * - `write`: invoke value = the new value;
 * - `cas`: invoke value = `[from, to]` (or `{from, to}`). An `ok` completion means the
 *   compare succeeded and `to` was written. An `ok` completion with value `false` means the
 *   compare definitely failed (the register held something other than `from`, unchanged).
 *   A `fail` completion means not applied (dropped, as for every model).
 * - `delete`: the register becomes absent.
 */
export const registerModel: Model<string> = {
  name: 'register',
  functions: ['read', 'write', 'cas', 'delete'],
  init: () => 'null',
  prepare(input, output) {
    // Values become canonical JSON text once; `step` then only compares strings.
    let value: unknown = null;
    if (input.f === 'write') value = canonical(input.value);
    else if (input.f === 'cas') {
      const a = casArgs(input.value);
      value = a ? [canonical(a[0]), canonical(a[1])] : null;
    }
    let out: ModelOutput = output;
    if (output.known) {
      if (input.f === 'read') out = { known: true, value: canonical(output.value) };
      else if (input.f === 'cas') out = { known: true, value: output.value !== false };
    }
    return { input: { f: input.f, value }, output: out };
  },
  // A stale read: a read of v (or a successful cas from v) is impossible if every operation
  // that may have written v (and the initial state, for null) was followed in real time by a
  // definite write of another value that returned before the read was invoked.
  refute(ops) {
    // O(n log n): a history of a 30-minute chaos run has over 100,000 operations per key.
    const writersOf = new Map<string, number[]>();
    const addWriter = (v: string, i: number) => {
      const list = writersOf.get(v);
      if (list) list.push(i);
      else writersOf.set(v, [i]);
    };
    const killers: Array<{ i: number; value: string }> = [];
    const targets: Array<{ i: number; value: string }> = [];
    ops.forEach((op, i) => {
      const { input, output } = op;
      if (input.f === 'write') {
        addWriter(input.value as string, i);
        if (output.known) killers.push({ i, value: input.value as string });
      } else if (input.f === 'delete') {
        addWriter('null', i);
        if (output.known) killers.push({ i, value: 'null' });
      } else if (input.f === 'cas') {
        const [from, to] = input.value as [string, string];
        if (!output.known || output.value === true) addWriter(to, i);
        if (output.known && output.value === true) {
          killers.push({ i, value: to });
          targets.push({ i, value: from });
        }
      } else if (input.f === 'read' && output.known) {
        targets.push({ i, value: output.value as string });
      }
    });
    const callOf = (i: number) => (ops[i] as { call: number }).call;
    const retOf = (i: number) => (ops[i] as { ret: number }).ret;
    // Killers by call; from each position to the end, the one returning first (best) and the
    // one returning first among those writing another value than best (second).
    killers.sort((x, y) => callOf(x.i) - callOf(y.i));
    const m = killers.length;
    const best = new Int32Array(m + 1).fill(-1);
    const second = new Int32Array(m + 1).fill(-1);
    for (let j = m - 1; j >= 0; j--) {
      let b1 = best[j + 1] as number;
      let b2 = second[j + 1] as number;
      const x = killers[j] as { i: number; value: string };
      const b1k = b1 >= 0 ? (killers[b1] as { i: number; value: string }) : undefined;
      if (!b1k || retOf(x.i) < retOf(b1k.i)) {
        if (b1k && x.value !== b1k.value) b2 = b1;
        b1 = j;
      } else if (
        x.value !== b1k.value &&
        (b2 < 0 || retOf(x.i) < retOf((killers[b2] as { i: number }).i))
      )
        b2 = j;
      best[j] = b1;
      second[j] = b2;
    }
    // A definite write of another value than v, invoked after `after` and returned before
    // `before`: its position in `killers`, or -1.
    const killerBetween = (after: number, before: number, v: string): number => {
      let lo = 0;
      let hi = m;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (callOf((killers[mid] as { i: number }).i) > after) hi = mid;
        else lo = mid + 1;
      }
      // best and second write different values, so one of them writes another value than v.
      for (let pick = 0; pick < 2; pick++) {
        const c = (pick === 0 ? best[lo] : second[lo]) as number;
        if (c < 0) continue;
        const k = killers[c] as { i: number; value: string };
        if (k.value !== v && retOf(k.i) < before) return c;
      }
      return -1;
    };
    const INIT = -1;
    const afterOf = (w: number) => (w === INIT ? Number.NEGATIVE_INFINITY : retOf(w));
    // Per value, its two writers returning last: the one a killer must follow (the target
    // itself excluded) is the latest, since a killer after a later writer follows the others.
    const latest = new Map<string, [number, number]>();
    for (const [v, list] of writersOf) {
      let w1 = INIT;
      let w2 = INIT;
      for (const w of list) {
        if (w1 === INIT || retOf(w) > retOf(w1)) {
          w2 = w1;
          w1 = w;
        } else if (w2 === INIT || retOf(w) > retOf(w2)) w2 = w;
      }
      latest.set(v, [w1, w2]);
    }
    targets.sort((a, b) => retOf(a.i) - retOf(b.i));
    for (const t of targets) {
      const call = callOf(t.i);
      const [w1, w2] = latest.get(t.value) ?? [INIT, INIT];
      const w = w1 === t.i ? w2 : w1;
      // No writer at all (other than the target) and not the initial value: impossible.
      const possibleFromInit = t.value === 'null';
      if (w === INIT && !possibleFromInit) {
        return { index: t.i, why: `no operation writes ${short(t.value)}` };
      }
      if (killerBetween(afterOf(w), call, t.value) < 0) continue;
      // Impossible: explain with every writer (rare, so the full list is fine).
      const writers = (writersOf.get(t.value) ?? []).filter((x) => x !== t.i);
      if (possibleFromInit) writers.push(INIT);
      if (writers.length === 0) return { index: t.i, why: `no operation writes ${short(t.value)}` };
      const overwritten = writers.map((x) => {
        const k = killers[killerBetween(afterOf(x), call, t.value)] as { i: number; value: string };
        const by = x === INIT ? 'the initial state' : `the operation invoked at ${callOf(x)}`;
        return `${by} by the write of ${short(k.value)} [invoked ${callOf(k.i)}, returned ${retOf(k.i)}]`;
      });
      const why = `every operation that may have written ${short(t.value)} was overwritten before it was invoked: ${overwritten.slice(0, 3).join('; ')}${overwritten.length > 3 ? `; and ${overwritten.length - 3} more` : ''}`;
      return { index: t.i, why };
    }
    return undefined;
  },
  step(state, input, output) {
    switch (input.f) {
      case 'read':
        return { ok: !output.known || output.value === state, next: state };
      case 'write':
        return { ok: true, next: input.value as string };
      case 'delete':
        return { ok: true, next: 'null' };
      case 'cas': {
        const [from, to] = input.value as [string, string];
        const matches = from === state;
        // Unknown outcome: if it ran, it either set `to` or found a mismatch and did nothing.
        if (!output.known) return { ok: true, next: matches ? to : state };
        // Known: `true` = compare succeeded and `to` was written; `false` = compare failed.
        if (output.value === false) return { ok: !matches, next: state };
        return { ok: matches, next: matches ? to : state };
      }
      default:
        return { ok: false, next: state };
    }
  },
  equal: (a, b) => a === b,
  hash: hashString,
  readOnly: (input) => input.f === 'read',
  // Hot path (called on every configuration): plain loops, no closures.
  reachable(state, target, between) {
    const { input, output } = target;
    if (!output.known) return true;
    if (input.f === 'read') return canHold(state, output.value as string, between);
    if (input.f === 'cas') {
      const from = (input.value as [string, string])[0];
      if (output.value !== false) return canHold(state, from, between);
      // Compare failed: the register must come to hold something other than `from`.
      if (state !== from) return true;
      for (let i = 0; i < between.length; i++) {
        const b = between[i] as ModelInput;
        if (b.f === 'write' && b.value !== from) return true;
        if (b.f === 'cas' && (b.value as [string, string])[1] !== from) return true;
        if (b.f === 'delete' && from !== 'null') return true;
      }
      return false;
    }
    return true;
  },
  // The refutation pass's `reachable` from the initial state, with every value written so far.
  producer(state) {
    const written = new Set<string>();
    return {
      add(b) {
        if (b.f === 'write') written.add(b.value as string);
        else if (b.f === 'cas') written.add((b.value as [string, string])[1]);
        else if (b.f === 'delete') written.add('null');
      },
      producible({ input, output }) {
        if (!output.known) return true;
        if (input.f === 'read')
          return state === output.value || written.has(output.value as string);
        if (input.f !== 'cas') return true;
        const from = (input.value as [string, string])[0];
        if (output.value !== false) return state === from || written.has(from);
        // Compare failed: the register must come to hold something other than `from`.
        return state !== from || written.size > (written.has(from) ? 1 : 0);
      },
    };
  },
  validate(input) {
    if (!this.functions.includes(input.f))
      return `the register model has no function "${input.f}" (it has ${this.functions.join(', ')})`;
    if (input.f === 'cas' && !casArgs(input.value))
      return `cas needs [from, to] or {"from":…,"to":…} as its value, got ${canonical(input.value)}`;
    return undefined;
  },
  describeOperation(input, output) {
    const tail = output.known ? '' : ' (outcome unknown)';
    switch (input.f) {
      case 'read':
        return output.known ? `read → ${short(canonical(output.value))}` : 'read → ?';
      case 'write':
        return `write ${short(canonical(input.value))}${tail}`;
      case 'delete':
        return `delete${tail}`;
      case 'cas': {
        const a = casArgs(input.value);
        const body = a ? `cas ${short(canonical(a[0]))}→${short(canonical(a[1]))}` : 'cas ?';
        if (output.known && output.value === false) return `${body} (compare failed)`;
        return `${body}${tail}`;
      }
      default:
        return `${input.f} ${short(canonical(input.value))}${tail}`;
    }
  },
  describeState: (s) => (s === 'null' ? 'absent (null)' : short(s, 60)),
};

function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

/**
 * A string key-value store, one string per key, starting as the empty string.
 *
 * - `get`: ok value = the string read (`null` is read as the empty string);
 * - `put`: invoke value = the new string;
 * - `append`: invoke value = the string appended.
 */
export const kvModel: Model<string> = {
  name: 'kv',
  functions: ['get', 'put', 'append'],
  init: () => '',
  step(state, input, output) {
    switch (input.f) {
      case 'get':
        return {
          ok: !output.known || (output.value === null ? '' : asText(output.value)) === state,
          next: state,
        };
      case 'put':
        return { ok: true, next: asText(input.value) ?? '' };
      case 'append':
        return { ok: true, next: state + (asText(input.value) ?? '') };
      default:
        return { ok: false, next: state };
    }
  },
  equal: (a, b) => a === b,
  hash: hashString,
  readOnly: (input) => input.f === 'get',
  // Appends only extend the string: a get of v needs v to extend the current string, or
  // the value of a put that may come before it.
  reachable(state, target, between) {
    if (target.input.f !== 'get' || !target.output.known) return true;
    const v = target.output.value === null ? '' : (asText(target.output.value) ?? '');
    if (v.startsWith(state)) return true;
    for (let i = 0; i < between.length; i++) {
      const b = between[i] as ModelInput;
      if (b.f === 'put' && v.startsWith(asText(b.value) ?? '')) return true;
    }
    return false;
  },
  // A get of v needs v = base + tail, base the current string or a put's value, and tail a
  // concatenation of appended strings (allowing each to repeat keeps this conservative).
  producible(state, target, between) {
    if (target.input.f !== 'get' || !target.output.known) return true;
    const v = target.output.value === null ? '' : (asText(target.output.value) ?? '');
    const bases = [state];
    const appends = new Map<string, Set<string>>();
    for (let i = 0; i < between.length; i++) {
      const b = between[i] as ModelInput;
      const x = asText(b.value) ?? '';
      if (b.f === 'put') bases.push(x);
      else if (b.f === 'append' && x !== '') {
        const first = x[0] as string;
        const set = appends.get(first);
        if (set) set.add(x);
        else appends.set(first, new Set([x]));
      }
    }
    for (const base of new Set(bases)) {
      if (!v.startsWith(base)) continue;
      const reach = new Uint8Array(v.length + 1);
      reach[base.length] = 1;
      for (let i = base.length; i < v.length; i++) {
        if (!reach[i]) continue;
        for (const a of appends.get(v[i] as string) ?? []) {
          if (i + a.length <= v.length && v.startsWith(a, i)) reach[i + a.length] = 1;
        }
      }
      if (reach[v.length]) return true;
    }
    return false;
  },
  // An unknown put/append of a non-empty x that no get ever returned (as part of its
  // string) can be dropped: in any linearization that includes it, every state from it to
  // the next put contains x, so no get lies in between, and without it nothing observed
  // changes.
  unobservable(unknown, known) {
    const seen = known
      .filter((k) => k.input.f === 'get' && k.output.known)
      .map((k) => (k.output.known ? (asText(k.output.value) ?? '') : ''));
    return unknown.map((u) => {
      if (u.f !== 'put' && u.f !== 'append') return false;
      const x = asText(u.value) ?? '';
      return x !== '' && !seen.some((v) => v.includes(x));
    });
  },
  validate(input, output) {
    if (!this.functions.includes(input.f))
      return `the kv model has no function "${input.f}" (it has ${this.functions.join(', ')})`;
    if ((input.f === 'put' || input.f === 'append') && asText(input.value) === undefined)
      return `${input.f} needs a string value, got ${canonical(input.value)}`;
    if (
      input.f === 'get' &&
      output.known &&
      output.value !== null &&
      asText(output.value) === undefined
    )
      return `get must return a string (or null), got ${canonical(output.value)}`;
    return undefined;
  },
  describeOperation(input, output) {
    const tail = output.known ? '' : ' (outcome unknown)';
    switch (input.f) {
      case 'get':
        return output.known
          ? `get → ${short(JSON.stringify(output.value === null ? '' : asText(output.value)))}`
          : 'get → ?';
      case 'put':
        return `put ${short(JSON.stringify(asText(input.value) ?? ''))}${tail}`;
      case 'append':
        return `append ${short(JSON.stringify(asText(input.value) ?? ''))}${tail}`;
      default:
        return `${input.f} ${short(canonical(input.value))}${tail}`;
    }
  },
  describeState: (s) => short(JSON.stringify(s), 60),
};

export const builtinModels = { register: registerModel, kv: kvModel } as const;
export type BuiltinModelName = keyof typeof builtinModels;
