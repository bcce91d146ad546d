/**
 * Multi-Paxos acceptor core: one promised ballot for all slots (phase 1 runs once for every
 * slot above the leader's position), one accepted proposal per slot, and a `floor` below
 * which decided slots were compacted into a snapshot. Pure and deterministic; time is an
 * input (`now`) only for the optional leader lease.
 *
 * I/O contract (the shell must honour it, in order): make `persist` durable — accepted
 * records, then the hard state (promised ballot and floor), then the compaction — and only
 * then send `send`. The shell may step further messages while a write is in flight (group
 * commit) provided the writes reach the disk in the order of the steps, and that every send
 * waits for the write of its own step or, for a step that writes nothing, for every write of
 * an earlier step (its reply may report state those hold). The core's state runs ahead of the
 * disk meanwhile: after a failed write the shell must not answer from it again.
 *
 * Lease (optional, `leaseMs > 0`): acknowledging a phase-2 message from proposer P promises
 * not to promise any other proposer for `leaseMs` of this acceptor's clock. A restarted
 * acceptor forgot whom it leased to, so it promises nobody for `leaseMs` after restart.
 */
import { type Ballot, ballotAtLeast, ballotEquals, ZERO_BALLOT } from './ballot.js';
import {
  type AcceptedSlot,
  acceptedSlotBytes,
  type MOutbound,
  type MPackedAccept,
  type MPromise,
  type MultiPaxosMessage,
  nextPackedEntry,
  PACKED_ENTRIES,
  packedSlotAt,
  packedValueAt,
  type SlotEntry,
  type SlotValue,
} from './multi-messages.js';

export interface MultiAcceptorHardState {
  readonly promised: Ballot;
  readonly floor: number;
}

export interface MultiAcceptorDurableState extends MultiAcceptorHardState {
  readonly accepted: readonly AcceptedSlot[];
}

export interface MultiAcceptorPersist {
  /** Newly accepted proposals (append to the acceptor's journal). */
  readonly records?: readonly AcceptedSlot[];
  /** The new promised ballot and floor (replace atomically). */
  readonly hard?: MultiAcceptorHardState;
  /** Slots ≤ compactTo may be dropped from the journal (after `hard` is durable). */
  readonly compactTo?: number;
  /**
   * Instead of `records`, when an accept's entries came packed (from another process, or
   * with the packed bytes of a local send) and every entry was accepted: those bytes, all
   * accepted in `ballot`; `maxSlot` is the highest slot among them. The journal stores the
   * bytes as they are (no record object per slot, no second packing).
   */
  readonly batch?: {
    readonly ballot: Ballot;
    readonly packed: Uint8Array;
    readonly maxSlot: number;
  };
}

export interface MultiAcceptorOutput {
  readonly persist?: MultiAcceptorPersist;
  readonly send: MOutbound[];
}

export interface MultiAcceptorOptions {
  readonly id: string;
  /** Lease length granted to the leader, 0 (default) for no leases. */
  readonly leaseMs?: number;
  /**
   * The proposer on this acceptor's node. When the acceptor promises another proposer's
   * ballot it tells this one (`mp.campaign`), which then holds off its own election: as a
   * Raft vote resets the voter's timer, so a long phase 1 is not outbid by the node it asked.
   */
  readonly localProposer?: string;
}

export interface MultiAcceptorView {
  readonly promised: Ballot;
  readonly floor: number;
  readonly acceptedSlots: number;
  readonly maxAcceptedSlot: number;
  readonly leaseHolder?: string;
  readonly leaseUntil?: number;
}

export class MultiAcceptorCore {
  private promised: Ballot;
  private floor: number;
  private readonly accepted: SlotTable;
  /** Highest slot ever accepted here (or the floor), kept so `view` is O(1). */
  private maxSlot: number;
  private leaseHolder: string | undefined;
  private leaseUntil = Number.NEGATIVE_INFINITY;
  private readonly leaseMs: number;

  constructor(
    private readonly opts: MultiAcceptorOptions,
    restored?: MultiAcceptorDurableState,
    now = 0,
  ) {
    this.promised = restored?.promised ?? ZERO_BALLOT;
    this.floor = restored?.floor ?? 0;
    this.accepted = new SlotTable(this.floor + 1);
    for (const a of restored?.accepted ?? []) {
      if (a.slot <= this.floor) continue;
      const cur = this.accepted.ballotAt(a.slot);
      if (!cur || ballotAtLeast(a.ballot, cur)) this.accepted.set(a);
    }
    this.maxSlot = this.floor;
    for (const a of this.accepted.from(0)) if (a.slot > this.maxSlot) this.maxSlot = a.slot;
    this.leaseMs = opts.leaseMs ?? 0;
    // After a restart we do not know whom we leased to: promise nobody for a lease length.
    if (this.leaseMs > 0 && restored) this.leaseUntil = now + this.leaseMs;
  }

  view(): MultiAcceptorView {
    const max = Math.max(this.maxSlot, this.floor);
    return {
      promised: this.promised,
      floor: this.floor,
      acceptedSlots: this.accepted.size,
      maxAcceptedSlot: max,
      ...(this.leaseMs > 0 && this.leaseHolder !== undefined
        ? { leaseHolder: this.leaseHolder, leaseUntil: this.leaseUntil }
        : {}),
    };
  }

  /** The accepted proposal for a slot (for tests and invariant checks). */
  acceptedAt(slot: number): AcceptedSlot | undefined {
    return this.accepted.get(slot);
  }

  /** The slot table itself, read in place by the co-located learner (see `LocalSlots`). */
  get slots(): SlotTable {
    return this.accepted;
  }

  get promisedBallot(): Ballot {
    return this.promised;
  }

  get compactedFloor(): number {
    return this.floor;
  }

  step(msg: MultiPaxosMessage, now = 0): MultiAcceptorOutput {
    switch (msg.type) {
      case 'mp.prepare':
        return this.prepare(msg.from, msg.ballot, msg.fromSlot, now, msg.maxBytes);
      case 'mp.accept':
        return this.accept(
          msg.from,
          msg.ballot,
          msg.entries,
          msg.sentAt,
          now,
          msg.rid,
          (msg as { [PACKED_ENTRIES]?: Uint8Array })[PACKED_ENTRIES],
        );
      case 'mp.compact':
        return this.compact(msg.upTo);
      default:
        return { send: [] };
    }
  }

  private nack(to: string, ballot: Ballot, leased = false): MultiAcceptorOutput {
    return {
      send: [
        {
          to,
          msg: {
            type: 'mp.nack',
            from: this.opts.id,
            ballot,
            promised: this.promised,
            ...(leased ? { leased: true } : {}),
          },
        },
      ],
    };
  }

  private prepare(
    from: string,
    ballot: Ballot,
    fromSlot: number,
    now: number,
    maxBytes: number | undefined,
  ) {
    if (!ballotAtLeast(ballot, this.promised)) return this.nack(from, ballot);
    if (this.leaseMs > 0 && now < this.leaseUntil && ballot.proposer !== this.leaseHolder) {
      return this.nack(from, ballot, true);
    }
    const changed = !ballotEquals(ballot, this.promised);
    this.promised = ballot;
    // A proposer of an earlier version asks for everything at once (no `maxBytes`).
    const { accepted, more } = this.accepted.page(fromSlot, maxBytes ?? Number.POSITIVE_INFINITY);
    const promise: MPromise = {
      type: 'mp.promise',
      from: this.opts.id,
      ballot,
      floor: this.floor,
      accepted,
      ...(more !== undefined ? { more } : {}),
    };
    const send: MOutbound[] = [{ to: from, msg: promise }];
    const local = this.opts.localProposer;
    if (local !== undefined && from !== local) {
      send.push({ to: local, msg: { type: 'mp.campaign', from, ballot } });
    }
    const out: MultiAcceptorOutput = { send };
    return changed ? { ...out, persist: { hard: this.hard() } } : out;
  }

  /**
   * Phase 2a whose entries stayed packed (`packedAcceptFromWire`): the same decisions as for
   * `mp.accept`, but each accepted entry is stored as its byte offset into `msg.entries`, and
   * when every entry was accepted the journal gets those bytes as they are (`persist.batch`):
   * no object per slot on a follower.
   */
  acceptPacked(msg: MPackedAccept, now = 0): MultiAcceptorOutput {
    const { from, ballot } = msg;
    if (!ballotAtLeast(ballot, this.promised)) return this.nack(from, ballot);
    const changed = !ballotEquals(ballot, this.promised);
    this.promised = ballot;
    if (this.leaseMs > 0) {
      this.leaseHolder = ballot.proposer;
      this.leaseUntil = now + this.leaseMs;
    }
    const packed = msg.entries;
    const end = packed.byteLength;
    const slots: number[] = [];
    /** Byte offsets of the entries accepted. */
    const taken: number[] = [];
    let entries = 0;
    let maxSlot = 0;
    for (let off = 0; off < end; off = nextPackedEntry(packed, off)) {
      entries++;
      const slot = packedSlotAt(packed, off);
      if (slot <= this.floor) continue;
      slots.push(slot);
      const cur = this.accepted.ballotAt(slot);
      if (cur && ballotEquals(cur, ballot)) continue; // duplicate: one value per ballot
      this.accepted.putPacked(slot, ballot, packed, off);
      if (slot > this.maxSlot) this.maxSlot = slot;
      if (slot > maxSlot) maxSlot = slot;
      taken.push(off);
    }
    const count = taken.length;
    let persist: MultiAcceptorPersist | undefined;
    if (count > 0 && count === entries) {
      persist = { batch: { ballot, packed, maxSlot }, ...(changed ? { hard: this.hard() } : {}) };
    } else if (count > 0) {
      // Some entries were skipped (at or below the floor, or accepted before in this ballot):
      // journal the accepted ones only, as records.
      const records = taken.map(
        (off): AcceptedSlot => ({
          slot: packedSlotAt(packed, off),
          ballot,
          value: packedValueAt(packed, off),
        }),
      );
      persist = { records, ...(changed ? { hard: this.hard() } : {}) };
    } else if (changed) persist = { hard: this.hard() };
    const reply: MOutbound = {
      to: from,
      msg: {
        type: 'mp.accepted',
        from: this.opts.id,
        ballot,
        slots,
        sentAt: msg.sentAt,
        floor: this.floor,
        ...(msg.rid !== undefined ? { rid: msg.rid } : {}),
      },
    };
    return persist ? { persist, send: [reply] } : { send: [reply] };
  }

  private accept(
    from: string,
    ballot: Ballot,
    entries: readonly SlotEntry[],
    sentAt: number,
    now: number,
    rid?: number,
    packed?: Uint8Array,
  ): MultiAcceptorOutput {
    if (!ballotAtLeast(ballot, this.promised)) return this.nack(from, ballot);
    const changed = !ballotEquals(ballot, this.promised);
    this.promised = ballot;
    if (this.leaseMs > 0) {
      this.leaseHolder = ballot.proposer;
      this.leaseUntil = now + this.leaseMs;
    }
    const slots: number[] = [];
    /** Indexes in `entries` of the entries accepted. */
    const taken: number[] = [];
    let maxSlot = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as SlotEntry;
      if (e.slot <= this.floor) continue;
      slots.push(e.slot);
      const cur = this.accepted.ballotAt(e.slot);
      if (cur && ballotEquals(cur, ballot)) continue; // duplicate: one value per ballot
      this.accepted.put(e.slot, ballot, e.value);
      if (e.slot > this.maxSlot) this.maxSlot = e.slot;
      if (e.slot > maxSlot) maxSlot = e.slot;
      taken.push(i);
    }
    const count = taken.length;
    let persist: MultiAcceptorPersist | undefined;
    if (count > 0 && packed !== undefined && count === entries.length) {
      // Every entry accepted, and the bytes they arrived packed in are at hand: journal those.
      persist = { batch: { ballot, packed, maxSlot }, ...(changed ? { hard: this.hard() } : {}) };
    } else if (count > 0) {
      const records = taken.map((i): AcceptedSlot => {
        const e = entries[i] as SlotEntry;
        return { slot: e.slot, ballot, value: e.value };
      });
      persist = { records, ...(changed ? { hard: this.hard() } : {}) };
    } else if (changed) persist = { hard: this.hard() };
    const reply: MOutbound = {
      to: from,
      msg: {
        type: 'mp.accepted',
        from: this.opts.id,
        ballot,
        slots,
        sentAt,
        floor: this.floor,
        ...(rid !== undefined ? { rid } : {}),
      },
    };
    return persist ? { persist, send: [reply] } : { send: [reply] };
  }

  private compact(upTo: number): MultiAcceptorOutput {
    if (!(upTo > this.floor)) return { send: [] };
    this.floor = upTo;
    this.accepted.dropUpTo(upTo);
    return { persist: { hard: this.hard(), compactTo: upTo }, send: [] };
  }

  private hard(): MultiAcceptorHardState {
    return { promised: this.promised, floor: this.floor };
  }
}

/**
 * The accepted proposals of an acceptor by slot. Slots above the floor arrive nearly in
 * order, so they live in arrays indexed from the lowest slot kept (cheaper per slot than a
 * Map, and compaction drops a prefix); a slot far above the others (only a faulty or hostile
 * proposer sends one) goes to a Map instead of stretching the arrays.
 *
 * The value and the ballot of a slot are kept in parallel arrays, not as one `AcceptedSlot`
 * object per slot: those objects lived until the next compaction (10,000 slots by default) on
 * every node, so the young-generation collector copied and promoted one per slot per
 * acceptor; `get` makes one when asked. A value that arrived packed (`putPacked`) is not even
 * an object: the table holds the accept's packed bytes and the entry's byte offset
 * (`offs`, −1 for a value object), and the co-located learner reads it there (`rawAt`,
 * `offsetAt`).
 */
export class SlotTable {
  /** Slots this far above the lowest kept one go to `far`. */
  static readonly MAX_SPAN = 1 << 20;
  private vals: (SlotValue | Uint8Array | undefined)[] = [];
  private bals: (Ballot | undefined)[] = [];
  private offs: number[] = [];
  /** Index in the arrays of slot `lo`. */
  private head = 0;
  private lo: number;
  private readonly far = new Map<number, AcceptedSlot>();
  private count = 0;

  /** `lo`: the lowest slot that will be stored (the floor + 1). */
  constructor(lo: number) {
    this.lo = lo;
  }

  get size(): number {
    return this.count;
  }

  get(slot: number): AcceptedSlot | undefined {
    const i = slot - this.lo;
    if (i < 0) return undefined;
    const idx = this.head + i;
    const value = this.vals[idx];
    if (value !== undefined) {
      return { slot, ballot: this.bals[idx] as Ballot, value: this.valueOf(idx) };
    }
    if (this.far.size === 0) return undefined;
    return this.far.get(slot);
  }

  private valueOf(idx: number): SlotValue {
    const off = this.offs[idx] as number;
    const v = this.vals[idx];
    return off < 0 ? (v as SlotValue) : packedValueAt(v as Uint8Array, off);
  }

  /** The ballot of the proposal accepted for `slot` (no object made). */
  ballotAt(slot: number): Ballot | undefined {
    const i = slot - this.lo;
    if (i < 0) return undefined;
    const b = this.bals[this.head + i];
    if (b !== undefined || this.far.size === 0) return b;
    return this.far.get(slot)?.ballot;
  }

  /**
   * The value accepted for `slot` as stored: a `SlotValue`, or the packed entries that hold
   * it (then `offsetAt(slot)` is its entry's byte offset). No object made.
   */
  rawAt(slot: number): SlotValue | Uint8Array | undefined {
    const i = slot - this.lo;
    if (i < 0) return undefined;
    const v = this.vals[this.head + i];
    if (v !== undefined || this.far.size === 0) return v;
    return this.far.get(slot)?.value;
  }

  /** The byte offset of `slot`'s entry in `rawAt(slot)` when that is packed, else −1. */
  offsetAt(slot: number): number {
    const i = slot - this.lo;
    if (i < 0) return -1;
    const idx = this.head + i;
    return this.vals[idx] !== undefined ? (this.offs[idx] as number) : -1;
  }

  /** Stores `rec` at `rec.slot` (at or above the lowest slot kept). */
  set(rec: AcceptedSlot): void {
    this.put(rec.slot, rec.ballot, rec.value, rec);
  }

  /** Stores the proposal (`ballot`, `value`) at `slot`; `rec`, if given, is that proposal. */
  put(slot: number, ballot: Ballot, value: SlotValue, rec?: AcceptedSlot): void {
    this.store(slot, ballot, value, -1, rec);
  }

  /** Stores the proposal in `ballot` whose value is the entry at byte `off` of `packed`. */
  putPacked(slot: number, ballot: Ballot, packed: Uint8Array, off: number): void {
    this.store(slot, ballot, packed, off);
  }

  private store(
    slot: number,
    ballot: Ballot,
    value: SlotValue | Uint8Array,
    off: number,
    rec?: AcceptedSlot,
  ): void {
    const i = slot - this.lo;
    if (i < 0) return;
    if (this.far.size > 0 && this.far.delete(slot)) this.count--;
    if (i >= SlotTable.MAX_SPAN) {
      const v = off < 0 ? (value as SlotValue) : packedValueAt(value as Uint8Array, off);
      this.far.set(slot, rec ?? { slot, ballot, value: v });
      this.count++;
      return;
    }
    const idx = this.head + i;
    const vals = this.vals;
    const bals = this.bals;
    const offs = this.offs;
    if (idx < vals.length) {
      if (vals[idx] === undefined) this.count++;
      vals[idx] = value;
      bals[idx] = ballot;
      offs[idx] = off;
      return;
    }
    while (vals.length < idx) {
      vals.push(undefined);
      bals.push(undefined);
      offs.push(-1);
    }
    vals.push(value);
    bals.push(ballot);
    offs.push(off);
    this.count++;
  }

  /** Forgets slots ≤ upTo. */
  dropUpTo(upTo: number): void {
    const n = upTo + 1 - this.lo;
    if (n <= 0) return;
    const vals = this.vals;
    const start = this.head;
    const end = Math.min(start + n, vals.length);
    for (let i = start; i < end; i++) if (vals[i] !== undefined) this.count--;
    this.lo = upTo + 1;
    if (end >= vals.length) {
      this.vals = [];
      this.bals = [];
      this.offs = [];
      this.head = 0;
    } else {
      this.head = end;
      if (this.head > 1024 && this.head * 2 > vals.length) {
        this.vals = vals.slice(this.head);
        this.bals = this.bals.slice(this.head);
        this.offs = this.offs.slice(this.head);
        this.head = 0;
      } else {
        // Let the dropped values go now (the arrays are trimmed only now and then).
        for (let i = start; i < end; i++) {
          vals[i] = undefined;
          this.bals[i] = undefined;
        }
      }
    }
    for (const s of this.far.keys()) {
      if (s <= upTo) {
        this.far.delete(s);
        this.count--;
      }
    }
  }

  /** The stored proposals for slots ≥ fromSlot, in slot order. */
  from(fromSlot: number): AcceptedSlot[] {
    return this.page(fromSlot, Number.POSITIVE_INFINITY).accepted;
  }

  /**
   * The stored proposals for slots ≥ fromSlot, in slot order, stopping once they weigh
   * `maxBytes` (`acceptedSlotBytes`; at least one slot): `more` is then the first slot left out.
   */
  page(fromSlot: number, maxBytes: number): { accepted: AcceptedSlot[]; more?: number } {
    const out: AcceptedSlot[] = [];
    let bytes = 0;
    for (const a of this.inSlotOrder(fromSlot)) {
      if (bytes >= maxBytes) return { accepted: out, more: a.slot };
      bytes += acceptedSlotBytes(a);
      out.push(a);
    }
    return { accepted: out };
  }

  /** The stored proposals for slots ≥ fromSlot: the table's, merged in order with `far`'s. */
  private *inSlotOrder(fromSlot: number): Generator<AcceptedSlot> {
    const far =
      this.far.size > 0
        ? [...this.far.values()].filter((a) => a.slot >= fromSlot).sort((x, y) => x.slot - y.slot)
        : [];
    let f = 0;
    const vals = this.vals;
    const first = Math.max(0, fromSlot - this.lo);
    for (let i = this.head + first; i < vals.length; i++) {
      if (vals[i] === undefined) continue;
      const slot = this.lo + (i - this.head);
      while (f < far.length && (far[f] as AcceptedSlot).slot < slot) yield far[f++] as AcceptedSlot;
      yield { slot, ballot: this.bals[i] as Ballot, value: this.valueOf(i) };
    }
    while (f < far.length) yield far[f++] as AcceptedSlot;
  }
}
