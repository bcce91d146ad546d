/**
 * What the leader knows about one follower's log.
 *
 * - probe: the leader does not know where the logs match; it sends one AppendEntries and
 *   waits for the answer (or a heartbeat response) before sending another.
 * - replicate: the logs match up to `match`; the leader streams entries optimistically
 *   (`next` runs ahead of `match`), bounded by the in-flight window.
 * - snapshot: the follower needs a snapshot; chunks are sent one at a time: the next goes
 *   out when the follower answers the one in flight, and the one in flight is sent again
 *   only when it looks lost (no answer for `snapshotResendBeats` heartbeats).
 */
import { Inflights } from './inflights.js';
import type { CoreSnapshot } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an AppendEntries is outstanding, wait before sending another. */
  probeSent = false;
  /**
   * A heartbeat round began since the last probe was sent (or, in replicate state, since a
   * heartbeat answer last freed a slot of a full window): the next heartbeat answer may take
   * the probe as lost and send another (free a slot). At most once per heartbeat round, not
   * once per answer: answers come in bursts (one per read round, and every heartbeat a
   * transport queued for a peer that was down arrives when it comes back; chaos seed
   * 549760), and each probe carries up to `maxSizePerMsg` of entries.
   */
  resendDue = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  isLearner: boolean;
  readonly inflights: Inflights;
  /** In snapshot state: the snapshot being sent and the next byte offset to send. */
  snapshot: CoreSnapshot | undefined;
  snapshotOffset = 0;
  /** In snapshot state: the offset of the chunk in flight (-1: none sent yet). */
  snapshotInFlight = -1;
  /** In snapshot state: heartbeats sent since the chunk in flight was sent. */
  snapshotQuietBeats = 0;

  /** While `isLearner`: at most this many AppendEntries in flight (below the voters' window). */
  readonly learnerMaxInflightMsgs: number;

  constructor(
    next: number,
    isLearner: boolean,
    maxInflightMsgs: number,
    maxInflightBytes: number,
    learnerMaxInflightMsgs = maxInflightMsgs,
  ) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
    this.learnerMaxInflightMsgs = learnerMaxInflightMsgs;
  }

  /** The in-flight window is full (a learner's is the smaller one). */
  windowFull(): boolean {
    return (
      this.inflights.full() ||
      (this.isLearner && this.inflights.count >= this.learnerMaxInflightMsgs)
    );
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.state = state;
    this.snapshot = undefined;
    this.snapshotOffset = 0;
    this.snapshotInFlight = -1;
    this.snapshotQuietBeats = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot' && this.snapshot) {
      const pending = this.snapshot.meta.index;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshot: CoreSnapshot): void {
    this.resetState('snapshot');
    this.snapshot = snapshot;
  }

  /** Records the chunk at `offset` as sent (the one in flight). */
  sentSnapshotChunk(offset: number): void {
    this.snapshotInFlight = offset;
    this.snapshotQuietBeats = 0;
  }

  /**
   * Whether a chunk answer names an older copy of a chunk rather than the one in flight:
   * an acceptance up to (at most) the in-flight offset, or a rejection asking for exactly
   * the in-flight offset (the follower is waiting for the chunk already on its way).
   */
  isStaleSnapshotAnswer(offset: number, reject: boolean): boolean {
    if (this.snapshotInFlight < 0) return false;
    return reject ? offset === this.snapshotInFlight : offset <= this.snapshotInFlight;
  }

  /** Handles a successful append ack of `n`; returns false if it was stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * Handles a rejected append of `rejected` (its prevIndex) with the follower's hint that
   * the logs may match at `matchHint`. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending AppendEntries to this follower must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.windowFull();
      case 'snapshot':
        return true;
    }
  }

  /** Records an AppendEntries carrying entries up to `last` (`bytes` of data) as sent. */
  sentEntries(last: number, count: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1;
        this.inflights.add(last, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
      this.resendDue = false;
    }
  }
}
