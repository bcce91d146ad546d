/**
 * The bounded outbound queue of one peer, and the batcher that turns it into frames.
 *
 * Envelopes are encoded when queued (so an unencodable message is refused at `send`), and
 * the queue is bounded both in envelopes and in encoded bytes. A batch frame is the type tag
 * followed by the queued encodings back to back.
 */
import type { Envelope } from '../../lib/envelope.js';
import { FrameType } from './frames.js';

interface Item {
  bytes: Uint8Array;
  envelope: Envelope;
}

export class OutboundQueue {
  private items: (Item | undefined)[] = [];
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
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  /** Adds an encoded envelope; false when it would exceed a bound (nothing is added). */
  push(bytes: Uint8Array, envelope: Envelope): boolean {
    if (this.length >= this.maxEnvelopes || this.queuedBytes + bytes.length > this.maxBytes) {
      return false;
    }
    this.items.push({ bytes, envelope });
    this.queuedBytes += bytes.length;
    if (this.length > this.peakLength) this.peakLength = this.length;
    if (this.queuedBytes > this.peakBytes) this.peakBytes = this.queuedBytes;
    return true;
  }

  peek(): Item | undefined {
    return this.items[this.head];
  }

  /** Removes and returns the first item. */
  shift(): Item | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined;
    this.head++;
    this.queuedBytes -= item.bytes.length;
    this.compact();
    return item;
  }

  /**
   * Takes up to `maxEnvelopes` envelopes whose encodings fit in `maxBytes - 1` and returns
   * them as one BATCH frame. The first envelope is always taken (the caller has checked that
   * it fits the frame limit on its own).
   */
  takeBatch(maxBytes: number, maxEnvelopes: number): { frame: Buffer; count: number } {
    let total = 1;
    let end = this.head;
    const stop = this.items.length;
    while (end < stop && end - this.head < maxEnvelopes) {
      const item = this.items[end] as Item;
      if (end > this.head && total + item.bytes.length > maxBytes) break;
      total += item.bytes.length;
      end++;
    }
    const frame = Buffer.allocUnsafe(total);
    frame[0] = FrameType.BATCH;
    let offset = 1;
    for (let i = this.head; i < end; i++) {
      const item = this.items[i] as Item;
      frame.set(item.bytes, offset);
      offset += item.bytes.length;
      this.items[i] = undefined;
    }
    const count = end - this.head;
    this.head = end;
    this.queuedBytes -= total - 1;
    this.compact();
    return { frame, count };
  }

  /** Empties the queue and returns what was in it (to dead-letter it). */
  drain(): Envelope[] {
    const out: Envelope[] = [];
    for (let i = this.head; i < this.items.length; i++) out.push((this.items[i] as Item).envelope);
    this.items = [];
    this.head = 0;
    this.queuedBytes = 0;
    return out;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
