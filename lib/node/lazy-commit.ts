/**
 * Raft's hard state is (term, vote, commit). Term and vote must be durable before the node
 * answers anything that depends on them; the commit index need not be: it is a lower bound
 * that a restarted node relearns from the leader (the Raft paper keeps it volatile; etcd
 * writes it with the hard state but does not fsync a commit-only change, `mustSync` false).
 *
 * RaftNode awaits every hard-state save, and the file store replaces the record atomically
 * (write + fsync a temp file, rename, fsync the directory), so on a node every commit advance
 * cost two fsyncs on the write path. This wrapper, used by `startNode`, returns at once for a
 * save that changes only `commit` (the write still happens, in order: the store coalesces
 * saves and writes the newest), and waits as before for any change of term or vote. A failed
 * background write is not lost: the next save, and close, reject with it.
 */
import type { HardStateStore, RaftHardState } from '../storage/types.js';

export function lazyCommitHardState(
  inner: HardStateStore<RaftHardState>,
): HardStateStore<RaftHardState> & { readonly deferred: number; flush(): Promise<void> } {
  let last: RaftHardState | undefined;
  /** The latest save that changed term or vote (a commit-only save never resolves before it). */
  let strict: Promise<void> = Promise.resolve();
  let failure: unknown;
  let deferred = 0;
  const pending = new Set<Promise<void>>();
  return {
    get deferred() {
      return deferred;
    },
    async load() {
      const v = await inner.load();
      last = v;
      return v;
    },
    save(state: RaftHardState): Promise<void> {
      if (failure !== undefined) return Promise.reject(failure);
      const commitOnly = last !== undefined && state.term === last.term && state.vote === last.vote;
      last = { ...state };
      const p = inner.save(state);
      if (!commitOnly) {
        strict = p;
        return p;
      }
      deferred++;
      const tracked = p.then(
        () => {
          pending.delete(tracked);
        },
        (err: unknown) => {
          pending.delete(tracked);
          failure ??= err;
        },
      );
      pending.add(tracked);
      return strict;
    },
    /** Waits for the deferred writes; rejects if one failed. */
    async flush() {
      await Promise.all(pending);
      if (failure !== undefined) throw failure;
    },
    async close() {
      try {
        await this.flush();
      } finally {
        await inner.close();
      }
    },
  };
}
