/**
 * The streamed restore: one full backup written straight into Raft data directories, chunk by
 * chunk, without building the state machine in memory.
 *
 * - A `map` node's snapshot image is the sorted record stream of records.ts (datadir.ts
 *   `encodeImage`), and a full backup's chunks, in manifest order, are exactly that stream (the
 *   writer refuses keys that do not ascend and deletes in a full). So a restore of a full
 *   backup with nothing to replay can copy the verified chunks into the snapshot file as they
 *   arrive.
 * - A `kv` node's snapshot image (kv-state.ts `kvNodeImage`: Raft sessions around the KV state
 *   machine's image) is built from the same stream record by record (kv-image-stream.ts),
 *   byte for byte what the in-memory path writes. Its elements are spooled to a file beside
 *   the first destination (the msgpack header in front of them holds their total length,
 *   known only at the end), then the header, the spool and the tail are written into every
 *   snapshot. Memory stays a few chunks, not the state (session 14: a 256 MB kv state took
 *   1.4 GB of RSS in memory).
 *
 * Every check of the in-memory restore (restore.ts) stays, on the stream:
 *
 * - each chunk is read and checked by the chunk store (structure, GCM tag when encrypted,
 *   decompression, plain length, content address), four ahead of the one being written;
 * - its records must parse, hold no delete, and their keys ascend strictly across the whole
 *   stream (so each key is there once);
 * - the key count must equal the manifest's, and so must the state digest: for a manifest of
 *   digest version 2 (digest.ts), the SHA-256 of the stream, hashed here chunk by chunk (no
 *   per-record hash; the restored state's additive digest is then the manifest's); for an
 *   older manifest, the sum of each put record's hash (computed on the chunk workers with the
 *   address);
 * - kv: every reserved key must be one the KV state knows, and every user value a KV value.
 *
 * The snapshots are committed only after the last chunk checked out: a restore that fails
 * (a corrupt or missing chunk, a digest mismatch, an I/O error) aborts the snapshot writers
 * and removes what it wrote, so the destination is left as it was (absent or empty) and never
 * holds a snapshot of wrong data. A crash in the middle leaves only a snapshot `.tmp` file
 * (and for kv the spool), which a node ignores; the destination is then not empty and a new
 * restore refuses it until it is cleared (as for any interrupted restore).
 *
 * Measured (benchmarks/backup.md, session 8): at 1 GB the in-memory restore spends most of
 * its time building a million values and in the garbage collector; the streamed one does not.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type DataDir, openDataDir } from '../../lib/storage/data-dir.js';
import type { SnapshotWriter } from '../../lib/storage/types.js';
import {
  type RestoredDirOptions,
  type RestoreSummary,
  requireEmptyDest,
  writeRestoreInfo,
} from './datadir.js';
import { StateDigest, StreamDigest } from './digest.js';
import { BackupError } from './errors.js';
import { KvImageStream } from './kv-image-stream.js';
import type { Manifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import { forEachRecord } from './records.js';
import type { Repository } from './repository.js';
import type { RestorePlan } from './restore.js';
import { stateKindOf } from './state-kind.js';

/** Chunks read and checked ahead of the one being written. */
const READ_AHEAD = 4;

/** Spool of a kv image's elements, beside the first destination's storage. */
const KV_SPOOL = '.restore-image.spool';

/**
 * Whether `plan` can be restored by streaming: a `map` or `kv` repository of a Raft cluster
 * (a Multi-Paxos data directory is written by the in-memory path), the target one full
 * backup, nothing to replay.
 */
export function streamable(repo: Repository, plan: RestorePlan): boolean {
  const only = plan.chain.length === 1 ? plan.chain[0] : undefined;
  const kind = stateKindOf(repo).name;
  return (
    (kind === 'map' || kind === 'kv') &&
    repo.config.protocol !== 'paxos' &&
    only !== undefined &&
    only.type === 'full' &&
    plan.replay === 0 &&
    plan.index === only.index
  );
}

export interface StreamDest {
  readonly dir: string;
  /** Write a `synod node --data` directory (node.json, storage in raft/) for this member. */
  readonly node?: { readonly id: string; readonly cluster: string };
}

interface OpenDest {
  readonly dest: StreamDest;
  /** Whether the directory existed before (then it was empty, and is emptied again). */
  readonly existed: boolean;
  dd?: DataDir;
  writer?: SnapshotWriter;
}

/**
 * Restores the full backup `plan` names (see `streamable`) into every directory of `dests`.
 * Returns what the restore checked (as `executeRestore`'s result, without a state).
 */
export async function streamRestoreToDataDirs(
  repo: Repository,
  plan: RestorePlan,
  dests: readonly StreamDest[],
  opts: Omit<RestoredDirOptions<unknown>, 'node' | 'layout' | 'encodeImage'> & {
    readonly progress?: ProgressFn;
  },
): Promise<RestoreSummary> {
  if (!streamable(repo, plan)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a streamed restore needs one full backup of a map or kv repository of a Raft cluster and nothing to replay',
    );
  }
  if (opts.members.length === 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a restored cluster needs at least one member',
    );
  }
  const m = plan.chain[0] as Manifest;
  const open: OpenDest[] = [];
  for (const dest of dests) {
    await requireEmptyDest(dest.dir);
    open.push({ dest, existed: await exists(dest.dir) });
  }
  let committed = false;
  try {
    for (const o of open) {
      const storage = o.dest.node ? path.join(o.dest.dir, 'raft') : o.dest.dir;
      o.dd = await openDataDir(storage);
      o.writer = await o.dd.snapshots.create({
        index: m.index,
        term: m.term,
        membership: { voters: [...opts.members], learners: [] },
      });
    }
    const checked =
      stateKindOf(repo).name === 'kv'
        ? await streamKv(repo, m, open, opts.progress)
        : await streamMap(repo, m, open, opts.progress);
    for (const o of open) {
      const dd = o.dd as DataDir;
      await (o.writer as SnapshotWriter).commit();
      o.writer = undefined;
      if (m.index > 0) await dd.log.compact(m.index, m.term);
      await dd.hardState.save({ term: m.term, vote: null, commit: m.index });
      await dd.close();
      o.dd = undefined;
    }
    committed = true;
    const summary: RestoreSummary = {
      index: m.index,
      term: m.term,
      time: m.time,
      digest: checked.digest,
      keyCount: checked.keyCount,
      chain: [m.id],
      replayed: 0,
      chunksRead: checked.chunks,
      bytesRead: checked.bytes,
      warnings: plan.warnings,
    };
    for (const o of open) {
      await writeRestoreInfo(o.dest.dir, summary, {
        ...opts,
        ...(o.dest.node ? { node: o.dest.node } : {}),
      });
    }
    return summary;
  } finally {
    if (!committed) await undo(open);
  }
}

interface Checked {
  digest: string;
  keyCount: number;
  chunks: number;
  bytes: number;
}

/** A map image: the checked chunks themselves, into every snapshot writer. */
async function streamMap(
  repo: Repository,
  m: Manifest,
  open: readonly OpenDest[],
  progress: ProgressFn | undefined,
): Promise<Checked> {
  // The snapshot writer hashes the data it is given anyway (its checksum is the SHA-256 of
  // exactly this stream), so with a destination that can say its running checksum, that hash
  // is a version 2 manifest's check; with none (a dry run), the stream is hashed here.
  const hasher = open.find((o) => o.writer?.checksumSoFar !== undefined)?.writer;
  /** Snapshot writes in flight (each writer keeps its own order). */
  const writes: Promise<unknown>[] = [];
  try {
    return await streamChunks(
      repo,
      m,
      async (plain) => {
        // The snapshot writers hash, copy and write the bytes in order; at most two chunks'
        // writes are waited for behind the one being checked.
        for (const o of open) {
          const w = (o.writer as SnapshotWriter).write(plain);
          w.catch(() => undefined);
          writes.push(w);
        }
        while (writes.length > 2 * open.length) await writes.shift();
      },
      async () => {
        await Promise.all(writes);
      },
      hasher?.checksumSoFar ? () => hasher.checksumSoFar?.() as string : undefined,
      progress,
    );
  } finally {
    await Promise.all(writes.map((p) => p.catch(() => undefined)));
  }
}

/**
 * A kv image (kv-image-stream.ts): the elements spooled beside the first destination while
 * the chunks are checked, then header, spool and tail into every snapshot writer.
 */
async function streamKv(
  repo: Repository,
  m: Manifest,
  open: readonly OpenDest[],
  progress: ProgressFn | undefined,
): Promise<Checked> {
  const first = open[0];
  const spoolPath = first ? path.join(first.dest.dir, KV_SPOOL) : undefined;
  const spool = spoolPath ? await fs.open(spoolPath, 'w+') : undefined;
  try {
    let spooled = 0;
    const image = new KvImageStream(async (piece) => {
      if (!spool) return; // a dry run: checked, not kept
      const at = spooled;
      spooled += piece.length;
      let off = 0;
      while (off < piece.length) {
        const { bytesWritten } = await spool.write(piece, off, piece.length - off, at + off);
        off += bytesWritten;
      }
    });
    let finished: { head: Buffer; tail: Buffer; bodyBytes: number } | undefined;
    const checked = await streamChunks(
      repo,
      m,
      (plain, id) => image.add(plain, id),
      async () => {
        finished = await image.finish(m.index);
      },
      undefined,
      progress,
    );
    const { head, tail, bodyBytes } = finished as NonNullable<typeof finished>;
    if (spool && bodyBytes !== spooled) {
      throw new BackupError('SYNOD_ERR_BACKUP_IO', `the restore spool ${spoolPath} is short`);
    }
    const writers = open.map((o) => o.writer as SnapshotWriter);
    // Each writer copies (and hashes) the bytes when called, so the read buffer is reused at
    // once; the file writes run behind, at most two pieces per writer, while the next piece
    // is read.
    const writes: Promise<unknown>[] = [];
    // Resolves (once at most two pieces per writer are in flight) to the piece's own writes.
    const writeAll = async (
      bytes: Buffer,
      owned?: boolean,
    ): Promise<{ settled: Promise<unknown> }> => {
      const mine: Promise<unknown>[] = [];
      for (const w of writers) {
        const p = owned ? w.write(bytes, { owned: true }) : w.write(bytes);
        p.catch(() => undefined);
        writes.push(p);
        mine.push(p);
      }
      while (writes.length > 2 * writers.length) await writes.shift();
      return { settled: Promise.all(mine.map((p) => p.catch(() => undefined))) };
    };
    try {
      await writeAll(head);
      if (spool) {
        // The spool is read into a ring of buffers handed to the writers (no copy per writer
        // and no fresh memory per piece); a buffer is read into again once its writes settled.
        const ring = [0, 1, 2, 3].map(() => Buffer.allocUnsafe(1 << 20));
        const free: Array<Promise<unknown> | undefined> = ring.map(() => undefined);
        for (let off = 0, k = 0; off < bodyBytes; k = (k + 1) % ring.length) {
          const buf = ring[k] as Buffer;
          await free[k];
          const want = Math.min(buf.length, bodyBytes - off);
          const { bytesRead } = await spool.read(buf, 0, want, off);
          if (bytesRead === 0) {
            throw new BackupError('SYNOD_ERR_BACKUP_IO', `the restore spool ${spoolPath} is short`);
          }
          free[k] = (await writeAll(buf.subarray(0, bytesRead), true)).settled;
          off += bytesRead;
        }
      }
      await writeAll(tail);
      await Promise.all(writes);
    } finally {
      await Promise.all(writes.map((p) => p.catch(() => undefined)));
    }
    return checked;
  } finally {
    await spool?.close().catch(() => undefined);
    if (spoolPath) await fs.rm(spoolPath, { force: true });
  }
}

/**
 * Reads and checks the full backup's chunks in order (see the module comment), handing each
 * to `consume`; `done` runs after the last one, before the digest check. A version 2 digest is
 * `writtenHash()` when given (the SHA-256 of the stream, hashed by whoever wrote it), else the
 * stream is hashed here; a version 1 digest is the workers' record sums.
 */
async function streamChunks(
  repo: Repository,
  m: Manifest,
  consume: (plain: Buffer, id: string) => Promise<void>,
  done: () => Promise<void>,
  writtenHash: (() => string) | undefined,
  progress: ProgressFn | undefined,
): Promise<Checked> {
  const v2 = m.streamDigest !== undefined;
  const stream = v2 && !writtenHash ? new StreamDigest() : undefined;
  const digest = new StateDigest();
  let keys = 0;
  type Read = Awaited<ReturnType<Repository['chunks']['getWithDigests']>>;
  const inflight: Array<Promise<Read> | undefined> = [];
  const fetch = (k: number) => {
    const c = m.chunks[k];
    if (!c) return;
    const p = repo.chunks.getWithDigests(c.id, c.size, v2 ? 'scan' : 'full');
    p.catch(() => undefined);
    inflight[k] = p;
  };
  for (let k = 0; k < Math.min(READ_AHEAD, m.chunks.length); k++) fetch(k);
  let prev: string | undefined;
  let bytes = 0;
  let chunks = 0;
  const corrupt = (id: string, why: string): never => {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
      `chunk ${id} of full backup ${m.id}: ${why}`,
      { chunk: id },
    );
  };
  try {
    for (let k = 0; k < m.chunks.length; k++) {
      const id = (m.chunks[k] as { id: string }).id;
      const { plain, fullScan: scan } = await (inflight[k] as Promise<Read>);
      inflight[k] = undefined;
      fetch(k + READ_AHEAD);
      if (!scan) {
        // The worker's scan stops at the first malformed record: the decoder names it.
        forEachRecord(plain, id, () => {});
        corrupt(id, 'records do not parse');
      }
      const s = scan as NonNullable<typeof scan>;
      if (s.deletes > 0) corrupt(id, 'holds a delete');
      const first = s.firstKey;
      if (!s.ascending || (prev !== undefined && first !== undefined && !(prev < first))) {
        corrupt(
          id,
          `its keys${first !== undefined && prev !== undefined && !(prev < first) ? ` (${JSON.stringify(first.slice(0, 60))} after ${JSON.stringify(prev.slice(0, 60))})` : ''} do not ascend (a full backup holds each key once, in ascending order)`,
        );
      }
      if (s.lastKey !== undefined) prev = s.lastKey;
      if (stream) stream.update(plain);
      else if (v2) {
        // hashed by the snapshot writer (below)
      } else if (s.sum) digest.addSum(s.sum, s.puts);
      else corrupt(id, 'no record digests (internal error)');
      keys += s.puts;
      await consume(plain, id);
      bytes += plain.length;
      chunks++;
      progress?.({
        phase: 'restore',
        bytes,
        totalBytes: m.bytes,
        chunks,
        totalChunks: m.chunks.length,
      });
    }
    await done();
  } finally {
    // Reads still in flight are not waited for by anyone else.
    await Promise.all(inflight.map((p) => p?.catch(() => undefined)));
  }
  const [got, expected] = v2
    ? [stream ? stream.hex() : (writtenHash as () => string)(), m.streamDigest as string]
    : [digest.hex(), m.stateDigest];
  if (got !== expected || keys !== m.keyCount) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
      `restored state of backup ${m.id} does not match its manifest (${v2 ? 'stream ' : ''}digest ${got.slice(0, 16)}… with ${keys} keys, manifest ${expected.slice(0, 16)}… with ${m.keyCount} keys)`,
      { backup: m.id, digest: got, expected },
    );
  }
  // The stream is the captured state byte for byte: its additive digest is the manifest's.
  return { digest: v2 ? m.stateDigest : digest.hex(), keyCount: keys, chunks, bytes };
}

/** After a failure: abort the writers, close the stores, leave each destination as found. */
async function undo(open: readonly OpenDest[]): Promise<void> {
  for (const o of open) {
    await o.writer?.abort().catch(() => undefined);
    await o.dd?.close().catch(() => undefined);
    if (!o.existed) {
      await fs.rm(o.dest.dir, { recursive: true, force: true });
    } else {
      for (const name of await fs.readdir(o.dest.dir).catch(() => [] as string[])) {
        await fs.rm(path.join(o.dest.dir, name), { recursive: true, force: true });
      }
    }
  }
}

async function exists(dir: string): Promise<boolean> {
  try {
    await fs.stat(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
