/**
 * Multi-Paxos messages (plain data; they cross the msgpack codec). `from` is the sender's
 * actor address. Slots are positive integers; slot values are `SlotValue`s.
 *
 * Wire form (`toWire` / `fromWire`): the entries of accepts, decisions and catch-up replies
 * cross the codec as one packed byte string (`packSlotEntries`) instead of an array of
 * objects, and a command is encoded once, by the proposer that assigns it a slot (`d`): every
 * accept, decision, journal record and catch-up reply then copies bytes instead of walking,
 * checking, encoding and decoding the command object again (the learner decodes it once, when
 * it applies the slot).
 */
import {
  decodesToItself,
  decodeValue,
  decodeValueIn,
  encodeValue,
  wellFormed,
} from '../../lib/codec.js';
import type { Command } from '../../lib/replicated-log.js';
import {
  decodeCommandFast,
  decodeCommandFastAt,
  encodeCommandFast,
} from '../raft/command-codec.js';
import type { Ballot } from './ballot.js';
import { PaxosError } from './errors.js';

/**
 * What a slot holds. `t` is the round of the ballot that first proposed the value: it travels
 * with the value (a new leader re-proposes the value unchanged), so every replica applies a
 * slot with the same term. A command travels encoded (`d`, msgpack of the `Command`), exactly
 * as the proposer encoded it: the bytes are the value, so every replica compares and applies
 * the same bytes.
 */
export type SlotValue =
  | { readonly k: 'cmd'; readonly d: Uint8Array; readonly t: number }
  /** Fills a gap found by a new leader; with `b`, a read barrier with that id. */
  | { readonly k: 'noop'; readonly t: number; readonly b?: string };

export interface SlotEntry {
  readonly slot: number;
  readonly value: SlotValue;
}

export interface AcceptedSlot extends SlotEntry {
  readonly ballot: Ballot;
}

/**
 * Phase 1a for every slot ≥ `fromSlot`. With `maxBytes`, the promise carries about that many
 * bytes of accepted values at most (always at least one slot) and names the slot to ask for
 * next in `more`: the proposer asks again, with the same ballot, from there. A proposer of an
 * earlier version sends no `maxBytes` and gets every accepted slot in one promise.
 */
export interface MPrepare {
  readonly type: 'mp.prepare';
  readonly from: string;
  readonly ballot: Ballot;
  readonly fromSlot: number;
  readonly maxBytes?: number;
}

/**
 * Phase 1b: the acceptor's accepted proposals for slots ≥ fromSlot (above its floor). With
 * `more`, only those below `more`: the rest follow on a prepare from `more`.
 */
export interface MPromise {
  readonly type: 'mp.promise';
  readonly from: string;
  readonly ballot: Ballot;
  /** Slots ≤ floor are decided and were compacted away by this acceptor. */
  readonly floor: number;
  readonly accepted: readonly AcceptedSlot[];
  readonly more?: number;
}

/** What a slot's value weighs in a promise page: its command bytes plus a fixed overhead. */
export function slotValueBytes(v: SlotValue): number {
  return v.k === 'cmd' ? v.d.byteLength + 48 : 48 + (v.b?.length ?? 0);
}

/**
 * What an accepted slot weighs in a promise page on the wire (msgpack): its value, and its
 * ballot, whose proposer address is repeated in every entry. An upper bound: a page of 1,000
 * puts encodes to 0.83 (1-byte values), 0.90 (100) and 0.98 (1,000) of the sum.
 */
export function acceptedSlotBytes(a: AcceptedSlot): number {
  return slotValueBytes(a.value) + a.ballot.proposer.length + 40;
}

/** Phase 2a for a batch of slots. An empty batch is a keep-alive that renews leases. */
export interface MAccept {
  readonly type: 'mp.accept';
  readonly from: string;
  readonly ballot: Ballot;
  readonly entries: readonly SlotEntry[];
  /** Sender's clock when sent; echoed back so the leader can time its lease. */
  readonly sentAt: number;
  /**
   * The leader's read round when sent; echoed back. A read registered in round r is
   * confirmed once a phase-2 quorum acknowledged messages of round > r (ReadIndex).
   */
  readonly rid?: number;
}

/** Phase 2b. */
export interface MAccepted {
  readonly type: 'mp.accepted';
  readonly from: string;
  readonly ballot: Ballot;
  readonly slots: readonly number[];
  readonly sentAt: number;
  readonly floor: number;
  /** The `rid` of the accept this answers. */
  readonly rid?: number;
}

/** A rejection; `promised` is what the acceptor promised. `leased` when a lease blocked it. */
export interface MNack {
  readonly type: 'mp.nack';
  readonly from: string;
  readonly ballot: Ballot;
  readonly promised: Ballot;
  readonly leased?: boolean;
}

/** Chosen values, leader → learners. */
export interface MDecide {
  readonly type: 'mp.decide';
  readonly from: string;
  readonly entries: readonly SlotEntry[];
}

/**
 * Leader → proposers and learners: "I lead with `ballot`; slots ≤ chosenUpTo are chosen".
 * `learner` names a learner that holds every chosen slot (the leader's own).
 */
/**
 * Candidate → the other proposers: its phase 1 in `ballot` is making progress (a promise page
 * with slots it did not hold arrived). A follower holds off its own election for an election
 * timeout, and a candidate of a lower ballot steps down, as a Raft vote resets the timer: a
 * phase 1 that needs many pages is not outbid by the others timing out meanwhile. Sent at most
 * once per heartbeat interval, and only on progress, so a candidate that reaches no acceptor
 * suppresses no one. Proposers of an earlier version drop it (unknown type).
 */
export interface MCampaign {
  readonly type: 'mp.campaign';
  readonly from: string;
  readonly ballot: Ballot;
}

export interface MHeartbeat {
  readonly type: 'mp.heartbeat';
  readonly from: string;
  readonly ballot: Ballot;
  readonly chosenUpTo: number;
  readonly learner?: string;
}

/**
 * Leader → a learner that runs next to an acceptor: the slots in `runs` (inclusive ranges
 * `[lo, hi, lo, hi, ...]`) were chosen in `ballot`. The learner takes each value from its
 * co-located acceptor: any proposal for a chosen slot in a ballot ≥ `ballot` carries the
 * chosen value, so no value crosses the wire twice. A slot the acceptor does not hold (it
 * was not in the quorum and has not seen the accept yet, or restarted) is fetched by
 * catch-up.
 */
export interface MChosen {
  readonly type: 'mp.chosen';
  readonly from: string;
  readonly ballot: Ballot;
  readonly runs: readonly number[];
}

/** Most slots one `mp.chosen` may name (bounds the work a malformed message can cause). */
export const MAX_CHOSEN_SPAN = 1 << 16;

/** Learner → leader: how far the learner has decided (and applied). */
export interface MLearned {
  readonly type: 'mp.learned';
  readonly from: string;
  readonly decidedUpTo: number;
}

/** Learner → learner: send me what you know of slots [fromSlot, toSlot]. */
export interface MCatchup {
  readonly type: 'mp.catchup';
  readonly from: string;
  readonly fromSlot: number;
  readonly toSlot: number;
}

export interface SnapshotImage {
  /** Last slot covered. */
  readonly index: number;
  readonly term: number;
  /** Encoded replica state: state machine image and client sessions. */
  readonly data: Uint8Array;
}

export interface MCatchupReply {
  readonly type: 'mp.catchup-reply';
  readonly from: string;
  readonly snapshot?: SnapshotImage;
  readonly entries: readonly SlotEntry[];
  /** How far the sender has decided. */
  readonly decidedUpTo: number;
  /**
   * The sender's best knowledge of the chosen prefix (the leader's `chosenUpTo` from its
   * latest heartbeat, or the sender's own decided index if higher): may lag the leader by a
   * heartbeat. For an exact bound, ask the leader's proposer `mp.read`.
   */
  readonly chosenUpTo?: number;
  /** The learner of the leader the sender last heard from (holds every chosen slot). */
  readonly leader?: string;
}

/** Learner → co-located acceptor: slots ≤ upTo are in a durable snapshot; drop them. */
export interface MCompact {
  readonly type: 'mp.compact';
  readonly from: string;
  readonly upTo: number;
}

export type MultiPaxosMessage =
  | MPrepare
  | MPromise
  | MAccept
  | MAccepted
  | MNack
  | MDecide
  | MChosen
  | MHeartbeat
  | MCampaign
  | MLearned
  | MCatchup
  | MCatchupReply
  | MCompact;

export interface MOutbound {
  readonly to: string;
  readonly msg: MultiPaxosMessage;
}

function isSlot(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isCommand(v: unknown): v is Command {
  if (v === null || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  return typeof c.clientId === 'string' && typeof c.seq === 'number' && 'op' in c;
}

/**
 * The slot value of a client command: the command encoded once, here, as the msgpack array
 * `[clientId, seq, op]` (an array decodes faster than a map; Raft's log uses the same form).
 */
export function commandValue(command: Command, t: number): SlotValue {
  // Raft's fast writer (actors/raft/command-codec.ts) writes msgpackr's bytes, byte for byte,
  // and takes only commands that decode to themselves; anything else goes through msgpackr.
  let d = encodeCommandFast(command.clientId, command.seq, command.op);
  // (Its op and client id then decode to themselves; the seq must also be an integer.)
  const self =
    d !== undefined ? Number.isSafeInteger(command.seq) : commandDecodesToItself(command);
  if (d === undefined) d = encodeValue([command.clientId, command.seq, command.op]);
  const v: SlotValue = { k: 'cmd', d, t };
  // The proposer's own copy remembers the command, so the learner next to it need not decode
  // the bytes again, when decoding them would give back this very command (see LOCAL_COMMAND).
  // (A plain assignment: Object.defineProperty, to hide it from deep comparisons, cost more
  // than the decode it saves. Neither msgpack nor the wire-safety check looks at symbol keys.)
  if (self) (v as LocalCommandValue)[LOCAL_COMMAND] = command;
  return v;
}

/**
 * On a `cmd` slot value made by `commandValue` in this process: the command its bytes encode
 * (a symbol key, so it never crosses a wire or goes into a journal, and no peer can set it).
 * Set only when decoding the bytes gives back a command equal to this one in every way a
 * state machine can observe (`decodesToItself`), so a learner that applies the command from
 * here applies exactly what the other replicas decode from the bytes.
 */
export const LOCAL_COMMAND: unique symbol = Symbol('synod.paxos.localCommand');

type LocalCommandValue = SlotValue & { [LOCAL_COMMAND]?: Command };

/** The command of a `cmd` value: the proposer's own object when it has one, else decoded. */
export function commandOf(v: SlotValue & { k: 'cmd' }): Command | string {
  return (v as LocalCommandValue)[LOCAL_COMMAND] ?? decodeCommand(v.d);
}

/**
 * Lets the proposer's own command object go once the learner next to it applied it (the
 * value itself stays, for catch-up, until compaction: 10,000 slots by default). Otherwise
 * the command, its op and their strings lived as long as the value, and the young-generation
 * collector copied and promoted them on every write. `commandOf` decodes the bytes after.
 */
export function releaseLocalCommand(v: SlotValue & { k: 'cmd' }): void {
  // Assigned, not deleted: a delete would change the object's shape.
  if ((v as LocalCommandValue)[LOCAL_COMMAND] !== undefined) {
    (v as LocalCommandValue)[LOCAL_COMMAND] = undefined;
  }
}

function commandDecodesToItself(c: Command): boolean {
  return (
    typeof c.clientId === 'string' &&
    wellFormed(c.clientId) &&
    Number.isSafeInteger(c.seq) &&
    !Object.is(c.seq, -0) &&
    decodesToItself(c.op)
  );
}

/**
 * The command a `cmd` slot value carries, or a reason when its bytes are not a command.
 * Also reads the map form `{ clientId, seq, op }`.
 */
export function decodeCommand(d: Uint8Array): Command | string {
  // The common subset read directly (Raft's fast reader); anything else, or anything
  // malformed, goes to msgpackr as before, so every replica reaches the same value.
  const fast = decodeCommandFast(d);
  if (fast !== undefined && typeof fast.clientId === 'string' && typeof fast.seq === 'number') {
    return fast as Command;
  }
  return decodeCommandSlow(d);
}

/** `decodeCommand` of the `len` bytes at `start` in `buffer` (no view unless it must). */
function decodeCommandIn(buffer: ArrayBufferLike, start: number, len: number): Command | string {
  const fast = decodeCommandFastAt(buffer, start, len);
  if (fast !== undefined && typeof fast.clientId === 'string' && typeof fast.seq === 'number') {
    return fast as Command;
  }
  return decodeCommandSlow(new Uint8Array(buffer, start, len));
}

/** msgpackr's reading of a command's bytes (anything outside the fast reader's subset). */
function decodeCommandSlow(d: Uint8Array): Command | string {
  let c: unknown;
  try {
    c = decodeView(d);
  } catch (err) {
    return (err as Error).message;
  }
  if (Array.isArray(c)) {
    if (c.length === 3 && typeof c[0] === 'string' && typeof c[1] === 'number') {
      return { clientId: c[0], seq: c[1], op: c[2] };
    }
  } else if (isCommand(c)) return c;
  return 'the value is not a command (clientId, seq, op)';
}

/**
 * Decodes through a `Buffer` over the whole underlying memory, by range. Two reasons:
 * - a slot value's bytes are usually a view into the packed entries of the message (or
 *   journal batch) that brought them, and msgpackr caches a DataView on the object it decodes
 *   from: decoding each view by itself made one DataView per command, the wrapper makes one
 *   per message (consecutive commands share the cached wrapper);
 * - msgpack gives a `bin` inside the command the class of its input, and the bytes arrive as
 *   a `Buffer` on one path (the proposer's own encoding, a snapshot, a file) and as a plain
 *   `Uint8Array` on another (an unpacked message, a restarted acceptor's journal): always a
 *   Buffer, so every replica's state machine gets the same class, live or restarted.
 */
let wholeOf: ArrayBufferLike | undefined;
let whole: Buffer | undefined;

function decodeView(d: Uint8Array): unknown {
  if (d.byteLength === 0) return decodeValue(d);
  if (d.buffer !== wholeOf || whole === undefined) {
    wholeOf = d.buffer;
    whole = Buffer.from(d.buffer);
  }
  return decodeValueIn(whole, d.byteOffset, d.byteOffset + d.byteLength);
}

export function isSlotValue(v: unknown): v is SlotValue {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Record<string, unknown>;
  if (typeof s.t !== 'number') return false;
  if (s.k === 'noop') return s.b === undefined || typeof s.b === 'string';
  return s.k === 'cmd' && s.d instanceof Uint8Array && s.d.length > 0;
}

/**
 * A slot value as stored by an earlier version (the command as an object, `c`), converted to
 * the current form; any other value is returned unchanged. Used when reading old journals.
 */
export function upgradeSlotValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  const s = v as Record<string, unknown>;
  if (s.k === 'cmd' && s.d === undefined && isCommand(s.c) && typeof s.t === 'number') {
    return commandValue(s.c, s.t);
  }
  return v;
}

// ---------------------------------------------------------------------------- packed entries
//
// Layout, little-endian, repeated per entry:
//
//     slot f64 | t f64 | kind u8 (0 cmd, 1 noop, 2 noop with barrier) | length u32 | data
//
// `data` is the encoded command (kind 0) or the barrier id in UTF-8 (kind 2).

const HEADER = 21;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export function packSlotEntries(entries: readonly SlotEntry[]): Uint8Array {
  const n = entries.length;
  const barriers: (Uint8Array | undefined)[] = [];
  let size = 0;
  for (let i = 0; i < n; i++) {
    const v = (entries[i] as SlotEntry).value;
    let len = 0;
    if (v.k === 'cmd') len = v.d.byteLength;
    else if (v.b !== undefined) {
      const b = utf8.encode(v.b);
      barriers[i] = b;
      len = b.byteLength;
    }
    size += HEADER + len;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i] as SlotEntry;
    const v = e.value;
    const data = v.k === 'cmd' ? v.d : barriers[i];
    dv.setFloat64(off, e.slot, true);
    dv.setFloat64(off + 8, v.t, true);
    dv.setUint8(off + 16, v.k === 'cmd' ? 0 : data !== undefined ? 2 : 1);
    const len = data?.byteLength ?? 0;
    dv.setUint32(off + 17, len, true);
    if (data !== undefined) out.set(data, off + HEADER);
    off += HEADER + len;
  }
  return out;
}

function badPacked(why: string): never {
  throw new PaxosError('SYNOD_ERR_PAXOS_BAD_MESSAGE', `packed entries: ${why}`);
}

/**
 * Why the entry at byte `off` of packed entries is malformed, or undefined (checks the
 * header, the bounds and the value kind; a barrier id must be UTF-8).
 */
function entryProblem(bytes: Uint8Array, dv: DataView, off: number): string | undefined {
  const end = bytes.byteLength;
  if (end - off < HEADER) return `truncated header at byte ${off}`;
  const slot = dv.getFloat64(off, true);
  const t = dv.getFloat64(off + 8, true);
  const kind = dv.getUint8(off + 16);
  const len = dv.getUint32(off + 17, true);
  const start = off + HEADER;
  if (start + len > end) return `entry at byte ${off} runs past the end`;
  if (!isSlot(slot)) return `bad slot at byte ${off}`;
  if (!Number.isFinite(t)) return `bad term at byte ${off + 8}`;
  if (kind === 0) return len === 0 ? `empty command at byte ${off}` : undefined;
  if (kind === 1) return len !== 0 ? `no-op with data at byte ${off}` : undefined;
  if (kind === 2) {
    try {
      fromUtf8.decode(new Uint8Array(bytes.buffer, bytes.byteOffset + start, len));
    } catch {
      return `barrier id is not UTF-8 at byte ${start}`;
    }
    return undefined;
  }
  return `unknown value kind ${kind} at byte ${off + 16}`;
}

/** The value of the (well-formed) entry at byte `off`; a command's bytes are a view. */
function valueAt(bytes: Uint8Array, dv: DataView, off: number): SlotValue {
  const t = dv.getFloat64(off + 8, true);
  const kind = dv.getUint8(off + 16);
  const len = dv.getUint32(off + 17, true);
  // a plain view (Buffer#subarray goes through species lookups and is slower)
  const data = new Uint8Array(bytes.buffer, bytes.byteOffset + off + HEADER, len);
  if (kind === 0) return { k: 'cmd', d: data, t };
  if (kind === 1) return { k: 'noop', t };
  return { k: 'noop', t, b: fromUtf8.decode(data) };
}

/**
 * Entries from `packSlotEntries`' bytes; command values are views into `bytes` (no copy).
 * Throws `PaxosError('SYNOD_ERR_PAXOS_BAD_MESSAGE')` on malformed input.
 */
export function unpackSlotEntries(bytes: Uint8Array): SlotEntry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SlotEntry[] = [];
  const end = bytes.byteLength;
  let off = 0;
  while (off < end) {
    const problem = entryProblem(bytes, dv, off);
    if (problem !== undefined) badPacked(problem);
    out.push({ slot: dv.getFloat64(off, true), value: valueAt(bytes, dv, off) });
    off += HEADER + dv.getUint32(off + 17, true);
  }
  return out;
}

/**
 * Checks packed entries where they lie, as `unpackSlotEntries` does, without building them:
 * the reason the bytes are malformed, or undefined.
 */
export function packedEntriesProblem(bytes: Uint8Array): string | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  for (let off = 0; off < end; off += HEADER + dv.getUint32(off + 17, true)) {
    const problem = entryProblem(bytes, dv, off);
    if (problem !== undefined) return `packed entries: ${problem}`;
  }
  return undefined;
}

// Reading well-formed packed entries in place (checked by `packedEntriesProblem` or
// `unpackSlotEntries` first): an acceptor keeps an accept's bytes as they arrived and refers
// to an entry by its byte offset, so a follower builds no object per slot; the value is made
// only when something asks for one (a promise, a catch-up reply, a test).

let viewFor: Uint8Array | undefined;
let viewOfPacked: DataView = new DataView(new ArrayBuffer(0));

/** A DataView of `packed` (the last one made is reused: consecutive reads share it). */
function packedView(packed: Uint8Array): DataView {
  if (packed !== viewFor) {
    viewFor = packed;
    viewOfPacked = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  }
  return viewOfPacked;
}

/** The slot of the entry at byte `off`. */
export function packedSlotAt(packed: Uint8Array, off: number): number {
  return packedView(packed).getFloat64(off, true);
}

/** The term (`t`) of the value of the entry at byte `off`. */
export function packedTermAt(packed: Uint8Array, off: number): number {
  return packedView(packed).getFloat64(off + 8, true);
}

/** True when the entry at byte `off` holds a command (not a no-op). */
export function packedIsCommand(packed: Uint8Array, off: number): boolean {
  return packedView(packed).getUint8(off + 16) === 0;
}

/** The byte offset of the entry after the one at `off` (`packed.byteLength` after the last). */
export function nextPackedEntry(packed: Uint8Array, off: number): number {
  return off + HEADER + packedView(packed).getUint32(off + 17, true);
}

/** The value of the entry at byte `off`, as `unpackSlotEntries` makes it. */
export function packedValueAt(packed: Uint8Array, off: number): SlotValue {
  return valueAt(packed, packedView(packed), off);
}

/** `decodeCommand` of the command in the entry at byte `off`, read where it lies. */
export function packedCommandAt(packed: Uint8Array, off: number): Command | string {
  const len = packedView(packed).getUint32(off + 17, true);
  return decodeCommandIn(packed.buffer, packed.byteOffset + off + HEADER, len);
}

const PACKED = new Set(['mp.accept', 'mp.decide', 'mp.catchup-reply']);

/**
 * On a message `fromWire` unpacked: the packed entries exactly as received (a symbol key, so
 * it never crosses a wire and a peer cannot set it). The acceptor journals these bytes as
 * they are when every entry of an accept becomes a record, instead of packing them again.
 */
export const PACKED_ENTRIES: unique symbol = Symbol('synod.paxos.packedEntries');

/**
 * The form of `msg` that crosses the codec: entries packed into one byte string. Every other
 * message is returned as it is.
 */
export function toWire(msg: MultiPaxosMessage): unknown {
  if (!PACKED.has(msg.type)) return msg;
  const m = msg as MAccept | MDecide | MCatchupReply;
  return { ...m, entries: packSlotEntries(m.entries) };
}

/**
 * The form of `msg` for an actor in this process that would otherwise get `wire` (from
 * `toWire(msg)`): the in-memory message, entries as the sender's own objects (so the
 * receiver need not unpack them, and values keep what only the sender's objects carry, such
 * as `LOCAL_COMMAND`), with the packed bytes under `PACKED_ENTRIES` for the acceptor's
 * journal. A message without packed entries is `wire` itself.
 */
export function localForm(msg: MultiPaxosMessage, wire: unknown): MultiPaxosMessage {
  if (wire === msg) return msg;
  const packed = (wire as { entries?: unknown }).entries;
  if (!(packed instanceof Uint8Array)) return wire as MultiPaxosMessage;
  return { ...msg, [PACKED_ENTRIES]: packed } as unknown as MultiPaxosMessage;
}

/** An `mp.accept` whose entries stay packed, as received (see `packedAcceptFromWire`). */
export interface MPackedAccept extends Omit<MAccept, 'entries'> {
  readonly entries: Uint8Array;
}

/**
 * For an acceptor: a received `mp.accept` in wire form (entries packed) checked where it
 * lies — the same checks as `fromWire` — with its entries left packed, so the acceptor
 * stores each entry as a byte offset into the bytes it journals; or a reason why it is
 * malformed. `undefined` for any other message (and for an accept built in this process):
 * use `fromWire`.
 */
export function packedAcceptFromWire(
  raw: unknown,
): MPackedAccept | { readonly problem: string } | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const r = raw as Record<string, unknown>;
  if (r.type !== 'mp.accept' || !(r.entries instanceof Uint8Array)) return undefined;
  const bad = packedEntriesProblem(r.entries);
  if (bad !== undefined) return { problem: `mp.accept: ${bad}` };
  const problem = multiMessageProblem(r, true);
  return problem === undefined ? (r as unknown as MPackedAccept) : { problem };
}

/**
 * A received message back in its in-memory form (packed entries unpacked), or a reason why
 * it is malformed (`multiMessageProblem` plus the checks of the packed layout).
 */
export function fromWire(raw: unknown): MultiPaxosMessage | { readonly problem: string } {
  if (raw === null || typeof raw !== 'object') return { problem: 'message is not an object' };
  const r = raw as Record<string, unknown>;
  let msg = raw;
  let unpacked = false;
  if ((r as { [PACKED_ENTRIES]?: unknown })[PACKED_ENTRIES] instanceof Uint8Array) {
    // Built in this process (`localForm`: a symbol key never crosses a wire): its entries
    // are the sender's own checked objects.
    unpacked = Array.isArray(r.entries);
  } else if (PACKED.has(r.type as string) && r.entries instanceof Uint8Array) {
    try {
      msg = { ...r, entries: unpackSlotEntries(r.entries), [PACKED_ENTRIES]: r.entries };
      unpacked = true;
    } catch (err) {
      return { problem: `${String(r.type)}: ${(err as Error).message}` };
    }
  }
  const problem = multiMessageProblem(msg, unpacked);
  return problem === undefined ? (msg as MultiPaxosMessage) : { problem };
}

function entriesOk(v: unknown, withBallot = false): boolean {
  return (
    Array.isArray(v) &&
    v.every((e) => {
      if (e === null || typeof e !== 'object') return false;
      const r = e as Record<string, unknown>;
      return isSlot(r.slot) && isSlotValue(r.value) && (!withBallot || isBallotLike(r.ballot));
    })
  );
}

function isBallotLike(b: unknown): boolean {
  if (b === null || typeof b !== 'object') return false;
  const x = b as Record<string, unknown>;
  return (
    typeof x.round === 'number' && Number.isSafeInteger(x.round) && typeof x.proposer === 'string'
  );
}

/**
 * Returns a reason when `value` is not a well-formed Multi-Paxos message. `entriesChecked`:
 * its entries came from `unpackSlotEntries`, which checked them already.
 */
export function multiMessageProblem(value: unknown, entriesChecked = false): string | undefined {
  if (value === null || typeof value !== 'object') return 'message is not an object';
  const m = value as Record<string, unknown>;
  if (typeof m.from !== 'string' || m.from.length === 0) return 'message has no sender "from"';
  const bad = (what: string) => `${String(m.type)}: ${what}`;
  switch (m.type) {
    case 'mp.prepare':
      if (!isBallotLike(m.ballot)) return bad('ballot');
      if (m.maxBytes !== undefined && !(isSlot(m.maxBytes) && m.maxBytes > 0)) {
        return bad('maxBytes');
      }
      return isSlot(m.fromSlot) ? undefined : bad('fromSlot');
    case 'mp.promise':
      if (!isBallotLike(m.ballot) || !isSlot(m.floor)) return bad('ballot or floor');
      if (m.more !== undefined && !(isSlot(m.more) && m.more > 0)) return bad('more');
      return entriesOk(m.accepted, true) ? undefined : bad('accepted');
    case 'mp.accept':
      if (!isBallotLike(m.ballot) || typeof m.sentAt !== 'number') return bad('ballot or sentAt');
      if (m.rid !== undefined && !isSlot(m.rid)) return bad('rid');
      return entriesChecked || entriesOk(m.entries) ? undefined : bad('entries');
    case 'mp.accepted':
      if (!isBallotLike(m.ballot) || typeof m.sentAt !== 'number' || !isSlot(m.floor)) {
        return bad('ballot, sentAt or floor');
      }
      if (m.rid !== undefined && !isSlot(m.rid)) return bad('rid');
      return Array.isArray(m.slots) && m.slots.every(isSlot) ? undefined : bad('slots');
    case 'mp.nack':
      return isBallotLike(m.ballot) && isBallotLike(m.promised) ? undefined : bad('ballots');
    case 'mp.decide':
      return entriesChecked || entriesOk(m.entries) ? undefined : bad('entries');
    case 'mp.chosen': {
      if (!isBallotLike(m.ballot)) return bad('ballot');
      const r = m.runs;
      if (!Array.isArray(r) || r.length % 2 !== 0) return bad('runs');
      let span = 0;
      for (let i = 0; i < r.length; i += 2) {
        const lo = r[i];
        const hi = r[i + 1];
        if (!isSlot(lo) || !isSlot(hi) || lo < 1 || hi < lo) return bad('runs');
        span += hi - lo + 1;
      }
      return span <= MAX_CHOSEN_SPAN ? undefined : bad('runs name too many slots');
    }
    case 'mp.campaign':
      return isBallotLike(m.ballot) ? undefined : bad('ballot');
    case 'mp.heartbeat':
      if (!isBallotLike(m.ballot) || !isSlot(m.chosenUpTo)) return bad('ballot or chosenUpTo');
      return m.learner === undefined || typeof m.learner === 'string' ? undefined : bad('learner');
    case 'mp.learned':
      return isSlot(m.decidedUpTo) ? undefined : bad('decidedUpTo');
    case 'mp.catchup':
      return isSlot(m.fromSlot) && isSlot(m.toSlot) ? undefined : bad('slot range');
    case 'mp.catchup-reply': {
      if (!isSlot(m.decidedUpTo) || !(entriesChecked || entriesOk(m.entries))) {
        return bad('entries');
      }
      if (m.chosenUpTo !== undefined && !isSlot(m.chosenUpTo)) return bad('chosenUpTo');
      if (m.leader !== undefined && typeof m.leader !== 'string') return bad('leader');
      if (m.snapshot === undefined) return undefined;
      const s = m.snapshot as Record<string, unknown> | null;
      return s && isSlot(s.index) && typeof s.term === 'number' && s.data instanceof Uint8Array
        ? undefined
        : bad('snapshot');
    }
    case 'mp.compact':
      return isSlot(m.upTo) ? undefined : bad('upTo');
    default:
      return `unknown message type ${JSON.stringify(m.type)}`;
  }
}
