/**
 * The logical link to one peer node: at most one active connection, at most one outbound
 * dial in progress, the bounded outbound queue, the reconnect backoff and the link state
 * reported on `links$`.
 *
 * Tie-break (one link per node pair): when two authenticated connections compete, the one
 * dialled by the lower node id wins; between two connections dialled by the same side the
 * newer wins (the dialler only redials when it believes the old one is dead); a connection
 * from a new incarnation of the peer always replaces one from the old incarnation. Before a
 * newcomer gets here, the transport's `claim` has made sure that a connection it would
 * replace (other than in a simultaneous dial) is dead: a live one gets the newcomer refused
 * with `SYNOD_ERR_DUPLICATE_NODE` instead.
 */
import type { TimerHandle } from '../../lib/clock.js';
import { encodeValue } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import type { Random } from '../../lib/random.js';
import type { LinkState } from '../../lib/transport.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { Connection } from './connection.js';
import { ErrorCode, REFUSAL_CODES } from './errors.js';
import { BATCH_OVERHEAD } from './frames.js';
import { OutboundQueue } from './outbound-queue.js';

export interface LinkLimits {
  maxQueueEnvelopes: number;
  maxQueueBytes: number;
  maxFrameBytes: number;
  batchBytes: number;
  batchEnvelopes: number;
  maxBufferedBytes: number;
}

export interface LinkHost {
  deadLetter(envelope: Envelope, code: string, reason: string): void;
  /** Counts `count` envelopes in a frame of `bytes` written to the socket. */
  countFrameOut(count: number, bytes: number): void;
  stateChanged(link: PeerLink): void;
}

/** A link reason of the form `SYNOD_ERR_<CODE>: text` whose code refuses the handshake. */
function isRefusal(reason: string | undefined): boolean {
  if (reason === undefined) return false;
  const colon = reason.indexOf(':');
  return colon > 0 && REFUSAL_CODES.has(reason.slice(0, colon));
}

export class PeerLink {
  readonly queue: OutboundQueue;
  readonly backoff: Backoff;
  active: Connection | undefined;
  dialing: Connection | undefined;
  state: LinkState = 'down';
  incarnation: string | undefined;
  reason: string | undefined;
  /** Set once the link has been down longer than `queueWhileDownMs`. */
  unreachable = false;
  retryTimer: TimerHandle | undefined;
  unreachableTimer: TimerHandle | undefined;
  flushScheduled = false;
  /** Incarnations of the peer that a newer one replaced (most recent last, at most 16). */
  readonly staleIncarnations: string[] = [];
  private emitted:
    | { state: LinkState; incarnation: string | undefined; reason: string | undefined }
    | undefined;

  constructor(
    readonly peer: string,
    public url: string | undefined,
    private readonly limits: LinkLimits,
    backoff: BackoffOptions,
    random: Random,
    private readonly host: LinkHost,
  ) {
    this.queue = new OutboundQueue(limits.maxQueueEnvelopes, limits.maxQueueBytes);
    this.backoff = new Backoff(backoff, random);
  }

  /**
   * Decides between the connection `candidate` (just authenticated, from `peer`) and the
   * connections this link already has. Returns the connections that lose (to be closed),
   * or `undefined` when the candidate itself loses.
   */
  arbitrate(candidate: Connection, localNode: string): Connection[] | undefined {
    const losers: Connection[] = [];
    for (const rival of [this.active, this.dialing]) {
      if (rival === undefined || rival === candidate) continue;
      if (rival === this.active && rival.remoteIncarnation !== candidate.remoteIncarnation) {
        losers.push(rival); // stale incarnation
        continue;
      }
      if (rival.role === candidate.role) {
        losers.push(rival); // same dialler: the newer connection wins
        continue;
      }
      const rivalDialer = rival.role === 'dialer' ? localNode : this.peer;
      const candidateDialer = candidate.role === 'dialer' ? localNode : this.peer;
      const winner = rivalDialer < candidateDialer ? rival : candidate;
      if (winner === rival) return undefined;
      losers.push(rival);
    }
    return losers;
  }

  /** Remembers that `inc` was replaced by a newer incarnation. */
  retire(inc: string | undefined): void {
    if (inc === undefined || this.staleIncarnations.includes(inc)) return;
    this.staleIncarnations.push(inc);
    if (this.staleIncarnations.length > 16) this.staleIncarnations.shift();
  }

  /**
   * Records the state and emits it on `links$` when the state or the peer incarnation
   * changed, or when the reason became a (new) refusal of our handshake, so a refusal code
   * such as `SYNOD_ERR_AUTH_FAILED` reaches `links$` even while the link keeps retrying.
   */
  setState(state: LinkState, reason: string | undefined): void {
    this.state = state;
    this.reason = reason;
    const e = this.emitted;
    if (
      e !== undefined &&
      e.state === state &&
      e.incarnation === this.incarnation &&
      (e.reason === reason || !isRefusal(reason))
    ) {
      return;
    }
    this.emitted = { state, incarnation: this.incarnation, reason };
    this.host.stateChanged(this);
  }

  /**
   * Writes queued envelopes as batch frames while the socket's `bufferedAmount` is below
   * the limit. Envelopes larger than the peer's frame limit are dead-lettered. Each batch is
   * encoded here, in wire order, by the connection's own encoder.
   *
   * `fullBatchesOnly` (a `send` that filled a batch in the middle of a synchronous run):
   * write only full batches and leave the tail for the scheduled flush at the end of the
   * run, where more envelopes may join it — rather than a frame of one or two envelopes.
   */
  flush(fullBatchesOnly = false): void {
    if (!fullBatchesOnly) this.flushScheduled = false;
    const conn = this.active;
    if (conn === undefined || !conn.isOpen) return;
    const frameLimit = Math.min(this.limits.maxFrameBytes, conn.peerMaxFrame);
    const batchLimit = Math.min(this.limits.batchBytes, frameLimit) - BATCH_OVERHEAD;
    const q = this.queue;
    while (q.length > 0) {
      if (fullBatchesOnly && q.bytes < batchLimit && q.length < this.limits.batchEnvelopes) {
        return;
      }
      if (conn.bufferedAmount >= this.limits.maxBufferedBytes) {
        conn.waitingDrain = true;
        return;
      }
      const first = q.peekSize() as number;
      if (first + BATCH_OVERHEAD > frameLimit) {
        const envelope = q.shift() as Envelope;
        this.host.deadLetter(
          envelope,
          ErrorCode.FRAME_TOO_LARGE,
          `envelope of up to ${first} bytes exceeds ${this.peer}'s frame limit of ${frameLimit} bytes`,
        );
        continue;
      }
      const { envelopes } = q.takeBatch(batchLimit, this.limits.batchEnvelopes);
      this.write(conn, envelopes, frameLimit);
    }
    conn.waitingDrain = false;
  }

  /** Encodes `envelopes` as one frame and writes it; copes with what should not happen. */
  private write(conn: Connection, envelopes: Envelope[], frameLimit: number): void {
    let frame: Buffer;
    try {
      frame = conn.encoder.encode(envelopes);
    } catch (err) {
      // `send` checked every body (wireSize); find the culprit with the stateless codec.
      const good: Envelope[] = [];
      for (const e of envelopes) {
        try {
          encodeValue(e);
          good.push(e);
        } catch (one) {
          this.host.deadLetter(e, ErrorCode.ENCODE, (one as Error).message);
        }
      }
      if (good.length === envelopes.length) {
        for (const e of good) this.host.deadLetter(e, ErrorCode.ENCODE, (err as Error).message);
      } else if (good.length > 0) this.write(conn, good, frameLimit);
      return;
    }
    if (frame.length > frameLimit) {
      // Sizes are upper bounds, so this cannot happen; if it does, nothing is lost: the
      // frame is discarded (the encoder starts over) and the batch is split.
      conn.encoder.reset();
      if (envelopes.length === 1) {
        this.host.deadLetter(
          envelopes[0] as Envelope,
          ErrorCode.FRAME_TOO_LARGE,
          `envelope of ${frame.length - 1} bytes exceeds ${this.peer}'s frame limit of ${frameLimit} bytes`,
        );
        return;
      }
      const half = envelopes.length >> 1;
      this.write(conn, envelopes.slice(0, half), frameLimit);
      this.write(conn, envelopes.slice(half), frameLimit);
      return;
    }
    conn.sendBatch(frame);
    this.host.countFrameOut(envelopes.length, frame.length);
  }

  /** Dead-letters everything queued. */
  drainTo(code: string, reason: string): void {
    for (const e of this.queue.drain()) this.host.deadLetter(e, code, reason);
  }

  cancelTimers(): void {
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.unreachableTimer?.cancel();
    this.unreachableTimer = undefined;
  }
}
