/**
 * Multi-Paxos messages (plain data; they cross the msgpack codec). `from` is the sender's
 * actor address. Slots are positive integers; slot values are `SlotValue`s.
 */
import type { Command } from '../../lib/replicated-log.js';
import type { Ballot } from './ballot.js';

/**
 * What a slot holds. `t` is the round of the ballot that first proposed the value: it travels
 * with the value (a new leader re-proposes the value unchanged), so every replica applies a
 * slot with the same term.
 */
export type SlotValue =
  | { readonly k: 'cmd'; readonly c: Command; readonly t: number }
  /** Fills a gap found by a new leader; with `b`, a read barrier with that id. */
  | { readonly k: 'noop'; readonly t: number; readonly b?: string };

export interface SlotEntry {
  readonly slot: number;
  readonly value: SlotValue;
}

export interface AcceptedSlot extends SlotEntry {
  readonly ballot: Ballot;
}

/** Phase 1a for every slot ≥ `fromSlot`. */
export interface MPrepare {
  readonly type: 'mp.prepare';
  readonly from: string;
  readonly ballot: Ballot;
  readonly fromSlot: number;
}

/** Phase 1b: the acceptor's accepted proposals for slots ≥ fromSlot (above its floor). */
export interface MPromise {
  readonly type: 'mp.promise';
  readonly from: string;
  readonly ballot: Ballot;
  /** Slots ≤ floor are decided and were compacted away by this acceptor. */
  readonly floor: number;
  readonly accepted: readonly AcceptedSlot[];
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
export interface MHeartbeat {
  readonly type: 'mp.heartbeat';
  readonly from: string;
  readonly ballot: Ballot;
  readonly chosenUpTo: number;
  readonly learner?: string;
}

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
  | MHeartbeat
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

function isCommand(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  return typeof c.clientId === 'string' && typeof c.seq === 'number' && 'op' in c;
}

export function isSlotValue(v: unknown): v is SlotValue {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Record<string, unknown>;
  if (typeof s.t !== 'number') return false;
  if (s.k === 'noop') return s.b === undefined || typeof s.b === 'string';
  return s.k === 'cmd' && isCommand(s.c);
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

/** Returns a reason when `value` is not a well-formed Multi-Paxos message. */
export function multiMessageProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'message is not an object';
  const m = value as Record<string, unknown>;
  if (typeof m.from !== 'string' || m.from.length === 0) return 'message has no sender "from"';
  const bad = (what: string) => `${String(m.type)}: ${what}`;
  switch (m.type) {
    case 'mp.prepare':
      if (!isBallotLike(m.ballot)) return bad('ballot');
      return isSlot(m.fromSlot) ? undefined : bad('fromSlot');
    case 'mp.promise':
      if (!isBallotLike(m.ballot) || !isSlot(m.floor)) return bad('ballot or floor');
      return entriesOk(m.accepted, true) ? undefined : bad('accepted');
    case 'mp.accept':
      if (!isBallotLike(m.ballot) || typeof m.sentAt !== 'number') return bad('ballot or sentAt');
      if (m.rid !== undefined && !isSlot(m.rid)) return bad('rid');
      return entriesOk(m.entries) ? undefined : bad('entries');
    case 'mp.accepted':
      if (!isBallotLike(m.ballot) || typeof m.sentAt !== 'number' || !isSlot(m.floor)) {
        return bad('ballot, sentAt or floor');
      }
      if (m.rid !== undefined && !isSlot(m.rid)) return bad('rid');
      return Array.isArray(m.slots) && m.slots.every(isSlot) ? undefined : bad('slots');
    case 'mp.nack':
      return isBallotLike(m.ballot) && isBallotLike(m.promised) ? undefined : bad('ballots');
    case 'mp.decide':
      return entriesOk(m.entries) ? undefined : bad('entries');
    case 'mp.heartbeat':
      if (!isBallotLike(m.ballot) || !isSlot(m.chosenUpTo)) return bad('ballot or chosenUpTo');
      return m.learner === undefined || typeof m.learner === 'string' ? undefined : bad('learner');
    case 'mp.learned':
      return isSlot(m.decidedUpTo) ? undefined : bad('decidedUpTo');
    case 'mp.catchup':
      return isSlot(m.fromSlot) && isSlot(m.toSlot) ? undefined : bad('slot range');
    case 'mp.catchup-reply': {
      if (!isSlot(m.decidedUpTo) || !entriesOk(m.entries)) return bad('entries');
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
