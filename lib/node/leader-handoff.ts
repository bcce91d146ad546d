/**
 * Leadership transfer on shutdown (etcd's `TransferLeadership` on stop): a Raft leader that is
 * asked to stop (SIGINT/SIGTERM), after it has drained its in-flight writes, hands its
 * leadership to the most up-to-date voter and waits a bounded time for that node to lead,
 * before it closes. The followers then need not wait out an election timeout to notice that
 * the leader is gone: the target campaigns at once (TimeoutNow, skipping pre-vote and the
 * lease), in the next term.
 *
 * Best effort: no other voter, a target that does not take over in time, or a node that is
 * not the leader (any more) just stop as before, and the line logged says which.
 */
import type { Observable } from 'rxjs';
import type { RaftStatus } from '../../actors/raft/core/raft-core.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';

/**
 * The default bound of the wait for the new leader (ms). The Raft core abandons a transfer
 * after one election timeout (150–300 ms by default), so this is a margin for a loaded machine.
 */
export const DEFAULT_HANDOFF_MS = 1000;

/** What a shutdown's hand-off did. */
export interface HandoffReport {
  /** `moved`: `to` leads now (this node saw it); otherwise why not. */
  outcome: 'moved' | 'not-leader' | 'no-voter' | 'timeout' | 'refused';
  to?: string;
  /** The term before, and the new leader's term. */
  fromTerm?: number;
  toTerm?: number;
  tookMs: number;
}

/** The part of a RaftNode the hand-off uses. */
export interface HandoffRaft {
  readonly started: boolean;
  status(): RaftStatus;
  transferLeadership(to: string): void;
  readonly leader$: Observable<string | undefined>;
}

/**
 * The voter to hand leadership to: the one whose log matches the leader's furthest, among
 * those heard from recently when there are any; ties go to the lower id (deterministic).
 */
export function handoffTarget(
  s: RaftStatus,
  linkUp: (peer: string) => boolean = () => true,
): string | undefined {
  const others = s.membership.voters.filter(
    (v) => v !== s.id && s.progress[v] !== undefined && linkUp(v),
  );
  if (others.length === 0) return undefined;
  const active = others.filter((v) => s.progress[v]?.recentActive);
  const pool = active.length > 0 ? active : others;
  return [...pool].sort(
    (a, b) =>
      (s.progress[b]?.match ?? 0) - (s.progress[a]?.match ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
  )[0];
}

/**
 * Hands leadership over if this node leads, and waits (at most `maxMs`) until another node
 * leads. Never rejects; logs one line saying what happened.
 */
export async function handOffLeadership(
  raft: HandoffRaft | undefined,
  o: {
    clock: Clock;
    logger: Logger;
    maxMs?: number;
    /** Whether this node has a link to `peer` now (a voter it cannot reach is no target). */
    linkUp?: (peer: string) => boolean;
  },
): Promise<HandoffReport> {
  const start = o.clock.now();
  const took = () => Math.round(o.clock.now() - start);
  if (!raft?.started) return { outcome: 'not-leader', tookMs: 0 };
  const s = raft.status();
  if (s.role !== 'leader') return { outcome: 'not-leader', tookMs: 0 };
  const maxMs = o.maxMs ?? DEFAULT_HANDOFF_MS;
  const to = handoffTarget(s, o.linkUp);
  if (to === undefined) {
    // A single-voter cluster has nobody to hand over to, and nothing to say about it.
    if (s.membership.voters.some((v) => v !== s.id))
      o.logger.log(
        'info',
        'shutdown: no other voter this node can reach to hand leadership to; the others elect a leader after their election timeout',
      );
    return { outcome: 'no-voter', fromTerm: s.term, tookMs: 0 };
  }
  try {
    raft.transferLeadership(to);
  } catch (err) {
    o.logger.log(
      'warn',
      `shutdown: could not hand leadership to ${to}: ${(err as Error).message}; stopping without it`,
    );
    return { outcome: 'refused', to, fromTerm: s.term, tookMs: took() };
  }
  const leader = await new Promise<string | undefined>((resolve) => {
    let done = false;
    const finish = (l: string | undefined) => {
      if (done) return;
      done = true;
      timer.cancel();
      queueMicrotask(() => sub.unsubscribe());
      resolve(l);
    };
    const timer = o.clock.setTimer(maxMs, () => finish(undefined));
    const sub = raft.leader$.subscribe((l) => {
      if (l !== undefined && l !== s.id) finish(l);
    });
  });
  const now = raft.started ? raft.status() : undefined;
  if (leader === undefined) {
    o.logger.log(
      'warn',
      `shutdown: handed leadership to ${to}, but no other leader within ${maxMs} ms; stopping anyway (the others elect one)`,
      { to, fromTerm: s.term },
    );
    return { outcome: 'timeout', to, fromTerm: s.term, tookMs: took() };
  }
  const report: HandoffReport = {
    outcome: 'moved',
    to: leader,
    fromTerm: s.term,
    ...(now ? { toTerm: now.term } : {}),
    tookMs: took(),
  };
  o.logger.log(
    'info',
    `shutdown: handed leadership to ${leader} (term ${s.term} → ${report.toTerm ?? '?'}) in ${report.tookMs} ms`,
    { to: leader, fromTerm: s.term, toTerm: report.toTerm, tookMs: report.tookMs },
  );
  return report;
}
