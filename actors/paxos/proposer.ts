/**
 * Single-decree proposer core: pure, synchronous, deterministic (randomness is injected).
 *
 * A proposal runs rounds. Each round picks a fresh ballot above every ballot seen, runs
 * phase 1 (prepare → promises from a phase-1 quorum), adopts the value of the highest
 * accepted proposal reported (or its own value when none), runs phase 2 (accept → accepted
 * from a phase-2 quorum) and then announces the decision to the learners. A nack carries the
 * acceptor's promised ballot, so the next round skips straight above it. A failed round
 * (nack or silence for `roundTimeoutMs`) is retried after a randomised backoff.
 *
 * I/O contract: when `persist` is set (the highest round used), the shell makes it durable
 * before sending; a restarted proposer never reuses a round with a different value.
 * `wakeAfterMs`, when set, (re)arms the single proposer timer, whose firing calls `tick()`.
 */
import type { Random } from '../../lib/random.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import {
  type Ballot,
  ballotEquals,
  ballotGreater,
  compareBallots,
  maxBallot,
  nextBallot,
  ZERO_BALLOT,
} from './ballot.js';
import { PaxosError } from './errors.js';
import type { AcceptedValue, Outbound, PaxosMessage } from './messages.js';
import type { QuorumSystem } from './quorum.js';

export type ProposerPhase = 'idle' | 'preparing' | 'accepting' | 'backoff' | 'chosen';

export interface ProposerOptions {
  /** This proposer's address; also the proposer id in its ballots. */
  readonly id: string;
  readonly quorums: QuorumSystem;
  readonly learners?: readonly string[];
  readonly random: Random;
  readonly backoff?: BackoffOptions;
  /** How long a round waits for a quorum before it is retried. Default 200 ms. */
  readonly roundTimeoutMs?: number;
}

export interface ProposerOutput {
  /** Highest round used; durable before `send` goes out. */
  readonly persist?: { readonly round: number };
  readonly send: Outbound[];
  /** (Re)arm the proposer's timer; its firing calls `tick()`. */
  readonly wakeAfterMs?: number;
  /** Set once, when this proposer sees its ballot chosen. */
  readonly chosen?: { readonly value: unknown; readonly ballot: Ballot };
}

export interface ProposerView {
  readonly phase: ProposerPhase;
  readonly ballot: Ballot;
  readonly rounds: number;
  readonly value?: unknown;
  readonly chosen?: unknown;
}

export class ProposerCore {
  private phase: ProposerPhase = 'idle';
  private ballot: Ballot = ZERO_BALLOT;
  private highestSeen: Ballot = ZERO_BALLOT;
  private ownValue: unknown;
  private value: unknown;
  private promises = new Map<string, AcceptedValue | null>();
  private accepts = new Set<string>();
  private chosenValue: { value: unknown } | undefined;
  private rounds = 0;
  private readonly backoff: Backoff;
  private readonly roundTimeoutMs: number;

  /** `lastRound` is the durable highest round this proposer used before a restart. */
  constructor(
    private readonly opts: ProposerOptions,
    lastRound = 0,
  ) {
    this.backoff = new Backoff(opts.random, opts.backoff);
    this.roundTimeoutMs = opts.roundTimeoutMs ?? 200;
    this.ballot = { round: lastRound, proposer: opts.id };
    this.highestSeen = this.ballot;
  }

  view(): ProposerView {
    const v: ProposerView = { phase: this.phase, ballot: this.ballot, rounds: this.rounds };
    return {
      ...v,
      ...(this.phase !== 'idle' ? { value: this.value } : {}),
      ...(this.chosenValue ? { chosen: this.chosenValue.value } : {}),
    };
  }

  /** Starts proposing `value`. A proposer runs one proposal; a decided one reports its value. */
  propose(value: unknown): ProposerOutput {
    if (this.chosenValue) {
      return { send: [], chosen: { value: this.chosenValue.value, ballot: this.ballot } };
    }
    if (this.phase !== 'idle') {
      throw new PaxosError('SYNOD_ERR_PAXOS_BUSY', 'this proposer is already proposing a value');
    }
    this.ownValue = value;
    return this.startRound();
  }

  /** The timer fired: a round timed out, or a backoff ended. */
  tick(): ProposerOutput {
    if (this.phase === 'preparing' || this.phase === 'accepting') return this.fail();
    if (this.phase === 'backoff') return this.startRound();
    return { send: [] };
  }

  step(msg: PaxosMessage): ProposerOutput {
    switch (msg.type) {
      case 'paxos.nack':
        this.highestSeen = maxBallot(this.highestSeen, msg.promised);
        if (
          ballotEquals(msg.ballot, this.ballot) &&
          (this.phase === 'preparing' || this.phase === 'accepting') &&
          ballotGreater(msg.promised, this.ballot)
        ) {
          return this.fail();
        }
        return { send: [] };
      case 'paxos.promise': {
        if (this.phase !== 'preparing' || !ballotEquals(msg.ballot, this.ballot)) {
          return { send: [] };
        }
        if (!this.opts.quorums.acceptors.includes(msg.from)) return { send: [] };
        this.promises.set(msg.from, msg.accepted);
        if (!this.opts.quorums.isPhase1Quorum(new Set(this.promises.keys()))) return { send: [] };
        let best: AcceptedValue | null = null;
        for (const a of this.promises.values()) {
          if (a && (!best || compareBallots(a.ballot, best.ballot) > 0)) best = a;
        }
        this.value = best ? best.value : this.ownValue;
        this.phase = 'accepting';
        this.accepts.clear();
        return {
          send: this.opts.quorums.acceptors.map((to) => ({
            to,
            msg: {
              type: 'paxos.accept',
              from: this.opts.id,
              ballot: this.ballot,
              value: this.value,
            },
          })),
          wakeAfterMs: this.roundTimeoutMs,
        };
      }
      case 'paxos.accepted': {
        if (this.phase !== 'accepting' || !ballotEquals(msg.ballot, this.ballot)) {
          return { send: [] };
        }
        if (!this.opts.quorums.acceptors.includes(msg.from)) return { send: [] };
        this.accepts.add(msg.from);
        if (!this.opts.quorums.isPhase2Quorum(this.accepts)) return { send: [] };
        return this.decide(this.value);
      }
      case 'paxos.decided':
        // Someone learned the outcome: stop competing.
        if (this.chosenValue) return { send: [] };
        return this.decide(msg.value, false);
      default:
        return { send: [] };
    }
  }

  private decide(value: unknown, announce = true): ProposerOutput {
    this.phase = 'chosen';
    this.chosenValue = { value };
    this.backoff.reset();
    const decided = { type: 'paxos.decided' as const, from: this.opts.id, value };
    return {
      send: announce ? (this.opts.learners ?? []).map((to) => ({ to, msg: decided })) : [],
      chosen: { value, ballot: this.ballot },
    };
  }

  private fail(): ProposerOutput {
    this.phase = 'backoff';
    return { send: [], wakeAfterMs: this.backoff.next() };
  }

  private startRound(): ProposerOutput {
    this.ballot = nextBallot(maxBallot(this.highestSeen, this.ballot), this.opts.id);
    this.highestSeen = this.ballot;
    this.rounds++;
    this.phase = 'preparing';
    this.promises.clear();
    this.accepts.clear();
    return {
      persist: { round: this.ballot.round },
      send: this.opts.quorums.acceptors.map((to) => ({
        to,
        msg: { type: 'paxos.prepare', from: this.opts.id, ballot: this.ballot },
      })),
      wakeAfterMs: this.roundTimeoutMs,
    };
  }
}
