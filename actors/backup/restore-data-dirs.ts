/**
 * Restore a repository's state at a target into `synod node` data directories: one for a
 * single node (`--dest`), or one per member of a new cluster (`--cluster-dir`). Shared by
 * `synod restore` and the dashboard's restore control of a real node.
 */
import path from 'node:path';
import { type RestoreSummary, writeRestoredDataDir } from './datadir.js';
import type { ProgressFn } from './progress.js';
import type { Repository } from './repository.js';
import { executeRestore, planRestore } from './restore.js';
import { stateKindOf } from './state-kind.js';
import { type StreamDest, streamable, streamRestoreToDataDirs } from './stream-restore.js';
import { formatTarget, type RestoreTarget } from './target.js';

export interface RestoreDataDirsOptions {
  /** Members (voters) of the restored cluster. */
  readonly members: readonly string[];
  readonly clusterId: string;
  /** The cluster name the restored nodes will run with (`synod node --cluster`). */
  readonly clusterName: string;
  /** Wall-clock ms, recorded in the restored data directories. */
  readonly now: number;
  /** Where to write: one data dir (`dest`, for member `node`), or one per member in `clusterDir`. */
  readonly dest?: { readonly dir: string; readonly node?: string };
  readonly clusterDir?: string;
  readonly progress?: ProgressFn;
  readonly warn?: (line: string) => void;
  /**
   * `false`: rebuild the state machine in memory and encode the snapshot image from it even
   * when the target could be streamed (the benchmark times both paths; default true).
   */
  readonly stream?: boolean;
}

export interface RestoredDataDirs {
  /** What was restored and checked (index, digest, chain, ...). */
  readonly result: RestoreSummary;
  /** Directories written (none for a dry run: neither `dest` nor `clusterDir`). */
  readonly dirs: readonly string[];
}

export async function restoreDataDirs(
  repo: Repository,
  target: RestoreTarget,
  o: RestoreDataDirsOptions,
): Promise<RestoredDataDirs> {
  const kind = stateKindOf(repo);
  const plan = await planRestore(repo, target);
  for (const w of plan.warnings) o.warn?.(w);
  const source = {
    repo: repo.dir,
    sourceCluster: repo.config.clusterId,
    target: formatTarget(target),
  };
  if (o.stream !== false && streamable(repo, plan)) {
    // One full backup of a map state, nothing to replay: its chunks are the snapshot image,
    // streamed into every destination as they are checked (stream-restore.ts).
    const dests: StreamDest[] = [];
    const node = (id: string) => ({ id, cluster: o.clusterName });
    if (o.dest)
      dests.push({ dir: o.dest.dir, ...(o.dest.node ? { node: node(o.dest.node) } : {}) });
    if (o.clusterDir)
      for (const m of o.members) dests.push({ dir: path.join(o.clusterDir, m), node: node(m) });
    const result = await streamRestoreToDataDirs(repo, plan, dests, {
      clusterId: o.clusterId,
      members: [...o.members],
      now: o.now,
      source,
      ...(o.progress ? { progress: o.progress } : {}),
    });
    return { result, dirs: dests.map((d) => d.dir) };
  }
  const result = (await executeRestore(repo, plan, {
    factory: kind.factory,
    ...(o.progress ? { progress: o.progress } : {}),
  })) as Awaited<ReturnType<typeof executeRestore<unknown>>>;
  const write = (dir: string, node?: string) =>
    writeRestoredDataDir(dir, result, {
      clusterId: o.clusterId,
      members: [...o.members],
      now: o.now,
      layout: repo.config.protocol === 'paxos' ? 'paxos' : 'raft',
      encodeImage: (state) => kind.nodeImage(state as never, result.index),
      ...(node ? { node: { id: node, cluster: o.clusterName } } : {}),
      source,
    });
  const dirs: string[] = [];
  if (o.dest) dirs.push((await write(o.dest.dir, o.dest.node)).dir);
  if (o.clusterDir)
    for (const m of o.members) dirs.push((await write(path.join(o.clusterDir, m), m)).dir);
  return { result, dirs };
}
