/**
 * Multi-Paxos's client session rule (actors/paxos/sessions.ts `ClientSessions`), mirrored for
 * the backup agent and restores: per client, the highest seq applied and the results of the
 * seqs inside a window of `window` (256 by default) below it. A command is a retry when its
 * seq fell below the window or its result is still held; any other command is applied, even
 * one that arrives after a later seq (pipelined clients). Applying the archive through this
 * rule gives exactly the state a Multi-Paxos replica has, and the results of the commands in
 * each window are kept, so a restored cluster answers a client's retry with the original
 * result, as the old one would.
 *
 * The table is part of the backed-up state: one key per client, `"\0psession/" + clientId`,
 * whose value is
 *
 *     u8 1 | u32 window | f64 maxSeq | u32 n | n × (f64 seq | u32 len | msgpack(result))
 *
 * with the seqs ascending and all above `maxSeq - window` (results below the window are
 * dropped when the window moves; `ClientSessions` drops them later, which nobody can observe).
 * Multi-Paxos never evicts a client, so a command touches exactly its client's key.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { Command } from '../../lib/replicated-log.js';
import { BackupError } from './errors.js';
import type { SessionRule } from './sessions.js';
import type { KeyedState } from './state.js';

export const PAXOS_SESSION_PREFIX = '\u0000psession/';
export const PAXOS_SESSION_WINDOW = 256;

/** `ClientSessions`' image (actors/paxos/sessions.ts `SessionsImage`), current form. */
export interface PaxosSessionsImage {
  readonly window: number;
  readonly clients: readonly (
    | readonly [string, number, readonly number[], readonly unknown[]]
    | readonly [string, number, readonly (readonly [number, unknown])[]]
  )[];
}

interface Client {
  maxSeq: number;
  /** seq → msgpack(result), for seqs inside the window, in ascending seq order once encoded. */
  readonly results: Map<number, Uint8Array>;
  /** The encoded value, until the next change. */
  value: Uint8Array | undefined;
}

function encodeClient(window: number, c: Client): Uint8Array {
  const seqs = [...c.results.keys()].sort((a, b) => a - b);
  let size = 17;
  for (const s of seqs) size += 12 + (c.results.get(s) as Uint8Array).byteLength;
  const b = Buffer.allocUnsafe(size);
  b.writeUInt8(1, 0);
  b.writeUInt32BE(window, 1);
  b.writeDoubleBE(c.maxSeq, 5);
  b.writeUInt32BE(seqs.length, 13);
  let off = 17;
  for (const s of seqs) {
    const r = c.results.get(s) as Uint8Array;
    b.writeDoubleBE(s, off);
    b.writeUInt32BE(r.byteLength, off + 8);
    b.set(r, off + 12);
    off += 12 + r.byteLength;
  }
  return b;
}

function decodeClient(v: Uint8Array, key: string): { window: number; client: Client } {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const bad = (what: string) =>
    new BackupError(
      'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
      `Multi-Paxos session ${JSON.stringify(key.slice(PAXOS_SESSION_PREFIX.length, 60))}: ${what}`,
    );
  if (b.length < 17 || b.readUInt8(0) !== 1) throw bad('unknown session format');
  const window = b.readUInt32BE(1);
  const maxSeq = b.readDoubleBE(5);
  const n = b.readUInt32BE(13);
  const results = new Map<number, Uint8Array>();
  let off = 17;
  for (let i = 0; i < n; i++) {
    if (off + 12 > b.length) throw bad('truncated');
    const seq = b.readDoubleBE(off);
    const len = b.readUInt32BE(off + 8);
    if (off + 12 + len > b.length) throw bad('truncated');
    results.set(seq, b.subarray(off + 12, off + 12 + len));
    off += 12 + len;
  }
  if (off !== b.length) throw bad('trailing bytes');
  return { window, client: { maxSeq, results, value: v } };
}

export class PaxosSessionState<Op> implements SessionRule<Op> {
  readonly protocol = 'paxos' as const;
  private clients = new Map<string, Client>();

  constructor(
    readonly inner: KeyedState<Op>,
    private window = PAXOS_SESSION_WINDOW,
  ) {}

  isDuplicate(cmd: Command<Op>): boolean {
    const c = this.clients.get(cmd.clientId);
    if (!c) return false;
    return cmd.seq <= c.maxSeq - this.window || c.results.has(cmd.seq);
  }

  apply(cmd: Command<Op>, meta: { index: number; term: number }): unknown {
    if (this.isDuplicate(cmd)) return undefined;
    const result = this.inner.apply(cmd.op, meta);
    let c = this.clients.get(cmd.clientId);
    if (!c) {
      c = { maxSeq: cmd.seq, results: new Map(), value: undefined };
      this.clients.set(cmd.clientId, c);
    }
    c.results.set(cmd.seq, encodeValue(result));
    if (cmd.seq > c.maxSeq) {
      c.maxSeq = cmd.seq;
      const low = c.maxSeq - this.window;
      for (const s of c.results.keys()) if (s <= low) c.results.delete(s);
    }
    c.value = undefined;
    return result;
  }

  /** An array, not a generator: the agent asks this for every entry it applies. */
  keysTouched(cmd: Command<Op>): string[] {
    if (this.isDuplicate(cmd)) return [];
    const out = [PAXOS_SESSION_PREFIX + cmd.clientId];
    for (const k of this.inner.keysTouched(cmd.op)) out.push(k);
    return out;
  }

  *keysTouchedEarlier(cmd: Command<Op>): Iterable<string> {
    yield PAXOS_SESSION_PREFIX + cmd.clientId;
    yield* this.inner.keysTouched(cmd.op);
  }

  mayHaveEvicted(): boolean {
    return false; // Multi-Paxos keeps every client's session
  }

  private valueOf(c: Client): Uint8Array {
    c.value ??= encodeClient(this.window, c);
    return c.value;
  }

  get(key: string): Uint8Array | undefined {
    if (key.startsWith(PAXOS_SESSION_PREFIX)) {
      const c = this.clients.get(key.slice(PAXOS_SESSION_PREFIX.length));
      return c ? this.valueOf(c) : undefined;
    }
    return this.inner.get(key);
  }

  get size(): number {
    return this.inner.size + this.clients.size;
  }

  *entries(): IterableIterator<[string, Uint8Array]> {
    yield* this.inner.entries();
    for (const [id, c] of this.clients) yield [PAXOS_SESSION_PREFIX + id, this.valueOf(c)];
  }

  /**
   * The user's entries stream into the inner state (no second array of the whole state); the
   * sessions are collected on the way. A failure leaves this object half-loaded: callers load
   * into a fresh one and drop it on error.
   */
  load(entries: Iterable<readonly [string, Uint8Array]>): void {
    const clients = new Map<string, Client>();
    let window: number | undefined;
    function* user(): Generator<readonly [string, Uint8Array]> {
      for (const e of entries) {
        if (e[0].startsWith(PAXOS_SESSION_PREFIX)) {
          const d = decodeClient(e[1], e[0]);
          if (window !== undefined && d.window !== window) {
            throw new BackupError(
              'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
              `Multi-Paxos sessions with two windows (${window} and ${d.window})`,
            );
          }
          window = d.window;
          clients.set(e[0].slice(PAXOS_SESSION_PREFIX.length), d.client);
        } else {
          yield e;
        }
      }
    }
    this.inner.load(user());
    this.clients = clients;
    if (window !== undefined) this.window = window;
  }

  /** The session table as `ClientSessions.toImage()` writes it (a replica snapshot's part). */
  toImage(): PaxosSessionsImage {
    const ids = [...this.clients.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return {
      window: this.window,
      clients: ids.map((id) => {
        const c = this.clients.get(id) as Client;
        const seqs = [...c.results.keys()].sort((a, b) => a - b);
        return [id, c.maxSeq, seqs, seqs.map((s) => decodeValue(c.results.get(s) as Uint8Array))];
      }),
    };
  }
}

/**
 * The agent's session entries of a `ClientSessions` image (both of its forms), as
 * `PaxosSessionState` stores them: what a replica snapshot from the cluster holds.
 */
export function paxosSessionEntries(image: PaxosSessionsImage): Array<[string, Uint8Array]> {
  if (
    image === null ||
    typeof image !== 'object' ||
    !Number.isSafeInteger(image.window) ||
    image.window < 1 ||
    !Array.isArray(image.clients)
  ) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'the Multi-Paxos snapshot holds no readable session table',
    );
  }
  const out: Array<[string, Uint8Array]> = [];
  for (const c of image.clients) {
    const [id, maxSeq] = c;
    const results = new Map<number, Uint8Array>();
    const low = maxSeq - image.window;
    const put = (seq: number, r: unknown) => {
      if (seq > low) results.set(seq, encodeValue(r));
    };
    if (c.length === 4) {
      const [, , seqs, values] = c;
      for (let i = 0; i < seqs.length; i++) put(seqs[i] as number, values[i]);
    } else for (const [k, v] of c[2]) put(k, v);
    out.push([
      PAXOS_SESSION_PREFIX + id,
      encodeClient(image.window, { maxSeq, results, value: undefined }),
    ]);
  }
  return out;
}
