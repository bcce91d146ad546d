/**
 * The runtime's private half of an actor: its mailbox, lifecycle, timers, supervision and
 * streams. One cell per spawned actor; the `Actor` instance inside may be replaced on
 * restart while the cell (and so the address and mailbox) stays.
 */
import { BehaviorSubject, Subject } from 'rxjs';
import type {
  Actor,
  ActorContext,
  ActorEvent,
  ActorRef,
  Message,
  Replies,
  SpawnOptions,
  Terminated,
  Timers,
} from './actor.js';
import type { ActorSystem } from './actor-system.js';
import type { TimerHandle } from './clock.js';
import { Mailbox } from './mailbox.js';
import { defaultSupervision, restartBackoff, type SupervisionStrategy } from './supervision.js';

interface ReplyInfo {
  corr: string;
  replyNode: string;
}

type CellState = 'starting' | 'running' | 'backoff' | 'stopped';

export type ActorFactory<M extends Message, S> = Actor<M, S> | (() => Actor<M, S>);

export const DEFAULT_MAILBOX_CAPACITY = 100_000;

/** A cell of any message and state type (the registry holds cells of many types). */
// biome-ignore lint/suspicious/noExplicitAny: cells of every message type share one registry
export type AnyCell = ActorCell<any, any>;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

export class ActorCell<M extends Message = Message, S = unknown> {
  readonly mailbox = new Mailbox(16);
  readonly capacity: number;
  readonly supervision: SupervisionStrategy;
  readonly children = new Map<string, AnyCell>();
  /** Addresses (local or remote) to notify with `terminated` when this actor stops. */
  readonly watchers = new Set<string>();
  readonly state$: BehaviorSubject<S>;
  readonly events$ = new Subject<ActorEvent>();
  readonly ref: ActorRef<M, S>;

  state: CellState = 'starting';
  /** In the dispatcher's ready queue. */
  scheduled = false;
  /** An async handler (or hook) is in flight. */
  busy = false;
  private stopRequested = false;
  private stopWaiters: (() => void)[] = [];
  private instance: Actor<M, S>;
  private readonly factory: (() => Actor<M, S>) | undefined;
  private readonly timerHandles = new Map<string, TimerHandle>();
  /**
   * Messages of repeating timers now waiting in the mailbox: a tick is skipped while its
   * message is still queued, so a slow actor never gets a backlog of ticks.
   */
  private readonly queuedTicks = new Set<Message>();
  private readonly replyInfo = new WeakMap<object, ReplyInfo>();
  private current = false;
  private currentFrom: string | undefined;
  private restarts: number[] = [];
  /**
   * The local cell this actor last sent to, and its address: a repeated send to the same
   * actor skips the registry lookup. Valid while that cell is not stopped (a stopped cell
   * never runs again; a new actor at the same address is a new cell, found by lookup).
   */
  private lastTo: string | undefined;
  private lastTarget: AnyCell | undefined;
  private readonly context: ActorContext<M, S>;

  constructor(
    readonly system: ActorSystem,
    readonly address: string,
    actor: ActorFactory<M, S>,
    readonly parent: AnyCell | undefined,
    options: SpawnOptions,
  ) {
    this.factory = typeof actor === 'function' ? actor : undefined;
    this.instance = typeof actor === 'function' ? actor() : actor;
    this.capacity = options.mailboxCapacity ?? system.defaultMailboxCapacity;
    this.supervision = options.supervision ?? defaultSupervision;
    this.context = this.makeContext();
    this.instance.attach(this.context);
    this.state$ = new BehaviorSubject<S>(this.instance.initialState());
    this.ref = {
      address,
      tell: (msg: M) => this.enqueue(msg, undefined, undefined, undefined),
      ask: (msg: Message & Replies<unknown>, timeoutMs?: number) =>
        system.ask(address, msg, timeoutMs),
      state$: this.state$.asObservable(),
      events$: this.events$.asObservable(),
      getSnapshot: () => this.state$.getValue(),
      isAlive: () => this.state !== 'stopped',
    } as ActorRef<M, S>;
  }

  get actor(): Actor<M, S> {
    return this.instance;
  }

  /** Starts the actor: runs `preStart`, then processes its mailbox. */
  start(): void {
    this.busy = true;
    this.runHook(
      () => this.instance.preStart(),
      () => {
        if (this.state === 'stopped') return;
        this.state = 'running';
        this.emit({ type: 'started', address: this.address });
        this.system.lifecycle(this.address, 'started');
      },
    );
  }

  /** Adds a message to the mailbox. False (and a dead letter) when it cannot be accepted. */
  enqueue(
    msg: Message,
    from: string | undefined,
    corr: string | undefined,
    replyNode: string | undefined,
    bypassCapacity = false,
  ): boolean {
    if (this.state === 'stopped') {
      this.system.rejected(
        this.address,
        from,
        msg,
        corr,
        replyNode,
        'SYNOD_ERR_ACTOR_STOPPED',
        'the actor has stopped',
      );
      return false;
    }
    if (!bypassCapacity && this.mailbox.count >= this.capacity) {
      this.system.rejected(
        this.address,
        from,
        msg,
        corr,
        replyNode,
        'SYNOD_ERR_MAILBOX_FULL',
        `mailbox full (capacity ${this.capacity})`,
      );
      return false;
    }
    this.mailbox.push(msg, from, corr, replyNode);
    if (!this.scheduled && !this.busy && this.state === 'running') this.system.makeReady(this);
    return true;
  }

  /**
   * Processes up to `limit` messages. Returns how many it processed. Stops early at an
   * async handler (the cell is resumed when the handler settles).
   */
  run(limit: number): number {
    let n = 0;
    const mailbox = this.mailbox;
    while (n < limit && this.state === 'running' && !this.busy) {
      const msg = mailbox.shift();
      if (msg === undefined) break;
      if (this.queuedTicks.size !== 0) this.queuedTicks.delete(msg);
      n++;
      if (mailbox.corr !== undefined)
        this.process(msg, mailbox.from, mailbox.corr, mailbox.replyNode);
      else this.process(msg, mailbox.from, undefined, undefined);
    }
    if (mailbox.count > 0 && this.state === 'running' && !this.busy) this.system.makeReady(this);
    return n;
  }

  private process(
    msg: Message,
    from: string | undefined,
    corr: string | undefined,
    replyNode: string | undefined,
  ): void {
    if (corr !== undefined && replyNode !== undefined) {
      this.replyInfo.set(msg, { corr, replyNode });
    }
    this.current = true;
    this.currentFrom = from;
    let result: void | Promise<void>;
    try {
      result = this.instance.receive(msg as M);
    } catch (err) {
      this.current = false;
      this.fail(err, msg);
      return;
    }
    if (result !== undefined && isThenable(result)) {
      this.busy = true;
      result.then(
        () => {
          this.busy = false;
          this.current = false;
          this.afterAsync();
        },
        (err: unknown) => {
          this.busy = false;
          this.current = false;
          this.fail(err, msg);
        },
      );
      return;
    }
    this.current = false;
    if (this.stopRequested) this.stop('stopped');
  }

  /** `ctx.send`: a tell from this actor. */
  private sendFrom(to: string, msg: Message): boolean {
    let target = this.lastTarget;
    if (target === undefined || this.lastTo !== to || target.state === 'stopped') {
      target = this.system.localCell(to);
      if (target === undefined) return this.system.sendNotRegistered(to, msg, this.address);
      this.lastTo = to;
      this.lastTarget = target;
    }
    return this.system.sendToCell(target, msg, this.address);
  }

  private afterAsync(): void {
    if (this.stopRequested) {
      this.stop('stopped');
      return;
    }
    if (this.state === 'running' && this.mailbox.length > 0 && !this.scheduled)
      this.system.makeReady(this);
  }

  private runHook(hook: () => void | Promise<void>, then: () => void): void {
    let r: void | Promise<void>;
    try {
      r = hook();
    } catch (err) {
      this.busy = false;
      then();
      this.fail(err, undefined);
      return;
    }
    if (isThenable(r)) {
      r.then(
        () => {
          this.busy = false;
          then();
          this.afterAsync();
        },
        (err: unknown) => {
          this.busy = false;
          then();
          this.fail(err, undefined);
        },
      );
    } else {
      this.busy = false;
      then();
      this.afterAsync();
    }
  }

  /** Applies the supervision strategy to a failure. */
  fail(error: unknown, msg: Message | undefined): void {
    if (this.state === 'stopped') return;
    const strategy = this.supervision;
    const text = error instanceof Error ? error.message : String(error);
    this.emit({
      type: 'failed',
      address: this.address,
      error: text,
      message: msg,
      decision: strategy.kind,
    });
    this.system.failure(this.address, error, msg, strategy.kind);
    switch (strategy.kind) {
      case 'resume':
        this.afterAsync();
        return;
      case 'stop':
        this.stop('failed');
        return;
      case 'escalate':
        if (this.parent && this.parent.state !== 'stopped') {
          this.parent.fail(
            new Error(`child ${this.address} escalated: ${text}`, { cause: error }),
            undefined,
          );
          // The parent's decision (restart/stop) stops this child; if the parent resumed,
          // the child continues.
          if ((this.state as CellState) !== 'stopped') this.afterAsync();
        } else {
          this.stop('failed');
        }
        return;
      case 'restart':
        this.scheduleRestart(strategy, error, msg);
        return;
    }
  }

  private scheduleRestart(
    strategy: Extract<SupervisionStrategy, { kind: 'restart' }>,
    error: unknown,
    msg: Message | undefined,
  ): void {
    const now = this.system.clock.now();
    const within = strategy.withinMs ?? 60_000;
    this.restarts = this.restarts.filter((t) => now - t < within);
    if (this.restarts.length >= (strategy.maxRestarts ?? 10)) {
      this.system.log.log('error', 'actor exceeded its restart budget; stopping it', {
        address: this.address,
        restarts: this.restarts.length,
      });
      this.stop('failed');
      return;
    }
    const attempt = this.restarts.length;
    this.restarts.push(now);
    this.state = 'backoff';
    this.cancelAllTimers();
    for (const child of [...this.children.values()]) child.stop('stopped');
    try {
      this.instance.preRestart(error, msg as M | undefined);
    } catch (hookErr) {
      this.system.log.log('warn', 'preRestart threw', {
        address: this.address,
        error: String(hookErr),
      });
    }
    const delay = restartBackoff(strategy, attempt, this.system.random.next());
    this.system.clock.setTimer(delay, () => {
      if (this.state !== 'backoff') return;
      if (this.factory) {
        this.instance = this.factory();
        this.instance.attach(this.context);
      }
      this.busy = true;
      this.runHook(
        () => this.instance.postRestart(error),
        () => {
          if (this.state !== 'backoff') return;
          this.state = 'running';
          const text = error instanceof Error ? error.message : String(error);
          this.emit({
            type: 'restarted',
            address: this.address,
            error: text,
            attempt: attempt + 1,
          });
          this.system.lifecycle(this.address, 'restarted');
        },
      );
    });
  }

  /** Stops the actor now, or after the async handler in flight. */
  requestStop(): Promise<void> {
    if (this.state === 'stopped') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.stopWaiters.push(resolve));
    if (this.busy) this.stopRequested = true;
    else this.stop('stopped');
    return done;
  }

  stop(reason: Terminated['reason']): void {
    if ((this.state as CellState) === 'stopped') return;
    this.state = 'stopped';
    this.stopRequested = false;
    this.cancelAllTimers();
    for (const child of [...this.children.values()]) child.stop('stopped');
    this.parent?.children.delete(this.address);
    this.system.unregister(this);
    for (let msg = this.mailbox.shift(); msg !== undefined; msg = this.mailbox.shift()) {
      this.system.rejected(
        this.address,
        this.mailbox.from,
        msg,
        this.mailbox.corr,
        this.mailbox.replyNode,
        'SYNOD_ERR_ACTOR_STOPPED',
        'the actor stopped before handling the message',
      );
    }
    const finish = () => {
      this.emit({ type: 'stopped', address: this.address });
      this.system.lifecycle(this.address, 'stopped');
      this.events$.complete();
      this.state$.complete();
      for (const w of this.watchers) this.system.notifyTerminated(w, this.address, reason);
      this.watchers.clear();
      for (const resolve of this.stopWaiters.splice(0)) resolve();
    };
    let r: void | Promise<void>;
    try {
      r = this.instance.postStop();
    } catch (err) {
      this.system.log.log('warn', 'postStop threw', { address: this.address, error: String(err) });
      finish();
      return;
    }
    if (isThenable(r)) {
      r.then(finish, (err: unknown) => {
        this.system.log.log('warn', 'postStop failed', {
          address: this.address,
          error: String(err),
        });
        finish();
      });
    } else finish();
  }

  private emit(event: ActorEvent): void {
    this.events$.next(event);
  }

  private cancelAllTimers(): void {
    for (const h of this.timerHandles.values()) h.cancel();
    this.timerHandles.clear();
    this.queuedTicks.clear();
  }

  private makeContext(): ActorContext<M, S> {
    const cell = this;
    const system = this.system;
    const timers: Timers<M> = {
      once(key, ms, msg) {
        cell.timerHandles.get(key)?.cancel();
        const handle = system.clock.setTimer(ms, () => {
          if (cell.timerHandles.get(key) !== handle) return;
          cell.timerHandles.delete(key);
          if (cell.state === 'running' || cell.state === 'starting') {
            cell.enqueue(msg, cell.address, undefined, undefined, true);
          }
        });
        cell.timerHandles.set(key, handle);
      },
      repeat(key, ms, msg) {
        cell.timerHandles.get(key)?.cancel();
        const handle = system.clock.setInterval(ms, () => {
          if (cell.timerHandles.get(key) !== handle) return;
          // A repeating timer never piles up: skip a tick while the previous one is still
          // queued (or the mailbox is full).
          if (
            cell.state === 'running' &&
            !cell.queuedTicks.has(msg) &&
            cell.mailbox.count < cell.capacity &&
            cell.enqueue(msg, cell.address, undefined, undefined, true)
          ) {
            cell.queuedTicks.add(msg);
          }
        });
        cell.timerHandles.set(key, handle);
      },
      cancel(key) {
        cell.timerHandles.get(key)?.cancel();
        cell.timerHandles.delete(key);
      },
      cancelAll() {
        cell.cancelAllTimers();
      },
      isActive(key) {
        return cell.timerHandles.has(key);
      },
    };
    return {
      self: this.address,
      nodeId: system.nodeId,
      system,
      clock: system.clock,
      random: system.random,
      log: system.log,
      get sender() {
        return cell.current ? cell.currentFrom : undefined;
      },
      timers,
      send: (to, msg) => cell.sendFrom(to, msg),
      reply: <R>(msg: Replies<R>, value: R) => {
        const info = cell.replyInfo.get(msg as object);
        if (!info) {
          system.log.log('warn', 'reply to a message that is not a pending request', {
            address: cell.address,
            type: (msg as Message).type,
          });
          return;
        }
        cell.replyInfo.delete(msg as object);
        system.sendReply(info.replyNode, info.corr, { ok: true, v: value });
      },
      replyError: (msg, error) => {
        const info = cell.replyInfo.get(msg as object);
        if (!info) return;
        cell.replyInfo.delete(msg as object);
        system.sendReply(info.replyNode, info.corr, {
          ok: false,
          code: error.code,
          message: error.message,
        });
      },
      ask: (to, msg, timeoutMs) => system.ask(to, msg, timeoutMs, cell.address) as never,
      setState: (state) => {
        if (cell.state !== 'stopped') cell.state$.next(state);
      },
      emit: (event) => cell.emit(event),
      watch: (address) => system.watch(cell.address, address),
      unwatch: (address) => system.unwatch(cell.address, address),
      spawn: (name, actor, options) => system.spawnChild(cell, name, actor, options),
      unhandled: (msg) =>
        system.deadLetter(
          cell.address,
          cell.current ? cell.currentFrom : undefined,
          msg,
          'SYNOD_ERR_UNHANDLED',
          'message not handled',
        ),
      stopSelf: () => {
        if (cell.busy || cell.current) cell.stopRequested = true;
        else cell.stop('stopped');
      },
    };
  }
}
