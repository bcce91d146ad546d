/**
 * The user-facing actor API. An actor is a class with a `receive` method; the runtime
 * delivers its messages strictly one at a time, in arrival order, awaiting async handlers
 * before the next message.
 *
 *     type CounterMsg =
 *       | { type: 'inc'; by: number }
 *       | ({ type: 'get' } & Replies<number>);
 *
 *     class Counter extends Actor<CounterMsg, { count: number }> {
 *       private count = 0;
 *       receive(msg: CounterMsg) {
 *         switch (msg.type) {
 *           case 'inc': this.count += msg.by; this.ctx.setState({ count: this.count }); break;
 *           case 'get': this.ctx.reply(msg, this.count); break;
 *         }
 *       }
 *     }
 */
import type { Observable } from 'rxjs';
import type { ActorSystem } from './actor-system.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { Random } from './random.js';
import type { SupervisionStrategy } from './supervision.js';

/** Every actor message is a plain-data object with a `type` discriminator. */
export interface Message {
  readonly type: string;
}

declare const replyBrand: unique symbol;

/**
 * Marks a message as a request whose reply has type `R`. `ask` and `reply` are typed
 * through it: `ref.ask(msg)` returns `Promise<R>` and `ctx.reply(msg, value)` requires an `R`.
 */
export interface Replies<R> {
  readonly [replyBrand]?: R;
}

/** The reply type of a request message (`never` for messages that expect none). */
export type ReplyOf<M> = typeof replyBrand extends keyof M
  ? Exclude<M[typeof replyBrand & keyof M], undefined>
  : never;

/** Messages of union `M` that expect a reply. */
export type RequestOf<M> = M extends unknown
  ? typeof replyBrand extends keyof M
    ? M
    : never
  : never;

/** The reply type of the member of union `M` whose `type` is `T`. */
export type ReplyFor<M, T> = ReplyOf<Extract<M, { type: T }>>;

/** The message a watcher receives when a watched actor stops. */
export interface Terminated {
  readonly type: 'terminated';
  readonly address: string;
  /** `stopped`, `failed`, `not-found` (it never existed or was already gone), `node-down`. */
  readonly reason: 'stopped' | 'failed' | 'not-found' | 'node-down';
}

export type LifecycleEvent =
  | { type: 'started'; address: string }
  | { type: 'stopped'; address: string }
  | { type: 'restarted'; address: string; error: string; attempt: number }
  | { type: 'failed'; address: string; error: string; message: unknown; decision: string };

/** Events on `events$`: lifecycle events, plus whatever domain events the actor emits. */
export interface ActorEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface Timers<M> {
  /** Delivers `msg` to this actor once after `ms`; replaces a timer with the same key. */
  once(key: string, ms: number, msg: M): void;
  /** Delivers `msg` every `ms`; replaces a timer with the same key. */
  repeat(key: string, ms: number, msg: M): void;
  cancel(key: string): void;
  cancelAll(): void;
  isActive(key: string): boolean;
}

export interface SpawnOptions {
  /** Mailbox bound; a message arriving when it is full is rejected to dead letters. */
  mailboxCapacity?: number;
  supervision?: SupervisionStrategy;
}

export interface ActorContext<M extends Message, S> {
  /** This actor's address, `node/path`. */
  readonly self: string;
  readonly nodeId: string;
  readonly system: ActorSystem;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** The sender of the message being handled, when it came from an actor. */
  readonly sender: string | undefined;
  readonly timers: Timers<M>;
  /** Tells a message to an actor, local or remote. False if it was rejected at once. */
  send<T extends Message>(to: string, msg: T): boolean;
  /** Answers the request `msg` (which must be the message being, or having been, handled). */
  reply<R>(msg: Replies<R>, value: R): void;
  /** Fails the request `msg`: the asker's promise rejects with `error`. */
  replyError(msg: Replies<unknown>, error: { code: string; message: string }): void;
  /** Sends a request and waits for its reply. */
  ask<Q extends Message & Replies<unknown>>(
    to: string,
    msg: Q,
    timeoutMs: number,
  ): Promise<ReplyOf<Q>>;
  /** Publishes a new snapshot on `state$`. */
  setState(state: S): void;
  /** Publishes an event on `events$`. */
  emit(event: ActorEvent): void;
  /** Delivers `terminated` to this actor when `address` stops (local or remote). */
  watch(address: string): void;
  unwatch(address: string): void;
  /** Spawns a child at `self/name`; it is stopped when this actor stops. */
  spawn<CM extends Message, CS>(
    name: string,
    actor: Actor<CM, CS> | (() => Actor<CM, CS>),
    options?: SpawnOptions,
  ): ActorRef<CM, CS>;
  /** Sends the message being handled to dead letters as unhandled. */
  unhandled(msg: M): void;
  /** Stops this actor after the current message. */
  stopSelf(): void;
}

function notStarted(): never {
  throw new Error('actor context is not available before the actor starts');
}

/**
 * The context an actor holds before the runtime attaches the real one: every member
 * throws, so using `ctx` in a constructor fails with a clear error.
 */
const detachedContext: ActorContext<never, never> = new Proxy({} as ActorContext<never, never>, {
  get: notStarted,
  has: notStarted,
});

export abstract class Actor<M extends Message, S = undefined> {
  /**
   * The actor's context; available from `preStart` on (before that, any use of it throws).
   * A plain field rather than a getter: it is read on every message an actor sends.
   */
  protected ctx: ActorContext<M, S> = detachedContext as unknown as ActorContext<M, S>;

  /** @internal Set by the runtime before `preStart`. */
  attach(context: ActorContext<M, S>): void {
    this.ctx = context;
  }

  /** The first snapshot published on `state$`. */
  initialState(): S {
    return undefined as S;
  }

  /**
   * Validates a message arriving from outside the type system (another process). The
   * default accepts any object with a string `type`. Rejected messages go to dead letters.
   */
  accepts(msg: unknown): msg is M {
    return typeof msg === 'object' && msg !== null && typeof (msg as Message).type === 'string';
  }

  abstract receive(msg: M | Terminated): void | Promise<void>;

  preStart(): void | Promise<void> {}
  postStop(): void | Promise<void> {}
  /** Called on the failing instance before a restart. */
  preRestart(_error: unknown, _msg: M | undefined): void {}
  /** Called on the new (or same) instance after a restart, instead of `preStart`. */
  postRestart(_error: unknown): void | Promise<void> {
    return this.preStart();
  }
}

/** A handle on a spawned actor. */
export interface ActorRef<M extends Message, S = undefined> {
  readonly address: string;
  /** Tells a message; false when rejected at once (mailbox full, stopped). */
  tell(msg: M): boolean;
  /** Sends a request and resolves with its typed reply, or rejects after `timeoutMs`. */
  ask<Q extends RequestOf<M>>(msg: Q, timeoutMs?: number): Promise<ReplyFor<M, Q['type']>>;
  readonly state$: Observable<S>;
  readonly events$: Observable<ActorEvent>;
  getSnapshot(): S;
  isAlive(): boolean;
}
