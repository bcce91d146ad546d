/**
 * Quorums: a majority of one voter set, and a joint quorum (a majority of the incoming AND
 * a majority of the outgoing voters) while a joint-consensus change is in progress.
 *
 * An empty majority config commits everything and wins every vote, so that a joint
 * config with an empty outgoing half behaves exactly like its incoming half.
 */
export type VoteResult = 'won' | 'lost' | 'pending';

/** The highest index a majority of `voters` has acknowledged (`match(id)`). */
export function majorityCommitted(
  voters: ReadonlySet<string>,
  match: (id: string) => number,
): number {
  if (voters.size === 0) return Number.POSITIVE_INFINITY;
  const acked: number[] = [];
  for (const id of voters) acked.push(match(id));
  acked.sort((a, b) => b - a);
  // With n voters, the (floor(n/2)+1)-th highest acknowledgement is held by a majority.
  return acked[Math.floor(voters.size / 2)] as number;
}

export function majorityVote(
  voters: ReadonlySet<string>,
  votes: ReadonlyMap<string, boolean>,
): VoteResult {
  if (voters.size === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}

export interface JointVoters {
  incoming: ReadonlySet<string>;
  outgoing: ReadonlySet<string>;
}

export function jointCommitted(cfg: JointVoters, match: (id: string) => number): number {
  const c = Math.min(
    majorityCommitted(cfg.incoming, match),
    majorityCommitted(cfg.outgoing, match),
  );
  return c === Number.POSITIVE_INFINITY ? 0 : c;
}

export function jointVote(cfg: JointVoters, votes: ReadonlyMap<string, boolean>): VoteResult {
  const a = majorityVote(cfg.incoming, votes);
  const b = majorityVote(cfg.outgoing, votes);
  if (a === 'won' && b === 'won') return 'won';
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}
