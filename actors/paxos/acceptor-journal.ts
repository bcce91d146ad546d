/**
 * Durable storage of a Multi-Paxos acceptor on the shared storage contracts:
 * - the promised ballot and compaction floor in a `HardStateStore` (replaced atomically);
 * - accepted proposals in a `LogStore` used as an append-only journal: journal entry i holds
 *   the proposals accepted together in one ballot (one accept message: `{ b: ballot, e:
 *   packed entries }`, `term` = ballot round; the packed bytes as received when every entry
 *   of the accept was accepted), so a burst of accepts costs one append; a later record for a
 *   slot supersedes an earlier one. Entries are never truncated, only compacted from the
 *   front once every slot in the prefix is at or below the floor. Journals of earlier versions (one `{ s, b, v }` record per entry)
 *   load unchanged.
 *
 * `persist` (one step) and `persistGroup` (several consecutive steps, group commit) write in
 * the order the acceptor core's contract needs — records, then hard state, then compaction —
 * and resolve once all of it is durable. One write at a time (see `persistGroup`).
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { HardStateStore, LogEntry, LogStore } from '../../lib/storage/types.js';
import { type Ballot, ballotAtLeast, ballotEquals, isBallot, ZERO_BALLOT } from './ballot.js';
import { PaxosError } from './errors.js';
import type {
  MultiAcceptorDurableState,
  MultiAcceptorHardState,
  MultiAcceptorPersist,
} from './multi-acceptor.js';
import {
  type AcceptedSlot,
  isSlotValue,
  packSlotEntries,
  type SlotEntry,
  unpackSlotEntries,
  upgradeSlotValue,
} from './multi-messages.js';

export class AcceptorJournal {
  /**
   * Per journal entry (by log index), the highest slot it holds: the entry is dead once the
   * floor reached that slot. (One map operation per appended batch, not per record.)
   */
  private readonly maxSlotOf = new Map<number, number>();
  private floor = 0;

  constructor(
    private readonly hard: HardStateStore<MultiAcceptorHardState>,
    private readonly log: LogStore,
  ) {}

  /**
   * Set when a write failed for another reason than a full disk (EIO at a sync, say): the
   * stores may then hold in memory what never reached the disk (a `FileLogStore` keeps the
   * failed entries in its view), so this journal neither loads nor writes again. A full disk
   * is different: the stores roll back to exactly what is durable, and a reload is exact.
   */
  private failure: unknown;

  /** Reads the durable state back (call once, before the acceptor handles messages). */
  async load(): Promise<MultiAcceptorDurableState> {
    this.assertUsable();
    const h = await this.hard.load();
    if (h !== undefined && (!isBallot(h.promised) || !Number.isSafeInteger(h.floor))) {
      throw new PaxosError('SYNOD_ERR_PAXOS_BAD_STATE', 'acceptor hard state is malformed');
    }
    const promised: Ballot = h?.promised ?? ZERO_BALLOT;
    this.floor = h?.floor ?? 0;
    this.maxSlotOf.clear();
    const records = new Map<number, AcceptedSlot>();
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    for (let lo = first; lo <= last; ) {
      const batch = await this.log.entries(lo, last + 1, 4 << 20);
      if (batch.length === 0) break;
      for (const e of batch) {
        let max = 0;
        for (const rec of decodeRecords(e)) {
          if (rec.slot > max) max = rec.slot;
          if (rec.slot <= this.floor) continue;
          const cur = records.get(rec.slot);
          if (!cur || ballotAtLeast(rec.ballot, cur.ballot)) records.set(rec.slot, rec);
        }
        this.maxSlotOf.set(e.index, max);
      }
      lo = (batch[batch.length - 1] as LogEntry).index + 1;
    }
    // Accepting ballot b implies having promised b: never come back promising less.
    let atLeast = promised;
    for (const r of records.values()) {
      if (!ballotAtLeast(atLeast, r.ballot)) atLeast = r.ballot;
    }
    return { promised: atLeast, floor: this.floor, accepted: [...records.values()] };
  }

  /** Makes one step's writes durable: `persistGroup([p])`. */
  persist(p: MultiAcceptorPersist): Promise<void> {
    return this.persistGroup([p]);
  }

  /**
   * Makes the writes of several consecutive steps durable at once (group commit): every
   * accepted record of every step in one `LogStore.append` (one sync), then the last step's
   * hard state, then compaction to the highest `compactTo`. The end state is the one the steps
   * written one by one would leave; a crash part-way leaves a state that loads as an acceptor
   * state none of whose unsent replies matter (records imply their ballot's promise, see
   * `load`).
   *
   * Not reentrant: the entry indexes come from the log's last index and the hard state must
   * follow the records it covers, so a caller starts the next call only after this one
   * settled (the acceptor actor keeps one write in flight).
   */
  async persistGroup(ps: readonly MultiAcceptorPersist[]): Promise<void> {
    this.assertUsable();
    try {
      await this.writeGroup(ps);
    } catch (e) {
      if ((e as { code?: unknown } | undefined)?.code !== 'SYNOD_ERR_NO_SPACE') this.failure = e;
      throw e;
    }
  }

  private assertUsable(): void {
    if (this.failure === undefined) return;
    const why = this.failure instanceof Error ? this.failure.message : String(this.failure);
    throw new PaxosError(
      'SYNOD_ERR_PAXOS_JOURNAL_FAILED',
      `the acceptor's journal failed (${why}); its stores may hold in memory what never reached the disk, so it is not read back: reopen them from disk (restart the process)`,
      { cause: this.failure },
    );
  }

  private async writeGroup(ps: readonly MultiAcceptorPersist[]): Promise<void> {
    let index = this.log.lastIndex();
    const entries: LogEntry[] = [];
    let hard: MultiAcceptorHardState | undefined;
    let compactTo: number | undefined;
    for (const p of ps) {
      if (p.batch) {
        // One accept's packed entries as they arrived, all accepted in one ballot.
        index++;
        this.maxSlotOf.set(index, p.batch.maxSlot);
        entries.push({
          index,
          term: p.batch.ballot.round,
          type: 'normal',
          data: encodeValue({ b: p.batch.ballot, e: p.batch.packed }),
        });
      }
      if (p.records && p.records.length > 0) index = this.pushRecords(p.records, index, entries);
      if (p.hard) hard = p.hard;
      if (p.compactTo !== undefined && !(compactTo !== undefined && compactTo >= p.compactTo)) {
        compactTo = p.compactTo;
      }
    }
    if (entries.length > 0) await this.log.append(entries);
    if (hard) {
      await this.hard.save({ promised: hard.promised, floor: hard.floor });
      this.floor = hard.floor;
    }
    if (compactTo !== undefined) await this.compactTo(compactTo);
  }

  /**
   * Appends to `entries` one journal entry per run of records in the same ballot (one per
   * accept message), numbered after `index`; returns the last index used.
   */
  private pushRecords(recs: readonly AcceptedSlot[], index: number, entries: LogEntry[]): number {
    for (let i = 0; i < recs.length; ) {
      const ballot = (recs[i] as AcceptedSlot).ballot;
      let j = i + 1;
      let max = (recs[i] as AcceptedSlot).slot;
      while (j < recs.length && ballotEquals((recs[j] as AcceptedSlot).ballot, ballot)) {
        const slot = (recs[j] as AcceptedSlot).slot;
        if (slot > max) max = slot;
        j++;
      }
      index++;
      this.maxSlotOf.set(index, max);
      const packed = packSlotEntries(i === 0 && j === recs.length ? recs : recs.slice(i, j));
      entries.push({
        index,
        term: ballot.round,
        type: 'normal',
        data: encodeValue({ b: ballot, e: packed }),
      });
      i = j;
    }
    return index;
  }

  /**
   * Drops the longest prefix of entries whose every slot is at or below `floor` (a record
   * superseded by a later one stays until the floor passes its slot: every slot is decided
   * eventually, so that only delays the compaction).
   */
  private async compactTo(floor: number): Promise<void> {
    let upTo = this.log.firstIndex() - 1;
    const last = this.log.lastIndex();
    while (upTo < last && (this.maxSlotOf.get(upTo + 1) ?? Number.POSITIVE_INFINITY) <= floor)
      upTo++;
    if (upTo >= this.log.firstIndex()) {
      const term = this.log.term(upTo) ?? 0;
      for (let i = this.log.firstIndex(); i <= upTo; i++) this.maxSlotOf.delete(i);
      await this.log.compact(upTo, term);
    }
  }

  /** Journal entries held (live and dead), for tests and metrics. */
  journalLength(): number {
    return this.log.lastIndex() - this.log.firstIndex() + 1;
  }

  async close(): Promise<void> {
    await this.log.close();
    await this.hard.close();
  }
}

function decodeRecords(e: LogEntry): AcceptedSlot[] {
  const notRecord = (why: string) =>
    new PaxosError(
      'SYNOD_ERR_PAXOS_BAD_STATE',
      `acceptor journal entry ${e.index} is not an accepted record (${why})`,
    );
  let r: { s?: unknown; b?: unknown; v?: unknown; e?: unknown };
  try {
    r = decodeValue(e.data) as typeof r;
  } catch (err) {
    throw notRecord((err as Error).message);
  }
  if (!r || typeof r !== 'object' || !isBallot(r.b)) throw notRecord('no ballot');
  const ballot = r.b;
  if (r.e instanceof Uint8Array) {
    let entries: SlotEntry[];
    try {
      entries = unpackSlotEntries(r.e);
    } catch (err) {
      throw notRecord((err as Error).message);
    }
    return entries.map((x) => ({ slot: x.slot, ballot, value: x.value }));
  }
  // An earlier version's record: one proposal, its command as an object.
  const v = upgradeSlotValue(r.v);
  if (typeof r.s !== 'number' || !Number.isSafeInteger(r.s) || !isSlotValue(v)) {
    throw notRecord('bad slot or value');
  }
  return [{ slot: r.s, ballot, value: v }];
}
