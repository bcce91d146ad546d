/**
 * Single-decree acceptor core: pure, synchronous, deterministic.
 *
 * I/O contract (the shell must honour it, in order):
 * 1. if `persist` is set, make it durable (HardStateStore.save) before anything else;
 * 2. only then send `send`.
 * The promised ballot is therefore durable before a promise leaves, and the accepted ballot
 * and value are durable before an accepted leaves. The shell handles one message at a time
 * and does not start the next `step` before the previous persist completed, so a reply that
 * needs no new write (a duplicate prepare) never overtakes the write it depends on.
 */
import { type Ballot, ballotAtLeast, ZERO_BALLOT } from './ballot.js';
import type { AcceptedValue, Outbound, PaxosMessage } from './messages.js';

export interface AcceptorState {
  readonly promised: Ballot;
  readonly accepted: AcceptedValue | null;
}

export const INITIAL_ACCEPTOR_STATE: AcceptorState = { promised: ZERO_BALLOT, accepted: null };

export interface AcceptorOutput {
  /** The new durable state; write it before sending. */
  readonly persist?: AcceptorState;
  readonly send: Outbound[];
}

export interface AcceptorOptions {
  /** This acceptor's address (its identity in quorums). */
  readonly id: string;
  /** Learner addresses that receive every accepted. */
  readonly learners?: readonly string[];
}

export class AcceptorCore {
  private st: AcceptorState;

  constructor(
    private readonly opts: AcceptorOptions,
    restored: AcceptorState = INITIAL_ACCEPTOR_STATE,
  ) {
    this.st = restored;
  }

  get state(): AcceptorState {
    return this.st;
  }

  step(msg: PaxosMessage): AcceptorOutput {
    const id = this.opts.id;
    switch (msg.type) {
      case 'paxos.prepare': {
        if (!ballotAtLeast(msg.ballot, this.st.promised)) {
          return { send: [this.nack(msg.from, msg.ballot)] };
        }
        const changed = !ballotAtLeast(this.st.promised, msg.ballot);
        if (changed) this.st = { promised: msg.ballot, accepted: this.st.accepted };
        const reply: Outbound = {
          to: msg.from,
          msg: { type: 'paxos.promise', from: id, ballot: msg.ballot, accepted: this.st.accepted },
        };
        return changed ? { persist: this.st, send: [reply] } : { send: [reply] };
      }
      case 'paxos.accept': {
        if (!ballotAtLeast(msg.ballot, this.st.promised)) {
          return { send: [this.nack(msg.from, msg.ballot)] };
        }
        this.st = { promised: msg.ballot, accepted: { ballot: msg.ballot, value: msg.value } };
        const accepted = {
          type: 'paxos.accepted' as const,
          from: id,
          ballot: msg.ballot,
          value: msg.value,
        };
        const to = new Set([msg.from, ...(this.opts.learners ?? [])]);
        return { persist: this.st, send: [...to].map((t) => ({ to: t, msg: accepted })) };
      }
      default:
        return { send: [] };
    }
  }

  private nack(to: string, rejected: Ballot): Outbound {
    return {
      to,
      msg: { type: 'paxos.nack', from: this.opts.id, ballot: rejected, promised: this.st.promised },
    };
  }
}
