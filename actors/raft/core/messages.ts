/**
 * Validation of Raft messages arriving from the network. A malformed message is rejected
 * with a reason (the shell dead-letters it with SYNOD_ERR_RAFT_BAD_MESSAGE); it never
 * reaches the core.
 */
import { MESSAGE_TYPES, type RaftMessage, READ_WITNESS_VERSION } from './types.js';

/**
 * The largest term a message may carry: far below 2^53, so `term + 1` (and any term a real
 * cluster reaches: a thousand elections a second for 34 years) stays an exact integer. A
 * message above it is malformed, so one bad message cannot push a node's term to where
 * elections stop working.
 */
export const MAX_TERM = 2 ** 40 - 1;
/** The largest log index (or byte offset) a message may carry: `index + n` stays exact. */
export const MAX_INDEX = 2 ** 50;

const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;
const isIdx = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_INDEX;
const isTerm = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TERM;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function entryProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return 'entry is not an object';
  const x = e as Record<string, unknown>;
  if (!isIdx(x.index) || x.index < 1) return 'entry index is not a positive integer';
  if (!isTerm(x.term)) return 'entry term is not an integer in [0, 2^40)';
  if (x.type !== 'normal' && x.type !== 'config' && x.type !== 'noop') return 'bad entry type';
  if (!isBytes(x.data)) return 'entry data is not bytes';
  return undefined;
}

function membershipProblem(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null) return 'membership is not an object';
  const x = m as Record<string, unknown>;
  const list = (v: unknown) => Array.isArray(v) && v.every(isStr);
  if (!list(x.voters) || !list(x.learners)) return 'membership lists are not string arrays';
  if (x.votersOutgoing !== undefined && !list(x.votersOutgoing)) return 'bad votersOutgoing';
  if (x.learnersNext !== undefined && !list(x.learnersNext)) return 'bad learnersNext';
  return undefined;
}

/** Returns why `m` is not a valid RaftMessage, or undefined if it is. */
export function raftMessageProblem(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null) return 'message is not an object';
  const x = m as Record<string, unknown>;
  if (typeof x.type !== 'string' || !MESSAGE_TYPES.has(x.type)) return 'unknown message type';
  if (!isStr(x.from) || !isStr(x.to)) return 'from/to are not node ids';
  if (!isTerm(x.term)) return 'term is not an integer in [0, 2^40)';
  switch (x.type) {
    case 'vote':
    case 'preVote':
      if (!isIdx(x.lastIndex) || !isTerm(x.lastTerm)) return 'bad lastIndex/lastTerm';
      if (x.transfer !== undefined && !isBool(x.transfer)) return 'bad transfer flag';
      return undefined;
    case 'voteResp':
    case 'preVoteResp':
      if (!isBool(x.reject)) return 'bad reject flag';
      if (x.leader !== undefined && !isStr(x.leader)) return 'bad leader hint';
      return undefined;
    case 'append': {
      if (!isIdx(x.prevIndex) || !isTerm(x.prevTerm) || !isIdx(x.commit)) return 'bad indexes';
      if (!Array.isArray(x.entries)) return 'entries is not an array';
      let expect = x.prevIndex + 1;
      const es = x.entries as unknown[];
      for (let i = 0; i < es.length; i++) {
        const e = es[i];
        const p = entryProblem(e);
        if (p) return p;
        if ((e as { index: number }).index !== expect++) return 'entries are not consecutive';
      }
      return undefined;
    }
    case 'appendResp':
      if (!isIdx(x.index) || !isBool(x.reject)) return 'bad index/reject';
      if (x.hintIndex !== undefined && !isIdx(x.hintIndex)) return 'bad hintIndex';
      if (x.hintTerm !== undefined && !isTerm(x.hintTerm)) return 'bad hintTerm';
      return undefined;
    case 'heartbeat':
      if (!isIdx(x.commit)) return 'bad commit';
      if (x.context !== undefined && !isStr(x.context)) return 'bad context';
      return undefined;
    case 'heartbeatResp':
      if (x.context !== undefined && !isStr(x.context)) return 'bad context';
      return undefined;
    case 'snapshot': {
      const meta = x.meta as Record<string, unknown> | null;
      if (typeof meta !== 'object' || meta === null || !isIdx(meta.index) || !isTerm(meta.term)) {
        return 'bad snapshot meta';
      }
      const mp = membershipProblem(meta.membership);
      if (mp) return mp;
      if (!isIdx(x.totalSize) || !isIdx(x.offset) || !isBytes(x.data) || !isBool(x.done)) {
        return 'bad snapshot chunk';
      }
      if (x.offset + x.data.byteLength > x.totalSize) return 'chunk beyond the snapshot size';
      return undefined;
    }
    case 'snapshotResp':
      if (!isIdx(x.index) || !isIdx(x.offset) || !isBool(x.reject)) return 'bad snapshot ack';
      return undefined;
    case 'timeoutNow':
      return undefined;
    case 'readIndex':
      return isStr(x.context) ? undefined : 'bad context';
    case 'readIndexResp':
      if (!isStr(x.context) || !isIdx(x.index) || !isBool(x.reject)) return 'bad read response';
      return undefined;
    case 'readWitness':
      if (x.v !== READ_WITNESS_VERSION)
        return `readWitness version ${String(x.v)} is not supported`;
      return isStr(x.key) ? undefined : 'bad witness key';
  }
  return 'unknown message type';
}

export function isRaftMessage(m: unknown): m is RaftMessage {
  return raftMessageProblem(m) === undefined;
}
