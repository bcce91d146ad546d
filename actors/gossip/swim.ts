/**
 * SWIM membership and failure detection (Das, Gupta, Motivala, "SWIM: Scalable
 * Weakly-consistent Infection-style Process Group Membership Protocol"), as a pure core:
 * the shell feeds it received messages and the time, and sends what it returns.
 *
 * Every protocol period each member probes one other member, taken in a shuffled
 * round-robin order (so every member is probed within two periods of each round). No ack
 * within `pingTimeoutMs` → it asks `indirectChecks` (k) other members to ping the target
 * for it (ping-req). No ack, direct or relayed, by the end of the period → the target
 * becomes *suspect*; a suspect that does not refute within the suspicion timeout becomes
 * *dead*. A member refutes a suspicion about itself by raising its incarnation number.
 * Membership updates ride on pings and acks (piggybacking), each sent a bounded number of
 * times, so a member sends about one ping and one ack per period whatever the cluster
 * size. A joining member needs one seed: it sends `join`, the seed answers with the full
 * member list and spreads the newcomer by gossip.
 */
import type { Random } from '../../lib/random.js';

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

export interface MemberInfo {
  readonly id: string;
  readonly state: MemberState;
  readonly incarnation: number;
}

/** A membership update as gossiped: member id, state, incarnation. */
export interface SwimUpdate {
  readonly id: string;
  readonly s: MemberState;
  readonly i: number;
}

export type SwimMessage =
  | { readonly type: 'swim-ping'; readonly seq: number; readonly ups: readonly SwimUpdate[] }
  | { readonly type: 'swim-ack'; readonly seq: number; readonly ups: readonly SwimUpdate[] }
  | {
      readonly type: 'swim-ping-req';
      readonly seq: number;
      readonly target: string;
      readonly ups: readonly SwimUpdate[];
    }
  | { readonly type: 'swim-join'; readonly ups: readonly SwimUpdate[] }
  | {
      /** Push-pull: a full member list; answered with the receiver's own unless `reply`. */
      readonly type: 'swim-sync';
      readonly members: readonly SwimUpdate[];
      readonly ups: readonly SwimUpdate[];
      readonly reply?: boolean;
    };

export interface SwimOutput {
  /** Destination member id. */
  readonly to: string;
  readonly msg: SwimMessage;
}

export interface SwimEvent {
  readonly type: 'member-alive' | 'member-suspect' | 'member-dead' | 'member-left';
  readonly id: string;
  readonly incarnation: number;
  /** Time (ms, the shell's clock) at which this member learned it. */
  readonly at: number;
}

export interface SwimOptions {
  /** This member's id (the node id). */
  readonly self: string;
  /** Protocol period T. Default 1000 ms. */
  readonly periodMs?: number;
  /** Direct ping timeout before ping-req. Default 200 ms (must be < periodMs). */
  readonly pingTimeoutMs?: number;
  /** k: members asked to ping a target indirectly. Default 3. */
  readonly indirectChecks?: number;
  /** Suspicion timeout = suspicionMult × max(1, log10 n) × T. Default 5. */
  readonly suspicionMult?: number;
  /** Each update is piggybacked retransmitMult × ceil(log10(n + 1)) times. Default 4. */
  readonly retransmitMult?: number;
  /** Most updates carried by one message. Default 8. */
  readonly maxPiggyback?: number;
  /** Starting incarnation (a restarted member should start above its old one). Default 0. */
  readonly incarnation?: number;
  /** Seed member ids to join through (one suffices); none for the first member. */
  readonly seeds?: readonly string[];
  /**
   * Every this many periods, a full member-list exchange (push-pull) with one random live
   * member repairs whatever gossip missed. Default 10; 0 disables.
   */
  readonly pushPullEveryPeriods?: number;
  /**
   * Every this many periods, a push-pull with one random *dead* member: after a partition
   * heals, members that declared each other dead find each other again (the one wrongly
   * declared dead refutes with a higher incarnation). Default 2; 0 disables.
   */
  readonly reconnectEveryPeriods?: number;
}

interface Member {
  state: MemberState;
  incarnation: number;
  /** While suspect: when it will be declared dead. */
  suspectDeadline?: number;
}

interface Probe {
  target: string;
  seq: number;
  sentAt: number;
  indirectSent: boolean;
  acked: boolean;
}

interface Relay {
  requester: string;
  seq: number;
  expires: number;
}

function isGossipable(s: MemberState): boolean {
  return s === 'alive' || s === 'suspect';
}

export class SwimCore {
  readonly self: string;
  readonly periodMs: number;
  readonly pingTimeoutMs: number;
  readonly indirectChecks: number;
  readonly suspicionMult: number;
  readonly retransmitMult: number;
  readonly maxPiggyback: number;
  readonly pushPullEveryPeriods: number;
  readonly reconnectEveryPeriods: number;

  private incarnation: number;
  private periods = 0;
  private leaving = false;
  private readonly members = new Map<string, Member>();
  private readonly queue = new Map<string, { up: SwimUpdate; sent: number }>();
  private readonly relays = new Map<number, Relay>();
  private events: SwimEvent[] = [];
  private order: string[] = [];
  private orderPos = 0;
  private probe: Probe | undefined;
  private nextProbeAt = 0;
  private seq = 0;
  private joined: boolean;
  private nextJoinAt = 0;
  private readonly seeds: readonly string[];
  /** Messages sent, by type (for the constant-load check and the dashboard). */
  readonly sent: Record<SwimMessage['type'], number> = {
    'swim-ping': 0,
    'swim-ack': 0,
    'swim-ping-req': 0,
    'swim-join': 0,
    'swim-sync': 0,
  };

  constructor(
    options: SwimOptions,
    private readonly random: Random,
  ) {
    this.self = options.self;
    this.periodMs = options.periodMs ?? 1000;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 200;
    this.indirectChecks = options.indirectChecks ?? 3;
    this.suspicionMult = options.suspicionMult ?? 5;
    this.retransmitMult = options.retransmitMult ?? 4;
    this.maxPiggyback = options.maxPiggyback ?? 8;
    this.incarnation = options.incarnation ?? 0;
    this.pushPullEveryPeriods = options.pushPullEveryPeriods ?? 10;
    this.reconnectEveryPeriods = options.reconnectEveryPeriods ?? 2;
    if (!(this.pingTimeoutMs > 0 && this.pingTimeoutMs < this.periodMs)) {
      throw new RangeError('SWIM needs 0 < pingTimeoutMs < periodMs');
    }
    this.seeds = (options.seeds ?? []).filter((s) => s !== this.self);
    this.joined = this.seeds.length === 0;
    this.members.set(this.self, { state: 'alive', incarnation: this.incarnation });
  }

  // ------------------------------------------------------------------ queries

  memberList(): MemberInfo[] {
    return [...this.members]
      .map(([id, m]) => ({ id, state: m.state, incarnation: m.incarnation }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  stateOf(id: string): MemberState | undefined {
    return this.members.get(id)?.state;
  }

  /** Alive or suspect: worth sending requests to. */
  isUp(id: string): boolean {
    const s = this.members.get(id)?.state;
    return s === 'alive' || s === 'suspect';
  }

  get currentIncarnation(): number {
    return this.incarnation;
  }

  get hasJoined(): boolean {
    return this.joined;
  }

  /** Members not dead or left (including self): n in the timeout formulas. */
  liveCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (isGossipable(m.state)) n++;
    return n;
  }

  suspicionTimeoutMs(): number {
    return this.suspicionMult * Math.max(1, Math.log10(this.liveCount())) * this.periodMs;
  }

  retransmitLimit(): number {
    return this.retransmitMult * Math.max(1, Math.ceil(Math.log10(this.liveCount() + 1)));
  }

  /** Membership changes since the last call. */
  takeEvents(): SwimEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  /** The earliest time at which `tick` has something to do. */
  nextDeadline(): number {
    let d = this.nextProbeAt;
    if (this.probe && !this.probe.acked && !this.probe.indirectSent) {
      d = Math.min(d, this.probe.sentAt + this.pingTimeoutMs);
    }
    for (const m of this.members.values()) {
      if (m.state === 'suspect' && m.suspectDeadline !== undefined)
        d = Math.min(d, m.suspectDeadline);
    }
    if (!this.joined) d = Math.min(d, this.nextJoinAt);
    return d;
  }

  // ------------------------------------------------------------------ driving

  /** Starts the protocol: a joining member contacts its seeds. */
  start(now: number): SwimOutput[] {
    this.nextProbeAt = now + this.random.int(this.periodMs); // spread probes of members
    this.enqueue({ id: this.self, s: 'alive', i: this.incarnation });
    return this.joined ? [] : this.sendJoin(now);
  }

  private sendJoin(now: number): SwimOutput[] {
    this.nextJoinAt = now + this.periodMs;
    const seed = this.random.pick(this.seeds);
    return [
      this.out(seed, {
        type: 'swim-join',
        ups: [{ id: this.self, s: 'alive', i: this.incarnation }],
      }),
    ];
  }

  tick(now: number): SwimOutput[] {
    const out: SwimOutput[] = [];
    if (this.leaving) return out;
    if (!this.joined && now >= this.nextJoinAt) out.push(...this.sendJoin(now));
    // suspicion timeouts
    for (const [id, m] of this.members) {
      if (m.state === 'suspect' && m.suspectDeadline !== undefined && now >= m.suspectDeadline) {
        this.apply({ id, s: 'dead', i: m.incarnation }, now);
      }
    }
    for (const [seq, r] of this.relays) if (now >= r.expires) this.relays.delete(seq);
    const p = this.probe;
    if (p && !p.acked && !p.indirectSent && now >= p.sentAt + this.pingTimeoutMs) {
      p.indirectSent = true;
      const helpers = this.randomMembers(this.indirectChecks, [p.target]);
      for (const h of helpers) {
        out.push(
          this.out(h, {
            type: 'swim-ping-req',
            seq: p.seq,
            target: p.target,
            ups: this.piggyback(),
          }),
        );
      }
    }
    if (now >= this.nextProbeAt) {
      if (p && !p.acked) {
        const m = this.members.get(p.target);
        if (m && m.state === 'alive')
          this.apply({ id: p.target, s: 'suspect', i: m.incarnation }, now);
      }
      this.probe = undefined;
      this.nextProbeAt = Math.max(this.nextProbeAt + this.periodMs, now);
      this.periods++;
      out.push(...this.periodicSync());
      const target = this.nextTarget();
      if (target !== undefined) {
        const seq = ++this.seq;
        this.probe = { target, seq, sentAt: now, indirectSent: false, acked: false };
        out.push(this.out(target, { type: 'swim-ping', seq, ups: this.piggyback() }));
      }
    }
    return out;
  }

  receive(from: string, msg: SwimMessage, now: number): SwimOutput[] {
    const out: SwimOutput[] = [];
    if (this.leaving) return out;
    for (const up of msg.ups) this.apply(up, now);
    switch (msg.type) {
      case 'swim-ping':
        out.push(this.out(from, { type: 'swim-ack', seq: msg.seq, ups: this.piggyback() }));
        break;
      case 'swim-ack': {
        const relay = this.relays.get(msg.seq);
        if (relay) {
          this.relays.delete(msg.seq);
          out.push(
            this.out(relay.requester, { type: 'swim-ack', seq: relay.seq, ups: this.piggyback() }),
          );
        } else if (this.probe && this.probe.seq === msg.seq) {
          this.probe.acked = true;
        }
        break;
      }
      case 'swim-ping-req': {
        const seq = ++this.seq;
        this.relays.set(seq, { requester: from, seq: msg.seq, expires: now + this.periodMs });
        out.push(this.out(msg.target, { type: 'swim-ping', seq, ups: this.piggyback() }));
        break;
      }
      case 'swim-join':
        out.push(this.out(from, this.syncMessage(true)));
        break;
      case 'swim-sync':
        this.joined = true;
        for (const up of msg.members) this.apply(up, now);
        // answered after applying, so a refutation of our own death goes back at once
        if (!msg.reply) out.push(this.out(from, this.syncMessage(true)));
        break;
    }
    return out;
  }

  private syncMessage(reply: boolean): SwimMessage {
    const members = this.memberList().map((m) => ({ id: m.id, s: m.state, i: m.incarnation }));
    return { type: 'swim-sync', members, ups: this.piggyback(), reply };
  }

  private periodicSync(): SwimOutput[] {
    const out: SwimOutput[] = [];
    if (this.pushPullEveryPeriods > 0 && this.periods % this.pushPullEveryPeriods === 0) {
      const peer = this.randomMembers(1, [])[0];
      if (peer !== undefined) out.push(this.out(peer, this.syncMessage(false)));
    }
    if (this.reconnectEveryPeriods > 0 && this.periods % this.reconnectEveryPeriods === 0) {
      const dead = [...this.members].filter(([, m]) => m.state === 'dead').map(([id]) => id);
      if (dead.length > 0) out.push(this.out(this.random.pick(dead), this.syncMessage(false)));
      // a seed we have never heard of may head another group (two nodes that joined
      // through each other before either reached the cluster): merge the views
      const unknown = this.seeds.filter((s) => !this.members.has(s));
      if (unknown.length > 0)
        out.push(this.out(this.random.pick(unknown), this.syncMessage(false)));
    }
    return out;
  }

  /** Leaves gracefully: tells `fanout` members directly, then goes quiet. */
  leave(now: number, fanout = 3): SwimOutput[] {
    this.incarnation++;
    const up: SwimUpdate = { id: this.self, s: 'left', i: this.incarnation };
    this.apply(up, now);
    const targets = this.randomMembers(fanout, []);
    this.leaving = true;
    return targets.map((to) => this.out(to, { type: 'swim-ping', seq: ++this.seq, ups: [up] }));
  }

  /** Forgets a dead or left member (an operator removing it from the ring). */
  forget(id: string): void {
    const m = this.members.get(id);
    if (m && !isGossipable(m.state)) {
      this.members.delete(id);
      this.queue.delete(id);
    }
  }

  // ------------------------------------------------------------------ internals

  private out(to: string, msg: SwimMessage): SwimOutput {
    this.sent[msg.type]++;
    return { to, msg };
  }

  private nextTarget(): string | undefined {
    // every other period, probe a suspect directly: the ping tells it it is suspected and
    // its ack carries the refutation straight back (Lifeguard-like help for slow members)
    if (this.periods % 2 === 1) {
      const suspects = [...this.members].filter(([, m]) => m.state === 'suspect').map(([id]) => id);
      if (suspects.length > 0) return this.random.pick(suspects);
    }
    if (this.orderPos >= this.order.length) {
      this.order = this.random.shuffle(
        [...this.members]
          .filter(([id, m]) => id !== this.self && isGossipable(m.state))
          .map(([id]) => id),
      );
      this.orderPos = 0;
    }
    while (this.orderPos < this.order.length) {
      const id = this.order[this.orderPos++] as string;
      if (this.isUp(id)) return id;
    }
    return undefined;
  }

  private randomMembers(k: number, exclude: readonly string[]): string[] {
    const pool = [...this.members]
      .filter(([id, m]) => id !== this.self && m.state === 'alive' && !exclude.includes(id))
      .map(([id]) => id);
    return this.random.shuffle(pool).slice(0, k);
  }

  private enqueue(up: SwimUpdate): void {
    this.queue.set(up.id, { up, sent: 0 });
  }

  /**
   * The updates to carry on an outgoing message: always this member's own status (so
   * whoever hears from it learns of it, even if gossip about it died out), then the queued
   * updates sent least often so far.
   */
  private piggyback(): SwimUpdate[] {
    const own: SwimUpdate = { id: this.self, s: 'alive', i: this.incarnation };
    this.queue.delete(this.self);
    if (this.queue.size === 0) return [own];
    const limit = this.retransmitLimit();
    const entries = [...this.queue.values()]
      .sort((a, b) => a.sent - b.sent)
      .slice(0, Math.max(0, this.maxPiggyback - 1));
    for (const e of entries) {
      e.sent++;
      if (e.sent >= limit) this.queue.delete(e.up.id);
    }
    return [own, ...entries.map((e) => e.up)];
  }

  private emit(type: SwimEvent['type'], id: string, incarnation: number, at: number): void {
    this.events.push({ type, id, incarnation, at });
  }

  /** Applies a gossiped update with SWIM's precedence rules; returns true if it changed state. */
  apply(up: SwimUpdate, now: number): boolean {
    if (up.id === this.self) {
      if (this.leaving) return false;
      if (up.s !== 'alive' && up.i >= this.incarnation) {
        // refute: a suspicion (or a stale death notice) about us
        this.incarnation = up.i + 1;
        const m = this.members.get(this.self) as Member;
        m.incarnation = this.incarnation;
        this.enqueue({ id: this.self, s: 'alive', i: this.incarnation });
        return true;
      }
      return false;
    }
    const cur = this.members.get(up.id);
    let accept: boolean;
    if (!cur) accept = true;
    else if (up.s === 'alive') accept = up.i > cur.incarnation;
    else if (up.s === 'suspect')
      accept = cur.state === 'alive' ? up.i >= cur.incarnation : up.i > cur.incarnation;
    else if (up.s === 'dead')
      accept = isGossipable(cur.state) ? up.i >= cur.incarnation : up.i > cur.incarnation;
    else accept = cur.state === 'left' ? up.i > cur.incarnation : up.i >= cur.incarnation;
    if (!accept) return false;
    const m: Member = cur ?? { state: up.s, incarnation: up.i };
    const changedState = !cur || cur.state !== up.s;
    m.state = up.s;
    m.incarnation = up.i;
    if (up.s === 'suspect') {
      if (m.suspectDeadline === undefined || changedState)
        m.suspectDeadline = now + this.suspicionTimeoutMs();
    } else {
      m.suspectDeadline = undefined;
    }
    this.members.set(up.id, m);
    this.enqueue(up);
    if (changedState) this.emit(`member-${up.s}`, up.id, up.i, now);
    if (up.s === 'dead' || up.s === 'left') {
      if (this.probe?.target === up.id) this.probe = undefined;
    }
    return true;
  }
}
