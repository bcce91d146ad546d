/**
 * Multi-Paxos acceptor core: one promised ballot for all slots (phase 1 runs once for every
 * slot above the leader's position), one accepted proposal per slot, and a `floor` below
 * which decided slots were compacted into a snapshot. Pure and deterministic; time is an
 * input (`now`) only for the optional leader lease.
 *
 * I/O contract (the shell must honour it, in order): make `persist` durable — accepted
 * records, then the hard state (promised ballot and floor), then the compaction — and only
 * then send `send`. The shell steps one message at a time and never starts the next step
 * before the previous write completed.
 *
 * Lease (optional, `leaseMs > 0`): acknowledging a phase-2 message from proposer P promises
 * not to promise any other proposer for `leaseMs` of this acceptor's clock. A restarted
 * acceptor forgot whom it leased to, so it promises nobody for `leaseMs` after restart.
 */
import { type Ballot, ballotAtLeast, ballotEquals, ZERO_BALLOT } from './ballot.js';
import {
  type AcceptedSlot,
  type MOutbound,
  type MultiPaxosMessage,
  PACKED_ENTRIES,
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
   * `records` packed (`packSlotEntries`), in order, when the accept arrived packed and every
   * entry became a record: the journal stores these bytes instead of packing again.
   */
  readonly packed?: Uint8Array;
}

export interface MultiAcceptorOutput {
  readonly persist?: MultiAcceptorPersist;
  readonly send: MOutbound[];
}

export interface MultiAcceptorOptions {
  readonly id: string;
  /** Lease length granted to the leader, 0 (default) for no leases. */
  readonly leaseMs?: number;
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
      const cur = this.accepted.get(a.slot);
      if (!cur || ballotAtLeast(a.ballot, cur.ballot)) this.accepted.set(a);
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

  get promisedBallot(): Ballot {
    return this.promised;
  }

  get compactedFloor(): number {
    return this.floor;
  }

  step(msg: MultiPaxosMessage, now = 0): MultiAcceptorOutput {
    switch (msg.type) {
      case 'mp.prepare':
        return this.prepare(msg.from, msg.ballot, msg.fromSlot, now);
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

  private prepare(from: string, ballot: Ballot, fromSlot: number, now: number) {
    if (!ballotAtLeast(ballot, this.promised)) return this.nack(from, ballot);
    if (this.leaseMs > 0 && now < this.leaseUntil && ballot.proposer !== this.leaseHolder) {
      return this.nack(from, ballot, true);
    }
    const changed = !ballotEquals(ballot, this.promised);
    this.promised = ballot;
    const accepted: AcceptedSlot[] = [];
    for (const a of this.accepted.from(fromSlot)) accepted.push(a);
    const out: MultiAcceptorOutput = {
      send: [
        {
          to: from,
          msg: { type: 'mp.promise', from: this.opts.id, ballot, floor: this.floor, accepted },
        },
      ],
    };
    return changed ? { ...out, persist: { hard: this.hard() } } : out;
  }

  private accept(
    from: string,
    ballot: Ballot,
    entries: readonly { slot: number; value: AcceptedSlot['value'] }[],
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
    const records: AcceptedSlot[] = [];
    const slots: number[] = [];
    for (const e of entries) {
      if (e.slot <= this.floor) continue;
      slots.push(e.slot);
      const cur = this.accepted.get(e.slot);
      if (cur && ballotEquals(cur.ballot, ballot)) continue; // duplicate: one value per ballot
      const rec: AcceptedSlot = { slot: e.slot, ballot, value: e.value };
      this.accepted.set(rec);
      if (e.slot > this.maxSlot) this.maxSlot = e.slot;
      records.push(rec);
    }
    const persist: MultiAcceptorPersist = {
      ...(records.length > 0 ? { records } : {}),
      ...(packed !== undefined && records.length > 0 && records.length === entries.length
        ? { packed }
        : {}),
      ...(changed ? { hard: this.hard() } : {}),
    };
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
    return records.length > 0 || changed ? { persist, send: [reply] } : { send: [reply] };
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
 * order, so they live in an array indexed from the lowest slot kept (cheaper per slot than a
 * Map, and compaction drops a prefix); a slot far above the others (only a faulty or hostile
 * proposer sends one) goes to a Map instead of stretching the array.
 */
export class SlotTable {
  /** Slots this far above the lowest kept one go to `far`. */
  static readonly MAX_SPAN = 1 << 20;
  private arr: (AcceptedSlot | undefined)[] = [];
  /** Index in `arr` of slot `lo`. */
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
    const v = this.arr[this.head + i];
    if (v !== undefined || this.far.size === 0) return v;
    return this.far.get(slot);
  }

  /** Stores `rec` at `rec.slot` (at or above the lowest slot kept). */
  set(rec: AcceptedSlot): void {
    const slot = rec.slot;
    const i = slot - this.lo;
    if (i < 0) return;
    if (this.far.size > 0 && this.far.delete(slot)) this.count--;
    if (i >= SlotTable.MAX_SPAN) {
      this.far.set(slot, rec);
      this.count++;
      return;
    }
    const idx = this.head + i;
    const arr = this.arr;
    if (idx < arr.length) {
      if (arr[idx] === undefined) this.count++;
      arr[idx] = rec;
      return;
    }
    while (arr.length < idx) arr.push(undefined);
    arr.push(rec);
    this.count++;
  }

  /** Forgets slots ≤ upTo. */
  dropUpTo(upTo: number): void {
    const n = upTo + 1 - this.lo;
    if (n <= 0) return;
    const arr = this.arr;
    const end = Math.min(this.head + n, arr.length);
    for (let i = this.head; i < end; i++) if (arr[i] !== undefined) this.count--;
    this.lo = upTo + 1;
    if (end >= arr.length) {
      this.arr = [];
      this.head = 0;
    } else {
      this.head = end;
      if (this.head > 1024 && this.head * 2 > arr.length) {
        this.arr = arr.slice(this.head);
        this.head = 0;
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
    const out: AcceptedSlot[] = [];
    const arr = this.arr;
    for (let i = this.head + Math.max(0, fromSlot - this.lo); i < arr.length; i++) {
      const v = arr[i];
      if (v !== undefined) out.push(v);
    }
    if (this.far.size > 0) {
      const far = [...this.far.values()].filter((a) => a.slot >= fromSlot);
      if (far.length > 0) {
        out.push(...far);
        out.sort((x, y) => x.slot - y.slot);
      }
    }
    return out;
  }
}
