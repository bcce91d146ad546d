/**
 * The single-decree acceptor actor: `AcceptorCore` behind a mailbox with its state in a
 * `HardStateStore`. The promised ballot is durable before a promise leaves; the accepted
 * ballot and value are durable before an accepted leaves; a restarted acceptor reloads both.
 *
 * state$: AcceptorState (promised ballot, accepted proposal); undefined until loaded.
 * events$: `promised`, `accepted`, `nacked`, `bad-message`.
 */
import { Actor, type Terminated } from '../../lib/actor.js';
import type { HardStateStore } from '../../lib/storage/types.js';
import { AcceptorCore, type AcceptorState, INITIAL_ACCEPTOR_STATE } from './acceptor.js';
import { formatBallot, isBallot } from './ballot.js';
import { PaxosError } from './errors.js';
import { type PaxosMessage, paxosMessageProblem } from './messages.js';

export interface PaxosAcceptorOptions {
  readonly store: HardStateStore<AcceptorState>;
  /** Learner addresses that receive every accepted. */
  readonly learners?: readonly string[];
}

export class PaxosAcceptor extends Actor<PaxosMessage, AcceptorState | undefined> {
  private core: AcceptorCore | undefined;

  constructor(private readonly opts: PaxosAcceptorOptions) {
    super();
  }

  override async preStart(): Promise<void> {
    const stored = await this.opts.store.load();
    if (stored !== undefined && !isBallot(stored.promised)) {
      throw new PaxosError('SYNOD_ERR_PAXOS_BAD_STATE', 'stored acceptor state is malformed');
    }
    this.core = new AcceptorCore(
      { id: this.ctx.self, ...(this.opts.learners ? { learners: this.opts.learners } : {}) },
      stored ?? INITIAL_ACCEPTOR_STATE,
    );
    this.ctx.setState(this.core.state);
  }

  async receive(msg: PaxosMessage | Terminated): Promise<void> {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    const problem = paxosMessageProblem(msg);
    if (problem !== undefined) {
      this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
      return;
    }
    const out = core.step(msg);
    if (out.persist) {
      await this.opts.store.save(out.persist);
      this.ctx.setState(core.state);
    }
    for (const s of out.send) {
      this.ctx.send(s.to, s.msg);
      if (s.msg.type === 'paxos.nack') {
        this.ctx.emit({ type: 'nacked', ballot: formatBallot(s.msg.ballot), to: s.to });
      }
    }
    if (out.persist && msg.type === 'paxos.prepare') {
      this.ctx.emit({ type: 'promised', ballot: formatBallot(msg.ballot) });
    }
    if (out.persist && msg.type === 'paxos.accept') {
      this.ctx.emit({ type: 'accepted', ballot: formatBallot(msg.ballot) });
    }
  }
}
