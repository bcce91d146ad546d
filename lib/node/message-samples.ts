/**
 * Samples the messages a node process sends to other nodes, for the dashboard's message
 * flow on a real cluster. Each node samples what it sends (so the union over the nodes is
 * every link's traffic); the dashboard asks each node for the samples it has not seen yet
 * with its status poll (`node.status` with `since`).
 *
 * Bounded in rate and memory: at most `perSecond` samples a second (a budget per 100 ms
 * window), the newest `keep` kept. Sampling is off until someone asks for samples and turns
 * itself off again when nobody has asked for `idleMs`, so a cluster without a dashboard
 * pays one comparison per envelope. Admin traffic (the dashboard's own polling) and ask
 * replies are not sampled.
 */
import type { Clock } from '../clock.js';
import type { Envelope } from '../envelope.js';

export interface SampledMessage {
  /** Increasing per node process (the dashboard asks for those after the last it saw). */
  seq: number;
  from: string;
  to: string;
  /** The message type (a Raft batch: its first message's type). */
  type: string;
}

export interface MessageSamplerOptions {
  perSecond?: number;
  keep?: number;
  idleMs?: number;
}

const nodeOf = (address: string) => {
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
};
const actorOf = (address: string) => {
  const slash = address.indexOf('/');
  return slash < 0 ? '' : address.slice(slash + 1);
};

/** The type shown for an envelope's message. */
export function messageType(e: Envelope): string {
  const m = e.m as { type?: unknown; ms?: { type?: unknown }[] } | null | undefined;
  const t =
    m?.type === 'raft' && Array.isArray(m.ms) && m.ms.length > 0 ? m.ms[0]?.type : (m?.type ?? e.k);
  return String(t).slice(0, 48);
}

export class MessageSampler {
  private readonly samples: SampledMessage[] = [];
  private seq = 0;
  private window = Number.NEGATIVE_INFINITY;
  private budget = 0;
  private activeUntil = Number.NEGATIVE_INFINITY;
  private readonly perWindow: number;
  private readonly keep: number;
  private readonly idleMs: number;
  /** Envelopes seen while active, and samples taken (for tests and monitoring). */
  readonly stats = { offered: 0, sampled: 0 };

  constructor(
    private readonly clock: Clock,
    /** This node's id (the sender of everything it sends). */
    private readonly self: string,
    options: MessageSamplerOptions = {},
  ) {
    this.perWindow = Math.max(1, Math.round((options.perSecond ?? 20) / 10));
    this.keep = options.keep ?? 64;
    this.idleMs = options.idleMs ?? 10_000;
  }

  /** Called for every envelope the node sends (LinkGate.send). */
  offer(e: Envelope): void {
    if (this.activeUntil === Number.NEGATIVE_INFINITY) return;
    const now = this.clock.now();
    if (now > this.activeUntil) {
      this.activeUntil = Number.NEGATIVE_INFINITY;
      this.samples.length = 0;
      return;
    }
    this.stats.offered++;
    if (now - this.window >= 100) {
      this.window = now;
      this.budget = this.perWindow;
    }
    if (this.budget <= 0) return;
    if (e.k === 'reply' || actorOf(e.to) === 'admin' || actorOf(e.from ?? '') === 'admin') return;
    this.budget--;
    this.stats.sampled++;
    this.samples.push({
      seq: ++this.seq,
      from: this.self,
      to: nodeOf(e.to),
      type: messageType(e),
    });
    if (this.samples.length > this.keep) this.samples.splice(0, this.samples.length - this.keep);
  }

  /** The samples after `seq` (oldest first); asking turns sampling on for `idleMs`. */
  since(seq: number): SampledMessage[] {
    this.activeUntil = this.clock.now() + this.idleMs;
    // A sampler restarted (seq went back) answers everything it holds.
    const from = seq > this.seq ? 0 : seq;
    return this.samples.filter((s) => s.seq > from);
  }

  /** How many samples are held now (≤ `keep`). */
  size(): number {
    return this.samples.length;
  }
}
