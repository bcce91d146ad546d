/**
 * Restore: choose the nearest backup at or before the target, rebuild its state from its
 * chain, check the state digest against the manifest, then replay archived entries up to
 * the target. The chain is merged newest layer first: a key takes its value from the newest
 * backup that mentions it (a delete there means absent), and a chunk already taken from a
 * newer layer is skipped in older ones (same content, same records, already decided), so
 * every chunk is read at most once, however long the chain. Anything that does not check
 * out (a missing or corrupt chunk, a broken chain, a digest mismatch, a gap in the archive)
 * stops the restore with an error: it never returns wrong data.
 */
import type { Command } from '../../lib/replicated-log.js';
import {
  type ArchivedEntry,
  type ArchiveTiming,
  decodeArchivedCommand,
  LogArchive,
  type SegmentInfo,
} from './archive.js';
import { StateDigest, StreamDigest } from './digest.js';
import { BackupError, isBackupError } from './errors.js';
import type { Manifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import { forEachRecord } from './records.js';
import type { Repository, ScannedManifest } from './repository.js';
import { type SessionRule, sessionRuleFor } from './sessions.js';
import type { KeyedStateFactory } from './state.js';
import type { RestoreTarget } from './target.js';
import { TrackedState } from './tracker.js';

export interface RestorePlan {
  /** full → ... → base backup. */
  readonly chain: readonly Manifest[];
  /** The index the restored state will be at. */
  readonly index: number;
  /** Archived entries (base.index, index] are replayed. */
  readonly replay: number;
  readonly warnings: readonly string[];
}

export interface RestoreResult<Op> {
  /** The restored state: the user's state machine (`state.inner`) and the client sessions. */
  readonly state: SessionRule<Op>;
  readonly index: number;
  readonly term: number;
  /** Commit time of the entry at `index` (ms). */
  readonly time: number;
  readonly digest: string;
  readonly keyCount: number;
  readonly chain: readonly string[];
  readonly replayed: number;
  readonly chunksRead: number;
  readonly bytesRead: number;
  readonly warnings: readonly string[];
}

/** Chunks read and checked ahead of the one being merged. */
const READ_AHEAD = 4;

interface Candidate {
  manifest: Manifest;
}

/** Decides which backup and which archived entries reach `target`. */
export async function planRestore(repo: Repository, target: RestoreTarget): Promise<RestorePlan> {
  const scanned = await repo.scan();
  const segs = await repo.archive.list();
  const backups = scanned.flatMap((s) => (s.manifest ? [s.manifest] : []));
  if (target.kind === 'backup') {
    const chain = await repo.chain(target.id, scanned);
    const base = chain[chain.length - 1] as Manifest;
    return { chain, index: base.index, replay: 0, warnings: [] };
  }
  if (backups.length === 0 && (segs.length === 0 || (segs[0] as SegmentInfo).first !== 1)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_NOT_FOUND',
      `repository ${repo.dir} holds no backup to restore from`,
    );
  }
  const warnings: string[] = [];
  let index: number;
  if (target.kind === 'index') {
    index = target.index;
  } else if (target.kind === 'time') {
    index = await indexAtTime(repo, target, backups, segs, warnings);
  } else {
    // latest: the newest backup, then as far as the archive runs on without a gap.
    const newestIndex = backups.reduce((a, b) => Math.max(a, b.index), 0);
    index = newestIndex;
    const gaps = LogArchive.gaps(segs, newestIndex, LogArchive.tip(segs));
    const runEnd = gaps.length > 0 ? (gaps[0] as { from: number }).from - 1 : LogArchive.tip(segs);
    if (runEnd > index) index = runEnd;
    if (gaps.length > 0) {
      warnings.push(
        `the log archive has a gap at ${(gaps[0] as { from: number }).from}; restoring to ${index}, not to the archive's tip ${LogArchive.tip(segs)}`,
      );
    }
  }
  return planForIndex(repo, scanned, segs, backups, index, warnings);
}

async function planForIndex(
  repo: Repository,
  scanned: ScannedManifest[],
  segs: SegmentInfo[],
  backups: Manifest[],
  index: number,
  warnings: string[],
): Promise<RestorePlan> {
  const candidates: Candidate[] = backups
    .filter((b) => b.index <= index)
    .sort((a, b) => b.index - a.index || b.seq - a.seq)
    .map((manifest) => ({ manifest }));
  if (candidates.length === 0 && LogArchive.gaps(segs, 0, index).length === 0) {
    // The archive holds every entry from index 1: replay from the empty state.
    return { chain: [], index, replay: index, warnings };
  }
  if (candidates.length === 0 && backups.length === 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE',
      `index ${index} is beyond the last archived entry (${LogArchive.tip(segs)})`,
      { index, tip: LogArchive.tip(segs) },
    );
  }
  if (candidates.length === 0) {
    const first = Math.min(...backups.map((b) => b.index));
    throw new BackupError(
      'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE',
      `index ${index} is before the oldest backup (index ${first})`,
      { index, oldest: first },
    );
  }
  let lastErr: BackupError | undefined;
  for (const c of candidates) {
    let chain: Manifest[];
    try {
      chain = await repo.chain(c.manifest.id, scanned);
    } catch (err) {
      if (!isBackupError(err)) throw err;
      lastErr = err;
      warnings.push(`skipping backup ${c.manifest.id}: ${err.message}`);
      continue;
    }
    const gaps = LogArchive.gaps(segs, c.manifest.index, index);
    if (gaps.length > 0) {
      const g = gaps[0] as { from: number; to: number };
      const tip = LogArchive.tip(segs);
      lastErr =
        index > tip && g.to === index
          ? new BackupError(
              'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE',
              `index ${index} is beyond the last archived entry (${tip}) and no backup is at it`,
              { index, tip },
            )
          : new BackupError(
              'SYNOD_ERR_BACKUP_ARCHIVE_GAP',
              `cannot reach index ${index} from backup ${c.manifest.id}: the log archive has no entries ${g.from}..${g.to}`,
              { from: g.from, to: g.to, backup: c.manifest.id },
            );
      break; // an older backup needs the same missing entries
    }
    return { chain, index, replay: index - c.manifest.index, warnings };
  }
  throw lastErr as BackupError;
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * Segments `indexAtTime` reads past the target to find where an ambiguous run ends (for its
 * message only): an archive of formats 1 and 2 is `unknown` to its end, and reading all of it
 * to name the range would cost more than the answer is worth.
 */
export const AMBIGUITY_SCAN_SEGMENTS = 16;

/**
 * Archived records from index `from` on, in index order; a missing run is one `gap`; after
 * `maxSegments` segments, one `stopped` (the index read last).
 */
async function* recordsFrom(
  repo: Repository,
  segs: readonly SegmentInfo[],
  from: number,
  maxSegments: number,
): AsyncGenerator<
  ArchivedEntry | { readonly gap: { from: number; to: number } } | { readonly stopped: number }
> {
  let next = from;
  let read = 0;
  for (const s of segs) {
    if (s.last < next) continue;
    if (read++ === maxSegments) {
      yield { stopped: next - 1 };
      return;
    }
    if (s.first > next) {
      yield { gap: { from: next, to: s.first - 1 } };
      next = s.first;
    }
    for (const e of await repo.archive.read(s)) {
      if (e.index < next) continue;
      yield e;
      next = e.index + 1;
    }
  }
}

/**
 * The index whose state the cluster had at `target.time`: the last index known to be committed
 * at or before it. A record's time (and a backup's) is when the agent applied the entry, at or
 * after its commit, so every index up to the last one stamped at or before T was committed by T
 * (*I*). Whether the next entries were too depends on how they were timed (archive.ts): an
 * `observed` entry I+1 was committed within the agent's follow latency of its time, after T, so
 * *I* is the answer. A `caught-up` or `unknown` one (or a missing one) may have been committed
 * at any time before its stamp, T included: the answer is one of *I*..*J* (*J*: the last of that
 * run) and the archive cannot say which, so the restore refuses (SYNOD_ERR_BACKUP_TIME_AMBIGUOUS)
 * unless `ifAmbiguous: 'earlier'` asks for *I*, with a warning. A T past the archive's end
 * restores its end with a warning: the repository knows nothing committed after it.
 */
async function indexAtTime(
  repo: Repository,
  target: Extract<RestoreTarget, { kind: 'time' }>,
  backups: Manifest[],
  segs: SegmentInfo[],
  warnings: string[],
): Promise<number> {
  const time = target.time;
  let best = -1;
  let bestTime = 0;
  for (const b of backups) {
    if (b.time <= time && b.index > best) {
      best = b.index;
      bestTime = b.time;
    }
  }
  /** The last `observed` record at or before T: the entries after it were committed after it. */
  let observed: ArchivedEntry | undefined;
  for (const s of segs) {
    if (s.last < best) continue; // (the segment holding a backup's index: how it was timed)
    const entries = await repo.archive.read(s);
    let past = false;
    for (const e of entries) {
      if (e.time <= time) {
        if (e.index > best) {
          best = e.index;
          bestTime = e.time;
        }
        if (e.timing === 'observed' && (!observed || e.index > observed.index)) observed = e;
      } else past = true;
    }
    if (past) break;
  }
  if (best < 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_TARGET_UNREACHABLE',
      `time ${iso(time)} is before the oldest backup and archived entry`,
      { time },
    );
  }
  const tip = LogArchive.tip(segs);
  if (best >= tip) {
    warnings.push(
      `time ${iso(time)} is after the last entry the repository holds (index ${best}, ${iso(bestTime)}): restoring it; anything the cluster committed after it was not archived`,
    );
    return best;
  }
  // The entries after `best`: the first observed one ends the run that T may fall in.
  let runEnd = tip;
  let runEndTime: number | undefined;
  let firstTime: number | undefined;
  const counts: Record<ArchiveTiming | 'missing', number> = {
    observed: 0,
    'caught-up': 0,
    unknown: 0,
    missing: 0,
  };
  let open = true;
  let notRead = false;
  for await (const r of recordsFrom(repo, segs, best + 1, AMBIGUITY_SCAN_SEGMENTS)) {
    if ('stopped' in r) {
      runEnd = r.stopped;
      notRead = true;
      break;
    }
    if ('gap' in r) {
      counts.missing += r.gap.to - r.gap.from + 1;
      continue;
    }
    const timing = r.timing ?? 'unknown';
    if (timing === 'observed') {
      runEnd = r.index - 1;
      open = false;
      break;
    }
    counts[timing]++;
    firstTime ??= r.time;
    runEndTime = r.time;
  }
  if (runEnd === best) return best; // the next entry was observed after T
  const why: string[] = [];
  if (counts['caught-up'] > 0)
    why.push(
      `${counts['caught-up']} were archived by an agent catching up (a one-off synod backup --cluster, or an agent after a restart or a disconnection)${firstTime === undefined ? '' : firstTime === runEndTime ? ` at ${iso(firstTime)}` : ` at ${iso(firstTime)}–${iso(runEndTime as number)}`}, stamped with that time`,
    );
  if (counts.unknown > 0)
    why.push(
      `${counts.unknown} are in archive segments of format 1 or 2 (written before synod recorded whether an entry's time was observed live or caught up)`,
    );
  if (counts.missing > 0) why.push(`${counts.missing} are missing from the archive (a gap)`);
  const lower = observed
    ? `after ${iso(observed.time)} (index ${observed.index}, observed live)`
    : 'at an unknown time';
  const range = `${best}..${runEnd}${notRead ? ` (or later: the archive after index ${runEnd} was not read)` : open ? ' (or later: the archive ends there)' : ''}`;
  const message =
    `time ${iso(time)} is ambiguous: the cluster's state then was that of one of indices ${range}, and the archive cannot say which. ` +
    `Of entries ${best + 1}..${runEnd}, ${why.join('; ')}: they were committed ${lower} and at or before their archived times${runEndTime !== undefined ? ` (up to ${iso(runEndTime)})` : ''}. ` +
    `Index ${best} (${iso(bestTime)}) is the last known committed at or before that time. Restore with --to index:N for the index you want, or add --if-ambiguous earlier to restore index ${best}.`;
  if (target.ifAmbiguous === 'earlier') {
    warnings.push(
      `${message.split(' Restore with')[0]} Restoring index ${best} (--if-ambiguous earlier).`,
    );
    return best;
  }
  throw new BackupError('SYNOD_ERR_BACKUP_TIME_AMBIGUOUS', message, {
    time,
    known: best,
    knownTime: bestTime,
    upTo: runEnd,
    open,
    ...(notRead ? { notReadAfter: runEnd } : {}),
    caughtUp: counts['caught-up'],
    unknown: counts.unknown,
    missing: counts.missing,
    ...(observed ? { after: observed.time } : {}),
    ...(runEndTime !== undefined ? { before: runEndTime } : {}),
  });
}

export interface RestoreOptions<Op> {
  readonly factory: KeyedStateFactory<Op>;
  readonly progress?: ProgressFn;
}

/** Rebuilds the state the plan names (see the module comment). */
export async function executeRestore<Op>(
  repo: Repository,
  plan: RestorePlan,
  opts: RestoreOptions<Op>,
): Promise<RestoreResult<Op>> {
  const base: Pick<Manifest, 'id' | 'index' | 'term' | 'time' | 'stateDigest' | 'keyCount'> = plan
    .chain[plan.chain.length - 1] ?? {
    id: '(empty state)',
    index: 0,
    term: 0,
    time: 0,
    stateDigest: new StateDigest().hex(),
    keyCount: 0,
  };
  const totalBytes = plan.chain.reduce((s, m) => s + m.bytes, 0);
  const totalChunks = plan.chain.reduce((s, m) => s + m.chunks.length, 0);
  // A single full backup holds each key once, in ascending order (the writer refuses
  // anything else), so its keys and values go straight into two arrays for the state's load
  // (no Map, no pair per record: at a million keys the garbage collector pays for every
  // object kept); a chain is merged newest layer first, the first record of a key deciding it
  // (a delete included).
  const merged = plan.chain.length > 1 ? new Map<string, Uint8Array | undefined>() : undefined;
  const keys: string[] = [];
  const vals: Uint8Array[] = [];
  let prev: string | undefined;
  const seenChunks = new Set<string>();
  let bytes = 0;
  let chunks = 0;
  // Every chunk to read, newest layer first, each once; read (and inflated, checked) a few
  // ahead of the one being merged so file reads and zlib overlap the merging.
  const order: Array<{ id: string; size: number; m: Manifest }> = [];
  for (let i = plan.chain.length - 1; i >= 0; i--) {
    const m = plan.chain[i] as Manifest;
    for (const c of m.chunks) {
      if (seenChunks.has(c.id)) continue;
      seenChunks.add(c.id);
      order.push({ id: c.id, size: c.size, m });
    }
  }
  // One full backup of digest version 2 (digest.ts) is checked by the SHA-256 of its record
  // stream, hashed here chunk by chunk, instead of a hash per record; anything else (an older
  // full, a chain) by the additive digest of the rebuilt state.
  const only = plan.chain.length === 1 ? plan.chain[0] : undefined;
  const stream = only?.streamDigest !== undefined ? new StreamDigest() : undefined;
  const digest = new StateDigest();
  const inflight: Promise<{ plain: Buffer; recordHashes?: Buffer }>[] = [];
  const fetch = (k: number) => {
    const c = order[k];
    if (!c) return;
    const p = repo.chunks.getWithDigests(c.id, c.size, !stream);
    p.catch(() => undefined);
    inflight[k] = p;
  };
  for (let k = 0; k < Math.min(READ_AHEAD, order.length); k++) fetch(k);
  for (let k = 0; k < order.length; k++) {
    const { id, m } = order[k] as { id: string; m: Manifest };
    const { plain, recordHashes } = await (inflight[k] as Promise<{
      plain: Buffer;
      recordHashes?: Buffer;
    }>);
    delete inflight[k];
    fetch(k + READ_AHEAD);
    // Each put's digest hash comes with the chunk (hashed off this thread); a kept record adds
    // its hash to the digest, so the digest covers exactly the rebuilt state.
    stream?.update(plain);
    let put = 0;
    forEachRecord(plain, id, (key, value) => {
      if (value === undefined) {
        if (!merged) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
            `chunk ${id} of full backup ${m.id} holds a delete`,
            { chunk: id },
          );
        }
        if (!merged.has(key)) merged.set(key, undefined);
        return;
      }
      const at = 32 * put++;
      if (merged) {
        if (merged.has(key)) return;
        merged.set(key, value);
      } else {
        if (prev !== undefined && !(prev < key)) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_CHUNK_CORRUPT',
            `chunk ${id} of full backup ${m.id}: key ${JSON.stringify(key.slice(0, 60))} does not come after ${JSON.stringify(prev.slice(0, 60))} (a full backup holds each key once, in ascending order)`,
            { chunk: id },
          );
        }
        prev = key;
        keys.push(key);
        vals.push(value);
      }
      if (stream) digest.count++;
      else if (recordHashes) digest.addHashAt(recordHashes, at);
      else digest.add(key, value);
    });
    bytes += plain.length;
    chunks++;
    opts.progress?.({ phase: 'restore', bytes, totalBytes, chunks, totalChunks });
  }
  const [got, expected] = stream
    ? [stream.hex(), only?.streamDigest as string]
    : [digest.hex(), base.stateDigest];
  if (got !== expected || digest.count !== base.keyCount) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
      `restored state of backup ${base.id} does not match its manifest (${stream ? 'stream ' : ''}digest ${got.slice(0, 16)}… with ${digest.count} keys, manifest ${expected.slice(0, 16)}… with ${base.keyCount} keys)`,
      { backup: base.id, digest: got, expected },
    );
  }
  const state = sessionRuleFor(repo.config.protocol, opts.factory());
  state.load(merged ? definedEntries(merged) : zipEntries(keys, vals));
  merged?.clear();
  keys.length = 0;
  vals.length = 0;
  // Replay through a tracker: the digest follows each change instead of a second full pass.
  // After a stream check the state is what the agent captured: its additive digest is the
  // manifest's.
  const tracked = new TrackedState(
    state,
    stream ? StateDigest.fromHex(base.stateDigest, base.keyCount) : digest,
  );
  tracked.reset(base.index, base.term, base.time);
  let replayed = 0;
  if (plan.index > base.index) {
    for await (const e of repo.archive.entries(base.index, plan.index)) {
      if (e.data.byteLength === 0)
        tracked.skip(e); // an entry without a command
      else tracked.apply(decodeArchivedCommand<Op>(e) as Command<Op>, e);
      replayed++;
      if (replayed % 1000 === 0) {
        opts.progress?.({ phase: 'replay', bytes: replayed, chunks: 0, totalBytes: plan.replay });
      }
    }
  }
  const index = tracked.index;
  const term = tracked.term;
  const time = tracked.time;
  const finalDigest = { hex: () => tracked.digestHex, count: tracked.keyCount };
  return {
    state,
    index,
    term,
    time,
    digest: finalDigest.hex(),
    keyCount: finalDigest.count,
    chain: plan.chain.map((m) => m.id),
    replayed,
    chunksRead: chunks,
    bytesRead: bytes,
    warnings: plan.warnings,
  };
}

/** The entries of a merged chain that hold a value (a delete decided the key away). */
function* definedEntries(
  m: Map<string, Uint8Array | undefined>,
): Generator<readonly [string, Uint8Array]> {
  for (const e of m) if (e[1] !== undefined) yield e as [string, Uint8Array];
}

/** [keys[i], vals[i]] (one short-lived pair at a time, not an array of a million pairs). */
function* zipEntries(
  keys: readonly string[],
  vals: readonly Uint8Array[],
): Generator<readonly [string, Uint8Array]> {
  for (let i = 0; i < keys.length; i++) yield [keys[i] as string, vals[i] as Uint8Array];
}

/** planRestore + executeRestore. */
export async function restore<Op>(
  repo: Repository,
  target: RestoreTarget,
  opts: RestoreOptions<Op>,
): Promise<RestoreResult<Op>> {
  return executeRestore(repo, await planRestore(repo, target), opts);
}
