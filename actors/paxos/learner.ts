/**
 * Single-decree learner core. A value is learned once a phase-2 quorum of acceptors has
 * accepted it in the same ballot (counted per ballot: votes from different ballots never add
 * up), or when a peer that learned it says so (`paxos.decided`). Learners that missed the
 * decision ask peers with `paxos.query`.
 *
 * The learner also checks Paxos's safety on what it sees: two different values reaching a
 * phase-2 quorum, or a decision that contradicts what it learned, throws
 * `SYNOD_ERR_PAXOS_BAD_STATE` (this can only happen with a broken quorum configuration or a
 * broken acceptor, and must never be swallowed).
 */
import { formatBallot } from './ballot.js';
import { PaxosError } from './errors.js';
import type { Outbound, PaxosMessage } from './messages.js';
import type { QuorumSystem } from './quorum.js';

export interface LearnerOutput {
  readonly send: Outbound[];
  /** Set on the step that learned the value. */
  readonly learned?: { readonly value: unknown };
}

export interface LearnerOptions {
  readonly id: string;
  readonly quorums: QuorumSystem;
  /** Peer learners asked with `query` when this one missed the decision. */
  readonly peers?: readonly string[];
}

/** Structural equality on plain data (what crosses the codec). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return Number.isNaN(a) && Number.isNaN(b);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) &&
      sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

export class LearnerCore {
  private readonly votes = new Map<string, { value: unknown; from: Set<string> }>();
  private learnedValue: { value: unknown } | undefined;

  constructor(private readonly opts: LearnerOptions) {}

  get learned(): { readonly value: unknown } | undefined {
    return this.learnedValue;
  }

  step(msg: PaxosMessage): LearnerOutput {
    switch (msg.type) {
      case 'paxos.accepted': {
        if (!this.opts.quorums.acceptors.includes(msg.from)) return { send: [] };
        const key = formatBallot(msg.ballot);
        let v = this.votes.get(key);
        if (!v) {
          v = { value: msg.value, from: new Set() };
          this.votes.set(key, v);
        } else if (!sameValue(v.value, msg.value)) {
          throw new PaxosError(
            'SYNOD_ERR_PAXOS_BAD_STATE',
            `two values accepted in ballot ${key}: a proposer reused a ballot`,
          );
        }
        v.from.add(msg.from);
        if (this.opts.quorums.isPhase2Quorum(v.from)) return this.learn(v.value);
        return { send: [] };
      }
      case 'paxos.decided':
        return this.learn(msg.value);
      case 'paxos.query':
        if (!this.learnedValue || msg.from === this.opts.id) return { send: [] };
        return {
          send: [
            {
              to: msg.from,
              msg: { type: 'paxos.decided', from: this.opts.id, value: this.learnedValue.value },
            },
          ],
        };
      default:
        return { send: [] };
    }
  }

  /** Asks peers for the decision (call on a timer while nothing is learned). */
  query(): LearnerOutput {
    if (this.learnedValue) return { send: [] };
    return {
      send: (this.opts.peers ?? []).map((to) => ({
        to,
        msg: { type: 'paxos.query', from: this.opts.id },
      })),
    };
  }

  private learn(value: unknown): LearnerOutput {
    if (this.learnedValue) {
      if (!sameValue(this.learnedValue.value, value)) {
        throw new PaxosError(
          'SYNOD_ERR_PAXOS_BAD_STATE',
          `learner ${this.opts.id} saw two different values chosen`,
        );
      }
      return { send: [] };
    }
    this.learnedValue = { value };
    return { send: [], learned: { value } };
  }
}
