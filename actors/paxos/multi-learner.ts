/**
 * Multi-Paxos learner core (a replica): collects chosen slot values, applies the contiguous
 * prefix to a deterministic `StateMachine` in slot order, enforces client sessions (a
 * (clientId, seq) command is applied at most once), takes snapshots of the applied prefix,
 * and catches up missing slots from peer learners (entries, or a snapshot when the peer has
 * compacted them). Deterministic: time (`now`) is an input.
 *
 * I/O contract: `snapshot`, when set, must be stored durably; the shell then calls
 * `snapshotPersisted(index)`, which lets the co-located acceptor compact its accepted log up
 * to that slot (`mp.compact`). Nothing else needs to be durable: after a restart the learner
 * restores its latest snapshot and re-learns the rest from peers and from the acceptors (a new
 * leader re-proposes every value that might have been chosen).
 *
 * Safety check: a slot decided twice with different values throws `SYNOD_ERR_PAXOS_BAD_STATE`.
 */
import type { Command, StateMachine } from '../../lib/replicated-log.js';
import { type Ballot, ballotAtLeast } from './ballot.js';
import { PaxosError } from './errors.js';
import { sameValue } from './learner.js';
import {
  commandOf,
  type MOutbound,
  type MultiPaxosMessage,
  nextPackedEntry,
  packedCommandAt,
  packedIsCommand,
  packedTermAt,
  packedValueAt,
  releaseLocalCommand,
  type SlotEntry,
  type SlotValue,
  type SnapshotImage,
} from './multi-messages.js';
import {
  decodeReplicaImage,
  encodeReplicaImage,
  encodeReplicaImageSliced,
} from './replica-image.js';
import { ClientSessions } from './sessions.js';

/** One applied slot (the learner actor publishes them on events$ in `applied-batch` events). */
export type AppliedRecord =
  | {
      readonly type: 'applied';
      readonly kind: 'cmd';
      readonly index: number;
      readonly term: number;
      readonly command: Command;
      readonly result: unknown;
      /** True when the session table found this (clientId, seq) applied before. */
      readonly duplicate: boolean;
    }
  | {
      readonly type: 'applied';
      readonly kind: 'noop';
      readonly index: number;
      readonly term: number;
      readonly barrier?: string;
      /**
       * Set when the slot holds a command whose bytes are not a command (only a faulty or
       * hostile proposer builds one): every replica skips it the same way.
       */
      readonly invalid?: string;
    }
  | {
      readonly type: 'applied';
      readonly kind: 'snapshot';
      readonly index: number;
      readonly term: number;
    };

export interface MultiLearnerOutput {
  readonly send: MOutbound[];
  readonly applied: AppliedRecord[];
  /** Store durably, then call `snapshotPersisted(snapshot.index)`. */
  readonly snapshot?: SnapshotImage;
  /**
   * A snapshot captured now and being encoded in slices (only with `snapshotPause`): once
   * `data` resolves, call `snapshotEncoded(index, bytes)` and, if it returns true, store it
   * durably and call `snapshotPersisted(index)`; if `data` rejects, call `snapshotFailed(index)`.
   */
  readonly snapshotPending?: PendingSnapshot;
}

/** See `MultiLearnerOutput.snapshotPending`. */
export interface PendingSnapshot {
  readonly index: number;
  readonly term: number;
  /** The replica image's bytes (`encodeReplicaImage`'s), encoded in slices. */
  readonly data: Promise<Uint8Array>;
}

export interface MultiLearnerOptions {
  readonly id: string;
  /** Other learners, asked for missing slots. */
  readonly peers: readonly string[];
  /** The acceptor on this node: compacted once a snapshot is durable. */
  readonly localAcceptor?: string;
  /** The proposer on this node: told how far this learner has decided. */
  readonly localProposer?: string;
  readonly stateMachine: StateMachine;
  /**
   * Snapshot after this many applied slots; 0 disables. Default 1000 (then see
   * `snapshotLogRatio` for what else the default waits for).
   */
  readonly snapshotEvery?: number;
  /**
   * A snapshot also waits until the commands applied since the last one add up to this many
   * times the last image's bytes, but not beyond `snapshotEveryMax` slots: a snapshot encodes
   * and writes the whole state, so with a large state and small commands it is taken less
   * often (Raft's rule, RaftNodeOptions.snapshotLogRatio). Default 1 when `snapshotEvery` is
   * left at its default, 0 (exactly every `snapshotEvery` slots) when it is set.
   */
  readonly snapshotLogRatio?: number;
  /**
   * The most slots applied between two automatic snapshots (default 100 × `snapshotEvery`:
   * 100,000 with the defaults, Raft's own bound, so the byte rule decides, as in Raft).
   */
  readonly snapshotEveryMax?: number;
  /** Default 100 ms. */
  readonly catchupRetryMs?: number;
  /** Entries per catch-up reply. Default 512. */
  readonly maxCatchupEntries?: number;
  /**
   * Applied slots kept for catch-up after a durable snapshot covers them (default 1000), so
   * a peer or a pulling backup agent a little behind the snapshot gets entries rather than
   * the whole snapshot (a backup archive would otherwise get a gap). 0 keeps none.
   */
  readonly keepAfterSnapshot?: number;
  /** Session window per client (see ClientSessions). Default 256. */
  readonly sessionWindow?: number;
  /**
   * The proposal the co-located acceptor holds for a slot (in this process). With it, the
   * learner takes the values of `mp.chosen` slots from there; without it, such slots are
   * fetched by catch-up.
   */
  readonly localValue?: (
    slot: number,
  ) => { readonly ballot: Ballot; readonly value: SlotValue } | undefined;
  /**
   * The co-located acceptor's slot table, read in place (preferred to `localValue`: no object
   * per slot, and values that arrived packed are applied from the packed bytes).
   */
  readonly localSlots?: LocalSlots;
  /**
   * With it (and a state machine that has `snapshotAsync`), a snapshot is captured at once but
   * encoded in slices, `await snapshotPause()` between them, and comes out as
   * `snapshotPending` (Raft's sliced snapshots): encoded in one go, a 10,000-key KV image held
   * a busy node's event loop for hundreds of ms, and every client of that node waited. The
   * state machine's image goes into the replica image by reference (one copy, not two).
   * Without it (the core-level simulation, unit tests) snapshots are encoded synchronously.
   */
  readonly snapshotPause?: () => Promise<void>;
}

/**
 * The accepted proposals of the acceptor next to a learner, read where they lie (the
 * acceptor's `SlotTable`): the learner asks the ballot, then the value, without an object
 * per slot.
 */
export interface LocalSlots {
  /** The ballot of the proposal accepted for `slot`. */
  ballotAt(slot: number): Ballot | undefined;
  /**
   * Its value: a `SlotValue`, or the packed entries (`packSlotEntries`' layout) holding it,
   * and then `offsetAt(slot)` is the byte offset of its entry.
   */
  rawAt(slot: number): SlotValue | Uint8Array | undefined;
  /** See `rawAt`; −1 when the value is not packed. */
  offsetAt(slot: number): number;
}

export interface MultiLearnerView {
  readonly id: string;
  readonly appliedUpTo: number;
  readonly knownChosenUpTo: number;
  readonly pending: number;
  readonly snapshotIndex: number;
  readonly sessions: number;
}

export class MultiLearnerCore {
  private appliedUpTo = 0;
  private appliedTerm = 0;
  private knownChosenUpTo = 0;
  private readonly pending = new Map<number, SlotValue>();
  /** Slots chosen (in at least this ballot) whose value the local acceptor did not hold. */
  private readonly missing = new Map<number, Ballot>();
  /** Applied values since the last durable snapshot, served to lagging peers. */
  private readonly retained = new RetainedSlots();
  private sessions: ClientSessions;
  private lastSnapshot: SnapshotImage | undefined;
  /** Taken or installed, not yet durable; `data` is undefined while a sliced encoding runs. */
  private snapshotInFlight: { index: number; term: number; data?: Uint8Array } | undefined;
  private hint: string | undefined;
  /** The leader's learner named by the latest heartbeat (possibly this one). */
  private leaderLearner: string | undefined;
  private lastCatchupAt = Number.NEGATIVE_INFINITY;
  private catchupTurn = 0;
  private reportedUpTo = -1;
  private readonly snapshotEvery: number;
  private readonly snapshotLogRatio: number;
  private readonly snapshotEveryMax: number;
  /** Bytes of the commands applied so far (for `snapshotLogRatio`). */
  private appliedBytes = 0;
  /** `appliedBytes` and the image's bytes when the last snapshot was taken or installed. */
  private snapshotBytesMark = 0;
  private lastImageBytes = 0;
  private readonly catchupRetryMs: number;
  private readonly maxCatchupEntries: number;
  private readonly keepAfterSnapshot: number;
  /**
   * Whether `cmd` records go into the output. The actor clears it while nobody reads them (a
   * follower's log has no proposal waiting and nobody observes `applied$`): a record per slot
   * on every replica was most of the bytes a follower allocated per write. `noop` and
   * `snapshot` records are always produced (barriers, installed snapshots, malformed slots);
   * `applied` (the index) says how far the state machine got either way.
   */
  recordCommands = true;
  private out: {
    send: MOutbound[];
    applied: AppliedRecord[];
    snapshot?: SnapshotImage;
    snapshotPending?: PendingSnapshot;
  } = {
    send: [],
    applied: [],
  };

  constructor(
    private readonly opts: MultiLearnerOptions,
    restored?: SnapshotImage,
  ) {
    this.snapshotEvery = opts.snapshotEvery ?? 1000;
    this.snapshotLogRatio = opts.snapshotLogRatio ?? (opts.snapshotEvery === undefined ? 1 : 0);
    this.snapshotEveryMax = opts.snapshotEveryMax ?? 100 * this.snapshotEvery;
    this.catchupRetryMs = opts.catchupRetryMs ?? 100;
    this.maxCatchupEntries = opts.maxCatchupEntries ?? 512;
    this.keepAfterSnapshot = opts.keepAfterSnapshot ?? 1000;
    if (!Number.isSafeInteger(this.snapshotEvery) || this.snapshotEvery < 0) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `snapshotEvery must be a non-negative integer (0 disables), got ${this.snapshotEvery}`,
      );
    }
    if (!Number.isFinite(this.snapshotLogRatio) || this.snapshotLogRatio < 0) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `snapshotLogRatio must be a finite number ≥ 0, got ${this.snapshotLogRatio}`,
      );
    }
    if (
      !Number.isSafeInteger(this.snapshotEveryMax) ||
      this.snapshotEveryMax < this.snapshotEvery
    ) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `snapshotEveryMax must be an integer ≥ snapshotEvery (${this.snapshotEvery}), got ${this.snapshotEveryMax}`,
      );
    }
    if (!Number.isSafeInteger(this.keepAfterSnapshot) || this.keepAfterSnapshot < 0) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_BAD_CONFIG',
        `keepAfterSnapshot must be a non-negative integer, got ${this.keepAfterSnapshot}`,
      );
    }
    this.sessions = new ClientSessions(opts.sessionWindow ?? 256);
    if (restored) {
      this.lastSnapshot = restored;
      this.install(restored);
      this.out = { send: [], applied: [] };
    }
  }

  view(): MultiLearnerView {
    return {
      id: this.opts.id,
      appliedUpTo: this.appliedUpTo,
      knownChosenUpTo: Math.max(this.knownChosenUpTo, this.appliedUpTo),
      pending: this.pending.size,
      snapshotIndex: this.lastSnapshot?.index ?? 0,
      sessions: this.sessions.size,
    };
  }

  get applied(): number {
    return this.appliedUpTo;
  }

  /** The value this learner holds for a decided slot still in memory (tests, checks). */
  valueAt(slot: number): SlotValue | undefined {
    return this.retained.get(slot) ?? this.pending.get(slot);
  }

  /** What the session table says about (clientId, seq) right now. */
  session(clientId: string, seq: number) {
    return this.sessions.check(clientId, seq);
  }

  step(msg: MultiPaxosMessage, now: number): MultiLearnerOutput {
    switch (msg.type) {
      case 'mp.decide':
        this.learnEntries(msg.entries);
        break;
      case 'mp.chosen':
        this.learnChosen(msg.ballot, msg.runs);
        break;
      case 'mp.heartbeat':
        if (msg.chosenUpTo > this.knownChosenUpTo) this.knownChosenUpTo = msg.chosenUpTo;
        if (msg.learner !== undefined) {
          this.leaderLearner = msg.learner;
          if (msg.learner !== this.opts.id) this.hint = msg.learner;
        }
        this.send(msg.from, {
          type: 'mp.learned',
          from: this.opts.id,
          decidedUpTo: this.appliedUpTo,
        });
        this.maybeCatchup(now);
        break;
      case 'mp.catchup':
        this.serveCatchup(msg.from, msg.fromSlot, msg.toSlot);
        break;
      case 'mp.catchup-reply': {
        const before = this.appliedUpTo;
        if (msg.decidedUpTo > this.knownChosenUpTo) this.knownChosenUpTo = msg.decidedUpTo;
        if (msg.snapshot && msg.snapshot.index > this.appliedUpTo) {
          // store the installed snapshot too: it lets the local acceptor compact
          this.snapshotInFlight = msg.snapshot;
          this.out.snapshot = msg.snapshot;
          this.install(msg.snapshot);
        }
        this.learnEntries(msg.entries);
        // Progress: ask for the next batch at once. No progress: wait for the retry timer
        // (a peer may hold later slots but not the missing one).
        if (this.appliedUpTo > before) this.lastCatchupAt = Number.NEGATIVE_INFINITY;
        this.maybeCatchup(now);
        break;
      }
      default:
        break;
    }
    if (this.missing.size > 0) this.retryMissing();
    return this.flush();
  }

  tick(now: number): MultiLearnerOutput {
    if (this.missing.size > 0) this.retryMissing();
    this.maybeCatchup(now);
    this.report();
    return this.flush();
  }

  /** The snapshot at `index` is durable: compact the local acceptor and the retained log. */
  snapshotPersisted(index: number): MultiLearnerOutput {
    const snap = this.snapshotInFlight;
    if (snap && snap.index === index && snap.data !== undefined) {
      this.snapshotInFlight = undefined;
      if (!this.lastSnapshot || snap.index > this.lastSnapshot.index)
        this.lastSnapshot = { index: snap.index, term: snap.term, data: snap.data };
      this.retained.dropUpTo(index - this.keepAfterSnapshot);
      if (this.opts.localAcceptor !== undefined) {
        this.send(this.opts.localAcceptor, { type: 'mp.compact', from: this.opts.id, upTo: index });
      }
    }
    this.maybeSnapshot();
    return this.flush();
  }

  /**
   * The sliced encoding of the pending snapshot at `index` finished with `data`. True: store
   * it (then `snapshotPersisted`). False: it is no longer wanted (a snapshot installed from a
   * peer replaced it meanwhile), do not store it.
   */
  snapshotEncoded(index: number, data: Uint8Array): boolean {
    const snap = this.snapshotInFlight;
    if (snap === undefined || snap.index !== index || snap.data !== undefined) return false;
    snap.data = data;
    this.lastImageBytes = data.byteLength;
    return true;
  }

  /** The snapshot could not be encoded or stored; a later one will be tried. */
  snapshotFailed(index: number): void {
    if (this.snapshotInFlight?.index === index) this.snapshotInFlight = undefined;
  }

  private learnEntries(entries: readonly SlotEntry[]): void {
    for (const e of entries) {
      // In-order arrival, nothing waiting: apply at once, without parking it in `pending`.
      if (e.slot === this.appliedUpTo + 1 && this.pending.size === 0) {
        if (e.slot > this.knownChosenUpTo) this.knownChosenUpTo = e.slot;
        this.applyOne(e.slot, e.value);
        continue;
      }
      if (e.slot <= this.appliedUpTo) {
        const had = this.retained.get(e.slot);
        if (had && !sameValue(had, e.value)) this.conflict(e.slot);
        continue;
      }
      const had = this.pending.get(e.slot);
      if (had) {
        if (!sameValue(had, e.value)) this.conflict(e.slot);
        continue;
      }
      this.pending.set(e.slot, e.value);
      if (e.slot > this.knownChosenUpTo) this.knownChosenUpTo = e.slot;
    }
    this.applyReady();
  }

  /** Slots chosen in `ballot`, values from the co-located acceptor (see MChosen). */
  private learnChosen(ballot: Ballot, runs: readonly number[]): void {
    const local = this.opts.localSlots;
    const found: SlotEntry[] = [];
    for (let i = 0; i < runs.length; i += 2) {
      const hi = runs[i + 1] as number;
      for (let s = Math.max(runs[i] as number, this.appliedUpTo + 1); s <= hi; s++) {
        const inOrder = s === this.appliedUpTo + 1 && this.pending.size === 0;
        if (!inOrder && this.pending.has(s)) continue;
        if (local !== undefined) {
          const b = local.ballotAt(s);
          if (b !== undefined && ballotAtLeast(b, ballot)) {
            const raw = local.rawAt(s) as SlotValue | Uint8Array;
            const off = local.offsetAt(s);
            // The next slot with nothing parked: apply it at once (the common case).
            if (inOrder && found.length === 0) {
              if (s > this.knownChosenUpTo) this.knownChosenUpTo = s;
              if (off >= 0) this.applyPacked(s, raw as Uint8Array, off);
              else this.applyOne(s, raw as SlotValue);
            } else {
              const value = off >= 0 ? packedValueAt(raw as Uint8Array, off) : (raw as SlotValue);
              found.push({ slot: s, value });
            }
            continue;
          }
        } else {
          const a = this.opts.localValue?.(s);
          if (a !== undefined && ballotAtLeast(a.ballot, ballot)) {
            if (inOrder && found.length === 0) {
              if (s > this.knownChosenUpTo) this.knownChosenUpTo = s;
              this.applyOne(s, a.value);
            } else found.push({ slot: s, value: a.value });
            continue;
          }
        }
        this.missing.set(s, ballot);
        if (s > this.knownChosenUpTo) this.knownChosenUpTo = s;
      }
    }
    if (found.length > 0) this.learnEntries(found);
    else this.maybeSnapshot();
  }

  /** The co-located acceptor's proposal for `slot`, if it holds one in a ballot ≥ `ballot`. */
  private localValueAt(slot: number, ballot: Ballot): SlotValue | undefined {
    const local = this.opts.localSlots;
    if (local !== undefined) {
      const b = local.ballotAt(slot);
      if (b === undefined || !ballotAtLeast(b, ballot)) return undefined;
      const raw = local.rawAt(slot) as SlotValue | Uint8Array;
      const off = local.offsetAt(slot);
      return off >= 0 ? packedValueAt(raw as Uint8Array, off) : (raw as SlotValue);
    }
    const a = this.opts.localValue?.(slot);
    return a !== undefined && ballotAtLeast(a.ballot, ballot) ? a.value : undefined;
  }

  /** Looks again for the values of chosen slots the local acceptor did not hold. */
  private retryMissing(): void {
    const found: SlotEntry[] = [];
    for (const [s, ballot] of this.missing) {
      if (s <= this.appliedUpTo || this.pending.has(s)) {
        this.missing.delete(s);
        continue;
      }
      const value = this.localValueAt(s, ballot);
      if (value !== undefined) {
        this.missing.delete(s);
        found.push({ slot: s, value });
      }
    }
    if (found.length > 0) {
      found.sort((x, y) => x.slot - y.slot);
      this.learnEntries(found);
    }
  }

  private conflict(slot: number): never {
    throw new PaxosError(
      'SYNOD_ERR_PAXOS_BAD_STATE',
      `learner ${this.opts.id}: slot ${slot} decided with two different values`,
    );
  }

  private applyReady(): void {
    if (this.pending.size > 0) {
      for (;;) {
        const slot = this.appliedUpTo + 1;
        const v = this.pending.get(slot);
        if (!v) break;
        this.pending.delete(slot);
        this.applyOne(slot, v);
      }
    }
    this.maybeSnapshot();
  }

  /** Applies `v` at `slot`, which must be `appliedUpTo + 1`. */
  private applyOne(slot: number, v: SlotValue): void {
    this.appliedUpTo = slot;
    this.appliedTerm = v.t;
    if (v.k === 'cmd') this.appliedBytes += v.d.byteLength;
    this.retained.push(slot, v);
    if (v.k === 'noop') {
      this.out.applied.push({
        type: 'applied',
        kind: 'noop',
        index: slot,
        term: v.t,
        ...(v.b !== undefined ? { barrier: v.b } : {}),
      });
      return;
    }
    const c = commandOf(v);
    releaseLocalCommand(v);
    this.applyCommand(slot, v.t, c);
  }

  /**
   * Applies the entry at byte `off` of the packed entries `packed` at `slot`, which must be
   * `appliedUpTo + 1`: the command is decoded where it lies and retained as (bytes, offset).
   */
  private applyPacked(slot: number, packed: Uint8Array, off: number): void {
    if (!packedIsCommand(packed, off)) {
      this.applyOne(slot, packedValueAt(packed, off));
      return;
    }
    const t = packedTermAt(packed, off);
    this.appliedUpTo = slot;
    this.appliedTerm = t;
    this.appliedBytes += nextPackedEntry(packed, off) - off;
    this.retained.pushPacked(slot, packed, off);
    this.applyCommand(slot, t, packedCommandAt(packed, off));
  }

  /** The state machine and session part of applying slot `slot` (term `t`): command `c`. */
  private applyCommand(slot: number, t: number, c: Command | string): void {
    if (typeof c === 'string') {
      this.out.applied.push({ type: 'applied', kind: 'noop', index: slot, term: t, invalid: c });
      return;
    }
    const check = this.sessions.check(c.clientId, c.seq);
    if (check.duplicate) {
      if (!this.recordCommands) return;
      this.out.applied.push({
        type: 'applied',
        kind: 'cmd',
        index: slot,
        term: t,
        command: c,
        result: check.result,
        duplicate: true,
      });
      return;
    }
    const result = this.opts.stateMachine.apply(c.op, { index: slot, term: t });
    this.sessions.record(c.clientId, c.seq, result);
    if (!this.recordCommands) return;
    this.out.applied.push({
      type: 'applied',
      kind: 'cmd',
      index: slot,
      term: t,
      command: c,
      result,
      duplicate: false,
    });
  }

  private maybeSnapshot(): void {
    if (this.snapshotEvery <= 0 || this.snapshotInFlight) return;
    const base = this.lastSnapshot?.index ?? 0;
    const since = this.appliedUpTo - base;
    if (since < this.snapshotEvery) return;
    if (
      this.snapshotLogRatio > 0 &&
      since < this.snapshotEveryMax &&
      this.appliedBytes - this.snapshotBytesMark < this.snapshotLogRatio * this.lastImageBytes
    )
      return;
    const sm = this.opts.stateMachine;
    const pause = this.opts.snapshotPause;
    if (pause !== undefined && sm.snapshotAsync !== undefined) {
      // Both images are captured now (snapshotAsync and toImage copy what they need before
      // returning); only the encoding runs later, while this learner goes on applying. The
      // sessions first: they must not depend on whether the state machine's first slice
      // lets anything run before it returns.
      const sessions = this.sessions.toImage();
      const pending: PendingSnapshot = {
        index: this.appliedUpTo,
        term: this.appliedTerm,
        data: encodeReplicaImageSliced(sm.snapshotAsync(pause), sessions, pause),
      };
      this.snapshotInFlight = { index: pending.index, term: pending.term };
      this.out.snapshotPending = pending;
      this.snapshotBytesMark = this.appliedBytes;
      return;
    }
    const snap: SnapshotImage = {
      index: this.appliedUpTo,
      term: this.appliedTerm,
      data: encodeReplicaImage({
        sm: sm.snapshot(),
        sessions: this.sessions.toImage(),
      }),
    };
    this.snapshotInFlight = snap;
    this.out.snapshot = snap;
    this.snapshotBytesMark = this.appliedBytes;
    this.lastImageBytes = snap.data.byteLength;
  }

  private install(snap: SnapshotImage): void {
    const img = decodeReplicaImage(snap.data);
    this.snapshotBytesMark = this.appliedBytes;
    this.lastImageBytes = snap.data.byteLength;
    this.opts.stateMachine.restore(img.sm);
    this.sessions = ClientSessions.fromImage(img.sessions);
    this.appliedUpTo = snap.index;
    this.appliedTerm = snap.term;
    this.retained.clear(snap.index + 1);
    for (const s of [...this.pending.keys()]) if (s <= snap.index) this.pending.delete(s);
    if (snap.index > this.knownChosenUpTo) this.knownChosenUpTo = snap.index;
    this.out.applied.push({
      type: 'applied',
      kind: 'snapshot',
      index: snap.index,
      term: snap.term,
    });
    this.applyReady();
  }

  private maybeCatchup(now: number): void {
    let target = this.knownChosenUpTo;
    for (const s of this.pending.keys()) if (s > target) target = s;
    if (target <= this.appliedUpTo) return;
    if (now - this.lastCatchupAt < this.catchupRetryMs) return;
    const peers = this.opts.peers.filter((p) => p !== this.opts.id);
    if (peers.length === 0) return;
    this.lastCatchupAt = now;
    // alternate between the leader's learner (which has everything) and the other peers
    const turn = this.catchupTurn++;
    const to =
      this.hint !== undefined && turn % 2 === 0
        ? this.hint
        : (peers[(turn >> 1) % peers.length] as string);
    this.send(to, {
      type: 'mp.catchup',
      from: this.opts.id,
      fromSlot: this.appliedUpTo + 1,
      toSlot: Math.min(target, this.appliedUpTo + this.maxCatchupEntries),
    });
  }

  private serveCatchup(to: string, fromSlot: number, toSlot: number): void {
    if (to === this.opts.id) return;
    const snapIndex = this.lastSnapshot?.index ?? 0;
    // The snapshot only when the slots asked for are gone (see keepAfterSnapshot).
    const useSnap =
      this.lastSnapshot !== undefined &&
      fromSlot <= snapIndex &&
      this.retained.get(fromSlot) === undefined;
    const lo = useSnap ? snapIndex + 1 : fromSlot;
    const hi = Math.min(toSlot, lo + this.maxCatchupEntries - 1);
    const entries: SlotEntry[] = [];
    for (let s = lo; s <= hi; s++) {
      const v = this.retained.get(s) ?? this.pending.get(s);
      if (v) entries.push({ slot: s, value: v });
      else if (s <= this.appliedUpTo) break; // compacted after a newer snapshot in flight
    }
    this.send(to, {
      type: 'mp.catchup-reply',
      from: this.opts.id,
      ...(useSnap && this.lastSnapshot ? { snapshot: this.lastSnapshot } : {}),
      entries,
      decidedUpTo: this.appliedUpTo,
      chosenUpTo: Math.max(this.knownChosenUpTo, this.appliedUpTo),
      ...(this.leaderLearner !== undefined ? { leader: this.leaderLearner } : {}),
    });
  }

  private report(): void {
    if (this.opts.localProposer === undefined || this.reportedUpTo === this.appliedUpTo) return;
    this.reportedUpTo = this.appliedUpTo;
    this.send(this.opts.localProposer, {
      type: 'mp.learned',
      from: this.opts.id,
      decidedUpTo: this.appliedUpTo,
    });
  }

  private send(to: string, msg: MultiPaxosMessage): void {
    this.out.send.push({ to, msg });
  }

  private flush(): MultiLearnerOutput {
    const o = this.out;
    this.out = { send: [], applied: [] };
    return o;
  }
}

/**
 * The applied values a learner keeps until a durable snapshot covers them: always a
 * contiguous run of slots ending at the applied index, so an array with a moving start
 * (cheaper per slot than a Map with thousands of entries). A value applied from packed
 * entries is kept as those bytes and its entry's offset (`offs`, −1 for a value object):
 * `get` makes the value when a peer asks for it.
 */
class RetainedSlots {
  private values: (SlotValue | Uint8Array)[] = [];
  private offs: number[] = [];
  private head = 0;
  /** The slot of `values[head]`. */
  private from = 1;

  get(slot: number): SlotValue | undefined {
    if (slot < this.from) return undefined;
    const i = this.head + slot - this.from;
    const v = this.values[i];
    if (v === undefined) return undefined;
    const off = this.offs[i] as number;
    return off < 0 ? (v as SlotValue) : packedValueAt(v as Uint8Array, off);
  }

  /** Appends the value of the next slot (a gap starts the run afresh at `slot`). */
  push(slot: number, v: SlotValue): void {
    if (slot !== this.from + this.values.length - this.head) this.clear(slot);
    this.values.push(v);
    this.offs.push(-1);
  }

  /** Appends the next slot, whose value is the entry at byte `off` of `packed`. */
  pushPacked(slot: number, packed: Uint8Array, off: number): void {
    if (slot !== this.from + this.values.length - this.head) this.clear(slot);
    this.values.push(packed);
    this.offs.push(off);
  }

  /** Forgets slots ≤ `index`. */
  dropUpTo(index: number): void {
    const n = Math.min(index + 1 - this.from, this.values.length - this.head);
    if (n <= 0) return;
    this.head += n;
    this.from += n;
    if (this.head === this.values.length) {
      this.values = [];
      this.offs = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.values.length) {
      this.values = this.values.slice(this.head);
      this.offs = this.offs.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets everything; the next slot pushed is `next`. */
  clear(next: number): void {
    this.values = [];
    this.offs = [];
    this.head = 0;
    this.from = next;
  }
}
