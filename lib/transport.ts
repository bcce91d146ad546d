/**
 * The contract every transport implements (transports/memory, transports/websocket).
 * A transport moves envelopes between actor systems on different nodes; it encodes them
 * with the codec, reports link status per peer, and never grows memory without bound:
 * what it cannot deliver goes to its dead-letter stream with a reason.
 */
import type { Observable } from 'rxjs';
import type { Envelope } from './envelope.js';

export type LinkState = 'up' | 'down' | 'reconnecting';

export interface LinkStatus {
  /** The peer node id. */
  readonly peer: string;
  readonly state: LinkState;
  /** The peer's incarnation id (changes when the peer process restarts), when known. */
  readonly incarnation?: string;
  readonly reason?: string;
}

export interface TransportDeadLetter {
  readonly envelope: Envelope;
  /** A stable code, e.g. `SYNOD_ERR_QUEUE_FULL`, `SYNOD_ERR_UNKNOWN_PEER`. */
  readonly code: string;
  readonly reason: string;
}

export interface TransportCounters {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  deadLettered: number;
}

export interface Transport {
  /** This node's id. */
  readonly nodeId: string;
  /**
   * Queues an envelope for the node named by `envelope.to`. Returns false when it was
   * rejected at once (unknown peer, queue full, transport closed); the envelope then also
   * appears on `deadLetters$`. True means accepted, not delivered.
   */
  send(envelope: Envelope): boolean;
  /** Envelopes arriving for this node, already decoded and validated. */
  readonly inbound$: Observable<Envelope>;
  /** Link status changes per peer. */
  readonly links$: Observable<LinkStatus>;
  /** Envelopes that could not be sent or delivered. */
  readonly deadLetters$: Observable<TransportDeadLetter>;
  /**
   * Optional. While `inbound$` is emitting an envelope (synchronously), the node that sent
   * it as the transport authenticated it; undefined outside an emission, for local
   * deliveries, or when the transport cannot tell. The actor system uses it to check that a
   * peer speaks only for itself (a `terminated` notice about an actor on a third node).
   */
  inboundPeer?(): string | undefined;
  /**
   * Optional. The receiver refused the envelope `inbound$` is emitting right now (no such
   * actor, a message the actor does not accept, a forged notice); the transport counts it
   * per peer and logs it naming the peer.
   */
  inboundRefused?(envelope: Envelope, code: string, reason: string): void;
  /** Peers this transport knows of. */
  peers(): string[];
  counters(): TransportCounters;
  close(): Promise<void>;
}
