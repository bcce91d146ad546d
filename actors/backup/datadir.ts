/**
 * Writes a restored state as a node data directory (lib/storage's layout: snapshots/,
 * log/, hardstate): one snapshot at the restored index and term whose membership is the
 * new cluster's members, a log compacted to that point, and a hard state committing it.
 * A node started on it (with the same member list) resumes from the restored state as a
 * new cluster. restore.json records where it came from (repository, chain, target, digest)
 * and the new cluster id.
 *
 * The snapshot image is the state machine's own format: `encodeImage` (the KV state
 * machine's `snapshot()` once actors/kv provides an adapter; by default the sorted record
 * stream of records.ts, which `MapState`-style machines read back with `decodeImage`).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { openDataDir } from '../../lib/storage/data-dir.js';
import { atomicWriteFile } from '../../lib/storage/fs-util.js';
import { writePaxosDataDir } from '../paxos/restore.js';
import { BackupError } from './errors.js';
import { decodeRecords, recordSize, writeRecord } from './records.js';
import type { RestoreResult } from './restore.js';
import type { SessionRule } from './sessions.js';
import { compareKeys } from './state.js';

export interface RestoredDirOptions<Op> {
  readonly clusterId: string;
  readonly members: readonly string[];
  readonly encodeImage?: (state: SessionRule<Op>) => Uint8Array;
  /**
   * Write a `synod node --data` directory: node.json (cluster name, node id) beside the
   * storage in raft/. Without it, `dir` is the storage directory itself.
   */
  readonly node?: { readonly id: string; readonly cluster: string };
  /**
   * Which node storage to write: `raft` (lib/storage's layout, in `raft/` of a node data
   * directory) or `paxos` (`<dir>/paxos`, as `synod node --protocol paxos` reads it: a learner
   * snapshot with the image, acceptors with their floor at the restored index, members.json).
   */
  readonly layout?: 'raft' | 'paxos';
  /** Provenance recorded in restore.json. */
  readonly source: Record<string, unknown>;
  readonly now: number;
}

/** The default snapshot image: every key and value as put records, in key order. */
export function encodeImage(state: {
  entries(): IterableIterator<[string, Uint8Array]>;
}): Uint8Array {
  const entries = [...state.entries()].sort((a, b) => compareKeys(a[0], b[0]));
  let size = 0;
  for (const [k, v] of entries) size += recordSize(k, v);
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  for (const [k, v] of entries) off = writeRecord(buf, off, k, Buffer.byteLength(k), v);
  return buf;
}

export function decodeImage(image: Uint8Array): Array<[string, Uint8Array]> {
  const out: Array<[string, Uint8Array]> = [];
  for (const r of decodeRecords(
    Buffer.from(image.buffer, image.byteOffset, image.byteLength),
    'image',
  )) {
    if (r.value !== undefined) out.push([r.key, r.value]);
  }
  return out;
}

/** What a restore checked and reached (a `RestoreResult` without the state). */
export type RestoreSummary = Omit<RestoreResult<unknown>, 'state'>;

/** Throws SYNOD_ERR_BACKUP_DEST_NOT_EMPTY unless `dir` is absent or empty. */
export async function requireEmptyDest(dir: string): Promise<void> {
  try {
    const names = await fs.readdir(dir);
    if (names.length > 0) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_DEST_NOT_EMPTY',
        `restore destination ${dir} is not empty; restore into a fresh directory`,
        { dir },
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export async function writeRestoredDataDir<Op>(
  dir: string,
  result: RestoreResult<Op>,
  opts: RestoredDirOptions<Op>,
): Promise<{ dir: string; snapshotBytes: number }> {
  if (opts.members.length === 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a restored cluster needs at least one member',
    );
  }
  await requireEmptyDest(dir);
  const image = (opts.encodeImage ?? encodeImage)(result.state);
  if (opts.layout === 'paxos') {
    if (result.index < 1) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        'a Multi-Paxos data directory needs a state at slot 1 or later (the target is the empty state)',
      );
    }
    await writePaxosDataDir({
      dataDir: dir,
      members: [...opts.members],
      index: result.index,
      term: result.term,
      image,
    });
  } else await writeRaftStorage(opts.node ? path.join(dir, 'raft') : dir, result, opts, image);
  await writeRestoreInfo(dir, result, opts);
  return { dir, snapshotBytes: image.byteLength };
}

/** Writes node.json (with `opts.node`) and restore.json beside a restored node's storage. */
export async function writeRestoreInfo(
  dir: string,
  result: RestoreSummary,
  opts: Pick<
    RestoredDirOptions<unknown>,
    'clusterId' | 'members' | 'node' | 'layout' | 'source' | 'now'
  >,
): Promise<void> {
  const info = {
    clusterId: opts.clusterId,
    ...(opts.layout === 'paxos' ? { protocol: 'paxos' } : {}),
    members: opts.members,
    index: result.index,
    term: result.term,
    time: new Date(result.time).toISOString(),
    keyCount: result.keyCount,
    stateDigest: result.digest,
    chain: result.chain,
    replayed: result.replayed,
    restoredAt: new Date(opts.now).toISOString(),
    ...opts.source,
  };
  if (opts.node) {
    const identity = {
      cluster: opts.node.cluster,
      id: opts.node.id,
      createdAt: new Date(opts.now).toISOString(),
    };
    await atomicWriteFile(
      path.join(dir, 'node.json'),
      Buffer.from(`${JSON.stringify(identity, null, 2)}\n`),
    );
  }
  await atomicWriteFile(
    path.join(dir, 'restore.json'),
    Buffer.from(`${JSON.stringify(info, null, 2)}\n`),
  );
}

async function writeRaftStorage<Op>(
  storageDir: string,
  result: RestoreResult<Op>,
  opts: RestoredDirOptions<Op>,
  image: Uint8Array,
): Promise<void> {
  const dd = await openDataDir(storageDir);
  try {
    const w = await dd.snapshots.create({
      index: result.index,
      term: result.term,
      membership: { voters: [...opts.members], learners: [] },
    });
    const step = 1 << 20;
    for (let off = 0; off < image.byteLength; off += step)
      await w.write(image.subarray(off, off + step));
    await w.commit();
    if (result.index > 0) await dd.log.compact(result.index, result.term);
    await dd.hardState.save({ term: result.term, vote: null, commit: result.index });
  } finally {
    await dd.close();
  }
}
