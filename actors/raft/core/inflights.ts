/**
 * The window of AppendEntries in flight to one follower, bounded by count and by bytes.
 * Each slot remembers the last index a message carried; an acknowledgement of index i
 * frees every slot ≤ i.
 */
export class Inflights {
  private readonly idx: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytesInFlight = 0;

  constructor(
    readonly maxCount: number,
    /** 0 means unlimited. */
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.idx.length - this.head;
  }

  get bytes(): number {
    return this.bytesInFlight;
  }

  full(): boolean {
    return (
      this.count >= this.maxCount || (this.maxBytes > 0 && this.bytesInFlight >= this.maxBytes)
    );
  }

  add(lastIndex: number, bytes: number): void {
    this.idx.push(lastIndex);
    this.sizes.push(bytes);
    this.bytesInFlight += bytes;
  }

  /** Frees every in-flight message whose last index is ≤ `index`. */
  freeLE(index: number): void {
    while (this.head < this.idx.length && (this.idx[this.head] as number) <= index) {
      this.bytesInFlight -= this.sizes[this.head] as number;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.idx.length) {
      this.idx.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Frees the oldest in-flight message (its ack was probably lost). */
  freeFirst(): void {
    if (this.head < this.idx.length) this.freeLE(this.idx[this.head] as number);
  }

  reset(): void {
    this.idx.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytesInFlight = 0;
  }
}
