/**
 * Version vectors: a map from replica id to the number of events of that replica seen.
 * Plain objects so they cross the wire; zero entries are omitted.
 */
export type VersionVector = Record<string, number>;

export function vvGet(vv: VersionVector, id: string): number {
  return vv[id] ?? 0;
}

/** Pointwise maximum. */
export function vvJoin(a: VersionVector, b: VersionVector): VersionVector {
  const out: VersionVector = { ...a };
  for (const [id, c] of Object.entries(b)) if (c > (out[id] ?? 0)) out[id] = c;
  return out;
}

/** True when `a` has seen every event `b` has seen. */
export function vvDescends(a: VersionVector, b: VersionVector): boolean {
  for (const [id, c] of Object.entries(b)) if ((a[id] ?? 0) < c) return false;
  return true;
}

export function vvEqual(a: VersionVector, b: VersionVector): boolean {
  return vvDescends(a, b) && vvDescends(b, a);
}

export function isVersionVector(v: unknown): v is VersionVector {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  for (const c of Object.values(v as Record<string, unknown>)) {
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 0) return false;
  }
  return true;
}
