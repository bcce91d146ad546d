/**
 * Client sessions: a command (clientId, seq) is applied at most once. Each client keeps a
 * window of its most recent `window` sequence numbers and their results, so retries of a
 * command that was applied get the original result and a command that arrives after a later
 * one from the same client (pipelined clients, retries across leader changes) is still
 * applied once. A seq that fell below the window is treated as already applied (at most
 * once wins over at least once); its result is no longer known.
 *
 * Deterministic and part of the replica snapshot: every replica decides alike.
 */
export type SessionCheck =
  | { readonly duplicate: false }
  | { readonly duplicate: true; readonly known: boolean; readonly result?: unknown };

interface Session {
  maxSeq: number;
  results: Map<number, unknown>;
}

export interface SessionsImage {
  readonly window: number;
  readonly clients: readonly (readonly [string, number, readonly (readonly [number, unknown])[]])[];
}

export class ClientSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(readonly window = 256) {}

  check(clientId: string, seq: number): SessionCheck {
    const s = this.sessions.get(clientId);
    if (!s) return { duplicate: false };
    // Below the window first: results there may linger until the next prune (see record).
    if (seq <= s.maxSeq - this.window) return { duplicate: true, known: false };
    if (s.results.has(seq)) return { duplicate: true, known: true, result: s.results.get(seq) };
    return { duplicate: false };
  }

  record(clientId: string, seq: number, result: unknown): void {
    let s = this.sessions.get(clientId);
    if (!s) {
      s = { maxSeq: seq, results: new Map() };
      this.sessions.set(clientId, s);
    }
    s.results.set(seq, result);
    if (seq > s.maxSeq) s.maxSeq = seq;
    // Prune results below the window once they make up half the map: one pass per `window`
    // commands (amortised O(1)) instead of one pass per command. `check` never looks at
    // results below the window, and images leave them out, so pruning late changes nothing
    // anyone can observe.
    if (s.results.size > 2 * this.window) {
      const low = s.maxSeq - this.window;
      for (const k of s.results.keys()) if (k <= low) s.results.delete(k);
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  toImage(): SessionsImage {
    const clients = [...this.sessions.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([id, s]) => {
        const low = s.maxSeq - this.window;
        const results = [...s.results.entries()]
          .filter(([seq]) => seq > low)
          .sort((a, b) => a[0] - b[0]);
        return [id, s.maxSeq, results] as const;
      });
    return { window: this.window, clients };
  }

  static fromImage(image: SessionsImage): ClientSessions {
    const cs = new ClientSessions(image.window);
    for (const [id, maxSeq, results] of image.clients) {
      cs.sessions.set(id, { maxSeq, results: new Map(results.map(([k, v]) => [k, v])) });
    }
    return cs;
  }
}
