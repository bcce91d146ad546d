/**
 * One node's end of a MemoryNetwork. Implements the same `Transport` interface as the
 * WebSocket transport, so actors cannot tell the difference.
 */
import { type Observable, Subject } from 'rxjs';
import type { Clock } from '../../lib/clock.js';
import type { Envelope } from '../../lib/envelope.js';
import type {
  LinkStatus,
  Transport,
  TransportCounters,
  TransportDeadLetter,
} from '../../lib/transport.js';
import type { MemoryNetwork } from './memory-network.js';

export class MemoryTransport implements Transport {
  private readonly inbound = new Subject<Envelope>();
  private readonly links = new Subject<LinkStatus>();
  private readonly dead = new Subject<TransportDeadLetter>();
  private closed = false;
  private emittingFrom: string | undefined;
  private readonly stats: TransportCounters = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    deadLettered: 0,
  };
  private readonly known = new Map<string, LinkStatus>();

  readonly inbound$: Observable<Envelope> = this.inbound.asObservable();
  readonly links$: Observable<LinkStatus> = this.links.asObservable();
  readonly deadLetters$: Observable<TransportDeadLetter> = this.dead.asObservable();

  constructor(
    readonly nodeId: string,
    private readonly network: MemoryNetwork,
    readonly clock: Clock,
  ) {}

  send(envelope: Envelope): boolean {
    if (this.closed) {
      this.reject(envelope, 'SYNOD_ERR_TRANSPORT_CLOSED', 'transport is closed');
      return false;
    }
    const from = envelope.from;
    if (
      from !== undefined &&
      from !== this.nodeId &&
      !(from.charCodeAt(this.nodeId.length) === 0x2f && from.startsWith(this.nodeId))
    ) {
      // As the WebSocket transport does (a node can only send as itself), so code that
      // works here works across machines.
      this.reject(
        envelope,
        'SYNOD_ERR_FORGED_SENDER',
        `envelope claims sender "${from}", which is not on this node (${this.nodeId}); a node can only send as itself`,
      );
      return false;
    }
    const r = this.network.transmit(this.nodeId, envelope);
    if (!r.ok) {
      this.reject(envelope, r.code, r.reason);
      return false;
    }
    this.stats.sent++;
    return true;
  }

  peers(): string[] {
    return this.network.nodes().filter((n) => n !== this.nodeId);
  }

  /** The last known status of every peer link. */
  linkStatuses(): LinkStatus[] {
    return [...this.known.values()];
  }

  /**
   * This node's share of the network's counters: `sent` by it, `delivered` to it,
   * `duplicated` (its messages the network delivered twice), `dropped` (its messages lost on
   * the way: drop faults, the filter, partitions and cuts, a receiver that was down or
   * crashed while they were in flight; plus bytes that arrived here and did not decode), and
   * `deadLettered` (sends rejected at once). Summed over every transport the network made
   * (a crashed node's old one too), `sent` (but for `injectBytes`), `delivered`, `dropped`
   * and `duplicated` equal `MemoryNetwork.counters`.
   */
  counters(): TransportCounters {
    return { ...this.stats };
  }

  /** @internal The network counts a message of this node's as dropped or duplicated. */
  count(what: 'dropped' | 'duplicated'): void {
    this.stats[what]++;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.network.disconnect(this.nodeId);
  }

  /** @internal */
  markClosed(): void {
    this.closed = true;
    this.inbound.complete();
    this.links.complete();
    this.dead.complete();
  }

  /** The node whose envelope `inbound$` is emitting right now (see `Transport`). */
  inboundPeer(): string | undefined {
    return this.emittingFrom;
  }

  /** @internal `from`: the sending node, as the network knows it. */
  receive(envelope: Envelope, from: string): void {
    if (this.closed) return;
    this.stats.delivered++;
    const outer = this.emittingFrom;
    this.emittingFrom = from;
    try {
      this.inbound.next(envelope);
    } finally {
      this.emittingFrom = outer;
    }
  }

  /** @internal */
  undecodable(from: string, err: Error): void {
    this.stats.dropped++;
    this.dead.next({
      envelope: { v: 0, k: 'tell', to: `${this.nodeId}/?`, from: `${from}/?`, m: null },
      code: 'SYNOD_ERR_UNDECODABLE',
      reason: err.message,
    });
  }

  /** @internal */
  linkChanged(status: LinkStatus): void {
    if (this.closed) return;
    this.known.set(status.peer, status);
    this.links.next(status);
  }

  private reject(envelope: Envelope, code: string, reason: string): void {
    this.stats.deadLettered++;
    this.network.counters.deadLettered++;
    if (!this.closed) this.dead.next({ envelope, code, reason });
  }
}
