/**
 * The single-decree proposer actor: `ProposerCore` behind a mailbox, its highest used round
 * in a `HardStateStore` (durable before a prepare leaves), one timer for round timeouts and
 * randomised backoff.
 *
 * Request (ask): `paxos.propose { value }` resolves with the chosen value (which may be
 * another proposer's) and the ballot it was chosen in.
 * state$: ProposerView (phase, ballot, rounds). events$: `round-started`, `chosen`.
 */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import type { HardStateStore } from '../../lib/storage/types.js';
import type { BackoffOptions } from './backoff.js';
import { formatBallot } from './ballot.js';
import { type PaxosMessage, paxosMessageProblem } from './messages.js';
import { ProposerCore, type ProposerOutput, type ProposerView } from './proposer.js';
import type { QuorumSystem } from './quorum.js';

export interface ChosenReply {
  readonly value: unknown;
  readonly ballot: string;
}

export type ProposerMsg =
  | PaxosMessage
  | { readonly type: 'paxos.wake' }
  | ({ readonly type: 'paxos.propose'; readonly value: unknown } & Replies<ChosenReply>);

export interface PaxosProposerOptions {
  readonly quorums: QuorumSystem;
  readonly learners?: readonly string[];
  readonly store: HardStateStore<{ round: number }>;
  readonly backoff?: BackoffOptions;
  readonly roundTimeoutMs?: number;
}

export class PaxosProposer extends Actor<ProposerMsg, ProposerView | undefined> {
  private core: ProposerCore | undefined;
  private readonly waiting: (ProposerMsg & { type: 'paxos.propose' })[] = [];
  private chosen: ChosenReply | undefined;

  constructor(private readonly opts: PaxosProposerOptions) {
    super();
  }

  override async preStart(): Promise<void> {
    const stored = await this.opts.store.load();
    this.core = new ProposerCore(
      {
        id: this.ctx.self,
        quorums: this.opts.quorums,
        random: this.ctx.random,
        ...(this.opts.learners ? { learners: this.opts.learners } : {}),
        ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}),
        ...(this.opts.roundTimeoutMs !== undefined
          ? { roundTimeoutMs: this.opts.roundTimeoutMs }
          : {}),
      },
      stored?.round ?? 0,
    );
    this.ctx.setState(this.core.view());
  }

  async receive(msg: ProposerMsg | Terminated): Promise<void> {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    switch (msg.type) {
      case 'paxos.propose':
        if (this.chosen) {
          this.ctx.reply(msg, this.chosen);
          return;
        }
        this.waiting.push(msg);
        if (core.view().phase === 'idle') await this.handle(core.propose(msg.value));
        return;
      case 'paxos.wake':
        await this.handle(core.tick());
        return;
      default: {
        const problem = paxosMessageProblem(msg);
        if (problem !== undefined) {
          this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
          return;
        }
        await this.handle(core.step(msg));
      }
    }
  }

  private async handle(out: ProposerOutput): Promise<void> {
    const core = this.core as ProposerCore;
    if (out.persist) {
      await this.opts.store.save({ round: out.persist.round });
      this.ctx.emit({ type: 'round-started', ballot: formatBallot(core.view().ballot) });
    }
    for (const s of out.send) this.ctx.send(s.to, s.msg);
    if (out.wakeAfterMs !== undefined) {
      this.ctx.timers.once('wake', out.wakeAfterMs, { type: 'paxos.wake' });
    }
    if (out.chosen) {
      this.ctx.timers.cancel('wake');
      this.chosen = { value: out.chosen.value, ballot: formatBallot(out.chosen.ballot) };
      this.ctx.emit({ type: 'chosen', ...this.chosen });
      for (const w of this.waiting.splice(0)) this.ctx.reply(w, this.chosen);
    }
    this.ctx.setState(core.view());
  }
}
