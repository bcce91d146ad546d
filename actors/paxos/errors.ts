/**
 * Errors raised by the Paxos actors. Every error carries a stable `code` string so callers
 * (and the CLI) can branch on it without parsing messages.
 */
export type PaxosErrorCode =
  /** Phase-1 and phase-2 quorums do not intersect: the configuration would be unsafe. */
  | 'SYNOD_ERR_PAXOS_QUORUM_NO_INTERSECTION'
  /** A configuration is malformed (empty member list, duplicates, sizes out of range). */
  | 'SYNOD_ERR_PAXOS_BAD_CONFIG'
  /** A message or stored record does not have the expected shape. */
  | 'SYNOD_ERR_PAXOS_BAD_MESSAGE'
  /** Stored acceptor state could not be read back (corrupt or from another format). */
  | 'SYNOD_ERR_PAXOS_BAD_STATE'
  /**
   * A Multi-Paxos acceptor's journal write failed (not for lack of space): the journal refuses
   * to load or write again, since its stores may hold what never reached the disk.
   */
  | 'SYNOD_ERR_PAXOS_JOURNAL_FAILED'
  /** A single-decree proposer was asked to propose while a proposal is in progress. */
  | 'SYNOD_ERR_PAXOS_BUSY'
  /** A restore target already holds Multi-Paxos state (restore.ts never overwrites it). */
  | 'SYNOD_ERR_PAXOS_RESTORE_NOT_EMPTY'
  /** A restore target holds the other protocol's state (`<data>/raft`). */
  | 'SYNOD_ERR_DATADIR_OTHER_PROTOCOL'
  /** No member answered as the distinguished proposer (read-index.ts): retry later. */
  | 'SYNOD_ERR_PAXOS_NO_LEADER';

export class PaxosError extends Error {
  constructor(
    readonly code: PaxosErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PaxosError';
  }
}
