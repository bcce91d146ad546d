/**
 * The read index of a running Multi-Paxos cluster, for a reader outside it (a backup puller,
 * a monitoring tool): the highest slot the distinguished proposer had assigned when the
 * question arrived, confirmed by a phase-2 quorum (so no newer leader existed then). Every
 * write acknowledged to a client before the question was asked sits at or below it, so a
 * backup that holds every slot up to it holds every acknowledged write.
 *
 * It asks `<member>/<path>/proposer` `mp.read` (an ordinary ask, answered over any transport:
 * a WebSocket peer the cluster does not know is accepted when it has the cluster secret) and
 * follows `NotLeader` hints. No timers: `ask` carries the timeout.
 *
 * Slots up to the index may not all be chosen yet when the answer arrives; they will be (by
 * this leader or, with no-ops or the same values, by the next): keep pulling (`mp.catchup`
 * to a learner) until the index is decided.
 */
import { nodeOf } from '../../lib/address.js';
import { PaxosError } from './errors.js';
import type { ReadStart } from './multi-proposer-actor.js';

export type ReadIndexAsk = (
  to: string,
  msg: { readonly type: 'mp.read'; readonly barrier: string },
  timeoutMs: number,
) => Promise<unknown>;

export interface ReadIndexOptions {
  readonly ask: ReadIndexAsk;
  /** Node ids of the cluster's members. */
  readonly members: readonly string[];
  /** Ask this member first (e.g. the leader last answering). */
  readonly first?: string;
  /** Actor path prefix of the Paxos roles. Default 'paxos'. */
  readonly path?: string;
  /** Per ask. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** A barrier id for the asks (any string, for tracing). Default 'read-index'. */
  readonly id?: string;
}

export interface ReadIndex {
  readonly index: number;
  /** The member whose proposer answered (the distinguished proposer). */
  readonly leader: string;
}

/**
 * Resolves with the read index, or rejects with `SYNOD_ERR_PAXOS_NO_LEADER` (with what each
 * member said) when no member answered as the leader: during an election; retry later.
 */
export async function paxosReadIndex(opts: ReadIndexOptions): Promise<ReadIndex> {
  const prefix = opts.path ?? 'paxos';
  const timeoutMs = opts.timeoutMs ?? 2000;
  const members = [...opts.members];
  const order: string[] = [];
  if (opts.first !== undefined && members.includes(opts.first)) order.push(opts.first);
  for (const m of members) if (!order.includes(m)) order.push(m);
  const asked = new Set<string>();
  const said: string[] = [];
  // each member at most once; a hint jumps the queue
  while (order.length > 0) {
    const m = order.shift() as string;
    if (asked.has(m)) continue;
    asked.add(m);
    let r: ReadStart;
    try {
      r = (await opts.ask(
        `${m}/${prefix}/proposer`,
        { type: 'mp.read', barrier: opts.id ?? 'read-index' },
        timeoutMs,
      )) as ReadStart;
    } catch (err) {
      said.push(`${m}: ${(err as Error).message}`);
      continue;
    }
    if (r?.ok === true && 'index' in r && Number.isSafeInteger(r.index)) {
      return { index: r.index, leader: m };
    }
    if (r?.ok === true) {
      said.push(`${m}: reads go through the log (reads: 'log'), no read index to give`);
      continue;
    }
    const hint =
      r?.ok === false && typeof r.leaderHint === 'string' ? nodeOf(r.leaderHint) : undefined;
    said.push(
      `${m}: ${r?.ok === false ? r.code : 'malformed answer'}${hint ? ` (leader ${hint})` : ''}`,
    );
    if (hint !== undefined && members.includes(hint) && !asked.has(hint)) order.unshift(hint);
  }
  throw new PaxosError(
    'SYNOD_ERR_PAXOS_NO_LEADER',
    `no member answered as the Multi-Paxos leader: ${said.join('; ')}`,
  );
}
