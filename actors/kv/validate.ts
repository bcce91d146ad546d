/** Input validation shared by the state machine, the service and the client. */
import { KvError } from './errors.js';
import type { ReadDefault } from './messages.js';
import {
  type CasCondition,
  DEFAULT_MAX_VALUE_LENGTH,
  type KvOp,
  MAX_KEY_LENGTH,
  READ_LEVELS,
  type ReadLevel,
} from './types.js';

function bad(message: string): KvError {
  return new KvError('SYNOD_ERR_KV_INVALID_ARGUMENT', message);
}

export function keyProblem(key: unknown, what = 'key'): string | undefined {
  if (typeof key !== 'string') return `${what} must be a string, got ${typeof key}`;
  if (key.length === 0) return `${what} must not be empty`;
  if (key.length > MAX_KEY_LENGTH)
    return `${what} is ${key.length} characters long; the limit is ${MAX_KEY_LENGTH}`;
  return undefined;
}

export function valueProblem(value: unknown, max = DEFAULT_MAX_VALUE_LENGTH): string | undefined {
  if (typeof value !== 'string') return `value must be a string, got ${typeof value}`;
  if (value.length > max) return `value is ${value.length} characters long; the limit is ${max}`;
  return undefined;
}

function conditionProblem(c: unknown): string | undefined {
  if (c === null || typeof c !== 'object') return 'cas needs a condition {value} or {modRev}';
  const cond = c as Partial<Record<'value' | 'modRev', unknown>>;
  if ('modRev' in cond) {
    const m = cond.modRev;
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 0)
      return `cas modRev must be an integer ≥ 0, got ${String(m)}`;
    return undefined;
  }
  if ('value' in cond) {
    if (cond.value !== null && typeof cond.value !== 'string')
      return 'cas value condition must be a string or null (absent)';
    return undefined;
  }
  return 'cas needs a condition {value} or {modRev}';
}

/** Why a mutation is malformed, or undefined. */
export function opProblem(op: unknown, maxValue = DEFAULT_MAX_VALUE_LENGTH): string | undefined {
  if (op === null || typeof op !== 'object') return 'operation must be an object';
  const o = op as Partial<KvOp> & { t?: unknown };
  const k = keyProblem(o.key);
  if (k) return k;
  switch (o.t) {
    case 'put':
      return valueProblem((o as { value?: unknown }).value, maxValue);
    case 'del':
      return undefined;
    case 'cas': {
      const c = conditionProblem((o as { if?: CasCondition }).if);
      if (c) return c;
      const v = (o as { value?: unknown }).value;
      return v === null ? undefined : valueProblem(v, maxValue);
    }
    default:
      return `unknown operation type ${JSON.stringify(o.t)}`;
  }
}

export function assertOp(op: unknown, maxValue?: number): asserts op is KvOp {
  const p = opProblem(op, maxValue);
  if (p) throw bad(p);
}

export function assertKey(key: unknown, what?: string): asserts key is string {
  const p = keyProblem(key, what);
  if (p) throw bad(p);
}

export function assertLimit(limit: unknown): number {
  if (limit === undefined) return Number.POSITIVE_INFINITY;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0)
    throw bad(`limit must be an integer ≥ 0, got ${String(limit)}`);
  return limit === 0 ? Number.POSITIVE_INFINITY : limit;
}

/**
 * Why a cluster-wide default read level is malformed, or undefined. `names` lets the caller
 * phrase the problem in its own terms (CLI flags, config keys).
 */
export function readDefaultProblem(
  d: unknown,
  names: { level: string; maxLagMs: string; maxLagVersions: string } = {
    level: 'defaultRead.level',
    maxLagMs: 'defaultRead.maxLagMs',
    maxLagVersions: 'defaultRead.maxLagVersions',
  },
): string | undefined {
  if (d === null || typeof d !== 'object') return 'the default read must be an object {level}';
  const o = d as { level?: unknown; maxLagMs?: unknown; maxLagVersions?: unknown };
  if (typeof o.level !== 'string' || !READ_LEVELS.includes(o.level as ReadLevel))
    return `${names.level} must be one of ${READ_LEVELS.join(', ')}; got ${JSON.stringify(o.level ?? null)}`;
  const ms = o.maxLagMs;
  const versions = o.maxLagVersions;
  if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0))
    return `${names.maxLagMs} must be a number of milliseconds ≥ 0; got ${JSON.stringify(ms)}`;
  if (
    versions !== undefined &&
    !(typeof versions === 'number' && Number.isSafeInteger(versions) && versions >= 0)
  )
    return `${names.maxLagVersions} must be an integer ≥ 0; got ${JSON.stringify(versions)}`;
  if (o.level === 'bounded' && ms === undefined && versions === undefined)
    return `${names.level} bounded needs ${names.maxLagMs} and/or ${names.maxLagVersions}`;
  if (o.level !== 'bounded' && (ms !== undefined || versions !== undefined))
    return `${names.maxLagMs} / ${names.maxLagVersions} apply only to ${names.level} bounded (got ${o.level})`;
  return undefined;
}

/** Why a witness key (ReadOptions.witness, kv.witness) is malformed, or undefined. */
export function witnessKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string' || key.length === 0 || key.length > 256)
    return `a witness key is a string of 1–256 characters; got ${typeof key === 'string' ? `${key.length} characters` : JSON.stringify(key ?? null)}`;
  return undefined;
}

/** Validates a default read level: throws `SYNOD_ERR_KV_INVALID_READ_LEVEL`. */
export function assertReadDefault(d: unknown): asserts d is ReadDefault {
  const p = readDefaultProblem(d);
  if (p) throw new KvError('SYNOD_ERR_KV_INVALID_READ_LEVEL', p);
}

/**
 * The longest timeout a request may carry: Node's timer limit, 2^31−1 ms (about 24.8 days).
 * Beyond it Node fires the timer after 1 ms with a TimeoutOverflowWarning, so an absurd
 * timeout would silently become the shortest one (RELIABILITY.md finding F4).
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** Why a timeout (ms) is unusable, or undefined: a finite number in (0, MAX_TIMEOUT_MS]. */
export function timeoutProblem(ms: unknown, what = 'timeoutMs'): string | undefined {
  if (typeof ms !== 'number' || !Number.isFinite(ms))
    return `${what} must be a finite number of milliseconds, got ${typeof ms === 'number' ? String(ms) : typeof ms}`;
  if (ms <= 0) return `${what} must be more than 0 ms, got ${ms}`;
  if (ms > MAX_TIMEOUT_MS) return `${what} is ${ms} ms; the limit is ${MAX_TIMEOUT_MS} ms`;
  return undefined;
}

export function assertTimeout(ms: unknown, what?: string): asserts ms is number {
  const p = timeoutProblem(ms, what);
  if (p) throw bad(p);
}
