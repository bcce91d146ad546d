/**
 * Notices that this node was removed from the cluster, so `synod node` can exit instead of
 * lingering as a process that campaigns forever and serves nothing (etcd: "the member has been
 * permanently removed from the cluster").
 *
 * A removed member rarely learns its removal from its own log: the leader stops replicating
 * to it as soon as the new configuration is appended, so the removed node often never sees
 * that entry committed, or never sees it at all (it was down or cut off). Three signals:
 *
 * 1. **Its own log**: a *committed* configuration no longer has it (a leader that removed
 *    itself, or a member that heard the commit).
 * 2. **A peer forgot it**: a member closes the link with `SYNOD_ERR_PEER_REMOVED` when its
 *    committed configuration drops this node (lib/node/member-links.ts). That triggers a probe.
 * 3. **No leader for a long time** (`leaderlessMs`): it probes every `probeEveryMs` while
 *    leaderless (a node that was down during its removal and came back), or while it still
 *    names a leader but has heard nothing from it for `leaderlessMs`: a learner never
 *    campaigns, so one cut off while it was removed keeps the old leader forever.
 *
 * Signals 1 and 2 (and a configuration in its own log that leaves it out, even uncommitted)
 * make the node **suspect** its removal: it probes at once and then every `probeEveryMs` until
 * the removal is proven or a majority report it as a member again. One probe is not enough:
 * the peers learn the commit at different moments, so the first probe (started by the leader
 * closing its link) often reaches followers that have not committed the removal yet, and a
 * removed follower whose own log leaves it out never campaigns, so it never goes leaderless
 * (found by a newcomer run at load 11–16: the removed node kept running for more than 60 s).
 * A signal that arrives while a probe is in flight runs another probe after it.
 *
 * Each probe asks every member the node knows for its membership report. A report *proves* the removal when its configuration is committed there
 * (`configIndex <= commitIndex`), is newer than the last configuration in which this node was
 * a member, and leaves this node out. The node counts itself removed only when a **majority
 * of the voters of the newest proving configuration** prove it: one lagging peer is not
 * enough, because a node that re-joins replays "remove me … add me" and may ask a peer that
 * has not yet appended the re-add — and a re-add committed needs a majority that has it, so
 * at most a minority can still report the removal (the majorities of consecutive
 * configurations intersect). That holds because each report also says the newest
 * configuration in the reporter's *log* that has the asker (`configWith`, appended or applied):
 * a peer that appended the re-add but has not applied it reports its applied removal, and must
 * not count. A removal at or below this node's own last membership index proves it only when
 * the reporter's entry there has another term than this node's (`configTerm`): this node holds
 * a deposed leader's uncommitted entry there, which the new leader never overwrote because it
 * stopped replicating to the node it removed. No answer proves nothing; a node that was never
 * a member (a joiner waiting to be added) is never flagged.
 */
import type { Observable, Subscription } from 'rxjs';
import { merge } from 'rxjs';
import type { RaftNode } from '../../actors/raft/raft-node.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../logger.js';
import type { LinkStatus } from '../transport.js';
import { memberIds } from './member-links.js';

/** What a member says about its configuration (a subset of `NodeStatus`). */
export interface MembershipReport {
  id: string;
  voters: string[];
  learners: string[];
  /** Voters of the old configuration while a joint change is in progress. */
  votersOutgoing?: string[];
  commitIndex: number;
  /** Log index of the configuration reported; absent from nodes that do not report it. */
  configIndex?: number;
  /** Term of the entry at `configIndex`, when the reporter's log still has it. */
  configTerm?: number;
  /**
   * The newest configuration in the reporter's log (applied or only appended) that has the
   * asking node (`RaftCore.lastConfigWith`), -1 for none; absent from older nodes.
   */
  configWith?: number;
}

export interface RemovalNotice {
  /** The member whose report settled it (the newest proving configuration). */
  source: string;
  /** Index of the committed configuration that leaves this node out. */
  configIndex: number;
  message: string;
}

export interface RemovalWatchDeps {
  // biome-ignore lint/suspicious/noExplicitAny: any command and result types
  raft: RaftNode<any, any>;
  selfId: string;
  links$: Observable<LinkStatus>;
  /** The member ids to ask (known peers). */
  peers(): string[];
  probe(peer: string, timeoutMs: number): Promise<MembershipReport>;
  clock: Clock;
  log: Logger;
  onRemoved(notice: RemovalNotice): void;
  /** Leaderless this long before probing (default 5,000 ms). */
  leaderlessMs?: number;
  /** Probe interval while leaderless (default 5,000 ms). */
  probeEveryMs?: number;
  /** One probe's timeout per peer (default 2,000 ms). */
  probeTimeoutMs?: number;
}

/**
 * The term of the entry at an index of this node's own log, undefined where it has none (past
 * its end, or compacted into a snapshot).
 */
export type OwnTermAt = (index: number) => number | undefined;

/** Whether one report proves this node's removal (see the file comment). */
export function reportProvesRemoval(
  r: MembershipReport,
  selfId: string,
  lastMemberConfigIndex: number,
  ownTermAt: OwnTermAt = () => undefined,
): boolean {
  if (r.configIndex === undefined) return false;
  if (r.configIndex > r.commitIndex) return false; // not committed there yet
  // The reporter's log already holds a newer configuration with this node (a re-add it
  // appended but has not applied): it is part of any majority that committed the re-add.
  if (r.configWith !== undefined && r.configWith > r.configIndex) return false;
  if (r.configIndex <= lastMemberConfigIndex) {
    // Not newer than our last membership — unless our log holds another entry at that index
    // (an uncommitted tail of a deposed leader, which the new leader never overwrote here
    // because it stopped replicating to us once it removed us): the committed entry wins.
    const ours = ownTermAt(r.configIndex);
    if (r.configTerm === undefined || ours === undefined || ours === r.configTerm) return false;
  }
  const ids = new Set([...r.voters, ...r.learners, ...(r.votersOutgoing ?? [])]);
  return !ids.has(selfId);
}

/**
 * The report that settles the removal, or undefined: the newest proving report, when a
 * majority of its configuration's voters (outgoing voters too, during a joint change) prove
 * the removal.
 */
export function removalProven(
  reports: readonly MembershipReport[],
  selfId: string,
  lastMemberConfigIndex: number,
  ownTermAt?: OwnTermAt,
): MembershipReport | undefined {
  if (lastMemberConfigIndex < 0) return undefined;
  const proving = reports.filter((r) =>
    reportProvesRemoval(r, selfId, lastMemberConfigIndex, ownTermAt),
  );
  if (proving.length === 0) return undefined;
  const newest = proving.reduce((a, b) => ((b.configIndex ?? 0) > (a.configIndex ?? 0) ? b : a));
  // A committed configuration newer than the proof that has this node settles it the other
  // way: it was added again (a peer that knows it, typically the leader, answered), however
  // many stale members of an older configuration still report the removal.
  const readded = reports.some(
    (r) =>
      r.configIndex !== undefined &&
      r.configIndex <= r.commitIndex &&
      r.configIndex > (newest.configIndex ?? 0) &&
      [...r.voters, ...r.learners, ...(r.votersOutgoing ?? [])].includes(selfId),
  );
  if (readded) return undefined;
  const provers = new Set(proving.map((r) => r.id));
  const majorityOf = (voters: readonly string[]) =>
    voters.length > 0 && voters.filter((v) => provers.has(v)).length * 2 > voters.length;
  if (!majorityOf(newest.voters)) return undefined;
  if (newest.votersOutgoing?.length && !majorityOf(newest.votersOutgoing)) return undefined;
  return newest;
}

/**
 * Whether a majority of the voters of the newest reported configuration (this node included)
 * still have this node: then a suspicion was a false alarm and the periodic probes stop.
 */
export function stillMember(reports: readonly MembershipReport[], selfId: string): boolean {
  const known = reports.filter((r) => r.configIndex !== undefined);
  if (known.length === 0) return false;
  const newest = known.reduce((a, b) => ((b.configIndex ?? 0) > (a.configIndex ?? 0) ? b : a));
  if (newest.voters.length === 0) return false;
  const has = new Set(
    known
      .filter((r) => [...r.voters, ...r.learners, ...(r.votersOutgoing ?? [])].includes(selfId))
      .map((r) => r.id),
  );
  has.add(selfId); // it counts itself: this only decides whether to keep probing
  return newest.voters.filter((v) => has.has(v)).length * 2 > newest.voters.length;
}

export function watchRemoval(d: RemovalWatchDeps): Subscription {
  const leaderlessMs = d.leaderlessMs ?? 5000;
  const probeEveryMs = d.probeEveryMs ?? 5000;
  const probeTimeoutMs = d.probeTimeoutMs ?? 2000;
  /** Index of the newest configuration (appended) that had this node; -1 = never a member. */
  let lastMemberConfigIndex = -1;
  let done = false;
  let probing = false;
  /** Why another probe is wanted once the one in flight ends. */
  let probeAgain: string | undefined;
  let leaderlessTimer: TimerHandle | undefined;
  /** Looks every `probeEveryMs` at how long the leader it names has been silent. */
  let silenceTimer: TimerHandle | undefined;
  let currentLeader: string | undefined;
  /** Probes every `probeEveryMs` while a signal says this node may have been removed. */
  let suspicionTimer: TimerHandle | undefined;

  const stopTimers = () => {
    leaderlessTimer?.cancel();
    silenceTimer?.cancel();
    suspicionTimer?.cancel();
    suspicionTimer = undefined;
  };
  const removed = (n: RemovalNotice) => {
    if (done) return;
    done = true;
    stopTimers();
    d.log.log('warn', n.message, { code: 'SYNOD_ERR_NODE_REMOVED', configIndex: n.configIndex });
    d.onRemoved(n);
  };
  const clearSuspicion = () => {
    suspicionTimer?.cancel();
    suspicionTimer = undefined;
  };
  /**
   * Reads the node's own log now: the log's emissions before the node had started were not
   * looked at, and a node restarted while the others removed it may hear no commit (and so
   * emit nothing) after it started. Its *applied* configuration may not have it either: a
   * restarted node applies its log only up to the commit index it saved, which the node
   * writes with term and vote changes only, so a member that joined after its last term
   * change restarts with a configuration without itself (or none) until a leader tells it
   * the commit index — never, once the others removed it (a chaos run, seed 913809: a
   * re-joined node killed and restarted, removed 1 s later before its links came up, ran on
   * for 30 s). So the newest configuration its log holds — applied or only appended — that
   * has it counts: a removal must be newer than that one.
   */
  const noteMembership = () => {
    const core = d.raft.inspectCore();
    if (!core || !d.raft.started) return;
    lastMemberConfigIndex = Math.max(lastMemberConfigIndex, core.lastConfigWith(d.selfId));
  };
  const suspect = (why: string) => {
    noteMembership();
    if (done || lastMemberConfigIndex < 0) return;
    suspicionTimer ??= d.clock.setInterval(
      probeEveryMs,
      () => void probe(`still suspected: ${why}`),
    );
    void probe(why);
  };

  // commitIndex$ fires per committed batch: the configuration is looked at again only when
  // it changed, or when it became committed.
  let seenConfig = -1;
  let seenCommitted = false;
  const observeLog = () => {
    if (done) return;
    const core = d.raft.inspectCore();
    if (!core || !d.raft.started) return;
    const committed = core.configIndex <= core.log.committed;
    if (core.configIndex === seenConfig && committed === seenCommitted) return;
    seenConfig = core.configIndex;
    seenCommitted = committed;
    if (memberIds(core.membership()).has(d.selfId)) {
      if (core.configIndex > lastMemberConfigIndex) clearSuspicion();
      lastMemberConfigIndex = Math.max(lastMemberConfigIndex, core.configIndex);
      return;
    }
    // No configuration applied yet (a joiner, or a node restarted with commit index 0): that
    // says nothing about a removal.
    if (core.membership().voters.length === 0) return;
    // Its own log has a configuration without it: ask the others (they decide). Uncommitted
    // counts too: the leader stops replicating to a removed node, so it may never see the commit.
    suspect(
      `its own log ${committed ? 'committed' : 'appended'} a configuration without it (index ${core.configIndex})`,
    );
  };

  const probe = async (why: string) => {
    noteMembership();
    if (done || lastMemberConfigIndex < 0) return;
    if (probing) {
      probeAgain = why;
      return;
    }
    probing = true;
    try {
      const peers = d.peers().filter((p) => p !== d.selfId);
      const reports = (
        await Promise.all(peers.map((p) => d.probe(p, probeTimeoutMs).catch(() => undefined)))
      ).filter((r): r is MembershipReport => r !== undefined);
      const core = d.raft.inspectCore();
      const ownTermAt: OwnTermAt = (i) => (core ? core.log.term(i) : undefined);
      const proof = removalProven(reports, d.selfId, lastMemberConfigIndex, ownTermAt);
      if (proof === undefined) {
        if (stillMember(reports, d.selfId)) clearSuspicion();
        return;
      }
      removed({
        source: proof.id,
        configIndex: proof.configIndex as number,
        message: `${d.selfId} was removed from the cluster: the configuration committed at index ${proof.configIndex} leaves it out, as a majority of its voters (${proof.voters.join(', ')}) report (asked because ${why})`,
      });
    } finally {
      probing = false;
      const again = probeAgain;
      probeAgain = undefined;
      if (again !== undefined && !done) void probe(again);
    }
  };

  const armLeaderless = (leader: string | undefined) => {
    currentLeader = leader;
    leaderlessTimer?.cancel();
    leaderlessTimer = undefined;
    if (leader !== undefined || done) return;
    const tick = () => {
      leaderlessTimer = d.clock.setTimer(probeEveryMs, tick);
      void probe(`no leader for ${leaderlessMs} ms or more`);
    };
    leaderlessTimer = d.clock.setTimer(leaderlessMs, tick);
  };

  // A leader it names but has not heard from (see signal 3): a learner's only way to notice.
  if (typeof d.raft.msSinceLeaderContact === 'function')
    silenceTimer = d.clock.setInterval(probeEveryMs, () => {
      const silent = d.raft.msSinceLeaderContact();
      if (done || currentLeader === undefined || silent === undefined || silent < leaderlessMs)
        return;
      void probe(`nothing from its leader ${currentLeader} for ${silent} ms`);
    });

  const sub = merge(d.raft.membership$, d.raft.commitIndex$).subscribe({
    next: observeLog,
    error: () => {},
  });
  sub.add(
    d.raft.leader$.subscribe({
      next: armLeaderless,
      error: () => {},
    }),
  );
  sub.add(
    d.links$.subscribe({
      next: (l) => {
        if (l.state === 'down' && l.reason?.startsWith('SYNOD_ERR_PEER_REMOVED'))
          suspect(`${l.peer} closed its link: ${l.reason}`);
      },
      error: () => {},
    }),
  );
  sub.add(() => {
    done = true;
    stopTimers();
  });
  return sub;
}
