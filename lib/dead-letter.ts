/**
 * A message that could not be delivered or processed. Every rejection in the runtime and
 * the transports ends here with a stable code, so nothing disappears silently.
 */
export type DeadLetterCode =
  | 'SYNOD_ERR_NO_SUCH_ACTOR'
  | 'SYNOD_ERR_MAILBOX_FULL'
  | 'SYNOD_ERR_ACTOR_STOPPED'
  | 'SYNOD_ERR_BAD_MESSAGE'
  | 'SYNOD_ERR_UNHANDLED'
  | 'SYNOD_ERR_NO_ROUTE'
  | 'SYNOD_ERR_LATE_REPLY'
  | 'SYNOD_ERR_UNDECODABLE'
  | 'SYNOD_ERR_SYSTEM_STOPPED'
  | 'SYNOD_ERR_FORGED_NOTICE'
  | (string & {});

export interface DeadLetter {
  readonly to: string;
  readonly from: string | undefined;
  readonly message: unknown;
  readonly code: DeadLetterCode;
  readonly reason: string;
  /**
   * For an envelope that arrived from another node and was refused on receipt: that node,
   * as its connection authenticated it (or, when the transport cannot tell, the node of the
   * envelope's verified sender).
   */
  readonly peer?: string;
}
