/**
 * The file operations the repository uses, behind an interface so that tests can inject a
 * file system that fails at step k (faulty-fs.ts) and show that a crash at any step leaves
 * the repository consistent. Every mutation goes through `writeFileSync`, `rename`,
 * `unlink`, `mkdirp` and `fsyncDir`; these are the "steps" a crash can fall between.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface RepoFs {
  readFile(file: string): Promise<Buffer>;
  /** Creates or truncates `file`, writes `data` and fsyncs it before resolving. */
  writeFileSync(file: string, data: Uint8Array): Promise<void>;
  /** Creates or truncates `file` and writes `data`, without fsync (see `fsyncFile`). */
  writeFile(file: string, data: Uint8Array): Promise<void>;
  /** fsyncs a file written with `writeFile`. */
  fsyncFile(file: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; a missing file is not an error. */
  unlink(file: string): Promise<void>;
  mkdirp(dir: string): Promise<void>;
  /** fsyncs a directory so creations, renames and unlinks in it are durable. */
  fsyncDir(dir: string): Promise<void>;
  /** Names in `dir`; a missing directory lists as empty. */
  readdir(dir: string): Promise<string[]>;
  /** Size in bytes, or undefined when the file does not exist. */
  size(file: string): Promise<number | undefined>;
}

export class NodeRepoFs implements RepoFs {
  readFile(file: string): Promise<Buffer> {
    return fs.readFile(file);
  }

  async writeFileSync(file: string, data: Uint8Array): Promise<void> {
    const fh = await fs.open(file, 'w');
    try {
      let off = 0;
      while (off < data.byteLength) {
        const { bytesWritten } = await fh.write(data, off, data.byteLength - off);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  writeFile(file: string, data: Uint8Array): Promise<void> {
    return fs.writeFile(file, data);
  }

  async fsyncFile(file: string): Promise<void> {
    const fh = await fs.open(file, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  rename(from: string, to: string): Promise<void> {
    return fs.rename(from, to);
  }

  async unlink(file: string): Promise<void> {
    await fs.rm(file, { force: true });
  }

  async mkdirp(dir: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
  }

  async fsyncDir(dir: string): Promise<void> {
    const fh = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async readdir(dir: string): Promise<string[]> {
    try {
      return await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async size(file: string): Promise<number | undefined> {
    try {
      return (await fs.stat(file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

export const nodeRepoFs: RepoFs = new NodeRepoFs();

/** Writes `file` atomically and durably: tmp, fsync, rename, fsync of the directory. */
export async function atomicWrite(rfs: RepoFs, file: string, data: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  await rfs.writeFileSync(tmp, data);
  await rfs.rename(tmp, file);
  await rfs.fsyncDir(path.dirname(file));
}
