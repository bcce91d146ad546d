/**
 * Single-decree Paxos messages. Plain data only (they cross the msgpack codec). `from` is the
 * sender's actor address: acceptors answer a proposer at `from`, learners count acceptors by
 * `from`, so an acceptor's quorum id is its address.
 */
import { type Ballot, isBallot } from './ballot.js';

export interface AcceptedValue {
  readonly ballot: Ballot;
  readonly value: unknown;
}

/** Phase 1a: proposer → acceptors. */
export interface Prepare {
  readonly type: 'paxos.prepare';
  readonly from: string;
  readonly ballot: Ballot;
}

/** Phase 1b: acceptor → proposer; `accepted` is the acceptor's highest accepted proposal. */
export interface PromiseMsg {
  readonly type: 'paxos.promise';
  readonly from: string;
  readonly ballot: Ballot;
  readonly accepted: AcceptedValue | null;
}

/** Phase 2a: proposer → acceptors. */
export interface Accept {
  readonly type: 'paxos.accept';
  readonly from: string;
  readonly ballot: Ballot;
  readonly value: unknown;
}

/** Phase 2b: acceptor → proposer and learners. */
export interface Accepted {
  readonly type: 'paxos.accepted';
  readonly from: string;
  readonly ballot: Ballot;
  readonly value: unknown;
}

/** A rejection: `ballot` was refused because the acceptor promised `promised`. */
export interface Nack {
  readonly type: 'paxos.nack';
  readonly from: string;
  readonly ballot: Ballot;
  readonly promised: Ballot;
}

/** A learner or proposer that knows the chosen value tells others. */
export interface Decided {
  readonly type: 'paxos.decided';
  readonly from: string;
  readonly value: unknown;
}

/** A learner that missed the decision asks peers; peers that know answer with `Decided`. */
export interface Query {
  readonly type: 'paxos.query';
  readonly from: string;
}

export type PaxosMessage = Prepare | PromiseMsg | Accept | Accepted | Nack | Decided | Query;

/** An addressed outbound message produced by a core. */
export interface Outbound<M = PaxosMessage> {
  readonly to: string;
  readonly msg: M;
}

/** Returns a reason when `value` is not a well-formed single-decree message. */
export function paxosMessageProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'message is not an object';
  const m = value as Record<string, unknown>;
  if (typeof m.from !== 'string' || m.from.length === 0) return 'message has no sender "from"';
  switch (m.type) {
    case 'paxos.prepare':
      return isBallot(m.ballot) ? undefined : 'prepare without a valid ballot';
    case 'paxos.promise': {
      if (!isBallot(m.ballot)) return 'promise without a valid ballot';
      if (m.accepted === null) return undefined;
      const a = m.accepted as Record<string, unknown> | undefined;
      if (!a || typeof a !== 'object' || !isBallot(a.ballot) || !('value' in a)) {
        return 'promise with a malformed accepted proposal';
      }
      return undefined;
    }
    case 'paxos.accept':
    case 'paxos.accepted':
      if (!isBallot(m.ballot)) return `${m.type} without a valid ballot`;
      return 'value' in m ? undefined : `${m.type} without a value`;
    case 'paxos.nack':
      return isBallot(m.ballot) && isBallot(m.promised) ? undefined : 'nack without ballots';
    case 'paxos.decided':
      return 'value' in m ? undefined : 'decided without a value';
    case 'paxos.query':
      return undefined;
    default:
      return `unknown message type ${JSON.stringify(m.type)}`;
  }
}
