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

/**
 * One client's window, in one of two forms:
 * - run form (`run > 0`): the `run` seqs `maxSeq - run + 1 .. maxSeq` were applied, each with
 *   the result `null`, and no other seq in the window; no arrays. The common case (a client
 *   that waits for each write before the next, writes answering `null`) then costs two number
 *   fields per client instead of two arrays of up to twice the window that every write
 *   touched (256 clients' arrays on every replica outgrew the processor's caches), and its
 *   snapshot image is that run as it stands (`CompactSessionImage`);
 * - array form (`run === 0`): the seqs applied in the window, ascending, from `head` (earlier
 *   entries are below the window, waiting to be trimmed), and their results alongside.
 * A client leaves the run form for good on its first gap, out-of-order seq or non-null result.
 */
interface Session {
  maxSeq: number;
  run: number;
  seqs: number[];
  results: unknown[];
  head: number;
}

const KNOWN_NULL: SessionCheck = Object.freeze({ duplicate: true, known: true, result: null });

/**
 * Per client: id, highest seq, the seqs inside the window in ascending order, and their
 * results (two flat arrays: a snapshot holds up to `window` results per client, and one
 * small array per result made snapshots a visible share of the write path). Images of the
 * earlier format, `[id, maxSeq, [[seq, result], ...]]`, are still read.
 */
export type SessionImage =
  | readonly [string, number, readonly number[], readonly unknown[]]
  | readonly [string, number, readonly (readonly [number, unknown])[]]
  | CompactSessionImage;

/**
 * A client whose window holds the `n` seqs `maxSeq - n + 1 .. maxSeq`, every result `null`:
 * `[id, maxSeq, n]` (replica image version 2). The common case — a client that waits for each
 * write before the next, and writes answer `null` — and the full form made the image of 256
 * such clients 130,000 numbers, encoded every `snapshotEvery` slots on every replica.
 */
export type CompactSessionImage = readonly [string, number, number];

export interface SessionsImage {
  readonly window: number;
  readonly clients: readonly SessionImage[];
}

const NOT_DUPLICATE: SessionCheck = Object.freeze({ duplicate: false });

export class ClientSessions {
  private readonly sessions = new Map<string, Session>();
  /** The client `check` looked up last (a learner checks, then records, the same command). */
  private lastId: string | undefined;
  private last: Session | undefined;

  constructor(readonly window = 256) {}

  check(clientId: string, seq: number): SessionCheck {
    const s = this.sessions.get(clientId);
    this.lastId = clientId;
    this.last = s;
    if (!s || seq > s.maxSeq) return NOT_DUPLICATE;
    if (seq <= s.maxSeq - this.window) return { duplicate: true, known: false };
    if (s.run > 0) return seq > s.maxSeq - s.run ? KNOWN_NULL : NOT_DUPLICATE;
    const i = indexOf(s, seq);
    if (i < 0) return NOT_DUPLICATE;
    return { duplicate: true, known: true, result: s.results[i] };
  }

  record(clientId: string, seq: number, result: unknown): void {
    const s = clientId === this.lastId ? this.last : this.sessions.get(clientId);
    if (!s) {
      const created: Session =
        result === null && Number.isSafeInteger(seq)
          ? { maxSeq: seq, run: 1, seqs: [], results: [], head: 0 }
          : { maxSeq: seq, run: 0, seqs: [seq], results: [result], head: 0 };
      this.sessions.set(clientId, created);
      this.lastId = clientId;
      this.last = created;
      return;
    }
    if (s.run > 0) {
      if (seq === s.maxSeq + 1 && result === null) {
        s.maxSeq = seq;
        if (s.run < this.window) s.run++;
        return;
      }
      // A gap, an out-of-order seq or a result: spell the run out and go on in array form.
      const first = s.maxSeq - s.run + 1;
      s.seqs = Array.from({ length: s.run }, (_, i) => first + i);
      s.results = new Array<unknown>(s.run).fill(null);
      s.head = 0;
      s.run = 0;
    }
    if (seq > s.maxSeq) {
      s.seqs.push(seq);
      s.results.push(result);
      s.maxSeq = seq;
      // Trim what fell below the window (amortised: the arrays are cut once the dead prefix
      // is as long as the window). `check` answers below-window seqs before looking here.
      const low = seq - this.window;
      let h = s.head;
      while (h < s.seqs.length && (s.seqs[h] as number) <= low) h++;
      if (h >= this.window && h * 2 >= s.seqs.length) {
        s.seqs = s.seqs.slice(h);
        s.results = s.results.slice(h);
        h = 0;
      }
      s.head = h;
      return;
    }
    // Below the window: `check` reports it a duplicate already (nothing to keep).
    if (seq <= s.maxSeq - this.window) return;
    // Out of order (a pipelined client, a retry): keep the arrays sorted.
    const at = lowerBound(s, seq);
    if (s.seqs[at] === seq) s.results[at] = result;
    else {
      s.seqs.splice(at, 0, seq);
      s.results.splice(at, 0, result);
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  toImage(): SessionsImage {
    const clients = [...this.sessions.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([id, s]): SessionImage => {
        if (s.run > 0) return [id, s.maxSeq, s.run];
        const low = s.maxSeq - this.window;
        const from = lowerBound(s, low + 1);
        const n = s.seqs.length - from;
        const first = s.maxSeq - n + 1;
        let compact = n > 0 && Number.isSafeInteger(s.maxSeq) && Number.isSafeInteger(n);
        for (let i = from; compact && i < s.seqs.length; i++) {
          compact = s.seqs[i] === first + (i - from) && s.results[i] === null;
        }
        if (compact) return [id, s.maxSeq, n];
        return [id, s.maxSeq, s.seqs.slice(from), s.results.slice(from)];
      });
    return { window: this.window, clients };
  }

  static fromImage(image: SessionsImage): ClientSessions {
    const cs = new ClientSessions(image.window);
    for (const c of image.clients) {
      const [id, maxSeq] = c;
      let pairs: [number, unknown][];
      if (c.length === 3 && typeof c[2] === 'number') {
        const n = c[2];
        cs.sessions.set(
          id,
          n > 0 && n <= cs.window && Number.isSafeInteger(maxSeq)
            ? { maxSeq, run: n, seqs: [], results: [], head: 0 }
            : {
                maxSeq,
                run: 0,
                seqs: Array.from({ length: n }, (_, i) => maxSeq - n + 1 + i),
                results: new Array<unknown>(n).fill(null),
                head: 0,
              },
        );
        continue;
      }
      if (c.length === 4) {
        const [, , seqs, values] = c;
        pairs = seqs.map((q, i) => [q, values[i]]);
      } else {
        const old = c[2] as readonly (readonly [number, unknown])[];
        pairs = old.map(([k, v]) => [k, v]);
      }
      pairs.sort((a, b) => a[0] - b[0]);
      // A window spelled out (decodeReplicaImage spells compact clients out) that is a run
      // of null results ending at maxSeq goes back to the run form.
      const n = pairs.length;
      const run =
        n > 0 &&
        n <= cs.window &&
        Number.isSafeInteger(maxSeq) &&
        pairs.every(([q, r], i) => q === maxSeq - n + 1 + i && r === null);
      cs.sessions.set(
        id,
        run
          ? { maxSeq, run: n, seqs: [], results: [], head: 0 }
          : {
              maxSeq,
              run: 0,
              seqs: pairs.map((p) => p[0]),
              results: pairs.map((p) => p[1]),
              head: 0,
            },
      );
    }
    return cs;
  }
}

/** The first index ≥ head whose seq is ≥ `seq` (the arrays' length when none). */
function lowerBound(s: Session, seq: number): number {
  let lo = s.head;
  let hi = s.seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((s.seqs[mid] as number) < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function indexOf(s: Session, seq: number): number {
  const i = lowerBound(s, seq);
  return s.seqs[i] === seq ? i : -1;
}
