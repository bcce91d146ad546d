/**
 * The single-decree learner actor: `LearnerCore` behind a mailbox. It learns a value once a
 * phase-2 quorum accepted it in one ballot (or a peer tells it), and asks its peers on a
 * timer while it knows nothing.
 *
 * Request (ask): `paxos.await-learned` resolves with the learned value.
 * state$: `{ learned: boolean, value? }`. events$: `learned`.
 */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { LearnerCore, type LearnerOutput } from './learner.js';
import { type PaxosMessage, paxosMessageProblem } from './messages.js';
import type { QuorumSystem } from './quorum.js';

export type LearnerMsg =
  | PaxosMessage
  | { readonly type: 'paxos.query-tick' }
  | ({ readonly type: 'paxos.await-learned' } & Replies<unknown>);

export interface LearnerState {
  readonly learned: boolean;
  readonly value?: unknown;
}

export interface PaxosLearnerOptions {
  readonly quorums: QuorumSystem;
  /** Peer learner addresses, asked when this learner missed the decision. */
  readonly peers?: readonly string[];
  /** Default 200 ms. */
  readonly queryEveryMs?: number;
}

export class PaxosLearner extends Actor<LearnerMsg, LearnerState> {
  private core: LearnerCore | undefined;
  private readonly waiting: (LearnerMsg & { type: 'paxos.await-learned' })[] = [];

  constructor(private readonly opts: PaxosLearnerOptions) {
    super();
  }

  override initialState(): LearnerState {
    return { learned: false };
  }

  override preStart(): void {
    this.core = new LearnerCore({
      id: this.ctx.self,
      quorums: this.opts.quorums,
      ...(this.opts.peers ? { peers: this.opts.peers } : {}),
    });
    this.ctx.timers.repeat('query', this.opts.queryEveryMs ?? 200, { type: 'paxos.query-tick' });
  }

  receive(msg: LearnerMsg | Terminated): void {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    switch (msg.type) {
      case 'paxos.await-learned':
        if (core.learned) this.ctx.reply(msg, core.learned.value);
        else this.waiting.push(msg);
        return;
      case 'paxos.query-tick':
        this.handle(core.query());
        return;
      default: {
        const problem = paxosMessageProblem(msg);
        if (problem !== undefined) {
          this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
          return;
        }
        this.handle(core.step(msg));
      }
    }
  }

  private handle(out: LearnerOutput): void {
    for (const s of out.send) this.ctx.send(s.to, s.msg);
    if (out.learned) {
      this.ctx.timers.cancel('query');
      this.ctx.setState({ learned: true, value: out.learned.value });
      this.ctx.emit({ type: 'learned', value: out.learned.value });
      for (const w of this.waiting.splice(0)) this.ctx.reply(w, out.learned.value);
    }
  }
}
