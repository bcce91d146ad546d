/**
 * Cluster configuration and joint-consensus changes.
 *
 * A change is a list of operations. If at most one voter changes it is applied directly
 * ("simple" change, safe because any two majorities of configs differing by one voter
 * intersect). Otherwise the cluster enters a joint configuration (old and new voters both
 * form quorums) and leaves it with a second, empty change — proposed automatically by the
 * leader when `autoLeave` is set (the default).
 */
import { decodeValue, encodeValue } from '../../../lib/codec.js';
import { RaftError, type RaftMembership } from './types.js';

export type ConfChangeOp =
  | { type: 'addVoter'; node: string }
  | { type: 'addLearner'; node: string }
  | { type: 'remove'; node: string };

/** The payload of a `config` log entry. */
export type ConfEntry =
  | { kind: 'bootstrap'; membership: RaftMembership }
  | { kind: 'change'; ops: ConfChangeOp[]; joint?: boolean; autoLeave?: boolean }
  | { kind: 'leaveJoint' };

export function encodeConfEntry(c: ConfEntry): Uint8Array {
  return encodeValue(c);
}

export function decodeConfEntry(data: Uint8Array): ConfEntry {
  const v = decodeValue(data) as ConfEntry;
  if (v === null || typeof v !== 'object' || typeof v.kind !== 'string') {
    throw new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', 'config entry is not a conf change');
  }
  return v;
}

export class ClusterConfig {
  constructor(
    readonly voters: ReadonlySet<string> = new Set(),
    readonly outgoing: ReadonlySet<string> = new Set(),
    readonly learners: ReadonlySet<string> = new Set(),
    readonly learnersNext: ReadonlySet<string> = new Set(),
    readonly autoLeave = false,
  ) {}

  static from(m: RaftMembership): ClusterConfig {
    return new ClusterConfig(
      new Set(m.voters),
      new Set(m.votersOutgoing ?? []),
      new Set(m.learners),
      new Set(m.learnersNext ?? []),
      m.autoLeave ?? false,
    );
  }

  toMembership(): RaftMembership {
    const m: RaftMembership = {
      voters: [...this.voters].sort(),
      learners: [...this.learners].sort(),
    };
    if (this.joint) {
      m.votersOutgoing = [...this.outgoing].sort();
      if (this.learnersNext.size > 0) m.learnersNext = [...this.learnersNext].sort();
      if (this.autoLeave) m.autoLeave = true;
    }
    return m;
  }

  get joint(): boolean {
    return this.outgoing.size > 0;
  }

  isVoter(id: string): boolean {
    return this.voters.has(id) || this.outgoing.has(id);
  }

  /** Every member that receives the log: voters (both halves), learners, learnersNext. */
  members(): Set<string> {
    return new Set([...this.voters, ...this.outgoing, ...this.learners, ...this.learnersNext]);
  }

  isEmpty(): boolean {
    return this.voters.size === 0 && this.outgoing.size === 0;
  }

  /** Applies a committed config entry and returns the resulting config. */
  apply(entry: ConfEntry): ClusterConfig {
    switch (entry.kind) {
      case 'bootstrap':
        return ClusterConfig.from(entry.membership);
      case 'leaveJoint':
        return this.leaveJoint();
      case 'change':
        return entry.joint
          ? this.enterJoint(entry.ops, entry.autoLeave ?? true)
          : this.simple(entry.ops);
    }
  }

  /** Whether `ops` would need joint consensus (more than one voter changes). */
  needsJoint(ops: readonly ConfChangeOp[]): boolean {
    const next = applyOps(new Set(this.voters), new Set(this.learners), new Set(), new Set(), ops);
    return symmetricDiff(this.voters, next.voters) > 1;
  }

  /** Validates a proposed change against this config; throws a RaftError if invalid. */
  validate(entry: ConfEntry): void {
    const bad = (msg: string) => new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', msg);
    if (entry.kind === 'leaveJoint') {
      if (!this.joint) throw bad('not in a joint configuration');
      return;
    }
    if (entry.kind === 'bootstrap') throw bad('bootstrap cannot be proposed');
    for (const op of entry.ops) {
      if (typeof op.node !== 'string' || op.node.length === 0)
        throw bad('conf change needs a node id');
      if (op.type !== 'addVoter' && op.type !== 'addLearner' && op.type !== 'remove') {
        throw bad(`unknown conf change op ${String((op as { type: unknown }).type)}`);
      }
    }
    if (this.joint) throw bad('a joint configuration must be left before another change');
    const next = entry.joint ? this.enterJoint(entry.ops, true) : this.simple(entry.ops);
    if (next.voters.size === 0) throw bad('the configuration would have no voters');
  }

  private simple(ops: readonly ConfChangeOp[]): ClusterConfig {
    const next = applyOps(new Set(this.voters), new Set(this.learners), new Set(), new Set(), ops);
    if (symmetricDiff(this.voters, next.voters) > 1) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
        'more than one voter changes: use joint consensus',
      );
    }
    return new ClusterConfig(next.voters, new Set(), next.learners, new Set(), false);
  }

  private enterJoint(ops: readonly ConfChangeOp[], autoLeave: boolean): ClusterConfig {
    if (this.joint) {
      throw new RaftError('SYNOD_ERR_RAFT_BAD_CONF_CHANGE', 'already in a joint configuration');
    }
    const outgoing = new Set(this.voters);
    const next = applyOps(new Set(this.voters), new Set(this.learners), new Set(), outgoing, ops);
    if (outgoing.size === 0) {
      throw new RaftError(
        'SYNOD_ERR_RAFT_BAD_CONF_CHANGE',
        'cannot enter joint from an empty config',
      );
    }
    return new ClusterConfig(next.voters, outgoing, next.learners, next.learnersNext, autoLeave);
  }

  private leaveJoint(): ClusterConfig {
    if (!this.joint) return this;
    const learners = new Set(this.learners);
    for (const id of this.learnersNext) learners.add(id);
    return new ClusterConfig(new Set(this.voters), new Set(), learners, new Set(), false);
  }
}

function applyOps(
  voters: Set<string>,
  learners: Set<string>,
  learnersNext: Set<string>,
  outgoing: ReadonlySet<string>,
  ops: readonly ConfChangeOp[],
): { voters: Set<string>; learners: Set<string>; learnersNext: Set<string> } {
  for (const op of ops) {
    voters.delete(op.node);
    learners.delete(op.node);
    learnersNext.delete(op.node);
    if (op.type === 'addVoter') voters.add(op.node);
    else if (op.type === 'addLearner') {
      // A voter of the outgoing config cannot be a learner while it still votes there.
      if (outgoing.has(op.node)) learnersNext.add(op.node);
      else learners.add(op.node);
    }
  }
  return { voters, learners, learnersNext };
}

function symmetricDiff(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  let n = 0;
  for (const x of a) if (!b.has(x)) n++;
  for (const x of b) if (!a.has(x)) n++;
  return n;
}
