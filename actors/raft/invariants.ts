/**
 * Raft safety invariants (paper Figure 3, as the TLA+ specifications state them), checked
 * over snapshots of every node's state after each simulation step. Stateful: it remembers
 * leaders per term, committed entries and applied commands across steps, so it also
 * catches a committed entry lost across a crash-restart.
 */
import type { LogEntry } from '../../lib/storage/types.js';

/** What the checker needs to see of one node. */
export interface NodeView {
  id: string;
  /** False while crashed (its durable state still counts for durability checks). */
  up: boolean;
  term: number;
  role: string;
  /** Compaction point (index, term); entries after it. */
  snapIndex: number;
  snapTerm: number;
  entries: readonly LogEntry[];
  committed: number;
  stableIndex: number;
  /** Voters (both halves of a joint config) in this node's configuration. */
  voters: readonly string[];
  /** Changes whenever the log changes (optional; lets the checker skip unchanged pairs). */
  logVersion?: number;
}

/** A command applied to a state machine at an index. */
export interface AppliedView {
  node: string;
  index: number;
  term: number;
  /** A stable identity of the command (e.g. hex or decoded string). */
  command: string;
}

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(`${invariant}: ${message}`);
    this.name = 'InvariantViolation';
  }
}

const keys = new WeakMap<LogEntry, string>();

function key(e: LogEntry): string {
  let k = keys.get(e);
  if (k === undefined) {
    k = `${e.term}:${Buffer.from(e.data).toString('hex')}:${e.type}`;
    keys.set(e, k);
  }
  return k;
}

function termAt(v: NodeView, i: number): number | undefined {
  if (i === v.snapIndex) return v.snapTerm;
  if (i < v.snapIndex) return undefined;
  return v.entries[i - v.snapIndex - 1]?.term;
}

function entryAt(v: NodeView, i: number): LogEntry | undefined {
  if (i <= v.snapIndex) return undefined;
  return v.entries[i - v.snapIndex - 1];
}

function lastIndex(v: NodeView): number {
  return v.snapIndex + v.entries.length;
}

export class RaftInvariants {
  private readonly leaderOfTerm = new Map<number, string>();
  /** index → entry identity, for every index ever seen committed. */
  private readonly committed = new Map<number, { key: string; term: number; seenInTerm: number }>();
  private readonly applied = new Map<number, AppliedView>();
  /** (leader, term) → its log as last seen, for append-only. */
  private readonly leaderLast = new Map<string, { index: number; key: string }>();
  private readonly leaderVerified = new Map<string, number>();
  private maxCommitted = 0;
  private readonly pairSig = new Map<string, string>();
  private readonly nodeVerified = new Map<string, number>();
  private readonly leaderStartCommit = new Map<string, number>();
  /** States verified: full checks plus states found identical to one that passed (`unchanged`). */
  checks = 0;
  /** How many of `checks` were states identical to the last one fully checked. */
  unchanged = 0;

  /**
   * Records that the caller found the state identical (every field of every view, the log
   * arrays by version) to the one its last `check` passed: a second check could not fail.
   */
  noteUnchanged(): void {
    this.checks++;
    this.unchanged++;
  }

  /** Checks every invariant over the current views; throws InvariantViolation. */
  check(views: readonly NodeView[]): void {
    this.checks++;
    const up = views.filter((v) => v.up);
    // Election safety: at most one leader per term, ever.
    for (const v of up) {
      if (v.role !== 'leader') continue;
      const prev = this.leaderOfTerm.get(v.term);
      if (prev !== undefined && prev !== v.id) {
        throw new InvariantViolation(
          'ElectionSafety',
          `two leaders in term ${v.term}: ${prev} and ${v.id}`,
        );
      }
      this.leaderOfTerm.set(v.term, v.id);
      this.checkAppendOnly(v);
      const lk = `${v.id}@${v.term}`;
      if (!this.leaderStartCommit.has(lk)) this.leaderStartCommit.set(lk, v.committed);
      const start = this.leaderStartCommit.get(lk) as number;
      if (v.committed > start && v.committed > v.stableIndex) this.checkQuorumDurable(v, views);
    }
    // Log matching: same index and term ⇒ same entry and same prefix.
    for (let a = 0; a < up.length; a++) {
      for (let b = a + 1; b < up.length; b++) {
        this.checkLogMatching(up[a] as NodeView, up[b] as NodeView);
      }
    }
    // Record newly committed entries; committed entries never change.
    for (const v of up) {
      const hi = Math.min(v.committed, lastIndex(v));
      const from = Math.max(v.snapIndex, this.nodeVerified.get(v.id) ?? 0) + 1;
      for (let i = from; i <= hi; i++) {
        const e = entryAt(v, i) as LogEntry;
        const k = key(e);
        const prev = this.committed.get(i);
        if (prev === undefined) {
          this.committed.set(i, { key: k, term: e.term, seenInTerm: v.term });
          if (i > this.maxCommitted) this.maxCommitted = i;
        } else if (prev.key !== k) {
          throw new InvariantViolation(
            'StateMachineSafety',
            `${v.id} committed a different entry at ${i} (term ${e.term} vs ${prev.term})`,
          );
        }
      }
      if (hi >= from) this.nodeVerified.set(v.id, hi);
    }
    // Leader completeness: a leader of a later term holds every committed entry.
    // Incremental: a leader's log is append-only within its term (checked above), so an
    // entry verified once stays verified.
    for (const v of up) {
      if (v.role !== 'leader') continue;
      const lk = `${v.id}@${v.term}`;
      let i = (this.leaderVerified.get(lk) ?? 0) + 1;
      for (; i <= this.maxCommitted; i++) {
        const c = this.committed.get(i);
        if (!c) continue;
        if (v.term <= c.seenInTerm || i <= v.snapIndex) continue;
        const e = entryAt(v, i);
        if (!e || key(e) !== c.key) {
          throw new InvariantViolation(
            'LeaderCompleteness',
            `leader ${v.id} of term ${v.term} lacks entry ${i} committed in term ${c.seenInTerm}`,
          );
        }
      }
      this.leaderVerified.set(lk, this.maxCommitted);
    }
  }

  /**
   * Durability: every committed entry is still held (in a log or covered by a snapshot)
   * by a majority of the voters of `voters`, counting crashed nodes' durable state.
   * `durable` are views of what each node would restart from.
   */
  checkDurable(durable: readonly NodeView[], voters: readonly string[]): void {
    const q = Math.floor(voters.length / 2) + 1;
    for (const [i, c] of this.committed) {
      let holders = 0;
      for (const v of durable) {
        if (!voters.includes(v.id)) continue;
        if (i <= v.snapIndex) holders++;
        else {
          const e = entryAt(v, i);
          if (e && key(e) === c.key) holders++;
        }
      }
      if (holders < q) {
        throw new InvariantViolation(
          'CommittedDurable',
          `committed entry ${i} (term ${c.term}) is durable on only ${holders} of ${voters.length}`,
        );
      }
    }
  }

  /**
   * A leader may commit beyond its own durable index (it sends entries before its own write
   * finishes, Raft thesis §10.2.1), but only once a majority of its voters hold the entry
   * durably. Checked on the up nodes' own durable indexes when every voter is up (a voter
   * that acknowledged and then crashed cannot be seen here; `checkDurable` covers that).
   */
  private checkQuorumDurable(leader: NodeView, views: readonly NodeView[]): void {
    const i = leader.committed;
    const t = termAt(leader, i);
    let holders = 0;
    for (const id of leader.voters) {
      const w = views.find((x) => x.id === id);
      if (!w?.up) return;
      if (w.stableIndex >= i && termAt(w, i) === t) holders++;
    }
    if (holders < Math.floor(leader.voters.length / 2) + 1) {
      throw new InvariantViolation(
        'DurableCommit',
        `leader ${leader.id} committed ${i} (beyond its durable index ${leader.stableIndex}) while only ${holders} of ${leader.voters.length} voters hold it durably`,
      );
    }
  }

  /** State machine safety: no two nodes apply different commands at one index. */
  checkApplied(a: AppliedView): void {
    const prev = this.applied.get(a.index);
    if (prev === undefined) this.applied.set(a.index, a);
    else if (prev.command !== a.command || prev.term !== a.term) {
      throw new InvariantViolation(
        'StateMachineSafety',
        `${a.node} applied ${a.command}@${a.term} at ${a.index}, ${prev.node} applied ${prev.command}@${prev.term}`,
      );
    }
  }

  committedCount(): number {
    return this.committed.size;
  }

  private checkAppendOnly(v: NodeView): void {
    const lk = `${v.id}@${v.term}`;
    const prev = this.leaderLast.get(lk);
    const li = lastIndex(v);
    if (prev && prev.index > v.snapIndex) {
      const e = entryAt(v, prev.index);
      if (li < prev.index || !e || key(e) !== prev.key) {
        throw new InvariantViolation(
          'LeaderAppendOnly',
          `leader ${v.id} of term ${v.term} changed or dropped its entry ${prev.index}`,
        );
      }
    }
    const last = entryAt(v, li);
    if (last) this.leaderLast.set(lk, { index: li, key: key(last) });
  }

  private checkLogMatching(a: NodeView, b: NodeView): void {
    if (a.logVersion !== undefined && b.logVersion !== undefined) {
      const pk = `${a.id}|${b.id}`;
      const sig = `${a.logVersion}|${b.logVersion}|${a.committed}|${b.committed}`;
      if (this.pairSig.get(pk) === sig) return;
      this.pairSig.set(pk, sig);
    }
    // Below both commit indexes, each log was checked against the committed record.
    const lo = Math.max(a.snapIndex, b.snapIndex, Math.min(a.committed, b.committed) - 1);
    const hi = Math.min(lastIndex(a), lastIndex(b));
    let matched = false;
    for (let i = hi; i > lo; i--) {
      const ea = entryAt(a, i) as LogEntry;
      const eb = entryAt(b, i) as LogEntry;
      if (ea.term === eb.term) {
        if (key(ea) !== key(eb)) {
          throw new InvariantViolation(
            'LogMatching',
            `${a.id} and ${b.id} hold different entries at ${i} in term ${ea.term}`,
          );
        }
        matched = true;
      } else if (matched) {
        throw new InvariantViolation(
          'LogMatching',
          `${a.id} and ${b.id} agree on a later entry but differ at ${i}`,
        );
      }
    }
    // A snapshot boundary must agree with the other's log where both know the term.
    const ta = termAt(a, lo);
    const tb = termAt(b, lo);
    if (matched && ta !== undefined && tb !== undefined && ta !== tb) {
      throw new InvariantViolation('LogMatching', `${a.id} and ${b.id} differ at ${lo}`);
    }
  }
}
