/**
 * A data directory remembers which node of which cluster it belongs to (`node.json`), so a
 * node started with another cluster's directory, or under another id, refuses at once with
 * a message saying what to do instead of corrupting someone's data.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { CliError } from '../../cli/args.js';

export interface NodeIdentity {
  cluster: string;
  id: string;
  createdAt: string;
}

export function checkNodeIdentity(
  dataDir: string,
  cluster: string,
  id: string,
  now: Date,
): NodeIdentity {
  const file = path.join(dataDir, 'node.json');
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(
      `cannot create data directory ${dataDir} (${code}): choose a writable --data directory`,
      1,
      'SYNOD_ERR_DATADIR',
    );
  }
  if (existsSync(file)) {
    let found: NodeIdentity;
    try {
      found = JSON.parse(readFileSync(file, 'utf8')) as NodeIdentity;
    } catch {
      throw new CliError(
        `${file} is unreadable: this is not a Synod data directory, or it is damaged`,
        1,
        'SYNOD_ERR_DATADIR',
      );
    }
    if (found.cluster !== cluster) {
      throw new CliError(
        `data directory ${dataDir} belongs to cluster "${found.cluster}", not "${cluster}": use that cluster's name or another --data directory`,
        1,
        'SYNOD_ERR_DATADIR_OTHER_CLUSTER',
      );
    }
    if (found.id !== id) {
      throw new CliError(
        `data directory ${dataDir} belongs to node "${found.id}", not "${id}": start it as --id ${found.id} or use another --data directory`,
        1,
        'SYNOD_ERR_DATADIR_OTHER_NODE',
      );
    }
    return found;
  }
  const identity: NodeIdentity = { cluster, id, createdAt: now.toISOString() };
  try {
    writeFileSync(`${file}.tmp`, `${JSON.stringify(identity, null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(
      `cannot write to data directory ${dataDir} (${code}): choose a writable --data directory`,
      1,
      'SYNOD_ERR_DATADIR',
    );
  }
  return identity;
}

/**
 * Refuses a directory the node cannot write to (etcd's `fileutil.IsDirWriteable` on the data,
 * member and WAL directories before it replays them): a file is created, written, fsynced and
 * removed. A read-only mount (EROFS), missing permissions (EACCES) or a full disk (ENOSPC)
 * stop the node before anything starts, with the cause, instead of a node that says "up"
 * and cannot persist a single entry.
 */
export function checkDirWritable(dir: string): void {
  const probe = path.join(dir, '.synod-write-probe');
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'w');
    writeSync(fd, 'synod\n');
    fsyncSync(fd);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CliError(
      `cannot write to data directory ${dir} (${e.code ?? 'error'}: ${e.message}): ${
        e.code === 'EROFS'
          ? 'it is on a read-only file system; remount it read-write'
          : e.code === 'ENOSPC'
            ? 'the disk is full; free some space'
            : 'check its permissions'
      }, or use another --data directory`,
      1,
      'SYNOD_ERR_DATADIR_NOT_WRITABLE',
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
    try {
      rmSync(probe, { force: true });
    } catch {
      // nothing was created
    }
  }
}
