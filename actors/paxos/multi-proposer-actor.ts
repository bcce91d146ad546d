/**
 * The Multi-Paxos proposer actor: the `MultiLeaderCore` behind a mailbox, ticking on a timer,
 * with its highest used round in a `HardStateStore` (durable before any prepare leaves).
 *
 * Requests (ask): `mp.submit` (queue a client command; leader only), `mp.read` (a
 * linearizable read: a lease read index when the leader holds a lease; otherwise, with
 * `reads: 'confirm'` (default), a read index answered once a phase-2 quorum confirmed the
 * leadership after the read arrived (no log slot, no disk write); with `reads: 'log'`, a
 * no-op barrier through the log whose id the caller waits for).
 * state$: MultiLeaderView (role, ballot, leader, chosen prefix, window, lease).
 * events$: `elected`, `stepped-down`, `election-started`, `proposal-dropped` (never sent:
 * definitely not chosen by this leader), `proposal-indeterminate`, `bad-message`.
 */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { nodeOf } from '../../lib/address.js';
import type { Command } from '../../lib/replicated-log.js';
import type { HardStateStore } from '../../lib/storage/types.js';
import { formatBallot } from './ballot.js';
import {
  MultiLeaderCore,
  type MultiLeaderOptions,
  type MultiLeaderOutput,
  type MultiLeaderView,
  type SubmitResult,
} from './multi-leader.js';
import {
  commandOf,
  fromWire,
  localForm,
  type MultiPaxosMessage,
  toWire,
} from './multi-messages.js';

export type ReadStart =
  | { readonly ok: true; readonly index: number }
  | { readonly ok: true; readonly barrier: string }
  | { readonly ok: false; readonly code: 'NotLeader' | 'Dropped'; readonly leaderHint?: string };

export type MultiProposerMsg =
  | MultiPaxosMessage
  | { readonly type: 'mp.tick' }
  | { readonly type: 'mp.flush' }
  | ({ readonly type: 'mp.submit'; readonly command: Command } & Replies<SubmitResult>)
  | ({ readonly type: 'mp.read'; readonly barrier: string } & Replies<ReadStart>);

export interface MultiPaxosProposerOptions extends Omit<MultiLeaderOptions, 'id' | 'random'> {
  /** Holds `{ round }`: the highest round this proposer used. */
  readonly store: HardStateStore<{ round: number }>;
  /** How often the core's clock advances (ms). Default 10. */
  readonly tickMs?: number;
  /** How non-lease reads are confirmed: quorum round (default) or a no-op through the log. */
  readonly reads?: 'confirm' | 'log';
}

export class MultiPaxosProposer extends Actor<MultiProposerMsg, MultiLeaderView | undefined> {
  private core: MultiLeaderCore | undefined;
  private lastStateKey = '';
  private flushPending = false;
  private stopped = false;
  private readSeq = 0;
  private readonly readAsks = new Map<string, Extract<MultiProposerMsg, { type: 'mp.read' }>>();
  /** `<node id>/`: addresses of actors in this actor system. */
  private localPrefix = '\u0000';

  constructor(private readonly opts: MultiPaxosProposerOptions) {
    super();
  }

  override async preStart(): Promise<void> {
    this.stopped = false;
    this.localPrefix = `${nodeOf(this.ctx.self)}/`;
    const stored = await this.opts.store.load();
    const round = stored && Number.isSafeInteger(stored.round) ? stored.round : 0;
    this.core = new MultiLeaderCore(
      { ignoreStalls: true, ...this.opts, id: this.ctx.self, random: this.ctx.random },
      round,
      this.ctx.clock.now(),
    );
    this.publish(true);
    this.ctx.timers.repeat('tick', this.opts.tickMs ?? 10, { type: 'mp.tick' });
  }

  override postStop(): void {
    this.stopped = true;
    // A restart builds a new core in preStart; until then local submissions are refused.
    this.core = undefined;
  }

  /**
   * Messages from other processes: Multi-Paxos messages (checked by `fromWire` on receipt),
   * `mp.read` with a string barrier id (an outside reader, e.g. a backup puller, asks the
   * leader for a read index), `mp.submit` with a well-formed command. Timer messages
   * (`mp.tick`, `mp.flush`) are local only.
   */
  override accepts(msg: unknown): msg is MultiProposerMsg {
    if (!super.accepts(msg)) return false;
    const m = msg as unknown as Record<string, unknown>;
    switch (m.type) {
      case 'mp.tick':
      case 'mp.flush':
        return false;
      case 'mp.read':
        return typeof m.barrier === 'string' && m.barrier.length > 0 && m.barrier.length <= 512;
      case 'mp.submit': {
        const c = m.command as Record<string, unknown> | null;
        return (
          typeof c === 'object' &&
          c !== null &&
          typeof c.clientId === 'string' &&
          typeof c.seq === 'number' &&
          Number.isSafeInteger(c.seq)
        );
      }
      default:
        return true;
    }
  }

  /** Synchronous unless a new round must be made durable first. */
  receive(msg: MultiProposerMsg | Terminated): void | Promise<void> {
    const core = this.core;
    if (!core || msg.type === 'terminated') return;
    const now = this.ctx.clock.now();
    switch (msg.type) {
      case 'mp.tick': {
        const r = this.handle(core.tick(now));
        this.publish(false);
        return r;
      }
      case 'mp.submit': {
        // Deferred: the flush message queued behind this burst of submissions sends them
        // in one accept message.
        const { result, output } = core.submit(msg.command, now, true);
        this.ctx.reply(msg, result);
        if (result.ok) this.scheduleFlush();
        return this.handle(output);
      }
      case 'mp.flush':
        this.flushPending = false;
        return this.handle(core.flush(now));
      case 'mp.read': {
        const index = core.leaseReadIndex(now);
        if (index !== undefined) {
          this.ctx.reply(msg, { ok: true, index });
          return;
        }
        if (this.opts.reads !== 'log') {
          // answered when the core confirms (or fails) the read: see emitOutput
          // Keyed by an id of our own: barrier ids come from callers (possibly remote ones)
          // and two callers' ids may collide.
          const id = String(++this.readSeq);
          const { result, output } = core.confirmRead(id, now, true);
          if (!result.ok) this.ctx.reply(msg, result);
          else {
            this.readAsks.set(id, msg);
            this.scheduleFlush();
          }
          return this.handle(output);
        }
        const { result, output } = core.submitBarrier(msg.barrier, now, true);
        this.ctx.reply(msg, result.ok ? { ok: true, barrier: msg.barrier } : result);
        this.scheduleFlush();
        return this.handle(output);
      }
      default: {
        const m = fromWire(msg);
        if ('problem' in m) {
          const problem = m.problem;
          this.ctx.emit({ type: 'bad-message', code: 'SYNOD_ERR_PAXOS_BAD_MESSAGE', problem });
          return;
        }
        return this.handle(core.step(m, now));
      }
    }
  }

  /**
   * Queues a command from code on this node (`MultiPaxosLog`), without an ask round trip:
   * the core queues it at once and a single `mp.flush` message sends the whole burst. Safe
   * outside the mailbox turn: a submission never needs a write, and the output it returns
   * holds only its own effects.
   */
  submitLocal(command: Command): SubmitResult {
    const core = this.core;
    if (!core || this.stopped) return { ok: false, code: 'NotLeader' };
    const { result, output } = core.submit(command, this.ctx.clock.now(), true);
    if (result.ok) this.scheduleFlush();
    if (output.send.length > 0 || output.fates.length > 0 || output.events.length > 0)
      this.emitOutput(output);
    return result;
  }

  private scheduleFlush(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    this.ctx.send(this.ctx.self, { type: 'mp.flush' });
  }

  private handle(out: MultiLeaderOutput): void | Promise<void> {
    if (out.persist) {
      return this.opts.store.save({ round: out.persist.round }).then(() => this.emitOutput(out));
    }
    this.emitOutput(out);
  }

  private emitOutput(out: MultiLeaderOutput): void {
    // A broadcast is one message object sent to every acceptor (or learner): pack it once.
    // Actors of this node get the message in memory (`localForm`: nothing to unpack, and the
    // values keep their commands, so the learner here does not decode its own proposals).
    let last: MultiPaxosMessage | undefined;
    let wire: unknown;
    let local: MultiPaxosMessage | undefined;
    const here = this.localPrefix;
    for (const s of out.send) {
      if (s.msg !== last) {
        last = s.msg;
        wire = toWire(s.msg);
        local = undefined;
      }
      if (s.to.startsWith(here)) {
        local ??= localForm(s.msg, wire);
        this.ctx.send(s.to, local);
      } else this.ctx.send(s.to, wire as MultiPaxosMessage);
    }
    for (const r of out.reads) {
      const ask = this.readAsks.get(r.id);
      if (!ask) continue;
      this.readAsks.delete(r.id);
      const hint = this.core?.leaderHint;
      this.ctx.reply(
        ask,
        r.index !== undefined
          ? { ok: true, index: r.index }
          : { ok: false, code: 'NotLeader', ...(hint !== undefined ? { leaderHint: hint } : {}) },
      );
    }
    for (const e of out.events) {
      this.ctx.emit({ ...e, ballot: formatBallot(e.ballot) });
    }
    for (const f of out.fates) {
      const v = f.value;
      const c = v.k === 'cmd' ? commandOf(v) : undefined;
      this.ctx.emit({
        type: f.kind === 'dropped' ? 'proposal-dropped' : 'proposal-indeterminate',
        ...(c !== undefined && typeof c !== 'string' ? { clientId: c.clientId, seq: c.seq } : {}),
        ...(v.k === 'noop' && v.b !== undefined ? { barrier: v.b } : {}),
      });
    }
    if (out.events.length > 0) this.publish(true);
  }

  private publish(force: boolean): void {
    const core = this.core;
    if (!core) return;
    const v = core.view(this.ctx.clock.now());
    const key = `${v.role}|${formatBallot(v.ballot)}|${v.leader}|${v.chosenUpTo}|${v.inFlight}`;
    if (!force && key === this.lastStateKey) return;
    this.lastStateKey = key;
    this.ctx.setState(v);
  }
}
