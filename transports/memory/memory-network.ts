/**
 * A simulated network between in-process actor systems. Every envelope is encoded with the
 * codec on send and decoded on delivery, exactly as on a wire. Faults: drop, delay,
 * duplication, reordering, partitions into groups, one-way cuts, per-message filters, and
 * paused or dead nodes. With a VirtualClock and a seeded Random the network is
 * deterministic.
 */
import { Subject } from 'rxjs';
import type { Clock } from '../../lib/clock.js';
import { assertWireSafe, CodecError, decodeEnvelope, encodeEnvelope } from '../../lib/codec.js';
import type { Envelope } from '../../lib/envelope.js';
import type { Random } from '../../lib/random.js';
import type { LinkStatus, TransportCounters } from '../../lib/transport.js';
import { type LinkFaults, type MessageFilter, validateFaults } from './faults.js';
import { MemoryTransport } from './memory-transport.js';

export interface MemoryNetworkOptions {
  clock: Clock;
  random: Random;
  faults?: LinkFaults;
  /** Called for every delivered envelope (the simulation hashes these into its trace). */
  onDeliver?: (from: string, to: string, bytes: Uint8Array) => void;
}

interface Endpoint {
  transport: MemoryTransport;
  up: boolean;
  paused: boolean;
  held: { from: string; bytes: Uint8Array }[];
}

export class MemoryNetwork {
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly endpoints = new Map<string, Endpoint>();
  private globalFaults: LinkFaults = {};
  private readonly linkFaults = new Map<string, LinkFaults>();
  private groups: Map<string, number> | undefined;
  private readonly cuts = new Set<string>();
  private filter: MessageFilter | undefined;
  private readonly lastDelivery = new Map<string, number>();
  private readonly onDeliver: MemoryNetworkOptions['onDeliver'];
  readonly counters: TransportCounters = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    deadLettered: 0,
  };
  /** Link status changes as every node sees them. */
  readonly links$ = new Subject<LinkStatus & { observer: string }>();

  constructor(options: MemoryNetworkOptions) {
    this.clock = options.clock;
    this.random = options.random;
    this.onDeliver = options.onDeliver;
    if (options.faults) this.setFaults(options.faults);
  }

  /** Creates (or re-creates after a crash) the transport of a node. */
  connect(nodeId: string, clock: Clock = this.clock): MemoryTransport {
    const old = this.endpoints.get(nodeId);
    if (old?.up) throw new Error(`node "${nodeId}" is already connected to the network`);
    const transport = new MemoryTransport(nodeId, this, clock);
    this.endpoints.set(nodeId, { transport, up: true, paused: false, held: [] });
    this.refreshLinks();
    return transport;
  }

  /** The node is gone (crash or shutdown): messages to it are lost. */
  disconnect(nodeId: string): void {
    const e = this.endpoints.get(nodeId);
    if (!e?.up) return;
    e.up = false;
    // messages held for a paused node die with it
    for (const h of e.held) this.lost(h.from);
    e.held = [];
    e.transport.markClosed();
    this.refreshLinks();
  }

  /** Holds deliveries to the node until `resume` (a paused process). */
  pause(nodeId: string): void {
    const e = this.endpoints.get(nodeId);
    if (e) e.paused = true;
  }

  resume(nodeId: string): void {
    const e = this.endpoints.get(nodeId);
    if (!e?.paused) return;
    e.paused = false;
    const held = e.held;
    e.held = [];
    for (const h of held) this.deliver(h.from, nodeId, h.bytes);
  }

  nodes(): string[] {
    return [...this.endpoints.keys()];
  }

  // ------------------------------------------------------------------ faults

  setFaults(faults: LinkFaults): void {
    validateFaults(faults);
    this.globalFaults = { ...faults };
  }

  setLinkFaults(from: string, to: string, faults: LinkFaults | undefined): void {
    if (faults === undefined) {
      this.linkFaults.delete(`${from}>${to}`);
      return;
    }
    validateFaults(faults);
    this.linkFaults.set(`${from}>${to}`, { ...faults });
  }

  clearFaults(): void {
    this.globalFaults = {};
    this.linkFaults.clear();
  }

  /**
   * Splits the network into groups; nodes in different groups cannot talk. Nodes not
   * named in any group are isolated from everyone.
   */
  partition(groups: readonly (readonly string[])[]): void {
    const map = new Map<string, number>();
    groups.forEach((g, i) => {
      for (const n of g) {
        if (map.has(n)) throw new Error(`node "${n}" appears in two partition groups`);
        map.set(n, i);
      }
    });
    this.groups = map;
    this.refreshLinks();
  }

  /** Cuts only the `from → to` direction. */
  cut(from: string, to: string): void {
    this.cuts.add(`${from}>${to}`);
    this.refreshLinks();
  }

  /** Cuts both directions between `node` and every other node. */
  isolate(node: string): void {
    for (const other of this.endpoints.keys()) {
      if (other === node) continue;
      this.cuts.add(`${node}>${other}`);
      this.cuts.add(`${other}>${node}`);
    }
    this.refreshLinks();
  }

  /** Removes partitions and cuts (faults stay). */
  heal(): void {
    this.groups = undefined;
    this.cuts.clear();
    this.refreshLinks();
  }

  setFilter(filter: MessageFilter | undefined): void {
    this.filter = filter;
  }

  /** True when `from` can currently send to `to`. */
  connected(from: string, to: string): boolean {
    if (from === to) return true;
    if (this.cuts.has(`${from}>${to}`)) return false;
    if (this.groups) {
      const a = this.groups.get(from);
      const b = this.groups.get(to);
      if (a === undefined || b === undefined || a !== b) return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ delivery

  /** @internal Called by MemoryTransport.send. */
  transmit(
    from: string,
    envelope: Envelope,
  ): { ok: true } | { ok: false; code: string; reason: string } {
    const toNode = nodeOfAddress(envelope.to);
    const dest = this.endpoints.get(toNode);
    if (!dest)
      return { ok: false, code: 'SYNOD_ERR_UNKNOWN_PEER', reason: `unknown node "${toNode}"` };
    let bytes: Uint8Array;
    try {
      assertWireSafe(envelope.m);
      bytes = encodeEnvelope(envelope);
    } catch (err) {
      const reason = err instanceof CodecError ? err.message : String(err);
      return { ok: false, code: 'SYNOD_ERR_ENCODE', reason };
    }
    this.counters.sent++;
    if (!dest.up || !this.connected(from, toNode)) {
      this.lost(from);
      return { ok: true };
    }
    let extraDelay = 0;
    if (this.filter) {
      const verdict = this.filter({ from, to: toNode, message: envelope.m, kind: envelope.k });
      if (verdict === 'drop') {
        this.lost(from);
        return { ok: true };
      }
      if (typeof verdict === 'object') extraDelay = Math.max(0, verdict.delayMs);
    }
    const f = this.faultsFor(from, toNode);
    if (f.drop && this.random.chance(f.drop)) {
      this.lost(from);
      return { ok: true };
    }
    const copies = f.duplicate && this.random.chance(f.duplicate) ? 2 : 1;
    if (copies === 2) {
      this.counters.duplicated++;
      this.endpoints.get(from)?.transport.count('duplicated');
    }
    for (let i = 0; i < copies; i++) {
      let delay = extraDelay + this.sampleDelay(f);
      const key = `${from}>${toNode}`;
      const reorder = f.reorder !== undefined && this.random.chance(f.reorder);
      if (reorder) delay += this.random.next() * (f.reorderWindowMs ?? 50);
      else {
        // FIFO per link unless reordering is on: never overtake an earlier message.
        const at = Math.max(this.clock.now() + delay, this.lastDelivery.get(key) ?? 0);
        this.lastDelivery.set(key, at);
        delay = at - this.clock.now();
      }
      if (delay <= 0) this.clock.schedule(() => this.deliver(from, toNode, bytes));
      else this.clock.setTimer(delay, () => this.deliver(from, toNode, bytes));
    }
    return { ok: true };
  }

  /**
   * Puts raw bytes on the link `from → to` as if `from` had sent them: a corrupt frame, a
   * newer protocol version, another implementation's bug. The receiving node decodes them
   * like any message (an undecodable one is a `SYNOD_ERR_UNDECODABLE` dead letter there).
   * Counted as sent; partitions and cuts apply, link faults do not.
   */
  injectBytes(from: string, to: string, bytes: Uint8Array): void {
    if (!this.endpoints.has(to)) throw new Error(`unknown node "${to}"`);
    if (!(bytes instanceof Uint8Array)) throw new TypeError('injectBytes needs a Uint8Array');
    this.counters.sent++;
    const copy = bytes.slice();
    this.clock.schedule(() => this.deliver(from, to, copy));
  }

  private deliver(from: string, to: string, bytes: Uint8Array): void {
    const dest = this.endpoints.get(to);
    if (!dest?.up || !this.connected(from, to)) {
      this.lost(from);
      return;
    }
    if (dest.paused) {
      dest.held.push({ from, bytes });
      return;
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(bytes);
    } catch (err) {
      this.counters.dropped++;
      dest.transport.undecodable(from, err as Error);
      return;
    }
    this.counters.delivered++;
    this.onDeliver?.(from, to, bytes);
    dest.transport.receive(env, from);
  }

  /** A message `from` sent is lost on the way: counted here and on the sender's transport. */
  private lost(from: string): void {
    this.counters.dropped++;
    this.endpoints.get(from)?.transport.count('dropped');
  }

  private faultsFor(from: string, to: string): LinkFaults {
    const link = this.linkFaults.get(`${from}>${to}`);
    return link ? { ...this.globalFaults, ...link } : this.globalFaults;
  }

  private sampleDelay(f: LinkFaults): number {
    const d = f.delay;
    if (!d) return 0;
    if (d.distribution === 'exponential') {
      const mean = (d.max - d.min) / 4;
      const x = -Math.log(1 - this.random.next()) * mean;
      return Math.min(d.max, d.min + x);
    }
    return d.min + this.random.next() * (d.max - d.min);
  }

  private readonly linkState = new Map<string, boolean>();

  private refreshLinks(): void {
    for (const [a, ea] of this.endpoints) {
      if (!ea.up) continue;
      for (const [b, eb] of this.endpoints) {
        if (a === b) continue;
        const up = eb.up && this.connected(a, b) && this.connected(b, a);
        const key = `${a}>${b}`;
        if (this.linkState.get(key) === up) continue;
        this.linkState.set(key, up);
        const status: LinkStatus = { peer: b, state: up ? 'up' : 'down' };
        ea.transport.linkChanged(status);
        this.links$.next({ ...status, observer: a });
      }
    }
  }
}

function nodeOfAddress(address: string): string {
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
}
