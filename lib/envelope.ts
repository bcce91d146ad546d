/**
 * The unit that crosses a transport. Every message between actors, local or remote,
 * travels in an envelope; bodies are plain data (objects, arrays, strings, numbers,
 * booleans, null, Uint8Array) so they survive msgpack on any transport.
 */
export const PROTOCOL_VERSION = 1;

/**
 * - `tell`: a one-way message.
 * - `ask`: a request whose reply is correlated by `c`.
 * - `reply`: the answer to an `ask`, routed back to the asking system by `c`.
 * - `sys`: runtime control (watch, unwatch, terminated) between actor systems.
 */
export type EnvelopeKind = 'tell' | 'ask' | 'reply' | 'sys';

export interface Envelope {
  /** Protocol version of the sender. */
  v: number;
  k: EnvelopeKind;
  /** Destination address, `node/actor`. */
  to: string;
  /** Sender address, when the sender is an actor (or the asking system for replies). */
  from?: string;
  /** Correlation id for `ask` and `reply`. */
  c?: string;
  /** The message body. */
  m: unknown;
}

const KINDS: ReadonlySet<string> = new Set(['tell', 'ask', 'reply', 'sys']);

/** Checks the shape of a decoded envelope; returns a reason string when it is invalid. */
export function envelopeProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'envelope is not a map';
  }
  const e = value as Record<string, unknown>;
  if (typeof e.v !== 'number' || !Number.isInteger(e.v))
    return 'envelope field "v" is not an integer';
  if (e.v !== PROTOCOL_VERSION) return `unsupported protocol version ${String(e.v)}`;
  if (typeof e.k !== 'string' || !KINDS.has(e.k)) return 'envelope field "k" is not a known kind';
  if (typeof e.to !== 'string' || e.to.length === 0 || e.to.length > 1024) {
    return 'envelope field "to" is not an address';
  }
  if (e.from !== undefined && (typeof e.from !== 'string' || e.from.length > 1024)) {
    return 'envelope field "from" is not an address';
  }
  if (e.c !== undefined && (typeof e.c !== 'string' || e.c.length > 128)) {
    return 'envelope field "c" is not a correlation id';
  }
  if ((e.k === 'ask' || e.k === 'reply') && typeof e.c !== 'string') {
    return `envelope of kind "${e.k}" has no correlation id`;
  }
  if (!('m' in e)) return 'envelope has no message body "m"';
  return undefined;
}
