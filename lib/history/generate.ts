/**
 * Synthetic histories that are linearizable by construction: clients issue operations with
 * random timing, each operation takes effect at a random instant inside its [invoke,
 * return] window, and results come from replaying those instants in order on the
 * sequential model. Some operations fail (not applied) or end unknown (applied or not, then
 * `info` or no completion at all, as when a client crashes). Used by property tests and the
 * checker benchmark; useful to test your own tooling too.
 */
import type { Random } from '../random.js';
import type { HistoryEvent } from './event.js';

export interface GenerateOptions {
  random: Random;
  /** `register` (read/write/cas/delete) or `kv` (get/put/append). */
  model?: 'register' | 'kv';
  /** Concurrent clients (processes at any moment). Default 5. */
  clients?: number;
  /** Operations in total. Default 100. */
  operations?: number;
  /** Keys, chosen uniformly per operation. Default 1. */
  keys?: number;
  /** Probability that an operation ends `info` (unknown). Default 0.05. */
  infoRate?: number;
  /** Probability that an operation ends `fail` (not applied). Default 0.05. */
  failRate?: number;
  /** Probability that an unknown operation never completes (client crash). Default 0.3. */
  crashRate?: number;
  /** Longest operation latency in ticks. Default 10. */
  maxLatency?: number;
  /** register: written values are unique per key (a counter) instead of 0..4. */
  uniqueValues?: boolean;
}

export interface GeneratedOperation {
  process: number;
  f: string;
  key: string;
  input: unknown;
  output: unknown;
  outcome: 'ok' | 'fail' | 'info' | 'crash';
  /** Whether it took effect (at `at`). */
  applied: boolean;
  call: number;
  ret: number;
  at: number;
}

export interface GeneratedHistory {
  events: HistoryEvent[];
  operations: GeneratedOperation[];
}

export function generateHistory(opts: GenerateOptions): GeneratedHistory {
  const rnd = opts.random;
  const model = opts.model ?? 'register';
  const clients = Math.max(1, opts.clients ?? 5);
  const total = opts.operations ?? 100;
  const nkeys = Math.max(1, opts.keys ?? 1);
  const infoRate = opts.infoRate ?? 0.05;
  const failRate = opts.failRate ?? 0.05;
  const crashRate = opts.crashRate ?? 0.3;
  const maxLatency = Math.max(1, opts.maxLatency ?? 10);

  // Timing first: each client slot runs one operation at a time.
  const freeAt = new Array<number>(clients).fill(0);
  const procOf = Array.from({ length: clients }, (_, i) => i);
  let nextProc = clients;
  const ops: GeneratedOperation[] = [];
  const counters = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const c = rnd.int(clients);
    const call = (freeAt[c] as number) + 1 + rnd.int(3);
    const ret = call + 1 + rnd.int(maxLatency);
    freeAt[c] = ret;
    const key = String(rnd.int(nkeys));
    let f: string;
    let input: unknown = null;
    const roll = rnd.next();
    if (model === 'register') {
      const fresh = () => {
        const n = (counters.get(key) ?? 0) + 1;
        counters.set(key, n);
        return n;
      };
      const value = () => (opts.uniqueValues ? fresh() : rnd.int(5));
      if (roll < 0.5) f = 'read';
      else if (roll < 0.8) {
        f = 'write';
        input = value();
      } else if (roll < 0.95) {
        f = 'cas';
        input = [rnd.chance(0.2) ? null : rnd.int(opts.uniqueValues ? 4 : 5), value()];
      } else f = 'delete';
    } else {
      if (roll < 0.5) f = 'get';
      else if (roll < 0.6) {
        f = 'put';
        input = `p${procOf[c]}.${i};`;
      } else {
        f = 'append';
        input = `a${procOf[c]}.${i};`;
      }
    }
    const r = rnd.next();
    const outcome: GeneratedOperation['outcome'] =
      r < failRate
        ? 'fail'
        : r < failRate + infoRate
          ? rnd.chance(crashRate)
            ? 'crash'
            : 'info'
          : 'ok';
    const at = call + rnd.next() * (ret - call);
    ops.push({
      process: procOf[c] as number,
      f,
      key,
      input,
      output: undefined,
      outcome,
      applied: outcome === 'ok' || ((outcome === 'info' || outcome === 'crash') && rnd.chance(0.5)),
      call,
      ret,
      at,
    });
    // Jepsen: a process whose operation ended unknown is retired; the slot gets a new one.
    if (outcome === 'info' || outcome === 'crash') procOf[c] = nextProc++;
  }

  // Then the effects, in the order of their instants, on the sequential model.
  const state = new Map<string, unknown>();
  const byInstant = [...ops].sort((a, b) => a.at - b.at);
  for (const op of byInstant) {
    if (!op.applied) continue;
    const cur = state.has(op.key) ? state.get(op.key) : model === 'register' ? null : '';
    switch (op.f) {
      case 'read':
      case 'get':
        op.output = cur;
        break;
      case 'write':
        state.set(op.key, op.input);
        op.output = op.input;
        break;
      case 'delete':
        state.set(op.key, null);
        break;
      case 'cas': {
        const [from, to] = op.input as [unknown, unknown];
        if (from === cur) {
          state.set(op.key, to);
          op.output = op.input;
        } else if (op.outcome === 'ok') {
          // The compare failed: report it as a definite "compare failed" (ok, false) or as
          // a plain failure (not applied); both are true statements.
          if (op.call % 2 === 0) op.output = false;
          else op.outcome = 'fail';
        }
        break;
      }
      case 'put':
        state.set(op.key, op.input);
        op.output = op.input;
        break;
      case 'append':
        state.set(op.key, `${cur as string}${op.input as string}`);
        op.output = op.input;
        break;
    }
  }

  const timed: Array<{ time: number; seq: number; ev: HistoryEvent }> = [];
  let seq = 0;
  for (const op of ops) {
    const inv: HistoryEvent = {
      process: op.process,
      type: 'invoke',
      f: op.f,
      key: op.key,
      time: op.call,
    };
    if (op.input !== null) inv.value = op.input;
    timed.push({ time: op.call, seq: seq++, ev: inv });
    if (op.outcome === 'crash') continue;
    const done: HistoryEvent = {
      process: op.process,
      type: op.outcome,
      f: op.f,
      key: op.key,
      time: op.ret,
    };
    if (op.outcome === 'ok') done.value = op.output === undefined ? null : op.output;
    if (op.outcome === 'info') done.error = 'timeout';
    timed.push({ time: op.ret, seq: seq++, ev: done });
  }
  timed.sort((a, b) => a.time - b.time || a.seq - b.seq);
  return { events: timed.map((x) => x.ev), operations: ops };
}
