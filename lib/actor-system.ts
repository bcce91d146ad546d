/**
 * The actor system of one node: spawns actors, routes messages locally and through a
 * transport, correlates asks with replies, delivers `terminated` to watchers, and runs the
 * dispatcher that processes mailboxes one message at a time per actor.
 */
import { nanoid } from 'nanoid';
import { type Observable, Subject, type Subscription } from 'rxjs';
import type {
  Actor,
  ActorRef,
  Message,
  Replies,
  ReplyFor,
  ReplyOf,
  RequestOf,
  SpawnOptions,
  Terminated,
} from './actor.js';
import { ActorCell, type AnyCell, DEFAULT_MAILBOX_CAPACITY } from './actor-cell.js';
import { formatAddress, isValidActorPath, isValidNodeId, nodeOf } from './address.js';
import { type Clock, systemClock } from './clock.js';
import { assertWireSafe, decodeValue, encodeValue } from './codec.js';
import type { DeadLetter } from './dead-letter.js';
import { type Envelope, PROTOCOL_VERSION } from './envelope.js';
import { AskTimeoutError, DeliveryError, SynodError } from './errors.js';
import { consoleLogger, type Logger } from './logger.js';
import { Queue } from './queue.js';
import { type Random, randomFromEntropy } from './random.js';
import type { Transport } from './transport.js';

export interface ActorSystemOptions {
  nodeId: string;
  clock?: Clock;
  random?: Random;
  transport?: Transport;
  logger?: Logger;
  /** Correlation-id generator; the simulation injects a deterministic one. */
  idGenerator?: () => string;
  defaultMailboxCapacity?: number;
  /** Messages an actor processes before the dispatcher moves to the next ready actor. */
  throughput?: number;
  /** Messages processed per dispatcher turn before yielding to I/O. */
  turnBudget?: number;
  /** Default `ask` timeout in ms. */
  askTimeoutMs?: number;
  /**
   * Round-trips local messages through the codec, so that a message that could not cross
   * a wire fails locally too (on by default in the simulation; costs throughput).
   */
  serializeLocal?: boolean;
}

type ReplyBody = { ok: true; v: unknown } | { ok: false; code: string; message: string };

interface PendingAsk {
  resolve(value: unknown): void;
  reject(err: Error): void;
  cancel(): void;
  to: string;
}

type SysMessage =
  | { op: 'watch'; target: string; watcher: string }
  | { op: 'unwatch'; target: string; watcher: string }
  | { op: 'terminated'; target: string; watcher: string; reason: Terminated['reason'] };

export interface FailureReport {
  address: string;
  error: unknown;
  message: unknown;
  decision: string;
}

export interface LifecycleReport {
  address: string;
  event: 'started' | 'stopped' | 'restarted';
}

const ASK_PATH = '$ask';

/** Warn lines per code in each window before the rest are only counted (see `warnLimited`). */
const WARN_BURST = 20;
const WARN_WINDOW_MS = 10_000;

export class ActorSystem {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly defaultMailboxCapacity: number;
  private readonly prefix: string;
  private readonly cells = new Map<string, AnyCell>();
  private readonly ready = new Queue<AnyCell>(64);
  private drainScheduled = false;
  private readonly throughput: number;
  private readonly turnBudget: number;
  private readonly askTimeoutMs: number;
  private readonly serializeLocal: boolean;
  private readonly newId: () => string;
  private readonly pending = new Map<string, PendingAsk>();
  /** Remote watches we hold: target address → local watcher addresses. */
  private readonly remoteWatches = new Map<string, Set<string>>();
  private readonly deadLetterSubject = new Subject<DeadLetter>();
  private readonly failureSubject = new Subject<FailureReport>();
  private readonly lifecycleSubject = new Subject<LifecycleReport>();
  private transport: Transport | undefined;
  private readonly subscriptions: Subscription[] = [];
  private stopped = false;
  /** Set when shutdown begins (actors stop one by one while peers still send). */
  private stopping = false;
  private readonly counters = { delivered: 0, deadLetters: 0, refusedInbound: 0 };
  private readonly warnWindows = new Map<string, { start: number; count: number }>();

  /** Every message that could not be delivered or processed, with a code and reason. */
  readonly deadLetters$: Observable<DeadLetter> = this.deadLetterSubject.asObservable();
  /** Every handler failure and the supervision decision taken. */
  readonly failures$: Observable<FailureReport> = this.failureSubject.asObservable();
  /** started / stopped / restarted for every actor of this system. */
  readonly lifecycle$: Observable<LifecycleReport> = this.lifecycleSubject.asObservable();

  constructor(options: ActorSystemOptions) {
    if (!isValidNodeId(options.nodeId)) {
      throw new SynodError('SYNOD_ERR_BAD_ADDRESS', `invalid node id "${options.nodeId}"`);
    }
    this.nodeId = options.nodeId;
    this.prefix = `${options.nodeId}/`;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? randomFromEntropy();
    this.log = options.logger ?? consoleLogger({ name: options.nodeId });
    this.newId = options.idGenerator ?? (() => nanoid());
    this.defaultMailboxCapacity = options.defaultMailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY;
    this.throughput = options.throughput ?? 64;
    this.turnBudget = options.turnBudget ?? 50_000;
    this.askTimeoutMs = options.askTimeoutMs ?? 5_000;
    this.serializeLocal = options.serializeLocal ?? false;
    if (options.transport) this.attachTransport(options.transport);
  }

  /** Connects a transport: remote sends go through it and its inbound envelopes are routed. */
  attachTransport(transport: Transport): void {
    if (this.transport)
      throw new SynodError('SYNOD_ERR_TRANSPORT', 'a transport is already attached');
    if (transport.nodeId !== this.nodeId) {
      throw new SynodError(
        'SYNOD_ERR_TRANSPORT',
        `transport node id "${transport.nodeId}" differs from system node id "${this.nodeId}"`,
      );
    }
    this.transport = transport;
    this.subscriptions.push(
      transport.inbound$.subscribe((env) => this.receiveEnvelope(env)),
      transport.deadLetters$.subscribe((d) => {
        if (d.code === 'SYNOD_ERR_UNDECODABLE') {
          // Bytes from a peer that the codec could not read (the memory transport reports
          // them here; it has no logger): a misbehaving or newer peer, worth a warning.
          const peer = d.envelope.from === undefined ? undefined : nodeOf(d.envelope.from);
          this.counters.refusedInbound++;
          this.warnLimited(
            d.code,
            `dropped an undecodable message from ${peer === undefined ? 'an unidentified sender' : `node ${peer}`}: ${d.reason}`,
            { peer, code: d.code },
          );
          this.deadLetter(
            d.envelope.to,
            d.envelope.from,
            d.envelope.m,
            d.code,
            d.reason,
            d.envelope,
            peer,
          );
          return;
        }
        this.deadLetter(d.envelope.to, d.envelope.from, d.envelope.m, d.code, d.reason, d.envelope);
      }),
      transport.links$.subscribe((link) => {
        if (link.state === 'down') this.peerDown(link.peer);
      }),
    );
  }

  getTransport(): Transport | undefined {
    return this.transport;
  }

  // ---------------------------------------------------------------- spawning and stopping

  /** Spawns a top-level actor at `nodeId/path`. */
  spawn<M extends Message, S>(
    path: string,
    actor: Actor<M, S> | (() => Actor<M, S>),
    options: SpawnOptions = {},
  ): ActorRef<M, S> {
    return this.spawnAt(path, actor, undefined, options);
  }

  /** @internal */
  spawnChild<M extends Message, S>(
    parent: AnyCell,
    name: string,
    actor: Actor<M, S> | (() => Actor<M, S>),
    options: SpawnOptions = {},
  ): ActorRef<M, S> {
    if (name.includes('/'))
      throw new SynodError('SYNOD_ERR_BAD_ADDRESS', `child name "${name}" contains "/"`);
    const parentPath = parent.address.slice(this.prefix.length);
    return this.spawnAt(`${parentPath}/${name}`, actor, parent, options);
  }

  private spawnAt<M extends Message, S>(
    path: string,
    actor: Actor<M, S> | (() => Actor<M, S>),
    parent: AnyCell | undefined,
    options: SpawnOptions,
  ): ActorRef<M, S> {
    if (this.stopped)
      throw new SynodError('SYNOD_ERR_SYSTEM_STOPPED', 'the actor system has stopped');
    if (!isValidActorPath(path) || path.startsWith('$')) {
      throw new SynodError('SYNOD_ERR_BAD_ADDRESS', `invalid actor path "${path}"`);
    }
    const address = formatAddress(this.nodeId, path);
    if (this.cells.has(address)) {
      throw new SynodError('SYNOD_ERR_NAME_TAKEN', `an actor already runs at ${address}`);
    }
    if (options.mailboxCapacity !== undefined && !(options.mailboxCapacity >= 1)) {
      throw new SynodError('SYNOD_ERR_BAD_OPTION', 'mailboxCapacity must be at least 1');
    }
    const cell = new ActorCell<M, S>(this, address, actor, parent, options);
    this.cells.set(address, cell);
    parent?.children.set(address, cell);
    cell.start();
    return cell.ref;
  }

  /** Stops an actor (after its in-flight message); resolves when `postStop` finished. */
  stop(address: string): Promise<void> {
    const cell = this.cells.get(address);
    return cell ? cell.requestStop() : Promise.resolve();
  }

  /** A reference to a local actor, or undefined. */
  lookup<M extends Message, S>(address: string): ActorRef<M, S> | undefined {
    return this.cells.get(address)?.ref as ActorRef<M, S> | undefined;
  }

  /** A tell/ask handle for any address, local or remote. */
  refFor<M extends Message>(address: string) {
    return {
      address,
      tell: (msg: M): boolean => this.send(address, msg),
      ask: <Q extends RequestOf<M>>(msg: Q, timeoutMs?: number): Promise<ReplyFor<M, Q['type']>> =>
        this.ask(address, msg as Message & Replies<unknown>, timeoutMs) as Promise<
          ReplyFor<M, Q['type']>
        >,
    };
  }

  actorAddresses(): string[] {
    return [...this.cells.keys()];
  }

  /** Stops every actor, rejects pending asks and detaches from the transport. */
  async shutdown(options: { closeTransport?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    const tops = [...this.cells.values()].filter((c) => c.parent === undefined);
    await Promise.all(tops.map((c) => c.requestStop()));
    this.stopped = true;
    for (const [id, p] of this.pending) {
      p.cancel();
      p.reject(
        new DeliveryError(
          'SYNOD_ERR_SYSTEM_STOPPED',
          `actor system stopped before ${p.to} replied`,
        ),
      );
      this.pending.delete(id);
    }
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    if (options.closeTransport) await this.transport?.close();
    this.deadLetterSubject.complete();
    this.failureSubject.complete();
    this.lifecycleSubject.complete();
  }

  isStopped(): boolean {
    return this.stopped;
  }

  stats(): {
    actors: number;
    pendingAsks: number;
    delivered: number;
    deadLetters: number;
    /** Envelopes from other nodes refused on receipt (also counted in `deadLetters`). */
    refusedInbound: number;
  } {
    return {
      actors: this.cells.size,
      pendingAsks: this.pending.size,
      delivered: this.counters.delivered,
      deadLetters: this.counters.deadLetters,
      refusedInbound: this.counters.refusedInbound,
    };
  }

  // ---------------------------------------------------------------- sending

  /** Tells `msg` to the actor at `to`. False when it was rejected at once. */
  send<T extends Message>(to: string, msg: T, from?: string): boolean {
    // The registry holds local addresses only, so a hit is a local send; this avoids a
    // prefix test (a measurable share of an in-process message) on the hot path.
    const cell = this.cells.get(to);
    if (cell !== undefined) return this.sendToCell(cell, msg, from);
    return this.sendNotRegistered(to, msg, from);
  }

  /** @internal The local actor registered at `address`, if any. */
  localCell(address: string): AnyCell | undefined {
    return this.cells.get(address);
  }

  /** @internal Tells `msg` to a local cell already looked up. */
  sendToCell(cell: AnyCell, msg: Message, from: string | undefined): boolean {
    const m = this.serializeLocal ? this.roundTrip(msg) : msg;
    return cell.enqueue(m, from, undefined, undefined);
  }

  /** @internal Tells `msg` to an address with no local actor: a dead letter or a remote send. */
  sendNotRegistered(to: string, msg: Message, from: string | undefined): boolean {
    if (to.startsWith(this.prefix)) {
      this.deadLetter(to, from, msg, 'SYNOD_ERR_NO_SUCH_ACTOR', `no actor at ${to}`);
      return false;
    }
    return this.sendRemote({ v: PROTOCOL_VERSION, k: 'tell', to, from, m: msg });
  }

  /** Sends a request and resolves with its reply. */
  ask<Q extends Message & Replies<unknown>>(
    to: string,
    msg: Q,
    timeoutMs?: number,
    from?: string,
  ): Promise<ReplyOf<Q>> {
    if (this.stopped) {
      return Promise.reject(
        new DeliveryError('SYNOD_ERR_SYSTEM_STOPPED', 'the actor system has stopped'),
      );
    }
    const ms = timeoutMs ?? this.askTimeoutMs;
    const corr = this.newId();
    return new Promise<ReplyOf<Q>>((resolve, reject) => {
      const timer = this.clock.setTimer(ms, () => {
        if (this.pending.delete(corr)) reject(new AskTimeoutError(to, ms));
      });
      this.pending.set(corr, {
        resolve: resolve as (v: unknown) => void,
        reject,
        cancel: () => timer.cancel(),
        to,
      });
      if (to.startsWith(this.prefix)) {
        const cell = this.cells.get(to);
        if (cell === undefined) {
          this.rejected(
            to,
            from,
            msg,
            corr,
            this.nodeId,
            'SYNOD_ERR_NO_SUCH_ACTOR',
            `no actor at ${to}`,
          );
          return;
        }
        const m = this.serializeLocal ? this.roundTrip(msg) : msg;
        cell.enqueue(m, from, corr, this.nodeId);
        return;
      }
      this.sendRemote({
        v: PROTOCOL_VERSION,
        k: 'ask',
        to,
        from: from ?? `${this.nodeId}/${ASK_PATH}`,
        c: corr,
        m: msg,
      });
    });
  }

  private roundTrip(msg: Message): Message {
    assertWireSafe(msg);
    return decodeValue(encodeValue(msg)) as Message;
  }

  private sendRemote(env: Envelope): boolean {
    if (env.from === undefined) delete env.from;
    if (!this.transport) {
      this.deadLetter(
        env.to,
        env.from,
        env.m,
        'SYNOD_ERR_NO_ROUTE',
        `no transport to reach node ${nodeOf(env.to)}`,
        env,
      );
      return false;
    }
    // The transport reports its own rejections on deadLetters$, which we republish.
    return this.transport.send(env);
  }

  /** @internal Routes a reply to the asking system. */
  sendReply(replyNode: string, corr: string, body: ReplyBody): void {
    if (replyNode === this.nodeId) {
      this.settle(corr, body);
      return;
    }
    this.sendRemote({
      v: PROTOCOL_VERSION,
      k: 'reply',
      to: `${replyNode}/${ASK_PATH}`,
      c: corr,
      m: body,
    });
  }

  private settle(corr: string, body: ReplyBody): void {
    const p = this.pending.get(corr);
    if (!p) {
      this.deadLetter(
        `${this.nodeId}/${ASK_PATH}`,
        undefined,
        body,
        'SYNOD_ERR_LATE_REPLY',
        'reply after timeout or for an unknown request',
      );
      return;
    }
    this.pending.delete(corr);
    p.cancel();
    if (body.ok) p.resolve(body.v);
    else p.reject(new DeliveryError(body.code, body.message));
  }

  // ---------------------------------------------------------------- receiving

  /** Routes an envelope that arrived from the transport. */
  receiveEnvelope(env: Envelope): void {
    if (this.stopped) return;
    switch (env.k) {
      case 'reply': {
        const body = env.m as ReplyBody;
        if (typeof body !== 'object' || body === null || typeof body.ok !== 'boolean') {
          this.refuseInbound(env, undefined, 'SYNOD_ERR_BAD_MESSAGE', 'malformed reply body');
          return;
        }
        this.settle(env.c as string, body);
        return;
      }
      case 'sys':
        this.receiveSys(env);
        return;
      default: {
        const cell = this.cells.get(env.to);
        const replyNode = env.k === 'ask' ? nodeOf(env.from ?? '') : undefined;
        if (cell === undefined) {
          this.refuseInbound(env, replyNode, 'SYNOD_ERR_NO_SUCH_ACTOR', `no actor at ${env.to}`);
          return;
        }
        if (!cell.actor.accepts(env.m)) {
          this.refuseInbound(
            env,
            replyNode,
            'SYNOD_ERR_BAD_MESSAGE',
            "message rejected by the actor's accepts()",
          );
          return;
        }
        this.counters.delivered++;
        cell.enqueue(env.m as Message, env.from, env.c, replyNode);
      }
    }
  }

  private receiveSys(env: Envelope): void {
    const m = env.m as SysMessage;
    if (
      typeof m !== 'object' ||
      m === null ||
      typeof m.target !== 'string' ||
      typeof m.watcher !== 'string'
    ) {
      this.refuseInbound(env, undefined, 'SYNOD_ERR_BAD_MESSAGE', 'malformed system message');
      return;
    }
    // A peer speaks only for its own actors: a watch or unwatch for a watcher, or a
    // terminated notice about a target, on another node than the one that sent it is forged
    // (a member could otherwise end another node's watch, e.g. the KV service's watch of a
    // stream subscriber, by claiming that subscriber stopped).
    const about = m.op === 'terminated' ? m.target : m.watcher;
    const origin = this.senderNode(env);
    if (origin === undefined || origin !== nodeOf(about)) {
      this.refuseInbound(
        env,
        undefined,
        'SYNOD_ERR_FORGED_NOTICE',
        `${String(m.op)} notice about ${about} came from ${origin === undefined ? 'an unidentified sender' : `node ${origin}`}, not from node ${nodeOf(about)}`,
      );
      return;
    }
    switch (m.op) {
      case 'watch': {
        const cell = this.cells.get(m.target);
        if (cell) cell.watchers.add(m.watcher);
        else this.notifyTerminated(m.watcher, m.target, 'not-found');
        return;
      }
      case 'unwatch':
        this.cells.get(m.target)?.watchers.delete(m.watcher);
        return;
      case 'terminated': {
        const watchers = this.remoteWatches.get(m.target);
        if (!watchers?.delete(m.watcher)) return;
        if (watchers.size === 0) this.remoteWatches.delete(m.target);
        this.deliverTerminated(m.watcher, m.target, m.reason);
        return;
      }
      default:
        this.refuseInbound(env, undefined, 'SYNOD_ERR_BAD_MESSAGE', 'unknown system operation');
    }
  }

  /**
   * The node an inbound envelope came from: the transport's authenticated peer while it is
   * emitting the envelope, else the node of its `from` (which the WebSocket transport has
   * checked against the connection's node).
   */
  private senderNode(env: Envelope): string | undefined {
    return (
      this.transport?.inboundPeer?.() ?? (env.from === undefined ? undefined : nodeOf(env.from))
    );
  }

  /**
   * An envelope from another node refused on receipt: a dead letter naming the peer, the
   * transport told (it counts per peer and logs, rate limited) or else a rate-limited warn
   * here, and an ask answered at once.
   */
  private refuseInbound(
    env: Envelope,
    replyNode: string | undefined,
    code: string,
    reason: string,
  ): void {
    const peer = this.senderNode(env);
    this.counters.refusedInbound++;
    const transport = this.transport;
    if (this.stopping && code === 'SYNOD_ERR_NO_SUCH_ACTOR') {
      // Shutting down: peers still send to the actors that just stopped. Expected, not a
      // misbehaving peer: a debug line, no warning.
      this.log.log('debug', `dropped a ${env.k} for ${env.to} while shutting down`, {
        peer,
        to: env.to,
      });
    } else if (transport?.inboundRefused !== undefined && transport.inboundPeer?.() !== undefined) {
      transport.inboundRefused(env, code, reason);
    } else {
      this.warnLimited(
        code,
        `dropped a ${env.k} from ${peer === undefined ? 'an unidentified sender' : `node ${peer}`} for ${env.to}: ${code}: ${reason}`,
        { peer, to: env.to, code },
      );
    }
    const text = peer === undefined ? reason : `${reason} (sent by node ${peer})`;
    this.deadLetter(env.to, env.from, env.m, code, text, env, peer);
    if (env.c !== undefined && replyNode !== undefined) {
      this.sendReply(replyNode, env.c, { ok: false, code, message: `${reason} (${env.to})` });
    }
  }

  /** A warn line, at most `WARN_BURST` per key in each `WARN_WINDOW_MS` (then counted). */
  private warnLimited(key: string, message: string, fields: Record<string, unknown>): void {
    const now = this.clock.now();
    let w = this.warnWindows.get(key);
    if (w === undefined || now - w.start >= WARN_WINDOW_MS) {
      if (w !== undefined && w.count > WARN_BURST) {
        this.log.log('warn', `suppressed ${w.count - WARN_BURST} similar log lines`, { key });
      }
      w = { start: now, count: 0 };
      this.warnWindows.set(key, w);
    }
    w.count++;
    if (w.count <= WARN_BURST) this.log.log('warn', message, fields);
  }

  // ---------------------------------------------------------------- watch

  /** @internal `watcher` (a local actor) watches `target` (local or remote). */
  watch(watcher: string, target: string): void {
    if (target.startsWith(this.prefix)) {
      const cell = this.cells.get(target);
      if (cell) cell.watchers.add(watcher);
      else this.notifyTerminated(watcher, target, 'not-found');
      return;
    }
    let set = this.remoteWatches.get(target);
    if (!set) {
      set = new Set();
      this.remoteWatches.set(target, set);
    }
    set.add(watcher);
    this.sendRemote({
      v: PROTOCOL_VERSION,
      k: 'sys',
      to: target,
      from: watcher,
      m: { op: 'watch', target, watcher },
    });
  }

  /** @internal */
  unwatch(watcher: string, target: string): void {
    if (target.startsWith(this.prefix)) {
      this.cells.get(target)?.watchers.delete(watcher);
      return;
    }
    this.remoteWatches.get(target)?.delete(watcher);
    this.sendRemote({
      v: PROTOCOL_VERSION,
      k: 'sys',
      to: target,
      from: watcher,
      m: { op: 'unwatch', target, watcher },
    });
  }

  /** @internal Tells `watcher` (local or remote) that `target` stopped. */
  notifyTerminated(watcher: string, target: string, reason: Terminated['reason']): void {
    if (watcher.startsWith(this.prefix)) {
      this.deliverTerminated(watcher, target, reason);
      return;
    }
    this.sendRemote({
      v: PROTOCOL_VERSION,
      k: 'sys',
      to: watcher,
      from: target,
      m: { op: 'terminated', target, watcher, reason },
    });
  }

  private deliverTerminated(watcher: string, target: string, reason: Terminated['reason']): void {
    const cell = this.cells.get(watcher);
    if (!cell) return;
    const msg: Terminated = { type: 'terminated', address: target, reason };
    cell.enqueue(msg, target, undefined, undefined, true);
  }

  private peerDown(peer: string): void {
    const prefix = `${peer}/`;
    for (const [target, watchers] of [...this.remoteWatches]) {
      if (!target.startsWith(prefix)) continue;
      this.remoteWatches.delete(target);
      for (const w of watchers) this.deliverTerminated(w, target, 'node-down');
    }
  }

  // ---------------------------------------------------------------- dispatcher

  /** @internal Puts a cell with pending messages on the ready queue. */
  makeReady(cell: AnyCell): void {
    if (cell.scheduled) return;
    cell.scheduled = true;
    this.ready.push(cell);
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      this.clock.schedule(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.drainScheduled = false;
    let budget = this.turnBudget;
    const throughput = this.throughput;
    while (budget > 0) {
      const cell = this.ready.shift();
      if (cell === undefined) return;
      cell.scheduled = false;
      budget -= cell.run(throughput) + 1;
    }
    if (this.ready.length > 0 && !this.drainScheduled) {
      this.drainScheduled = true;
      this.clock.schedule(this.drain);
    }
  };

  // ---------------------------------------------------------------- reporting

  /** @internal */
  unregister(cell: AnyCell): void {
    if (this.cells.get(cell.address) === cell) this.cells.delete(cell.address);
  }

  /** @internal A message was refused; an ask is failed at once rather than timing out. */
  rejected(
    to: string,
    from: string | undefined,
    msg: unknown,
    corr: string | undefined,
    replyNode: string | undefined,
    code: string,
    reason: string,
    envelope?: Envelope,
  ): void {
    this.deadLetter(to, from, msg, code, reason, envelope);
    if (corr !== undefined && replyNode !== undefined) {
      this.sendReply(replyNode, corr, { ok: false, code, message: `${reason} (${to})` });
    }
  }

  /** @internal */
  deadLetter(
    to: string,
    from: string | undefined,
    message: unknown,
    code: string,
    reason: string,
    _envelope?: Envelope,
    peer?: string,
  ): void {
    this.counters.deadLetters++;
    if (code !== 'SYNOD_ERR_LATE_REPLY') {
      this.log.log('debug', 'dead letter', { to, from, code, reason, ...(peer ? { peer } : {}) });
    }
    this.deadLetterSubject.next(
      peer === undefined
        ? { to, from, message, code, reason }
        : { to, from, message, code, reason, peer },
    );
  }

  /** @internal */
  failure(address: string, error: unknown, message: unknown, decision: string): void {
    this.log.log('warn', 'actor failed', {
      address,
      error: error instanceof Error ? error.message : String(error),
      decision,
    });
    this.failureSubject.next({ address, error, message, decision });
  }

  /** @internal */
  lifecycle(address: string, event: LifecycleReport['event']): void {
    this.lifecycleSubject.next({ address, event });
  }
}
