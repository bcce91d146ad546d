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

/**
 * Per client: id, highest seq, the seqs inside the window in ascending order, and their
 * results (two flat arrays: a snapshot holds up to `window` results per client, and one
 * small array per result made snapshots a visible share of the write path). Images of the
 * earlier format, `[id, maxSeq, [[seq, result], ...]]`, are still read.
 */
export type SessionImage =
  | readonly [string, number, readonly number[], readonly unknown[]]
  | readonly [string, number, readonly (readonly [number, unknown])[]];

export interface SessionsImage {
  readonly window: number;
  readonly clients: readonly SessionImage[];
}

const NOT_DUPLICATE: SessionCheck = Object.freeze({ duplicate: false });

export class ClientSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(readonly window = 256) {}

  check(clientId: string, seq: number): SessionCheck {
    const s = this.sessions.get(clientId);
    if (!s) return NOT_DUPLICATE;
    // Below the window first: results there may linger until the next prune (see record).
    if (seq <= s.maxSeq - this.window) return { duplicate: true, known: false };
    if (s.results.has(seq)) return { duplicate: true, known: true, result: s.results.get(seq) };
    return NOT_DUPLICATE;
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
      .map(([id, s]): SessionImage => {
        const low = s.maxSeq - this.window;
        const seqs: number[] = [];
        let sorted = true;
        for (const seq of s.results.keys()) {
          if (seq <= low) continue;
          if (seqs.length > 0 && seq < (seqs[seqs.length - 1] as number)) sorted = false;
          seqs.push(seq);
        }
        if (!sorted) seqs.sort((a, b) => a - b);
        return [id, s.maxSeq, seqs, seqs.map((q) => s.results.get(q))];
      });
    return { window: this.window, clients };
  }

  static fromImage(image: SessionsImage): ClientSessions {
    const cs = new ClientSessions(image.window);
    for (const c of image.clients) {
      const [id, maxSeq] = c;
      const results = new Map<number, unknown>();
      if (c.length === 4) {
        const [, , seqs, values] = c;
        for (let i = 0; i < seqs.length; i++) results.set(seqs[i] as number, values[i]);
      } else for (const [k, v] of c[2]) results.set(k, v);
      cs.sessions.set(id, { maxSeq, results });
    }
    return cs;
  }
}
