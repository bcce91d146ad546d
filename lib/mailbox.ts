/**
 * An actor's mailbox: a FIFO ring buffer of messages with their sender and, for asks, the
 * correlation id and asking node. Parallel arrays instead of one object per message: a
 * plain tell allocates nothing here.
 */
import type { Message } from './actor.js';

export class Mailbox {
  private msgs: (Message | undefined)[];
  private froms: (string | undefined)[];
  private corrs: (string | undefined)[];
  private replyNodes: (string | undefined)[];
  private head = 0;
  /** @internal Number of queued messages (a field, not a getter, for the hot path). */
  count = 0;
  private mask: number;

  /** Sender of the message last returned by `shift`. */
  from: string | undefined;
  corr: string | undefined;
  replyNode: string | undefined;

  constructor(initialCapacity = 16) {
    let cap = 1;
    while (cap < initialCapacity) cap <<= 1;
    this.msgs = new Array(cap);
    this.froms = new Array(cap);
    this.corrs = new Array(cap);
    this.replyNodes = new Array(cap);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.count;
  }

  push(
    msg: Message,
    from: string | undefined,
    corr: string | undefined,
    replyNode: string | undefined,
  ): void {
    if (this.count === this.msgs.length) this.grow();
    const i = (this.head + this.count) & this.mask;
    this.msgs[i] = msg;
    this.froms[i] = from;
    // A reply node only matters for an ask; a tell leaves both ask slots empty (they are
    // cleared on shift), so the common case writes and reads two arrays, not four.
    if (corr !== undefined) {
      this.corrs[i] = corr;
      this.replyNodes[i] = replyNode;
    }
    this.count++;
  }

  /** Removes the oldest message; its sender and ask data are left in `from`, `corr`, `replyNode`. */
  shift(): Message | undefined {
    if (this.count === 0) return undefined;
    const i = this.head;
    const msg = this.msgs[i];
    const corr = this.corrs[i];
    this.from = this.froms[i];
    this.corr = corr;
    this.msgs[i] = undefined;
    this.froms[i] = undefined;
    if (corr !== undefined) {
      this.replyNode = this.replyNodes[i];
      this.corrs[i] = undefined;
      this.replyNodes[i] = undefined;
    } else this.replyNode = undefined;
    this.head = (i + 1) & this.mask;
    this.count--;
    return msg;
  }

  private grow(): void {
    const cap = this.msgs.length * 2;
    const copy = <T>(old: T[]): T[] => {
      const next = new Array<T>(cap);
      for (let k = 0; k < this.count; k++) next[k] = old[(this.head + k) & this.mask] as T;
      return next;
    };
    this.msgs = copy(this.msgs);
    this.froms = copy(this.froms);
    this.corrs = copy(this.corrs);
    this.replyNodes = copy(this.replyNodes);
    this.head = 0;
    this.mask = cap - 1;
  }
}
