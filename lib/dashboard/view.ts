/**
 * What the dashboard shows: a plain-data view of a cluster, the messages flowing between
 * nodes (sampled), and the controls a user may press. Sources (an in-process demo cluster,
 * or a real node reporting itself and its peers) produce these; the server sends them to
 * pages as JSON.
 */
import type { Observable } from 'rxjs';

export interface LogTailEntry {
  index: number;
  term: number;
  /** A short label of the command (e.g. "put k1"). */
  label?: string;
}

export interface NodeView {
  id: string;
  /** False when the node is stopped or unreachable. */
  up: boolean;
  protocol: 'raft' | 'paxos' | 'gossip' | string;
  role?: string;
  term?: number;
  leader?: string | null;
  commitIndex?: number;
  appliedIndex?: number;
  /** The newest entries of the node's log, oldest first. */
  logTail?: LogTailEntry[];
  voters?: string[];
  learners?: string[];
  /** Protocol-specific details (Paxos ballots and slots, gossip ring, backups…). */
  extra?: Record<string, unknown>;
}

export interface ClusterView {
  cluster: string;
  nodes: NodeView[];
  /** Groups of a current partition (nodes in different groups cannot talk), if any. */
  partitions?: string[][];
  /**
   * Pairs of running nodes whose link is down on both ends (a firewall, a cable), as the
   * nodes report them; a real cluster's source sets it. Unreachable nodes are shown down instead.
   */
  linksDown?: [string, string][];
  /** Backups in the catalog, newest last. */
  backups?: { id: string; type: string; index: number; time: string }[];
  /** Free-form lines about what is going on (the demo's tour narrates here). */
  narration?: string[];
  time: number;
}

export interface MessageSample {
  from: string;
  to: string;
  type: string;
}

export type Control =
  | { op: 'stop'; node: string }
  | { op: 'restart'; node: string }
  | { op: 'isolate'; node: string }
  | { op: 'heal' }
  | { op: 'transfer'; to: string }
  | { op: 'put'; key: string; value: string }
  | { op: 'backup' }
  | { op: 'restore'; backup?: string };

export interface ControlResult {
  ok: boolean;
  message: string;
}

export interface DashboardSource {
  view(): ClusterView;
  /** Emits whenever the view may have changed (the server coalesces). */
  readonly changes$: Observable<unknown>;
  /** Every message between nodes (the server samples). */
  readonly messages$?: Observable<MessageSample>;
  control(control: Control): Promise<ControlResult>;
  /** Releases the source's timers (called by the server's `stop`). */
  close?(): void;
}

const CONTROL_OPS = new Set([
  'stop',
  'restart',
  'isolate',
  'heal',
  'transfer',
  'put',
  'backup',
  'restore',
]);

/** Validates a control sent by a page; returns a reason when it is malformed. */
export function controlProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'control is not an object';
  const c = value as Record<string, unknown>;
  if (typeof c.op !== 'string' || !CONTROL_OPS.has(c.op)) return 'unknown control';
  const str = (k: string, max = 256) =>
    typeof c[k] === 'string' && (c[k] as string).length > 0 && (c[k] as string).length <= max;
  switch (c.op) {
    case 'stop':
    case 'restart':
    case 'isolate':
      return str('node', 128) ? undefined : 'control needs a node';
    case 'transfer':
      return str('to', 128) ? undefined : 'control needs a target node';
    case 'put':
      if (!str('key', 1024)) return 'put needs a key (1–1024 characters)';
      return typeof c.value === 'string' && c.value.length <= 65_536
        ? undefined
        : 'put needs a string value (≤ 64 KiB)';
    case 'restore':
      return c.backup === undefined || str('backup', 256) ? undefined : 'bad backup id';
    default:
      return undefined;
  }
}
