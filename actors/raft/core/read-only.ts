/**
 * ReadIndex bookkeeping on the leader (Raft thesis §6.4). A read records the commit index
 * at the time it arrived, then the leader confirms it is still leader by a round of
 * heartbeats carrying the read's context; once a quorum acknowledged it, that read and
 * every read queued before it may be served at their recorded index.
 */
export interface PendingRead {
  context: string;
  /** Node that asked (the leader itself for local reads). */
  from: string;
  index: number;
  acks: Map<string, boolean>;
  /** Leader ticks since it was recorded. */
  age: number;
  /** Whether a heartbeat carrying it (or a later context) went to every follower. */
  wide: boolean;
}

export class ReadOnlyQueue {
  private readonly pending = new Map<string, PendingRead>();
  private queue: string[] = [];

  add(index: number, context: string, from: string): void {
    if (this.pending.has(context)) return;
    this.pending.set(context, { context, from, index, acks: new Map(), age: 0, wide: false });
    this.queue.push(context);
  }

  /** Records an acknowledgement; returns the acks so far (undefined if unknown context). */
  recvAck(context: string, id: string): ReadonlyMap<string, boolean> | undefined {
    const p = this.pending.get(context);
    if (!p) return undefined;
    p.acks.set(id, true);
    return p.acks;
  }

  /** Removes and returns every read up to and including `context`. */
  advance(context: string): PendingRead[] {
    const i = this.queue.indexOf(context);
    if (i < 0) return [];
    const done = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    return done.map((c) => {
      const p = this.pending.get(c) as PendingRead;
      this.pending.delete(c);
      return p;
    });
  }

  /**
   * Ages every pending read by one tick; true when a read asked of only some followers has
   * waited `maxAge` ticks or more (time to ask everyone).
   */
  tick(maxAge: number): boolean {
    let due = false;
    for (const c of this.queue) {
      const p = this.pending.get(c) as PendingRead;
      p.age++;
      if (!p.wide && p.age >= maxAge) due = true;
    }
    return due;
  }

  /** Every pending read has now been asked of every follower. */
  markWide(): void {
    for (const c of this.queue) (this.pending.get(c) as PendingRead).wide = true;
  }

  lastPendingContext(): string | undefined {
    return this.queue[this.queue.length - 1];
  }

  get size(): number {
    return this.queue.length;
  }

  /** Drops everything (leadership lost); returns what was pending. */
  reset(): PendingRead[] {
    const all = this.queue.map((c) => this.pending.get(c) as PendingRead);
    this.pending.clear();
    this.queue = [];
    return all;
  }
}
