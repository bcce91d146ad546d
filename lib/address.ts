/**
 * Actor addresses have the form `node/actor`, e.g. `a/raft` or `laptop-2/chat/room-1`.
 * The node part is a node id; the actor part is a path of one or more segments.
 * Segments use letters, digits, `-`, `_`, `.`, `$` and `:`.
 */
export interface Address {
  readonly node: string;
  readonly path: string;
}

const SEGMENT = /^[A-Za-z0-9_.:$-]+$/;

export class AddressError extends Error {
  readonly code = 'SYNOD_ERR_BAD_ADDRESS';
}

export function isValidNodeId(id: string): boolean {
  return SEGMENT.test(id) && id.length <= 128;
}

export function isValidActorPath(path: string): boolean {
  if (path.length === 0 || path.length > 512) return false;
  return path.split('/').every((s) => SEGMENT.test(s));
}

export function parseAddress(text: string): Address {
  const slash = text.indexOf('/');
  if (slash <= 0) throw new AddressError(`bad actor address "${text}": expected node/actor`);
  const node = text.slice(0, slash);
  const path = text.slice(slash + 1);
  if (!isValidNodeId(node)) throw new AddressError(`bad node id "${node}" in address "${text}"`);
  if (!isValidActorPath(path))
    throw new AddressError(`bad actor path "${path}" in address "${text}"`);
  return { node, path };
}

export function formatAddress(node: string, path: string): string {
  if (!isValidNodeId(node)) throw new AddressError(`bad node id "${node}"`);
  if (!isValidActorPath(path)) throw new AddressError(`bad actor path "${path}"`);
  return `${node}/${path}`;
}

export function isValidAddress(text: string): boolean {
  try {
    parseAddress(text);
    return true;
  } catch {
    return false;
  }
}

/** The node part of an address, without full validation (hot path). */
export function nodeOf(address: string): string {
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
}
