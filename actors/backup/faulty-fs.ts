/**
 * A RepoFs that fails at the k-th mutating step, for crash tests: steps are counted over
 * `writeFileSync`, `writeFile`, `fsyncFile`, `rename`, `unlink`, `mkdirp` and `fsyncDir`. At the failing step a
 * `writeFileSync` may leave a torn file (a prefix of the data, not synced), as a process
 * killed mid-write would; every later call fails too, as if the process were gone.
 */
import type { RepoFs } from './fs.js';

export class InjectedCrash extends Error {
  constructor(readonly step: number) {
    super(`injected crash at step ${step}`);
    this.name = 'InjectedCrash';
  }
}

export class FaultyRepoFs implements RepoFs {
  /** Mutating steps performed so far (including the failing one). */
  steps = 0;
  crashed = false;

  constructor(
    private readonly inner: RepoFs,
    /** The step (1-based) that fails; Infinity never fails (use it to count steps). */
    private readonly failAt: number,
    /** Leave half of the data behind when the failing step is a write. */
    private readonly tornWrites = true,
  ) {}

  private async step(op: () => Promise<void>, torn?: () => Promise<void>): Promise<void> {
    if (this.crashed) throw new InjectedCrash(this.steps);
    this.steps++;
    if (this.steps >= this.failAt) {
      this.crashed = true;
      if (torn && this.tornWrites) await torn();
      throw new InjectedCrash(this.steps);
    }
    await op();
  }

  readFile(file: string): Promise<Buffer> {
    if (this.crashed) return Promise.reject(new InjectedCrash(this.steps));
    return this.inner.readFile(file);
  }

  writeFileSync(file: string, data: Uint8Array): Promise<void> {
    return this.step(
      () => this.inner.writeFileSync(file, data),
      () => this.inner.writeFileSync(file, data.subarray(0, data.byteLength >> 1)),
    );
  }

  writeFile(file: string, data: Uint8Array): Promise<void> {
    return this.step(
      () => this.inner.writeFile(file, data),
      () => this.inner.writeFile(file, data.subarray(0, data.byteLength >> 1)),
    );
  }

  fsyncFile(file: string): Promise<void> {
    return this.step(() => this.inner.fsyncFile(file));
  }

  rename(from: string, to: string): Promise<void> {
    return this.step(() => this.inner.rename(from, to));
  }

  unlink(file: string): Promise<void> {
    return this.step(() => this.inner.unlink(file));
  }

  mkdirp(dir: string): Promise<void> {
    return this.step(() => this.inner.mkdirp(dir));
  }

  fsyncDir(dir: string): Promise<void> {
    return this.step(() => this.inner.fsyncDir(dir));
  }

  readdir(dir: string): Promise<string[]> {
    if (this.crashed) return Promise.reject(new InjectedCrash(this.steps));
    return this.inner.readdir(dir);
  }

  size(file: string): Promise<number | undefined> {
    if (this.crashed) return Promise.reject(new InjectedCrash(this.steps));
    return this.inner.size(file);
  }
}
