/**
 * ReadIndex bookkeeping on the leader (Raft thesis §6.4). A read records the commit index
 * at the time it arrived, then the leader confirms it is still leader by a round of
 * heartbeats carrying the read's context; once a quorum acknowledged it, that read and
 * every read queued before it may be served at their recorded index.
 *
 * A witnessed read (docs/raft.md, "Witnessed reads") is also confirmed by followers' witnesses
 * sent after the read was invoked; a quorum of those serves that read alone (a witness says
 * nothing about reads invoked after it was sent), so it is marked served and stays in the queue
 * until a heartbeat round passes it: heartbeat acknowledgements carrying its context still
 * confirm the reads queued before it.
 */
export interface PendingRead {
  context: string;
  /** Node that asked (the leader itself for local reads). */
  from: string;
  index: number;
  /** Heartbeat acknowledgements (and the leader's own): they confirm every earlier read too. */
  acks: Map<string, boolean>;
  /**
   * Witnesses (docs/raft.md, "Witnessed reads"): each confirms the leadership after this read
   * was invoked, which says nothing about reads invoked later but queued before it, so they
   * count for this read alone — never for `advance`.
   */
  witnessAcks: Set<string>;
  /** Leader ticks since it was recorded. */
  age: number;
  /** Whether a heartbeat carrying it (or a later context) went to every follower. */
  wide: boolean;
  /** The witness key of a witnessed read. */
  witness?: string;
  /** Already served (by witnesses); kept so that heartbeat acks for it still count. */
  served: boolean;
}

export class ReadOnlyQueue {
  private readonly pending = new Map<string, PendingRead>();
  private readonly byWitness = new Map<string, string>();
  private queue: string[] = [];

  add(index: number, context: string, from: string, witness?: string): void {
    if (this.pending.has(context)) return;
    const p: PendingRead = {
      context,
      from,
      index,
      acks: new Map(),
      witnessAcks: new Set(),
      age: 0,
      wide: false,
      served: false,
    };
    if (witness !== undefined && !this.byWitness.has(witness)) {
      p.witness = witness;
      this.byWitness.set(witness, context);
    }
    this.pending.set(context, p);
    this.queue.push(context);
  }

  /** Records an acknowledgement; returns the acks so far (undefined if unknown context). */
  recvAck(context: string, id: string): ReadonlyMap<string, boolean> | undefined {
    const p = this.pending.get(context);
    if (!p) return undefined;
    p.acks.set(id, true);
    return p.acks;
  }

  /** Records a witness for one read; returns the read (undefined if unknown context). */
  recvWitness(context: string, id: string): PendingRead | undefined {
    const p = this.pending.get(context);
    if (!p) return undefined;
    p.witnessAcks.add(id);
    return p;
  }

  /** The pending read with this context. */
  get(context: string): PendingRead | undefined {
    return this.pending.get(context);
  }

  /** The pending, unserved read registered under a witness key. */
  byWitnessKey(key: string): PendingRead | undefined {
    const c = this.byWitness.get(key);
    return c === undefined ? undefined : this.pending.get(c);
  }

  /** Marks one read served (by its witnesses); returns it, or undefined if unknown or served. */
  serveOne(context: string): PendingRead | undefined {
    const p = this.pending.get(context);
    if (!p || p.served) return undefined;
    p.served = true;
    p.wide = true;
    if (p.witness !== undefined) this.byWitness.delete(p.witness);
    return p;
  }

  /** Removes and returns every unserved read up to and including `context`. */
  advance(context: string): PendingRead[] {
    const i = this.queue.indexOf(context);
    if (i < 0) return [];
    const done = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    const out: PendingRead[] = [];
    for (const c of done) {
      const p = this.pending.get(c) as PendingRead;
      this.pending.delete(c);
      if (p.witness !== undefined) this.byWitness.delete(p.witness);
      if (!p.served) out.push(p);
    }
    return out;
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

  /** Unserved witnessed reads not yet asked of every follower that have waited `minAge` ticks. */
  overdueWitnessed(minAge: number): PendingRead[] {
    const out: PendingRead[] = [];
    for (const c of this.queue) {
      const p = this.pending.get(c) as PendingRead;
      if (p.witness !== undefined && !p.served && !p.wide && p.age >= minAge) out.push(p);
    }
    return out;
  }

  /** Every pending read has now been asked of every follower. */
  markWide(): void {
    for (const c of this.queue) (this.pending.get(c) as PendingRead).wide = true;
  }

  lastPendingContext(): string | undefined {
    return this.queue[this.queue.length - 1];
  }

  /** Reads in the queue, served witnessed reads awaiting a heartbeat round included. */
  get size(): number {
    return this.queue.length;
  }

  /** Drops everything (leadership lost); returns the reads that were not served yet. */
  reset(): PendingRead[] {
    const all = this.queue.map((c) => this.pending.get(c) as PendingRead).filter((p) => !p.served);
    this.pending.clear();
    this.byWitness.clear();
    this.queue = [];
    return all;
  }
}

/**
 * Witnesses that reached the leader before their read (the follower's path is one hop longer,
 * but links and mailboxes reorder): kept per key for a few ticks, at most `max` keys (the
 * oldest go first). A witness that finds no read is only a lost chance to skip a round.
 */
export class WitnessBuffer {
  private readonly byKey = new Map<string, { ids: Set<string>; age: number }>();

  constructor(
    private readonly max: number,
    private readonly maxAge: number,
  ) {}

  add(key: string, id: string): void {
    const w = this.byKey.get(key);
    if (w) {
      w.ids.add(id);
      return;
    }
    if (this.byKey.size >= this.max) {
      const oldest = this.byKey.keys().next().value as string;
      this.byKey.delete(oldest);
    }
    this.byKey.set(key, { ids: new Set([id]), age: 0 });
  }

  /** Removes and returns the witnesses of `key`. */
  take(key: string): ReadonlySet<string> | undefined {
    const w = this.byKey.get(key);
    if (!w) return undefined;
    this.byKey.delete(key);
    return w.ids;
  }

  tick(): void {
    for (const [k, w] of this.byKey) if (++w.age > this.maxAge) this.byKey.delete(k);
  }

  clear(): void {
    this.byKey.clear();
  }

  get size(): number {
    return this.byKey.size;
  }
}
