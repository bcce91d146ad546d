/**
 * Quorum systems (Flexible Paxos, Howard et al. 2016). Paxos is safe as long as every
 * phase-1 quorum intersects every phase-2 quorum; phase-2 quorums need not intersect each
 * other. A `QuorumSystem` is validated when it is built: a configuration whose quorums do not
 * intersect is refused with `SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION`, never run.
 *
 * Two shapes are supported:
 * - threshold quorums: any `phase1` acceptors form a phase-1 quorum and any `phase2` acceptors
 *   a phase-2 quorum (majorities by default); safe iff phase1 + phase2 > n;
 * - explicit quorums: lists of acceptor sets for each phase; every pair is checked.
 */
import { PaxosError } from './errors.js';

export interface ThresholdQuorumConfig {
  readonly acceptors: readonly string[];
  /** Size of a phase-1 (prepare/promise) quorum; default: a majority. */
  readonly phase1?: number;
  /** Size of a phase-2 (accept/accepted) quorum; default: a majority. */
  readonly phase2?: number;
}

export interface ExplicitQuorumConfig {
  readonly acceptors: readonly string[];
  readonly phase1Quorums: readonly (readonly string[])[];
  readonly phase2Quorums: readonly (readonly string[])[];
}

export type QuorumConfig = ThresholdQuorumConfig | ExplicitQuorumConfig;

export interface QuorumSystem {
  readonly acceptors: readonly string[];
  /** True when the set of acceptors contains a phase-1 quorum. */
  isPhase1Quorum(members: ReadonlySet<string>): boolean;
  /** True when the set of acceptors contains a phase-2 quorum. */
  isPhase2Quorum(members: ReadonlySet<string>): boolean;
  /** Human readable, e.g. "phase1 4-of-5, phase2 2-of-5". */
  describe(): string;
}

function badConfig(message: string): never {
  throw new PaxosError('SYNOD_ERR_PAXOS_BAD_CONFIG', message);
}

function checkMembers(acceptors: readonly string[]): void {
  if (!Array.isArray(acceptors) || acceptors.length === 0) {
    badConfig('a quorum configuration needs at least one acceptor');
  }
  const seen = new Set<string>();
  for (const a of acceptors) {
    if (typeof a !== 'string' || a.length === 0)
      badConfig('acceptor ids must be non-empty strings');
    if (seen.has(a)) badConfig(`acceptor "${a}" is listed twice`);
    seen.add(a);
  }
}

function countIn(members: ReadonlySet<string>, acceptors: ReadonlySet<string>): number {
  let n = 0;
  for (const m of members) if (acceptors.has(m)) n++;
  return n;
}

class ThresholdQuorums implements QuorumSystem {
  private readonly set: ReadonlySet<string>;
  constructor(
    readonly acceptors: readonly string[],
    readonly phase1: number,
    readonly phase2: number,
  ) {
    this.set = new Set(acceptors);
  }
  isPhase1Quorum(members: ReadonlySet<string>): boolean {
    return countIn(members, this.set) >= this.phase1;
  }
  isPhase2Quorum(members: ReadonlySet<string>): boolean {
    return countIn(members, this.set) >= this.phase2;
  }
  describe(): string {
    const n = this.acceptors.length;
    return `phase1 ${this.phase1}-of-${n}, phase2 ${this.phase2}-of-${n}`;
  }
}

class ExplicitQuorums implements QuorumSystem {
  constructor(
    readonly acceptors: readonly string[],
    private readonly q1: readonly ReadonlySet<string>[],
    private readonly q2: readonly ReadonlySet<string>[],
  ) {}
  private static contains(members: ReadonlySet<string>, quorums: readonly ReadonlySet<string>[]) {
    return quorums.some((q) => [...q].every((a) => members.has(a)));
  }
  isPhase1Quorum(members: ReadonlySet<string>): boolean {
    return ExplicitQuorums.contains(members, this.q1);
  }
  isPhase2Quorum(members: ReadonlySet<string>): boolean {
    return ExplicitQuorums.contains(members, this.q2);
  }
  describe(): string {
    const fmt = (qs: readonly ReadonlySet<string>[]) =>
      qs.map((q) => `{${[...q].join(',')}}`).join(' ');
    return `phase1 ${fmt(this.q1)}; phase2 ${fmt(this.q2)}`;
  }
}

function isExplicit(config: QuorumConfig): config is ExplicitQuorumConfig {
  return 'phase1Quorums' in config || 'phase2Quorums' in config;
}

/**
 * Builds and validates a quorum system. Throws `PaxosError` with
 * `SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION` when some phase-1 quorum misses some phase-2
 * quorum, and `SYNOD_ERR_PAXOS_BAD_CONFIG` when the configuration is malformed.
 */
export function quorumSystem(config: QuorumConfig): QuorumSystem {
  checkMembers(config.acceptors);
  const n = config.acceptors.length;
  if (!isExplicit(config)) {
    const majority = Math.floor(n / 2) + 1;
    const q1 = config.phase1 ?? majority;
    const q2 = config.phase2 ?? majority;
    for (const [name, q] of [
      ['phase1', q1],
      ['phase2', q2],
    ] as const) {
      if (!Number.isInteger(q) || q < 1 || q > n) {
        badConfig(`${name} quorum size must be an integer in [1, ${n}], got ${q}`);
      }
    }
    if (q1 + q2 <= n) {
      throw new PaxosError(
        'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION',
        `phase-1 quorums of ${q1} and phase-2 quorums of ${q2} out of ${n} acceptors need not ` +
          `intersect (need phase1 + phase2 > ${n}); two values could be chosen`,
      );
    }
    return new ThresholdQuorums([...config.acceptors], q1, q2);
  }
  const members = new Set(config.acceptors);
  const build = (name: string, qs: readonly (readonly string[])[] | undefined) => {
    if (!Array.isArray(qs) || qs.length === 0) badConfig(`${name} needs at least one quorum`);
    return qs.map((q, i) => {
      if (!Array.isArray(q) || q.length === 0) badConfig(`${name}[${i}] is empty`);
      for (const a of q) {
        if (!members.has(a)) badConfig(`${name}[${i}] names "${a}", which is not an acceptor`);
      }
      return new Set(q) as ReadonlySet<string>;
    });
  };
  const q1 = build('phase1Quorums', config.phase1Quorums);
  const q2 = build('phase2Quorums', config.phase2Quorums);
  q1.forEach((a, i) => {
    q2.forEach((b, j) => {
      if (![...a].some((x) => b.has(x))) {
        throw new PaxosError(
          'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION',
          `phase-1 quorum ${i} {${[...a].join(',')}} and phase-2 quorum ${j} ` +
            `{${[...b].join(',')}} do not intersect; two values could be chosen`,
        );
      }
    });
  });
  return new ExplicitQuorums([...config.acceptors], q1, q2);
}

/** Majority quorums over `acceptors`. */
export function majorityQuorums(acceptors: readonly string[]): QuorumSystem {
  return quorumSystem({ acceptors });
}
