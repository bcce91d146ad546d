/**
 * The replica snapshot image of a Multi-Paxos learner: what `MultiLearnerCore` stores in its
 * `SnapshotStore`, sends in `mp.catchup-reply.snapshot.data`, and what a restore writes into a
 * data directory (`writePaxosDataDir`, restore.ts).
 *
 * Format (msgpack, lib/codec): `{ v, sm, sessions }` where
 * - `sm` is the state machine's own image (`StateMachine.snapshot()`, e.g. KvStateMachine's);
 * - `sessions` is the Paxos client-session table (`ClientSessions.toImage()`, sessions.ts):
 *   `{ window, clients: [[clientId, maxSeq, seqs[], results[]], ...] }`. A replica applies a
 *   `(clientId, seq)` command at most once by this table, so a backup that replays slots on
 *   top of an image must carry the table along to decide duplicates as the cluster did.
 * - Version 2 (written when the table has such a client) also allows `[clientId, maxSeq, n]`:
 *   the window holds the `n` seqs `maxSeq - n + 1 .. maxSeq`, each with result `null` (one
 *   tuple instead of 2n values). Version 1 images (no such tuples) are written as before, so
 *   older readers read them; both versions are read.
 *
 * `decodeReplicaImage` returns the table with every client in the full form (seqs and
 * results spelled out), and refuses anything else with `SYNOD_ERR_PAXOS_BAD_STATE`.
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { encodeValueSliced } from '../../lib/codec-sliced.js';
import { PaxosError } from './errors.js';
import type { SessionsImage } from './sessions.js';

export interface ReplicaImage {
  /** The state machine's snapshot image. */
  readonly sm: Uint8Array;
  /** The client-session table. */
  readonly sessions: SessionsImage;
}

/** An empty session table (a restore from an image without sessions). */
export function emptySessions(window = 256): SessionsImage {
  return { window, clients: [] };
}

export function encodeReplicaImage(image: ReplicaImage): Uint8Array {
  return encodeValue(imageRecord(image.sm, image.sessions));
}

/** The record both encoders write: checked, with the format version its sessions need. */
function imageRecord(
  sm: unknown,
  sessions: SessionsImage,
): { v: number; sm: Uint8Array; sessions: SessionsImage } {
  const problem = sessionsProblem(sessions);
  if (!(sm instanceof Uint8Array) || problem !== undefined) {
    throw new PaxosError(
      'SYNOD_ERR_PAXOS_BAD_STATE',
      `not a replica image: ${problem ?? 'sm is not bytes'}`,
    );
  }
  return { v: sessions.clients.some(isCompact) ? 2 : 1, sm, sessions };
}

/**
 * `encodeReplicaImage`'s bytes, encoded in slices (lib/codec-sliced.ts) with `await pause()`
 * between them, the state machine's image (`sm`, from `StateMachine.snapshotAsync`) taken by
 * reference instead of being copied through the encoder. `sessions` must not change until the
 * promise settles (`ClientSessions.toImage()` is a fresh copy).
 */
export async function encodeReplicaImageSliced(
  sm: Promise<Uint8Array>,
  sessions: SessionsImage,
  pause: () => Promise<void>,
): Promise<Uint8Array> {
  return encodeValueSliced(imageRecord(await sm, sessions), pause);
}

function isCompact(c: unknown): boolean {
  return Array.isArray(c) && c.length === 3 && typeof c[2] === 'number';
}

/** The table with compact clients (`[id, maxSeq, n]`) spelled out in the full form. */
function expandSessions(s: SessionsImage): SessionsImage {
  if (!s.clients.some(isCompact)) return s;
  return {
    window: s.window,
    clients: s.clients.map((c) => {
      if (!isCompact(c)) return c;
      const [id, maxSeq, n] = c as readonly [string, number, number];
      return [
        id,
        maxSeq,
        Array.from({ length: n }, (_, i) => maxSeq - n + 1 + i),
        new Array<unknown>(n).fill(null),
      ];
    }),
  };
}

export function decodeReplicaImage(data: Uint8Array): ReplicaImage {
  const bad = (why: string) =>
    new PaxosError('SYNOD_ERR_PAXOS_BAD_STATE', `snapshot image is not a replica image: ${why}`);
  let img: { v?: unknown; sm?: unknown; sessions?: unknown };
  try {
    img = decodeValue(data) as typeof img;
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (img === null || typeof img !== 'object') throw bad('not an object');
  if (img.v !== 1 && img.v !== 2) throw bad(`unknown version ${JSON.stringify(img.v)}`);
  if (!(img.sm instanceof Uint8Array)) throw bad('sm is not bytes');
  const problem = sessionsProblem(img.sessions, img.v === 2);
  if (problem !== undefined) throw bad(problem);
  return { sm: img.sm, sessions: expandSessions(img.sessions as SessionsImage) };
}

function sessionsProblem(s: unknown, compactAllowed = true): string | undefined {
  if (s === null || typeof s !== 'object') return 'sessions is not an object';
  const x = s as { window?: unknown; clients?: unknown };
  if (typeof x.window !== 'number' || !Number.isSafeInteger(x.window) || x.window < 1) {
    return 'sessions.window is not a positive integer';
  }
  if (!Array.isArray(x.clients)) return 'sessions.clients is not an array';
  for (const c of x.clients as unknown[]) {
    if (compactAllowed && isCompact(c)) {
      const [id, maxSeq, n] = c as unknown[];
      if (
        typeof id !== 'string' ||
        !Number.isSafeInteger(maxSeq) ||
        !Number.isSafeInteger(n) ||
        (n as number) < 1 ||
        (n as number) > x.window
      ) {
        return `sessions.clients holds a malformed entry ${JSON.stringify(c)?.slice(0, 80)}`;
      }
      continue;
    }
    if (
      !Array.isArray(c) ||
      (c.length !== 3 && c.length !== 4) ||
      typeof c[0] !== 'string' ||
      typeof c[1] !== 'number' ||
      !Array.isArray(c[2]) ||
      (c.length === 4 && (!Array.isArray(c[3]) || c[3].length !== c[2].length))
    ) {
      return `sessions.clients holds a malformed entry ${JSON.stringify(c)?.slice(0, 80)}`;
    }
  }
  return undefined;
}
