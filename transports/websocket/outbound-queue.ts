/**
 * The bounded outbound queue of one peer.
 *
 * Envelopes are checked when queued (`wireSize`: an unencodable message is refused at
 * `send`) and queued with an upper bound of their encoded size; the queue is bounded both in
 * envelopes and in those bytes. They are encoded at flush time, a whole batch at once, by
 * the connection that carries them (see `BatchEncoder` in frames.ts): encoding in wire order
 * is what lets the encoder share record structures along a connection.
 */
import type { Envelope } from '../../lib/envelope.js';

export class OutboundQueue {
  private envelopes: (Envelope | undefined)[] = [];
  private sizes: number[] = [];
  private head = 0;
  private queuedBytes = 0;
  /** High-water marks, for counters and tests. */
  peakLength = 0;
  peakBytes = 0;

  constructor(
    readonly maxEnvelopes: number,
    readonly maxBytes: number,
  ) {}

  get length(): number {
    return this.envelopes.length - this.head;
  }

  /** Upper bound of the encoded size of what is queued. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /** Adds an envelope of (at most) `size` encoded bytes; false when it would exceed a bound. */
  push(envelope: Envelope, size: number): boolean {
    const length = this.envelopes.length - this.head;
    if (length >= this.maxEnvelopes || this.queuedBytes + size > this.maxBytes) return false;
    this.envelopes.push(envelope);
    this.sizes.push(size);
    this.queuedBytes += size;
    if (length + 1 > this.peakLength) this.peakLength = length + 1;
    if (this.queuedBytes > this.peakBytes) this.peakBytes = this.queuedBytes;
    return true;
  }

  /** The size bound of the first envelope (undefined when empty). */
  peekSize(): number | undefined {
    return this.head < this.envelopes.length ? this.sizes[this.head] : undefined;
  }

  /** Removes and returns the first envelope. */
  shift(): Envelope | undefined {
    if (this.head >= this.envelopes.length) return undefined;
    const envelope = this.envelopes[this.head];
    this.envelopes[this.head] = undefined;
    this.queuedBytes -= this.sizes[this.head] as number;
    this.head++;
    this.compact();
    return envelope;
  }

  /**
   * Takes up to `maxEnvelopes` envelopes whose sizes add up to at most `maxBytes`, in order.
   * The first envelope is always taken (the caller has checked that it fits on its own).
   */
  takeBatch(maxBytes: number, maxEnvelopes: number): { envelopes: Envelope[]; bytes: number } {
    const sizes = this.sizes;
    const stop = Math.min(this.envelopes.length, this.head + maxEnvelopes);
    let total = sizes[this.head] as number;
    let end = this.head + 1;
    while (end < stop) {
      const size = sizes[end] as number;
      if (total + size > maxBytes) break;
      total += size;
      end++;
    }
    const out = this.envelopes.slice(this.head, end) as Envelope[];
    this.envelopes.fill(undefined, this.head, end);
    this.head = end;
    this.queuedBytes -= total;
    this.compact();
    return { envelopes: out, bytes: total };
  }

  /** Empties the queue and returns what was in it (to dead-letter it). */
  drain(): Envelope[] {
    const out = this.envelopes.slice(this.head) as Envelope[];
    this.envelopes = [];
    this.sizes = [];
    this.head = 0;
    this.queuedBytes = 0;
    return out;
  }

  private compact(): void {
    if (this.head === this.envelopes.length) {
      this.envelopes = [];
      this.sizes = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.envelopes.length) {
      this.envelopes = this.envelopes.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
