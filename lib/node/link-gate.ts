/**
 * A transport decorator that cuts this node's links to chosen peers, for the dashboard's
 * "isolate" and "heal" on a real cluster: the partition is made where the traffic leaves and
 * arrives, so Raft, Paxos and KV traffic between the cut nodes is dropped exactly as a
 * network partition would drop it. Traffic of the `admin` actors (and ask replies) still
 * passes, so the dashboard can see an isolated node and heal it.
 */
import { filter, type Observable } from 'rxjs';
import type { Envelope } from '../envelope.js';
import type {
  LinkStatus,
  Transport,
  TransportCounters,
  TransportDeadLetter,
} from '../transport.js';
import type { Refusal } from './paxos-admission.js';

function nodeOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
}

function actorOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const slash = address.indexOf('/');
  return slash < 0 ? undefined : address.slice(slash + 1);
}

/** Admin traffic and replies are never cut: they are how an operator sees and heals. */
function isControlTraffic(e: Envelope): boolean {
  return e.k === 'reply' || actorOf(e.to) === 'admin' || actorOf(e.from) === 'admin';
}

export class LinkGate implements Transport {
  private readonly blocked = new Set<string>();
  private droppedByGate = 0;
  readonly inbound$: Observable<Envelope>;
  /** Sees every envelope the gate lets out (the dashboard's message samples). */
  onSend: ((envelope: Envelope) => void) | undefined;
  /**
   * Optional admission check of inbound envelopes, given the node the transport
   * authenticated as their sender (lib/node/paxos-admission.ts: Multi-Paxos actors hear
   * members only). A refusal drops the envelope; the transport counts and logs it per peer.
   */
  admit: ((e: Envelope, sender: string | undefined) => Refusal | undefined) | undefined;

  constructor(private readonly inner: Transport) {
    this.inbound$ = inner.inbound$.pipe(
      filter((e) => {
        if (this.admit) {
          const no = this.admit(e, this.inner.inboundPeer?.() ?? nodeOf(e.from));
          if (no) {
            this.droppedByGate++;
            this.inner.inboundRefused?.(e, no.code, no.reason);
            return false;
          }
        }
        if (this.blocked.size === 0) return true; // no cut link: nothing to look at
        const from = nodeOf(e.from);
        if (from === undefined || !this.blocked.has(from) || isControlTraffic(e)) return true;
        this.droppedByGate++;
        return false;
      }),
    );
  }

  get nodeId(): string {
    return this.inner.nodeId;
  }
  get links$(): Observable<LinkStatus> {
    return this.inner.links$;
  }
  get deadLetters$(): Observable<TransportDeadLetter> {
    return this.inner.deadLetters$;
  }

  /** Cuts the links to `peers` (both directions, as far as this node is concerned). */
  block(peers: Iterable<string>): void {
    for (const p of peers) if (p !== this.nodeId) this.blocked.add(p);
  }

  /** Restores every cut link. */
  heal(): void {
    this.blocked.clear();
  }

  /** The peers whose links are cut now. */
  cut(): string[] {
    return [...this.blocked].sort();
  }

  send(envelope: Envelope): boolean {
    if (this.blocked.size !== 0) {
      const to = nodeOf(envelope.to);
      if (to !== undefined && this.blocked.has(to) && !isControlTraffic(envelope)) {
        this.droppedByGate++;
        return true; // a partition loses messages silently, as a network would
      }
    }
    this.onSend?.(envelope);
    return this.inner.send(envelope);
  }

  peers(): string[] {
    return this.inner.peers();
  }

  inboundPeer(): string | undefined {
    return this.inner.inboundPeer?.();
  }

  inboundRefused(envelope: Envelope, code: string, reason: string): void {
    this.inner.inboundRefused?.(envelope, code, reason);
  }

  counters(): TransportCounters {
    const c = this.inner.counters();
    return { ...c, dropped: c.dropped + this.droppedByGate };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
