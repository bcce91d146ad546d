/**
 * Writes a Multi-Paxos data directory from a replica image, for restores: after
 * `writePaxosDataDir({ dataDir, members, index, image })` on every member's data directory,
 * `synod node --protocol paxos --data <dataDir>` (or `startMultiPaxosNode` on
 * `openFilePaxosStorage(<dataDir>/paxos)`) starts with the restored state applied at `index`.
 *
 * What is written in `<dataDir>/paxos` (the layout `openFilePaxosStorage` reads):
 * - `snapshots/`: one learner snapshot at `index` holding the image (state machine image and
 *   Paxos client sessions, replica-image.ts); the learner restores it on start;
 * - `paxos-acceptor` hard state: promised ballot 0 and compaction **floor = `index`**, no
 *   accepted values. Every promise reports the floor, and a new leader starts phase 2 above
 *   the highest floor in its phase-1 quorum, so the first leader of the restored cluster never
 *   proposes (or fills with no-ops) a slot ≤ `index`, even though no acceptor has promised
 *   anything yet. Slots ≤ `index` are served to lagging learners as the snapshot.
 * - `members.json`: the member set (`synod node` refuses another set).
 * No proposer round (a fresh proposer starts at round 0) and no acceptor journal.
 *
 * The directory is built under a temporary name and renamed into place, so a crash leaves
 * either nothing or a complete `paxos/`. It refuses to overwrite: an existing non-empty
 * `paxos/` is `SYNOD_ERR_PAXOS_RESTORE_NOT_EMPTY`, an existing `raft/` is
 * `SYNOD_ERR_DATADIR_OTHER_PROTOCOL`.
 *
 * Restore every member from the same image and index: a member that keeps its old acceptor
 * state (promises, accepted values above `index`) could have those old values re-proposed into
 * the restored log.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FileHardStateStore, FileSnapshotStore } from '../../lib/storage/index.js';
import { ZERO_BALLOT } from './ballot.js';
import { PaxosError } from './errors.js';
import type { MultiAcceptorHardState } from './multi-acceptor.js';
import { decodeReplicaImage, encodeReplicaImage, type ReplicaImage } from './replica-image.js';

export interface PaxosRestoreOptions {
  /** The node's data directory (`synod node --data`); `<dataDir>/paxos` is written. */
  readonly dataDir: string;
  /** Node ids of every member of the restored cluster (the same list on every member). */
  readonly members: readonly string[];
  /** The last slot the image covers: the restored log continues at `index + 1`. */
  readonly index: number;
  /** The ballot round recorded with the snapshot (metadata only). Default 0. */
  readonly term?: number;
  /** The replica image: encoded (as a learner snapshot holds it) or its two parts. */
  readonly image: Uint8Array | ReplicaImage;
  /** Actor path prefix of the Paxos roles. Default 'paxos'. */
  readonly path?: string;
}

export interface PaxosRestoreResult {
  /** The directory written (`<dataDir>/paxos`). */
  readonly dir: string;
  readonly index: number;
  /** Size of the stored image in bytes. */
  readonly bytes: number;
}

const NODE_ID = /^[A-Za-z0-9_.:$-]{1,128}$/;

export async function writePaxosDataDir(opts: PaxosRestoreOptions): Promise<PaxosRestoreResult> {
  const badConfig = (why: string) => new PaxosError('SYNOD_ERR_PAXOS_BAD_CONFIG', why);
  if (!Number.isSafeInteger(opts.index) || opts.index < 1) {
    throw badConfig(`restore index must be an integer >= 1, got ${opts.index}`);
  }
  const term = opts.term ?? 0;
  if (!Number.isSafeInteger(term) || term < 0) throw badConfig(`bad term ${term}`);
  const members = [...opts.members].sort();
  if (members.length === 0) throw badConfig('no members');
  if (new Set(members).size !== members.length) throw badConfig('duplicate members');
  for (const m of members) if (!NODE_ID.test(m)) throw badConfig(`bad member id "${m}"`);
  // Validate (and normalise to the stored encoding) before touching the disk.
  let data: Uint8Array;
  if (opts.image instanceof Uint8Array) {
    decodeReplicaImage(opts.image); // throws SYNOD_ERR_PAXOS_BAD_STATE
    data = opts.image;
  } else data = encodeReplicaImage(opts.image);

  const dir = path.join(opts.dataDir, 'paxos');
  if (existsSync(path.join(opts.dataDir, 'raft'))) {
    throw new PaxosError(
      'SYNOD_ERR_DATADIR_OTHER_PROTOCOL',
      `${opts.dataDir} holds Raft state (raft/): restore into an empty data directory`,
    );
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new PaxosError(
      'SYNOD_ERR_PAXOS_RESTORE_NOT_EMPTY',
      `${dir} already holds Multi-Paxos state: restore into an empty data directory (nothing was written)`,
    );
  }
  mkdirSync(opts.dataDir, { recursive: true });
  const tmp = path.join(opts.dataDir, `.paxos-restore-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const hard = await FileHardStateStore.open<MultiAcceptorHardState>(tmp, {
      name: 'paxos-acceptor',
    });
    try {
      await hard.save({ promised: ZERO_BALLOT, floor: opts.index });
    } finally {
      await hard.close();
    }
    const snaps = await FileSnapshotStore.open(path.join(tmp, 'snapshots'));
    try {
      const prefix = opts.path ?? 'paxos';
      const w = await snaps.create({
        index: opts.index,
        term,
        membership: { voters: [], learners: members.map((m) => `${m}/${prefix}/learner`) },
      });
      try {
        await w.write(data);
        await w.commit();
      } catch (err) {
        await w.abort().catch(() => undefined);
        throw err;
      }
    } finally {
      await snaps.close();
    }
    await writeFile(
      path.join(tmp, 'members.json'),
      `${JSON.stringify({ members }, null, 2)}\n`,
      // members.json is small: fsync it like the stores do
      { flush: true },
    );
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true }); // empty (checked above)
    renameSync(tmp, dir);
    await syncDir(opts.dataDir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { dir, index: opts.index, bytes: data.length };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
