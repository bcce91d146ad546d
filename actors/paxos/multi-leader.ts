/**
 * Multi-Paxos proposer core (the distinguished proposer when it leads). Pure, synchronous and
 * deterministic: time (`now`) and randomness are inputs.
 *
 * - Election: a follower that hears no heartbeat from a leader for a randomised election
 *   timeout runs phase 1 with a ballot above every ballot it has seen, for every slot above
 *   what its local learner has decided. Winning phase 1 (promises from a phase-1 quorum)
 *   makes it the leader; a higher ballot (nack or heartbeat) makes it a follower again.
 * - Takeover: the new leader re-proposes, in its own ballot, the value of the highest-ballot
 *   proposal reported for each slot, and fills every gap below the highest reported slot with
 *   a no-op, so every value possibly chosen before stays chosen and the log has no holes.
 *   Slots at or below an acceptor's compaction floor are decided already and are left to
 *   learner catch-up.
 * - Steady state: phase 2 only, pipelined: at most `window` slots above the contiguous chosen
 *   prefix are in flight; accepts are batched; silent acceptors get retransmissions; chosen
 *   values go to every learner in `mp.decide`.
 * - Heartbeats go to the other proposers (failure detection) and the learners (so they know
 *   how far the log is chosen); an empty accept to every acceptor doubles as a keep-alive
 *   that detects a newer leader and renews the optional lease.
 * - Lease (optional): with `leaseMs > 0` a leader whose keep-alives sent at time t were
 *   acknowledged by a phase-2 quorum holds a read lease until t + leaseMs·(1 − maxClockDrift):
 *   those acceptors promise no other proposer for leaseMs of their own clocks, and every
 *   phase-1 quorum includes one of them. Assumes clock *rates* differ by at most
 *   maxClockDrift; clock offsets do not matter.
 *
 * I/O contract: when `persist` is set (the highest round used), the shell makes it durable
 * before sending anything from the same output, so a restarted proposer never reuses a ballot.
 */

import type { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
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
import {
  type AcceptedSlot,
  commandValue,
  MAX_CHOSEN_SPAN,
  type MOutbound,
  type MPromise,
  type MultiPaxosMessage,
  type SlotEntry,
  type SlotValue,
} from './multi-messages.js';
import type { QuorumSystem } from './quorum.js';

export type LeaderRole = 'follower' | 'candidate' | 'leader';

export interface MultiLeaderOptions {
  /** This proposer's address; the proposer id in its ballots. */
  readonly id: string;
  /** Quorums over acceptor addresses. */
  readonly quorums: QuorumSystem;
  /** Every proposer address (heartbeats go to the others). */
  readonly proposers: readonly string[];
  /** Every learner address (decisions and heartbeats). */
  readonly learners: readonly string[];
  /** The learner on this proposer's node: its progress sets phase 1's start slot. */
  readonly localLearner?: string;
  /**
   * Learners that take chosen values from an acceptor on their node (`MultiLearnerOptions.
   * localValue`): they get `mp.chosen` (slot numbers and the ballot) instead of `mp.decide`
   * with the values. Default: none (every learner gets the values).
   */
  readonly learnersWithAcceptor?: ReadonlySet<string>;
  readonly random: Random;
  /** Default 50 ms. */
  readonly heartbeatMs?: number;
  /** A follower elects itself after a random timeout in [T, 2T]. Default 300 ms. */
  readonly electionTimeoutMs?: number;
  /** Slots in flight beyond the chosen prefix. Default 256. */
  readonly window?: number;
  /** Slots per accept message. Default 256. */
  readonly maxBatch?: number;
  /** Resend unanswered prepares/accepts after this long. Default 100 ms. */
  readonly retransmitMs?: number;
  /**
   * Phase 1 asks each acceptor for its accepted values in pages of about this many bytes
   * (`MPrepare.maxBytes`), so a promise never outgrows a transport frame however many slots a
   * new leader must recover (after a learner or node restart, every slot above its snapshot).
   * Default 1 MiB.
   */
  readonly promisePageBytes?: number;
  /** Proposals queued beyond the window before new ones are refused. Default 10,000. */
  readonly maxPending?: number;
  /** Read lease length; 0 (default) disables leases. Must equal the acceptors' leaseMs. */
  readonly leaseMs?: number;
  /** Bound on the relative clock-rate difference between nodes. Default 0.01 (1 %). */
  readonly maxClockDrift?: number;
  /**
   * Set when `tick` is called at a steady rate (the actor shell ticks every `tickMs`): a gap
   * of more than two heartbeats between ticks is then a stall of this process and does not
   * count towards the election timeout.
   */
  readonly ignoreStalls?: boolean;
}

/** What the shell learns about client proposals. */
export type ProposalFate =
  /** Never sent to any acceptor by this leader: definitely not chosen by it. */
  | { readonly kind: 'dropped'; readonly value: SlotValue; readonly reason: 'not-leader' }
  /** Sent but the leader lost leadership before it was chosen: it may still be chosen. */
  | { readonly kind: 'indeterminate'; readonly value: SlotValue };

export type LeaderEvent =
  | { readonly type: 'elected'; readonly ballot: Ballot; readonly firstSlot: number }
  | { readonly type: 'stepped-down'; readonly ballot: Ballot; readonly leader?: string }
  | { readonly type: 'election-started'; readonly ballot: Ballot };

/** A confirmed read (`index`: read at or after this slot) or a failed one (no `index`). */
export interface ReadOutcome {
  readonly id: string;
  readonly index?: number;
}

export interface MultiLeaderOutput {
  readonly persist?: { readonly round: number };
  readonly send: MOutbound[];
  readonly fates: ProposalFate[];
  readonly events: LeaderEvent[];
  /** Slots newly chosen in this step, with their values. */
  readonly chosen: SlotEntry[];
  /** Reads registered with `confirmRead` that were confirmed or failed in this step. */
  readonly reads: ReadOutcome[];
}

export type SubmitResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'NotLeader' | 'Dropped'; readonly leaderHint?: string };

export interface MultiLeaderView {
  readonly id: string;
  readonly role: LeaderRole;
  readonly ballot: Ballot;
  readonly leader?: string;
  readonly chosenUpTo: number;
  readonly nextSlot: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly leaseUntil?: number;
}

interface InFlight {
  readonly value: SlotValue;
  /** The acceptors that accepted it, one bit each (`acceptorBit`). */
  acks: number;
  sentAt: number;
}

/** Chosen values not yet reported learned by the local learner, as chosen in one step. */
interface RetainedBatch {
  readonly at: number;
  readonly maxSlot: number;
  readonly entries: readonly SlotEntry[];
}

/** Most acceptors a proposer can count (acknowledgements are bits of a 31-bit mask). */
export const MAX_ACCEPTORS = 31;

/** An acceptor's promise to a candidate, as its pages arrive. */
interface PromiseSoFar {
  floor: number;
  accepted: AcceptedSlot[];
  /** The slot to ask for next; undefined once a page without `more` arrived. */
  next: number | undefined;
}

export class MultiLeaderCore {
  private role: LeaderRole = 'follower';
  private ballot: Ballot;
  private highestSeen: Ballot = ZERO_BALLOT;
  private leader: string | undefined;
  private electionDeadline: number;
  private lastTickAt: number;
  private localDecided = 0;
  // candidate: per acceptor, what its promise pages held so far and the slot to ask for next
  // (undefined once its promise is complete)
  private promises = new Map<string, PromiseSoFar>();
  private fromSlot = 1;
  /** Per acceptor, when a prepare (a page request) last went to it in this candidacy. */
  private readonly askedAt = new Map<string, number>();
  /** When this candidate last told the other proposers its phase 1 progresses (mp.campaign). */
  private campaignSentAt = Number.NEGATIVE_INFINITY;
  // leader
  private chosenUpTo = 0;
  private nextSlot = 1;
  private readonly inflight = new Map<number, InFlight>();
  private readonly chosenAbove = new Set<number>();
  /** Chosen values the local learner may not have yet (resent by `resendDecides`). */
  private retained: RetainedBatch[] = [];
  /** Per acceptor address, its bit in `InFlight.acks`. */
  private readonly acceptorBit = new Map<string, number>();
  /** Whether a mask of acknowledgements holds a phase-2 quorum (memoised per mask). */
  private readonly phase2Memo = new Map<number, boolean>();
  private queue: SlotValue[] = [];
  private nextHeartbeatAt = 0;
  private lastDecideResendAt = 0;
  /** `localDecided` when `resendDecides` last looked. */
  private decidedAtResendCheck = -1;
  /** No slot in flight can be due for a retransmission before this time. */
  private retransmitScanAt = 0;
  private stepNow = 0;
  private readonly leaseAck = new Map<string, number>();
  private lastQuorumContact = 0;
  private readonly lastAckFrom = new Map<string, number>();
  // confirmed reads (ReadIndex): every accept carries `rid`, the current read round
  private readRound = 0;
  /** Highest `rid` put on any accept, and on an accept sent to every acceptor. */
  private sentRound = 0;
  private broadcastRound = 0;
  /** Per acceptor, the highest `rid` it acknowledged in this ballot. */
  private readonly ridAck = new Map<string, number>();
  private pendingReads: { id: string; index: number; need: number }[] = [];
  // output under construction
  private out: {
    persist?: { round: number };
    send: MOutbound[];
    fates: ProposalFate[];
    events: LeaderEvent[];
    chosen: SlotEntry[];
    reads: ReadOutcome[];
  } = { send: [], fates: [], events: [], chosen: [], reads: [] };

  private readonly heartbeatMs: number;
  private readonly electionTimeoutMs: number;
  private readonly window: number;
  private readonly maxBatch: number;
  private readonly retransmitMs: number;
  private readonly promisePageBytes: number;
  private readonly maxPending: number;
  private readonly leaseMs: number;
  private readonly maxClockDrift: number;

  /** `lastRound` is the durable highest round this proposer used before a restart. */
  constructor(
    private readonly opts: MultiLeaderOptions,
    lastRound = 0,
    now = 0,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 50;
    this.electionTimeoutMs = opts.electionTimeoutMs ?? 300;
    this.window = opts.window ?? 256;
    this.maxBatch = opts.maxBatch ?? 256;
    this.retransmitMs = opts.retransmitMs ?? 100;
    this.promisePageBytes = opts.promisePageBytes ?? 1024 * 1024;
    this.maxPending = opts.maxPending ?? 10_000;
    this.leaseMs = opts.leaseMs ?? 0;
    this.maxClockDrift = opts.maxClockDrift ?? 0.01;
    for (const [name, v, min] of [
      ['heartbeatMs', this.heartbeatMs, 1],
      ['electionTimeoutMs', this.electionTimeoutMs, 1],
      ['window', this.window, 1],
      ['maxBatch', this.maxBatch, 1],
      ['retransmitMs', this.retransmitMs, 1],
      ['promisePageBytes', this.promisePageBytes, 1],
      ['maxPending', this.maxPending, 0],
      ['leaseMs', this.leaseMs, 0],
    ] as const) {
      if (!Number.isFinite(v) || v < min) {
        throw new PaxosError('SYNOD_ERR_PAXOS_BAD_CONFIG', `${name} must be >= ${min}, got ${v}`);
      }
    }
    // It travels in every prepare, where the wire check wants a whole number of bytes.
    if (!Number.isSafeInteger(this.promisePageBytes)) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `promisePageBytes must be a whole number of bytes, got ${this.promisePageBytes}`,
      );
    }
    if (this.leaseMs > 0 && this.leaseMs >= this.electionTimeoutMs) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `leaseMs (${this.leaseMs}) must be below electionTimeoutMs (${this.electionTimeoutMs})`,
      );
    }
    if (!(this.maxClockDrift >= 0 && this.maxClockDrift < 1)) {
      throw new PaxosError('SYNOD_ERR_PAXOS_BAD_CONFIG', 'maxClockDrift must be in [0, 1)');
    }
    const acceptors = opts.quorums.acceptors;
    if (acceptors.length > MAX_ACCEPTORS) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `at most ${MAX_ACCEPTORS} acceptors, got ${acceptors.length}`,
      );
    }
    for (let i = 0; i < acceptors.length; i++) this.acceptorBit.set(acceptors[i] as string, 1 << i);
    this.ballot = { round: lastRound, proposer: opts.id };
    this.highestSeen = this.ballot;
    this.electionDeadline = now + this.randomElectionTimeout();
    this.lastTickAt = now;
  }

  view(now?: number): MultiLeaderView {
    const lease = now !== undefined ? this.leaseUntil(now) : undefined;
    return {
      id: this.opts.id,
      role: this.role,
      ballot: this.ballot,
      ...(this.leader !== undefined ? { leader: this.leader } : {}),
      chosenUpTo: this.chosenUpTo,
      nextSlot: this.nextSlot,
      inFlight: this.inflight.size,
      queued: this.queue.length,
      ...(lease !== undefined ? { leaseUntil: lease } : {}),
    };
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get leaderHint(): string | undefined {
    return this.leader;
  }

  get currentBallot(): Ballot {
    return this.ballot;
  }

  /**
   * Queues a client command (leader only) and sends what the window allows. With
   * `defer`, nothing is sent until `flush` (the shell batches a burst of submissions into
   * one accept message that way).
   */
  submit(
    command: Command,
    now: number,
    defer = false,
  ): { result: SubmitResult; output: MultiLeaderOutput } {
    if (this.role !== 'leader') return this.submitValue(undefined, now, defer);
    return this.submitValue(commandValue(command, this.ballot.round), now, defer);
  }

  /** Queues a read barrier: a no-op tagged `barrier` that learners report when applied. */
  submitBarrier(barrier: string, now: number, defer = false) {
    return this.submitValue({ k: 'noop', t: this.ballot.round, b: barrier }, now, defer);
  }

  /**
   * A linearizable read without a log slot (ReadIndex): the read index is the highest slot
   * assigned now; it is confirmed once acceptors forming a phase-2 quorum acknowledged, in
   * this ballot, an accept sent after the read was registered. Every phase-1 quorum meets
   * that phase-2 quorum, so no newer leader had completed phase 1 when the read arrived:
   * every write acknowledged before the read is at or below the index. The outcome comes
   * in a later output's `reads` (failed, without index, if leadership is lost first).
   * With `defer`, the keep-alive that asks for the acknowledgements waits for `flush`.
   */
  confirmRead(
    id: string,
    now: number,
    defer = false,
  ): { result: SubmitResult; output: MultiLeaderOutput } {
    if (this.role !== 'leader') {
      return {
        result: {
          ok: false,
          code: 'NotLeader',
          ...(this.leader !== undefined ? { leaderHint: this.leader } : {}),
        },
        output: this.flushOut(),
      };
    }
    // Reads registered before a message of the current round left share that round.
    if (this.readRound <= this.sentRound) this.readRound = this.sentRound + 1;
    this.pendingReads.push({ id, index: this.nextSlot - 1, need: this.readRound });
    if (!defer) this.readKeepAlive(now);
    return { result: { ok: true }, output: this.flushOut() };
  }

  /** Sends queued values that fit in the window (after deferred submissions). */
  flush(now: number): MultiLeaderOutput {
    this.pump(now);
    this.readKeepAlive(now);
    this.maybeHeartbeat(now);
    return this.flushOut();
  }

  /** A keep-alive to every acceptor when registered reads wait for a round not yet sent. */
  private readKeepAlive(now: number): void {
    if (this.role !== 'leader' || this.pendingReads.length === 0) return;
    if (this.broadcastRound >= this.readRound) return;
    this.broadcastAccepts([], now, undefined, true);
  }

  /** Confirms the registered reads whose round a phase-2 quorum acknowledged. */
  private confirmReads(): void {
    while (this.pendingReads.length > 0) {
      const r = this.pendingReads[0] as { id: string; index: number; need: number };
      const acked = new Set<string>();
      for (const [a, rid] of this.ridAck) if (rid >= r.need) acked.add(a);
      if (!this.opts.quorums.isPhase2Quorum(acked)) return;
      this.pendingReads.shift();
      this.out.reads.push({ id: r.id, index: r.index });
    }
  }

  /** `value` is undefined only when this proposer does not lead (then it is refused). */
  private submitValue(
    value: SlotValue | undefined,
    now: number,
    defer: boolean,
  ): { result: SubmitResult; output: MultiLeaderOutput } {
    if (this.role !== 'leader') {
      return {
        result: {
          ok: false,
          code: 'NotLeader',
          ...(this.leader !== undefined ? { leaderHint: this.leader } : {}),
        },
        output: this.flushOut(),
      };
    }
    if (this.queue.length >= this.maxPending || value === undefined) {
      return { result: { ok: false, code: 'Dropped' }, output: this.flushOut() };
    }
    this.queue.push(value);
    if (!defer) this.pump(now);
    return { result: SUBMITTED, output: this.flushOut() };
  }

  /**
   * The highest slot a linearizable read must wait for, when this leader holds a valid lease
   * at `now`; undefined otherwise (then read through the log with `submitBarrier`).
   */
  leaseReadIndex(now: number): number | undefined {
    if (this.role !== 'leader') return undefined;
    const until = this.leaseUntil(now);
    if (until === undefined || now >= until) return undefined;
    return this.nextSlot - 1;
  }

  private leaseUntil(now: number): number | undefined {
    if (this.leaseMs <= 0 || this.role !== 'leader') return undefined;
    const times = [...new Set(this.leaseAck.values())].sort((a, b) => b - a);
    for (const t of times) {
      const set = new Set<string>();
      for (const [a, at] of this.leaseAck) if (at >= t) set.add(a);
      if (this.opts.quorums.isPhase2Quorum(set)) {
        const until = t + this.leaseMs * (1 - this.maxClockDrift);
        return until > now ? until : undefined;
      }
    }
    return undefined;
  }

  tick(now: number): MultiLeaderOutput {
    // A gap between ticks means this process did not run (GC, a busy event loop, a paused
    // VM): heartbeats could not have been heard meanwhile, so a tick counts for at most one
    // heartbeat interval towards the election timeout (like Raft's tick-counted timeouts:
    // still progress on every tick, so a node that is always slow elects eventually).
    // Liveness only: the lease never relies on this.
    const gap = now - this.lastTickAt;
    this.lastTickAt = now;
    if (this.opts.ignoreStalls && this.role !== 'leader' && gap > this.heartbeatMs * 2)
      this.electionDeadline += gap - this.heartbeatMs;
    switch (this.role) {
      case 'follower':
        if (now >= this.electionDeadline) this.startElection(now);
        break;
      case 'candidate':
        if (now >= this.electionDeadline) this.startElection(now);
        else {
          // Resend to each acceptor whose answer is overdue: the page it was last asked for
          // (not one asked for a moment ago, which is still in flight).
          for (const a of this.opts.quorums.acceptors) {
            if (now - (this.askedAt.get(a) ?? Number.NEGATIVE_INFINITY) < this.retransmitMs)
              continue;
            const p = this.promises.get(a);
            if (p === undefined) this.ask(a, this.fromSlot, now);
            else if (p.next !== undefined) this.ask(a, p.next, now);
          }
        }
        break;
      case 'leader':
        this.leaderTick(now);
        break;
    }
    return this.flushOut();
  }

  step(msg: MultiPaxosMessage, now: number): MultiLeaderOutput {
    switch (msg.type) {
      case 'mp.promise':
        if (this.role === 'candidate' && ballotEquals(msg.ballot, this.ballot)) {
          if (this.opts.quorums.acceptors.includes(msg.from)) this.onPromise(msg, now);
        }
        break;
      case 'mp.nack':
        this.seen(msg.promised);
        if (
          this.role !== 'follower' &&
          ballotEquals(msg.ballot, this.ballot) &&
          ballotGreater(msg.promised, this.ballot)
        ) {
          this.stepDown(now, msg.promised.proposer);
        }
        break;
      case 'mp.accepted':
        if (this.role === 'leader' && ballotEquals(msg.ballot, this.ballot)) {
          this.onAccepted(msg.from, msg.slots, msg.sentAt, msg.floor, now, msg.rid);
        }
        break;
      case 'mp.heartbeat':
        this.onHeartbeat(msg.from, msg.ballot, now);
        break;
      case 'mp.campaign':
        this.onCampaign(msg.from, msg.ballot, now);
        break;
      case 'mp.learned':
        if (msg.from === this.opts.localLearner) this.onLocalLearned(msg.decidedUpTo, now);
        break;
      default:
        break;
    }
    this.maybeHeartbeat(now);
    return this.flushOut();
  }

  private onHeartbeat(from: string, ballot: Ballot, now: number): void {
    if (from === this.opts.id) return;
    if (compareBallots(ballot, this.ballot) < 0 && this.role !== 'follower') return;
    if (compareBallots(ballot, this.highestSeen) < 0) return; // a deposed leader
    this.seen(ballot);
    if (this.role !== 'follower') this.stepDown(now, from);
    this.leader = from;
    this.electionDeadline = now + this.randomElectionTimeout();
  }

  /** Another proposer's phase 1 progresses in `ballot`: do not outbid it meanwhile. */
  private onCampaign(from: string, ballot: Ballot, now: number): void {
    if (from === this.opts.id || this.role === 'leader') return;
    if (compareBallots(ballot, this.highestSeen) < 0) return;
    if (this.role === 'candidate') {
      if (compareBallots(ballot, this.ballot) <= 0) return;
      this.seen(ballot);
      this.stepDown(now);
      return;
    }
    this.seen(ballot);
    this.electionDeadline = Math.max(this.electionDeadline, now + this.randomElectionTimeout());
  }

  private onLocalLearned(decidedUpTo: number, now: number): void {
    if (decidedUpTo < this.localDecided) {
      // The local learner restarted and resumed from an older snapshot: the slots after it
      // were in its memory only, and perhaps in no learner's now (each may have restarted,
      // and `retained` no longer holds them). Chosen values stay with the acceptors, so a
      // leader recovers them with a new phase 1 from there (a chosen slot's value is the
      // highest-ballot one a quorum reports), which decides them again for every learner.
      this.localDecided = decidedUpTo;
      this.decidedAtResendCheck = -1;
      if (this.role !== 'follower') this.startElection(now);
      return;
    }
    if (decidedUpTo === this.localDecided) return;
    this.localDecided = decidedUpTo;
    if (this.retained.length > 0)
      this.retained = this.retained.filter((b) => b.maxSlot > decidedUpTo);
  }

  private seen(b: Ballot): void {
    this.highestSeen = maxBallot(this.highestSeen, b);
  }

  private randomElectionTimeout(): number {
    return this.electionTimeoutMs + this.opts.random.int(this.electionTimeoutMs + 1);
  }

  private ask(acceptor: string, fromSlot: number, now: number): void {
    this.askedAt.set(acceptor, now);
    this.send(acceptor, this.prepareMsg(fromSlot));
  }

  private prepareMsg(fromSlot: number): MultiPaxosMessage {
    return {
      type: 'mp.prepare',
      from: this.opts.id,
      ballot: this.ballot,
      fromSlot,
      maxBytes: this.promisePageBytes,
    };
  }

  /**
   * A promise page of this candidacy. Pages are merged in slot order; a page answering an
   * earlier (retransmitted) request repeats slots already held, which are skipped, and covers
   * everything up to its own `more`. The next page is asked for at once; the promise counts
   * towards the phase-1 quorum when a page without `more` arrived.
   */
  private onPromise(msg: MPromise, now: number): void {
    const cur = this.promises.get(msg.from);
    if (cur !== undefined && cur.next === undefined) return; // complete already
    const so: PromiseSoFar = cur ?? { floor: 0, accepted: [], next: this.fromSlot };
    if (msg.floor > so.floor) so.floor = msg.floor;
    let last =
      so.accepted.length > 0 ? (so.accepted[so.accepted.length - 1] as AcceptedSlot).slot : -1;
    for (const a of msg.accepted) {
      if (a.slot > last) {
        so.accepted.push(a);
        last = a.slot;
      }
    }
    const before = so.next;
    so.next = msg.more === undefined ? undefined : Math.max(before ?? 0, msg.more);
    this.promises.set(msg.from, so);
    if (so.next !== undefined) {
      if (so.next === before) return; // a repeated page
      // Progress: a long phase 1 must not lose to its own deadline, nor to the others timing
      // out (they hold off on mp.campaign).
      this.electionDeadline = Math.max(this.electionDeadline, now + this.randomElectionTimeout());
      if (now - this.campaignSentAt >= this.heartbeatMs) {
        this.campaignSentAt = now;
        const campaign: MultiPaxosMessage = {
          type: 'mp.campaign',
          from: this.opts.id,
          ballot: this.ballot,
        };
        for (const p of this.opts.proposers) if (p !== this.opts.id) this.send(p, campaign);
      }
      this.ask(msg.from, so.next, now);
      return;
    }
    const complete = new Set<string>();
    for (const [a, p] of this.promises) if (p.next === undefined) complete.add(a);
    if (this.opts.quorums.isPhase1Quorum(complete)) this.becomeLeader(now);
  }

  private startElection(now: number): void {
    if (this.role === 'leader') this.abandon();
    this.role = 'candidate';
    this.leader = undefined;
    this.ballot = nextBallot(maxBallot(this.highestSeen, this.ballot), this.opts.id);
    this.seen(this.ballot);
    this.out.persist = { round: this.ballot.round };
    this.promises.clear();
    this.askedAt.clear();
    this.campaignSentAt = Number.NEGATIVE_INFINITY;
    this.fromSlot = this.localDecided + 1;
    this.electionDeadline = now + this.randomElectionTimeout();
    this.out.events.push({ type: 'election-started', ballot: this.ballot });
    for (const a of this.opts.quorums.acceptors) this.ask(a, this.fromSlot, now);
  }

  private becomeLeader(now: number): void {
    let maxFloor = 0;
    const best = new Map<number, AcceptedSlot>();
    for (const p of this.promises.values()) {
      if (p.floor > maxFloor) maxFloor = p.floor;
      for (const a of p.accepted) {
        const cur = best.get(a.slot);
        if (!cur || compareBallots(a.ballot, cur.ballot) > 0) best.set(a.slot, a);
      }
    }
    const start = Math.max(this.fromSlot, maxFloor + 1);
    let maxSlot = start - 1;
    for (const s of best.keys()) if (s > maxSlot) maxSlot = s;
    this.role = 'leader';
    this.leader = this.opts.id;
    this.promises.clear();
    this.inflight.clear();
    this.chosenAbove.clear();
    this.leaseAck.clear();
    this.lastAckFrom.clear();
    this.ridAck.clear();
    this.chosenUpTo = start - 1;
    this.retransmitScanAt = 0;
    this.lastQuorumContact = now;
    const entries: SlotEntry[] = [];
    for (let s = start; s <= maxSlot; s++) {
      const value: SlotValue = best.get(s)?.value ?? { k: 'noop', t: this.ballot.round };
      this.inflight.set(s, { value, acks: 0, sentAt: now });
      entries.push({ slot: s, value });
    }
    this.nextSlot = maxSlot + 1;
    this.out.events.push({ type: 'elected', ballot: this.ballot, firstSlot: start });
    this.broadcastAccepts(entries, now);
    this.nextHeartbeatAt = now; // announce at once
    this.leaderTick(now);
  }

  private stepDown(now: number, leader?: string): void {
    if (this.role === 'leader') this.abandon();
    const was = this.ballot;
    this.role = 'follower';
    this.leader = leader;
    this.promises.clear();
    this.electionDeadline = now + this.randomElectionTimeout();
    this.out.events.push({
      type: 'stepped-down',
      ballot: was,
      ...(leader !== undefined ? { leader } : {}),
    });
  }

  /** Leadership is lost: queued values were never sent; in-flight ones may still be chosen. */
  private abandon(): void {
    for (const v of this.queue)
      this.out.fates.push({ kind: 'dropped', value: v, reason: 'not-leader' });
    this.queue = [];
    for (const f of this.inflight.values()) {
      this.out.fates.push({ kind: 'indeterminate', value: f.value });
    }
    this.inflight.clear();
    this.chosenAbove.clear();
    this.leaseAck.clear();
    this.ridAck.clear();
    for (const r of this.pendingReads) this.out.reads.push({ id: r.id });
    this.pendingReads = [];
  }

  private pump(now: number): void {
    if (this.role !== 'leader' || this.queue.length === 0) return;
    const entries: SlotEntry[] = [];
    while (this.queue.length > 0 && this.nextSlot <= this.chosenUpTo + this.window) {
      const value = this.queue.shift() as SlotValue;
      const slot = this.nextSlot++;
      this.inflight.set(slot, { value, acks: 0, sentAt: now });
      entries.push({ slot, value });
    }
    this.broadcastAccepts(entries, now);
  }

  /** Accepts (an empty one is a keep-alive), to one acceptor or to all of them. */
  private broadcastAccepts(
    entries: readonly SlotEntry[],
    now: number,
    to?: string,
    keepAlive = false,
  ): void {
    if (entries.length === 0 && !keepAlive) return;
    const rid = this.readRound;
    let i = 0;
    do {
      const batch =
        entries.length <= this.maxBatch && i === 0 ? entries : entries.slice(i, i + this.maxBatch);
      const msg: MultiPaxosMessage = {
        type: 'mp.accept',
        from: this.opts.id,
        ballot: this.ballot,
        entries: batch,
        sentAt: now,
        rid,
      };
      if (to !== undefined) this.send(to, msg);
      else for (const a of this.opts.quorums.acceptors) this.send(a, msg);
      i += this.maxBatch;
    } while (i < entries.length);
    if (rid > this.sentRound) this.sentRound = rid;
    if (to === undefined && rid > this.broadcastRound) this.broadcastRound = rid;
  }

  private onAccepted(
    from: string,
    slots: readonly number[],
    sentAt: number,
    floor: number,
    now: number,
    rid: number | undefined,
  ): void {
    this.stepNow = now;
    const bit = this.acceptorBit.get(from);
    if (bit === undefined) return;
    this.leaseAck.set(from, Math.max(this.leaseAck.get(from) ?? Number.NEGATIVE_INFINITY, sentAt));
    this.lastAckFrom.set(from, now);
    if (rid !== undefined && rid > (this.ridAck.get(from) ?? -1)) {
      this.ridAck.set(from, rid);
      if (this.pendingReads.length > 0) this.confirmReads();
    }
    for (const slot of slots) {
      const f = this.inflight.get(slot);
      if (!f) continue;
      if ((f.acks & bit) !== 0) continue;
      f.acks |= bit;
      if (this.isPhase2Mask(f.acks)) this.markChosen(slot, f.value);
    }
    // Slots at or below an acceptor's floor are decided (that acceptor's learner holds them).
    // (Slots in flight are all above chosenUpTo: no walk over them unless the floor is.)
    if (floor > this.chosenUpTo) {
      for (const [slot] of this.inflight) if (slot <= floor) this.markChosen(slot, undefined);
    }
    this.advance(now);
  }

  private markChosen(slot: number, value: SlotValue | undefined): void {
    this.inflight.delete(slot);
    if (slot <= this.chosenUpTo) return;
    // Slots are mostly chosen in order: the next one moves the prefix without the set.
    if (slot === this.chosenUpTo + 1 && this.chosenAbove.size === 0) this.chosenUpTo = slot;
    else this.chosenAbove.add(slot);
    if (value !== undefined) this.out.chosen.push({ slot, value });
  }

  private isPhase2Mask(mask: number): boolean {
    let q = this.phase2Memo.get(mask);
    if (q === undefined) {
      const members = new Set<string>();
      for (const [a, bit] of this.acceptorBit) if ((mask & bit) !== 0) members.add(a);
      q = this.opts.quorums.isPhase2Quorum(members);
      this.phase2Memo.set(mask, q);
    }
    return q;
  }

  private advance(now: number): void {
    while (this.chosenAbove.has(this.chosenUpTo + 1)) {
      this.chosenAbove.delete(this.chosenUpTo + 1);
      this.chosenUpTo++;
    }
    if (this.out.chosen.length > 0) {
      const entries = this.out.chosen;
      if (this.opts.localLearner !== undefined) {
        let maxSlot = 0;
        for (const e of entries) if (e.slot > maxSlot) maxSlot = e.slot;
        if (maxSlot > this.localDecided) this.retained.push({ at: this.stepNow, maxSlot, entries });
      }
      const bySlot = this.opts.learnersWithAcceptor;
      // Slot numbers only, for learners next to an acceptor (one message per 64 Ki slots).
      let chosen: MultiPaxosMessage[] | undefined;
      if (bySlot !== undefined && bySlot.size > 0) {
        chosen = [];
        for (const runs of slotRuns(entries)) {
          chosen.push({ type: 'mp.chosen', from: this.opts.id, ballot: this.ballot, runs });
        }
      }
      // The values, for the others.
      let decide: MultiPaxosMessage[] | undefined;
      for (const l of this.opts.learners) {
        if (chosen !== undefined && bySlot?.has(l)) {
          for (const m of chosen) this.send(l, m);
          continue;
        }
        if (decide === undefined) {
          decide = [];
          for (let i = 0; i < entries.length; i += this.maxBatch * 4) {
            decide.push({
              type: 'mp.decide',
              from: this.opts.id,
              entries: entries.slice(i, i + this.maxBatch * 4),
            });
          }
        }
        for (const m of decide) this.send(l, m);
      }
    }
    this.pump(now);
  }

  /**
   * Heartbeats and keep-alives when due. Also called while handling messages, so a leader
   * whose mailbox is busy (its tick queued behind client traffic) still heartbeats on time.
   */
  private maybeHeartbeat(now: number): void {
    if (this.role !== 'leader' || now < this.nextHeartbeatAt) return;
    this.nextHeartbeatAt = now + this.heartbeatMs;
    const hb: MultiPaxosMessage = {
      type: 'mp.heartbeat',
      from: this.opts.id,
      ballot: this.ballot,
      chosenUpTo: this.chosenUpTo,
      ...(this.opts.localLearner !== undefined ? { learner: this.opts.localLearner } : {}),
    };
    for (const p of this.opts.proposers) if (p !== this.opts.id) this.send(p, hb);
    for (const l of this.opts.learners) this.send(l, hb);
    // keep-alive: renews leases and detects a newer ballot even when idle
    this.broadcastAccepts([], now, undefined, true);
  }

  private leaderTick(now: number): void {
    // A leader cut off from a phase-2 quorum for a whole election timeout steps down so
    // clients are redirected instead of waiting on it.
    const recent = new Set<string>();
    for (const [a, at] of this.lastAckFrom) {
      if (now - at < this.electionTimeoutMs * 2) recent.add(a);
    }
    if (this.opts.quorums.isPhase2Quorum(recent)) this.lastQuorumContact = now;
    else if (now - this.lastQuorumContact > this.electionTimeoutMs * 2) {
      this.stepDown(now, undefined);
      return;
    }
    this.maybeHeartbeat(now);
    // Retransmit slow slots to the acceptors that did not answer, when the accept (or its
    // answer) looks lost: the acceptor answered a message sent after it, or has been silent
    // for `retransmitMs`. An acceptor that still answers older messages is only behind (a
    // busy process): resending to it would add work exactly when it has too much.
    // Nothing can be late before the oldest send time plus retransmitMs: skip the scan (it
    // walks every slot in flight, up to `window` of them, on every tick).
    if (this.inflight.size === 0 || now < this.retransmitScanAt) {
      this.resendDecides(now);
      return;
    }
    let oldest = Number.POSITIVE_INFINITY;
    let late: Map<string, SlotEntry[]> | undefined;
    const acceptors = this.opts.quorums.acceptors;
    // forEach, not `for (const [slot, f] of ...)`: the entries iterator allocates a pair per
    // slot, and under load (slots in flight longer than retransmitMs) this scan runs on
    // every tick over up to `window` slots.
    this.inflight.forEach((f, slot) => {
      if (now - f.sentAt < this.retransmitMs) {
        if (f.sentAt < oldest) oldest = f.sentAt;
        return;
      }
      let resent = false;
      for (let i = 0; i < acceptors.length; i++) {
        const a = acceptors[i] as string;
        if ((f.acks & (this.acceptorBit.get(a) as number)) !== 0) continue;
        const answeredLater = (this.leaseAck.get(a) ?? Number.NEGATIVE_INFINITY) > f.sentAt;
        const silent =
          now - (this.lastAckFrom.get(a) ?? Number.NEGATIVE_INFINITY) >= this.retransmitMs;
        if (!answeredLater && !silent) continue;
        late ??= new Map();
        const l = late.get(a);
        if (l) l.push({ slot, value: f.value });
        else late.set(a, [{ slot, value: f.value }]);
        resent = true;
      }
      if (resent) f.sentAt = now;
      if (f.sentAt < oldest) oldest = f.sentAt;
    });
    // New slots are sent at or after `now`, and removals only raise the minimum.
    this.retransmitScanAt = oldest + this.retransmitMs;
    if (late) for (const [a, entries] of late) this.broadcastAccepts(entries, now, a);
    this.resendDecides(now);
  }

  private resendDecides(now: number): void {
    // make sure the local learner gets every chosen value
    if (
      this.opts.localLearner !== undefined &&
      this.retained.length > 0 &&
      now - this.lastDecideResendAt >= this.retransmitMs
    ) {
      this.lastDecideResendAt = now;
      // A local learner that moved since the last look is only behind (a busy process), not
      // missing anything: resending would give it more work exactly when it has too much.
      // (Local messages are not lost; this covers a learner that restarted and lost them.)
      if (this.localDecided !== this.decidedAtResendCheck) {
        this.decidedAtResendCheck = this.localDecided;
        return;
      }
      const due: SlotEntry[] = [];
      for (const b of this.retained) {
        if (now - b.at < this.retransmitMs) continue;
        for (const e of b.entries) if (e.slot > this.localDecided) due.push(e);
      }
      const entries = due.sort((a, b) => a.slot - b.slot).slice(0, this.maxBatch * 4);
      if (entries.length > 0) {
        this.send(this.opts.localLearner, { type: 'mp.decide', from: this.opts.id, entries });
      }
    }
  }

  private send(to: string, msg: MultiPaxosMessage): void {
    this.out.send.push({ to, msg });
  }

  private flushOut(): MultiLeaderOutput {
    const o = this.out;
    // Nothing happened (every deferred submission: one per write): a shared, frozen empty
    // output instead of six new objects.
    if (
      o.send.length === 0 &&
      o.fates.length === 0 &&
      o.events.length === 0 &&
      o.chosen.length === 0 &&
      o.reads.length === 0 &&
      o.persist === undefined
    ) {
      return EMPTY_OUTPUT;
    }
    this.out = { send: [], fates: [], events: [], chosen: [], reads: [] };
    return o;
  }
}

const EMPTY_OUTPUT: MultiLeaderOutput = Object.freeze({
  send: Object.freeze([]) as unknown as MOutbound[],
  fates: Object.freeze([]) as unknown as ProposalFate[],
  events: Object.freeze([]) as unknown as LeaderEvent[],
  chosen: Object.freeze([]) as unknown as SlotEntry[],
  reads: Object.freeze([]) as unknown as ReadOutcome[],
});

const SUBMITTED: SubmitResult = Object.freeze({ ok: true });

/**
 * The slots of `entries` as inclusive ranges `[lo, hi, ...]`, in slot order, cut so that
 * no group names more than `MAX_CHOSEN_SPAN` slots.
 */
export function slotRuns(entries: readonly { readonly slot: number }[]): number[][] {
  const slots = entries.map((e) => e.slot);
  let sorted = true;
  for (let i = 1; i < slots.length; i++) {
    if ((slots[i] as number) < (slots[i - 1] as number)) {
      sorted = false;
      break;
    }
  }
  if (!sorted) slots.sort((a, b) => a - b);
  const groups: number[][] = [];
  let runs: number[] = [];
  let span = 0;
  for (let i = 0; i < slots.length; ) {
    const lo = slots[i] as number;
    let hi = lo;
    i++;
    while (i < slots.length && (slots[i] as number) <= hi + 1 && hi - lo + 1 < MAX_CHOSEN_SPAN) {
      hi = Math.max(hi, slots[i] as number);
      i++;
    }
    if (span + (hi - lo + 1) > MAX_CHOSEN_SPAN) {
      groups.push(runs);
      runs = [];
      span = 0;
    }
    runs.push(lo, hi);
    span += hi - lo + 1;
  }
  if (runs.length > 0) groups.push(runs);
  return groups;
}
