/**
 * A test network of pure Raft cores: messages are queued and delivered one at a time,
 * Ready batches are "persisted" into per-node durable records, committed entries are
 * applied to a trivial state machine (the list of applied commands). Used by the core unit
 * tests and the core-level randomized test.
 */

import { RaftCore } from '../../actors/raft/core/raft-core.js';
import type {
  CoreSnapshot,
  LogEntry,
  RaftCoreOptions,
  RaftHardState,
  RaftMessage,
  Ready,
} from '../../actors/raft/core/types.js';
import { Random } from '../../lib/random.js';

export interface Durable {
  hard?: RaftHardState;
  entries: LogEntry[];
  snapshot?: CoreSnapshot;
}

export interface AppliedCmd {
  index: number;
  term: number;
  cmd: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function cmd(s: string): Uint8Array {
  return enc.encode(s);
}

export class CoreNet {
  readonly cores = new Map<string, RaftCore>();
  readonly durable = new Map<string, Durable>();
  /** The state machine of each node: the commands applied, in order. */
  readonly sm = new Map<string, AppliedCmd[]>();
  readonly queue: RaftMessage[] = [];
  /** Every message handed to the network (for counting). */
  readonly sent: RaftMessage[] = [];
  readonly readies = new Map<string, Ready[]>();
  /** Return false to drop a message. */
  filter: ((m: RaftMessage) => boolean) | undefined;
  private readonly cut = new Set<string>();
  readonly down = new Set<string>();
  readonly random: Random;
  /**
   * Broken-persistence fault for negative controls: a restart forgets the vote and the
   * last `loseTail` durable entries (as if acknowledged before they were synced).
   */
  faults: { forgetVote?: boolean; loseTail?: number } = {};
  /** Called after every Ready is handled (invariant checks). */
  onReady: ((id: string, rd: Ready) => void) | undefined;

  constructor(
    readonly ids: string[],
    readonly opts: Partial<RaftCoreOptions> = {},
    seed = 1,
    voters: string[] = ids,
    learners: string[] = [],
  ) {
    this.random = new Random(seed);
    for (const id of ids) {
      this.durable.set(id, { entries: [] });
      this.sm.set(id, []);
      const bootstrap = voters.includes(id) || learners.includes(id);
      this.cores.set(
        id,
        new RaftCore(
          { id, random: this.random.fork(), electionTick: 10, heartbeatTick: 1, ...opts },
          bootstrap ? { bootstrap: { voters, learners } } : {},
        ),
      );
    }
  }

  core(id: string): RaftCore {
    const c = this.cores.get(id);
    if (!c) throw new Error(`no core ${id}`);
    return c;
  }

  /** Adds a brand-new empty node (to be added by a conf change). */
  addNode(id: string): RaftCore {
    this.durable.set(id, { entries: [] });
    this.sm.set(id, []);
    const c = new RaftCore({
      id,
      random: this.random.fork(),
      electionTick: 10,
      heartbeatTick: 1,
      ...this.opts,
    });
    this.cores.set(id, c);
    (this.ids as string[]).push(id);
    return c;
  }

  /** Handles every Ready of `id` (persist, queue messages, apply, advance). */
  drain(id: string): void {
    const c = this.core(id);
    if (this.down.has(id)) return;
    while (c.hasReady()) {
      const rd = c.ready();
      const d = this.durable.get(id) as Durable;
      if (rd.snapshot) {
        d.snapshot = rd.snapshot;
        d.entries = [];
      }
      if (rd.entries.length > 0) {
        const first = (rd.entries[0] as LogEntry).index;
        d.entries = d.entries.filter((e) => e.index < first).concat(rd.entries);
      }
      if (rd.hardState) d.hard = { ...rd.hardState };
      for (const m of rd.messages) {
        this.sent.push(m);
        this.queue.push(m);
      }
      const sm = this.sm.get(id) as AppliedCmd[];
      if (rd.snapshot) {
        const restored = JSON.parse(dec.decode(rd.snapshot.data)) as AppliedCmd[];
        sm.length = 0;
        sm.push(...restored);
      }
      for (const e of rd.committedEntries) {
        if (e.type === 'normal') sm.push({ index: e.index, term: e.term, cmd: dec.decode(e.data) });
      }
      const list = this.readies.get(id) ?? [];
      this.readies.set(id, list);
      list.push(rd);
      c.advance(rd);
      this.onReady?.(id, rd);
    }
  }

  drainAll(): void {
    for (const id of this.cores.keys()) this.drain(id);
  }

  linkUp(from: string, to: string): boolean {
    return !this.cut.has(`${from}>${to}`) && !this.down.has(from) && !this.down.has(to);
  }

  /** Delivers the next queued message; returns false if the queue is empty. */
  deliverOne(): boolean {
    const m = this.queue.shift();
    if (!m) return false;
    if (!this.linkUp(m.from, m.to)) return true;
    if (this.filter && !this.filter(m)) return true;
    const c = this.cores.get(m.to);
    if (!c) return true;
    c.step(m);
    this.drain(m.to);
    return true;
  }

  /** Runs until no messages are in flight and no node has work. */
  stabilize(maxSteps = 100_000): void {
    this.drainAll();
    let n = 0;
    while (this.deliverOne()) {
      if (++n > maxSteps) throw new Error('network did not stabilize');
    }
  }

  tick(id: string, n = 1): void {
    for (let i = 0; i < n; i++) {
      if (!this.down.has(id)) this.core(id).tick();
      this.drain(id);
    }
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const id of this.cores.keys()) this.tick(id);
  }

  /** Ticks everyone and stabilizes, `n` times. */
  run(n: number): void {
    for (let i = 0; i < n; i++) {
      this.tickAll();
      this.stabilize();
    }
  }

  /** Elects `id` by timing it out first. */
  elect(id: string): void {
    this.drainAll();
    this.core(id).campaign();
    this.stabilize();
  }

  leaders(): string[] {
    return [...this.cores.values()]
      .filter((c) => c.role === 'leader' && !this.down.has(c.id))
      .map((c) => c.id);
  }

  leader(): RaftCore | undefined {
    const ls = this.leaders();
    if (ls.length === 0) return undefined;
    // the one with the highest term
    return ls.map((id) => this.core(id)).sort((a, b) => b.term - a.term)[0];
  }

  propose(id: string, s: string): { index: number; term: number } {
    const r = this.core(id).propose(cmd(s));
    this.stabilize();
    return r;
  }

  isolate(id: string): void {
    for (const o of this.cores.keys()) {
      if (o === id) continue;
      this.cut.add(`${id}>${o}`);
      this.cut.add(`${o}>${id}`);
    }
  }

  partition(groups: string[][]): void {
    this.heal();
    for (const g of groups) {
      for (const o of this.cores.keys()) {
        if (g.includes(o)) continue;
        for (const id of g) {
          this.cut.add(`${id}>${o}`);
          this.cut.add(`${o}>${id}`);
        }
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Crashes a node: its in-memory state is lost, its durable records survive. */
  crash(id: string): void {
    this.down.add(id);
  }

  /** Restarts a node from its durable records (the state machine from its snapshot). */
  restart(id: string): void {
    const d = this.durable.get(id) as Durable;
    if (this.faults.forgetVote && d.hard) d.hard = { ...d.hard, vote: null };
    if (this.faults.loseTail) {
      d.entries = d.entries.slice(0, Math.max(0, d.entries.length - this.faults.loseTail));
      if (d.hard) {
        const last = d.entries[d.entries.length - 1]?.index ?? d.snapshot?.meta.index ?? 0;
        d.hard = { ...d.hard, commit: Math.min(d.hard.commit, last) };
      }
    }
    const state: ConstructorParameters<typeof RaftCore>[1] = { entries: d.entries };
    if (d.hard) state.hardState = d.hard;
    if (d.snapshot) state.snapshot = d.snapshot;
    const c = new RaftCore(
      { id, random: this.random.fork(), electionTick: 10, heartbeatTick: 1, ...this.opts },
      state,
    );
    this.cores.set(id, c);
    const sm = this.sm.get(id) as AppliedCmd[];
    sm.length = 0;
    if (d.snapshot) sm.push(...(JSON.parse(dec.decode(d.snapshot.data)) as AppliedCmd[]));
    this.down.delete(id);
  }

  /** Takes a snapshot of `id`'s state machine at its applied index and compacts. */
  snapshot(id: string, keep = 0): CoreSnapshot {
    const c = this.core(id);
    const data = enc.encode(JSON.stringify(this.sm.get(id)));
    const snap = c.snapshotTaken(data);
    const d = this.durable.get(id) as Durable;
    d.snapshot = snap;
    c.compact(snap.meta.index - keep);
    d.entries = d.entries.filter((e) => e.index > c.log.snapIndex);
    return snap;
  }

  commands(id: string): string[] {
    return (this.sm.get(id) as AppliedCmd[]).map((a) => a.cmd);
  }
}

import type { NodeView } from '../../actors/raft/invariants.js';

export function coreView(c: RaftCore, up = true): NodeView {
  const m = c.membership();
  return {
    id: c.id,
    up,
    term: c.term,
    role: c.role,
    snapIndex: c.log.snapIndex,
    snapTerm: c.log.snapTerm,
    entries: c.log.all(),
    committed: c.log.committed,
    stableIndex: c.log.stableIndex,
    logVersion: c.log.version,
    voters: [...new Set([...m.voters, ...(m.votersOutgoing ?? [])])],
  };
}

/**
 * Appends to `sig` everything coreView reads of `c`, by value or identity: the core object
 * (a restart makes a new one), up/down, term, role, the log's version (bumped on every
 * append, truncation, compaction and restore; entries are never changed in place), its
 * compaction point, commit and durable indexes, and the membership (cached per immutable
 * configuration). Two equal signatures mean equal views, so an invariant check that passed
 * on the first cannot fail on the second (RaftInvariants.check is idempotent on equal views).
 */
export function pushCoreState(sig: unknown[], c: RaftCore | undefined, up: boolean): void {
  sig.push(c, up);
  if (!c) return;
  const log = c.log;
  sig.push(
    c.term,
    c.role,
    log.version,
    log.snapIndex,
    log.snapTerm,
    log.committed,
    log.stableIndex,
    c.membership(),
  );
}

/** Whether two state signatures (see pushCoreState) are element-wise identical. */
export function sameState(a: readonly unknown[], b: readonly unknown[] | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What a node would restart from (its durable records). */
export function durableView(id: string, d: Durable): NodeView {
  return {
    id,
    up: false,
    term: d.hard?.term ?? 0,
    role: 'follower',
    snapIndex: d.snapshot?.meta.index ?? 0,
    snapTerm: d.snapshot?.meta.term ?? 0,
    entries: d.entries.filter((e) => e.index > (d.snapshot?.meta.index ?? 0)),
    committed: d.hard?.commit ?? 0,
    stableIndex: 0,
    voters: [],
  };
}
