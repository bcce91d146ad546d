/**
 * What a replica stores per key: either DVV siblings (the default "register" type, where
 * the client resolves conflicts) or the state of one CRDT type, merged automatically.
 * `mergeRecords` is the join used by replication, read repair, hinted handoff and
 * anti-entropy alike; `applyOp` turns a client operation into a new state and the delta
 * to ship.
 */
import { type CausalContext, ccCovers, ccJoin, type Dot, EMPTY_CONTEXT } from './causal-context.js';
import {
  contextOf,
  isDeleted,
  type Sibling,
  siblingValues,
  syncSiblings,
  writeSibling,
} from './dvv.js';
import { GossipError } from './errors.js';
import { canonical, compareCanonical, type Digest, digest } from './hash.js';
import { compareHlc, type HlcTimestamp, type HybridLogicalClock, isHlcTimestamp } from './hlc.js';
import { LWW_EMPTY, type LwwState, lwwMerge, lwwSet, lwwValue } from './lww-register.js';
import { MV_EMPTY, type MvState, mvMerge, mvValues, mvWrite } from './mv-register.js';
import { ORSET_EMPTY, type OrSetState, orAdd, orMerge, orRemove, orValues } from './or-set.js';
import { PN_EMPTY, type PnState, pnCovers, pnIncrement, pnMerge, pnValue } from './pn-counter.js';
import { isVersionVector, type VersionVector } from './version-vector.js';

/** `dvv`: plain values with siblings resolved by the client; the others are CRDTs. */
export type KeyType = 'dvv' | 'lww' | 'mv' | 'pn' | 'orset';
export const KEY_TYPES: readonly KeyType[] = ['dvv', 'lww', 'mv', 'pn', 'orset'];

export type KeyRecord =
  | { readonly t: 'dvv'; readonly sibs: readonly Sibling[] }
  | { readonly t: 'lww'; readonly s: LwwState }
  | { readonly t: 'mv'; readonly s: MvState }
  | { readonly t: 'pn'; readonly s: PnState }
  | { readonly t: 'orset'; readonly s: OrSetState };

/** Client operations. `put`/`delete` apply to `dvv`, `lww` and `mv` keys. */
export type Operation =
  | { readonly op: 'put'; readonly value: unknown }
  | { readonly op: 'delete' }
  | { readonly op: 'increment'; readonly by: number }
  | { readonly op: 'add'; readonly element: string }
  | { readonly op: 'remove'; readonly element: string };

const OPS_BY_TYPE: Record<KeyType, readonly Operation['op'][]> = {
  dvv: ['put', 'delete'],
  lww: ['put', 'delete'],
  mv: ['put'],
  pn: ['increment'],
  orset: ['add', 'remove'],
};

export function emptyRecord(t: KeyType): KeyRecord {
  switch (t) {
    case 'dvv':
      return { t, sibs: [] };
    case 'lww':
      return { t, s: LWW_EMPTY };
    case 'mv':
      return { t, s: MV_EMPTY };
    case 'pn':
      return { t, s: PN_EMPTY };
    case 'orset':
      return { t, s: ORSET_EMPTY };
  }
}

/**
 * The join of two records of one key. Records of different types only meet when nodes
 * disagree on the keyspace's type rules; then the type that sorts last wins on every node
 * (deterministic, so replicas still converge) and `conflict` is reported.
 */
export function mergeRecords(a: KeyRecord, b: KeyRecord): KeyRecord {
  if (a.t !== b.t) return a.t > b.t ? a : b;
  switch (a.t) {
    case 'dvv':
      return { t: 'dvv', sibs: syncSiblings(a.sibs, (b as typeof a).sibs) };
    case 'lww':
      return { t: 'lww', s: lwwMerge(a.s, (b as typeof a).s) };
    case 'mv':
      return { t: 'mv', s: mvMerge(a.s, (b as typeof a).s) };
    case 'pn':
      return { t: 'pn', s: pnMerge(a.s, (b as typeof a).s) };
    case 'orset':
      return { t: 'orset', s: orMerge(a.s, (b as typeof a).s) };
  }
}

export function mergeMaybe(
  a: KeyRecord | undefined,
  b: KeyRecord | undefined,
): KeyRecord | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return mergeRecords(a, b);
}

export function recordsEqual(a: KeyRecord | undefined, b: KeyRecord | undefined): boolean {
  return canonical(a ?? null) === canonical(b ?? null);
}

/** Anti-entropy digest of one key's record. */
export function recordDigest(key: string, rec: KeyRecord): Digest {
  return digest(`${key}\u0000${canonical(rec)}`);
}

export interface ApplyContext {
  /** The coordinating replica (mints dots, owns its counter entry). */
  readonly id: string;
  readonly hlc: HybridLogicalClock;
  /** The client's causal context for `dvv` writes (empty when it has seen nothing). */
  readonly context: CausalContext;
}

/** Applies an operation; returns the new full record and the delta to replicate. */
export function applyOp(
  current: KeyRecord | undefined,
  type: KeyType,
  op: Operation,
  ctx: ApplyContext,
): { record: KeyRecord; delta: KeyRecord } {
  if (!OPS_BY_TYPE[type].includes(op.op)) {
    throw new GossipError(
      'SYNOD_ERR_WRONG_TYPE',
      `operation "${op.op}" does not apply to a key of type "${type}" (allowed: ${OPS_BY_TYPE[type].join(', ')})`,
    );
  }
  const rec = current ?? emptyRecord(type);
  if (rec.t !== type) {
    throw new GossipError(
      'SYNOD_ERR_WRONG_TYPE',
      `the key holds a "${rec.t}" value but the keyspace declares "${type}"`,
    );
  }
  switch (rec.t) {
    case 'dvv': {
      const del = op.op === 'delete';
      const { siblings, written } = writeSibling(
        rec.sibs,
        ctx.context,
        ctx.id,
        op.op === 'put' ? op.value : undefined,
        del,
      );
      return { record: { t: 'dvv', sibs: siblings }, delta: { t: 'dvv', sibs: [written] } };
    }
    case 'lww': {
      if (rec.s.ts !== null) ctx.hlc.update(rec.s.ts);
      const ts = ctx.hlc.now();
      const r = lwwSet(rec.s, ts, op.op === 'put' ? op.value : undefined, op.op === 'delete');
      return { record: { t: 'lww', s: r.state }, delta: { t: 'lww', s: r.delta } };
    }
    case 'mv': {
      const r = mvWrite(rec.s, ctx.id, (op as { value: unknown }).value);
      return { record: { t: 'mv', s: r.state }, delta: { t: 'mv', s: r.delta } };
    }
    case 'pn': {
      const by = (op as { by: number }).by;
      if (!Number.isSafeInteger(by)) {
        throw new GossipError(
          'SYNOD_ERR_BAD_REQUEST',
          `increment must be a safe integer, got ${String(by)}`,
        );
      }
      const r = pnIncrement(rec.s, ctx.id, by);
      return { record: { t: 'pn', s: r.state }, delta: { t: 'pn', s: r.delta } };
    }
    case 'orset': {
      const el = (op as { element: string }).element;
      const r = op.op === 'add' ? orAdd(rec.s, ctx.id, el) : orRemove(rec.s, el);
      return { record: { t: 'orset', s: r.state }, delta: { t: 'orset', s: r.delta } };
    }
  }
}

/** What a read returns for a record. */
export interface ReadValue {
  /** `dvv`: the concurrent sibling values; `mv`: the concurrent values; `lww`: 0 or 1 value. */
  readonly values: unknown[];
  /** `pn`: the counter; `orset`: the sorted elements; absent for registers. */
  readonly value?: unknown;
  /** True when the key reads as absent (never written, or deleted). */
  readonly absent: boolean;
}

export function readValue(rec: KeyRecord | undefined, type: KeyType): ReadValue {
  const r = rec ?? emptyRecord(type);
  switch (r.t) {
    case 'dvv':
      return { values: siblingValues(r.sibs), absent: isDeleted(r.sibs) };
    case 'lww': {
      const values = lwwValue(r.s);
      return { values, absent: values.length === 0 };
    }
    case 'mv':
      return { values: mvValues(r.s), absent: r.s.e.length === 0 };
    case 'pn':
      return {
        values: [],
        value: pnValue(r.s),
        absent: Object.keys(r.s.p).length + Object.keys(r.s.n).length === 0,
      };
    case 'orset':
      return { values: [], value: orValues(r.s), absent: r.s.e.length === 0 };
  }
}

// ---------------------------------------------------------------------------------------
// Causal context tokens: what a client carries between requests for `session` guarantees
// and to resolve DVV siblings.

export type CausalToken =
  /** `dc` (dots seen beyond `vv`): absent when empty, so older tokens read the same. */
  | { readonly t: 'dvv'; readonly vv: VersionVector; readonly dc?: readonly Dot[] }
  | { readonly t: 'lww'; readonly ts: HlcTimestamp | null }
  | { readonly t: 'mv' | 'orset'; readonly cc: CausalContext }
  | { readonly t: 'pn'; readonly s: PnState };

export function tokenOf(rec: KeyRecord): CausalToken {
  switch (rec.t) {
    case 'dvv':
      return dvvToken(contextOf(rec.sibs));
    case 'lww':
      return { t: 'lww', ts: rec.s.ts };
    case 'mv':
      return { t: 'mv', cc: rec.s.cc };
    case 'orset':
      return { t: 'orset', cc: rec.s.cc };
    case 'pn':
      return { t: 'pn', s: rec.s };
  }
}

function dvvToken(cc: CausalContext): CausalToken {
  return cc.dc.length > 0 ? { t: 'dvv', vv: cc.vv, dc: cc.dc } : { t: 'dvv', vv: cc.vv };
}

/** A `dvv` token as a causal context (what a write with it has seen). */
export function dvvContextOf(token: CausalToken | undefined): CausalContext {
  if (token?.t !== 'dvv') return EMPTY_CONTEXT;
  return ccJoin(EMPTY_CONTEXT, { vv: token.vv, dc: token.dc ?? [] });
}

/** True when `rec` reflects every update the token has seen. */
export function covers(rec: KeyRecord | undefined, token: CausalToken): boolean {
  if (rec === undefined) return tokenIsEmpty(token);
  if (rec.t !== token.t) return false;
  switch (token.t) {
    case 'dvv':
      return ccCovers(
        contextOf((rec as { readonly sibs: readonly Sibling[] }).sibs),
        dvvContextOf(token),
      );
    case 'lww': {
      const ts = (rec as { s: LwwState }).s.ts;
      if (token.ts === null) return true;
      return ts !== null && compareHlc(ts, token.ts) >= 0;
    }
    case 'mv':
    case 'orset':
      return ccCovers((rec as { s: MvState }).s.cc, token.cc);
    case 'pn':
      return pnCovers((rec as { s: PnState }).s, token.s);
  }
}

function tokenIsEmpty(token: CausalToken): boolean {
  switch (token.t) {
    case 'dvv':
      return Object.keys(token.vv).length === 0 && (token.dc ?? []).length === 0;
    case 'lww':
      return token.ts === null;
    case 'mv':
    case 'orset':
      return Object.keys(token.cc.vv).length === 0 && token.cc.dc.length === 0;
    case 'pn':
      return Object.keys(token.s.p).length + Object.keys(token.s.n).length === 0;
  }
}

/** The opaque causal context string handed to clients. */
export function encodeContext(token: CausalToken): string {
  return Buffer.from(canonical(token), 'utf8').toString('base64url');
}

export function decodeContext(text: string): CausalToken {
  const bad = (why: string) =>
    new GossipError('SYNOD_ERR_BAD_CONTEXT', `causal context does not decode: ${why}`);
  if (typeof text !== 'string' || text.length > 1_000_000) throw bad('not a string');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw bad('not base64url JSON');
  }
  if (!isToken(v)) throw bad('unknown shape');
  return v;
}

function isDotList(v: unknown): v is Dot[] {
  return (
    Array.isArray(v) &&
    v.every(
      (d) =>
        Array.isArray(d) &&
        d.length === 2 &&
        typeof d[0] === 'string' &&
        Number.isSafeInteger(d[1]) &&
        (d[1] as number) > 0,
    )
  );
}

function isContext(v: unknown): v is CausalContext {
  if (v === null || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return isVersionVector(o.vv) && isDotList(o.dc);
}

function isCounterMap(v: unknown): boolean {
  return isVersionVector(v);
}

function isToken(v: unknown): v is CausalToken {
  if (v === null || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  switch (o.t) {
    case 'dvv':
      return isVersionVector(o.vv) && (o.dc === undefined || isDotList(o.dc));
    case 'lww':
      return o.ts === null || isHlcTimestamp(o.ts);
    case 'mv':
    case 'orset':
      return isContext(o.cc);
    case 'pn':
      return (
        o.s !== null &&
        typeof o.s === 'object' &&
        isCounterMap((o.s as Record<string, unknown>).p) &&
        isCounterMap((o.s as Record<string, unknown>).n)
      );
    default:
      return false;
  }
}

/** Structural check of a record received from another node. */
export function isKeyRecord(v: unknown): v is KeyRecord {
  if (v === null || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  const s = o.s as Record<string, unknown> | undefined;
  switch (o.t) {
    case 'dvv':
      return (
        Array.isArray(o.sibs) &&
        o.sibs.every((x: unknown) => {
          if (x === null || typeof x !== 'object') return false;
          const sib = x as Record<string, unknown>;
          return (
            typeof sib.n === 'string' &&
            Number.isSafeInteger(sib.c) &&
            (sib.c as number) > 0 &&
            isVersionVector(sib.vv) &&
            (sib.dc === undefined || isDotList(sib.dc))
          );
        })
      );
    case 'lww':
      return s !== undefined && s !== null && (s.ts === null || isHlcTimestamp(s.ts));
    case 'mv':
      return (
        s !== undefined &&
        s !== null &&
        isContext(s.cc) &&
        Array.isArray(s.e) &&
        s.e.every(
          (e: unknown) =>
            Array.isArray(e) &&
            e.length === 3 &&
            typeof e[0] === 'string' &&
            Number.isSafeInteger(e[1]),
        )
      );
    case 'orset':
      return (
        s !== undefined &&
        s !== null &&
        isContext(s.cc) &&
        Array.isArray(s.e) &&
        s.e.every(
          (e: unknown) =>
            Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isDotList(e[1]),
        )
      );
    case 'pn':
      return s !== undefined && s !== null && isCounterMap(s.p) && isCounterMap(s.n);
    default:
      return false;
  }
}

/** Sorts records for deterministic output (used by tests and tools). */
export function compareRecords(a: KeyRecord, b: KeyRecord): number {
  return compareCanonical(a, b);
}

/** Joins two tokens of one key (what a client has seen across operations). */
export function joinTokens(a: CausalToken | undefined, b: CausalToken): CausalToken {
  if (a === undefined || a.t !== b.t) return b;
  switch (b.t) {
    case 'dvv':
      return dvvToken(ccJoin(dvvContextOf(a), dvvContextOf(b)));
    case 'lww': {
      const x = (a as typeof b).ts;
      if (x === null) return b;
      if (b.ts === null) return a;
      return compareHlc(x, b.ts) >= 0 ? a : b;
    }
    case 'mv':
    case 'orset':
      return { t: b.t, cc: ccJoin((a as typeof b).cc, b.cc) };
    case 'pn':
      return { t: 'pn', s: pnMerge((a as typeof b).s, b.s) };
  }
}
