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
import { MultiAcceptorCore, type MultiAcceptorView } from './multi-acceptor.js';
import { type AcceptedSlot, fromWire, type MultiPaxosMessage } from './multi-messages.js';

export interface MultiPaxosAcceptorOptions {
  readonly journal: AcceptorJournal;
  /** Lease granted to the leader (ms); 0 disables. Must match the proposers' leaseMs. */
  readonly leaseMs?: number;
}

export class MultiPaxosAcceptor extends Actor<MultiPaxosMessage, MultiAcceptorView | undefined> {
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

  /** Synchronous unless the step needs a write (then the reply waits for durability). */
  receive(msg: MultiPaxosMessage | Terminated): void | Promise<void> {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    const m = fromWire(msg);
    if ('problem' in m) {
      const problem = m.problem;
      this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
      return;
    }
    const out = core.step(m, this.ctx.clock.now());
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
