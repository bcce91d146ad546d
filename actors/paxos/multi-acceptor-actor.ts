/**
 * The Multi-Paxos acceptor actor: the `MultiAcceptorCore` behind a mailbox, with its state in
 * an `AcceptorJournal`. Every message is handled to completion before the next one: the
 * core's writes are awaited (durable) before any reply is sent.
 *
 * state$: MultiAcceptorView (promised ballot, floor, accepted slots, lease).
 * events$: `bad-message` (a malformed message was dropped), plus lifecycle events.
 */
import { Actor, type Terminated } from '../../lib/actor.js';
import type { AcceptorJournal } from './acceptor-journal.js';
import type { Ballot } from './ballot.js';
import {
  MultiAcceptorCore,
  type MultiAcceptorOutput,
  type MultiAcceptorView,
} from './multi-acceptor.js';
import type { LocalSlots } from './multi-learner.js';
import {
  type AcceptedSlot,
  fromWire,
  type MultiPaxosMessage,
  packedAcceptFromWire,
  type SlotValue,
} from './multi-messages.js';

export interface MultiPaxosAcceptorOptions {
  readonly journal: AcceptorJournal;
  /** Lease granted to the leader (ms); 0 disables. Must match the proposers' leaseMs. */
  readonly leaseMs?: number;
}

export class MultiPaxosAcceptor
  extends Actor<MultiPaxosMessage, MultiAcceptorView | undefined>
  implements LocalSlots
{
  private core: MultiAcceptorCore | undefined;

  constructor(private readonly opts: MultiPaxosAcceptorOptions) {
    super();
  }

  override async preStart(): Promise<void> {
    const durable = await this.opts.journal.load();
    this.core = new MultiAcceptorCore(
      { id: this.ctx.self, leaseMs: this.opts.leaseMs ?? 0 },
      durable,
      this.ctx.clock.now(),
    );
    this.ctx.setState(this.core.view());
  }

  /**
   * The proposal accepted for `slot` (in memory, possibly not yet durable): the co-located
   * learner takes chosen values from here (`MultiLearnerOptions.localValue`). Undefined
   * before the acceptor started.
   */
  acceptedAt(slot: number): AcceptedSlot | undefined {
    return this.core?.acceptedAt(slot);
  }

  private badMessage(problem: string): void {
    this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
  }

  // LocalSlots: the co-located learner reads accepted values where they lie (no object per
  // slot; values that arrived packed stay packed). Undefined / −1 before the acceptor started.
  ballotAt(slot: number): Ballot | undefined {
    return this.core?.slots.ballotAt(slot);
  }

  rawAt(slot: number): SlotValue | Uint8Array | undefined {
    return this.core?.slots.rawAt(slot);
  }

  offsetAt(slot: number): number {
    return this.core?.slots.offsetAt(slot) ?? -1;
  }

  /** Synchronous unless the step needs a write (then the reply waits for durability). */
  receive(msg: MultiPaxosMessage | Terminated): void | Promise<void> {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    const now = this.ctx.clock.now();
    // An accept from another process keeps its entries packed (checked where they lie).
    const packed = packedAcceptFromWire(msg);
    let out: MultiAcceptorOutput;
    if (packed !== undefined) {
      if ('problem' in packed) return this.badMessage(packed.problem);
      out = core.acceptPacked(packed, now);
    } else {
      const m = fromWire(msg);
      if ('problem' in m) return this.badMessage(m.problem);
      out = core.step(m, now);
    }
    if (!out.persist) {
      for (const s of out.send) this.ctx.send(s.to, s.msg);
      return;
    }
    const persist = out.persist;
    return this.opts.journal.persist(persist).then(() => {
      this.ctx.setState(core.view());
      for (const s of out.send) this.ctx.send(s.to, s.msg);
    });
  }
}
