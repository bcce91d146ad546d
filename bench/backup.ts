/**
 * `npm run bench -- backup [--size=MB] [--runs=N] [--dir=DIR]`: full backup and restore
 * throughput (MB/s of state) of a large key/value state, against a baseline measured in the
 * same run: copying the same bytes (the serialized state) into a file with SHA-256 hashing
 * and fsync, and reading them back with SHA-256.
 *
 * The rows of record (since session 14) are those of a `kv` state, what a cluster's backups
 * hold (`kvThroughput` below): the KV state machine with revisions, KV sessions and Raft
 * client sessions, of the same size, as the agent holds it; its full backup as the agent
 * takes it (capture + `Repository.writeBackup` into a `kv` repository), and its restore into a
 * node data directory by `restoreDataDirs` (what `synod restore --to latest --dest` calls) in
 * a child process (bench/lib/restore-child.ts), with that process's peak RSS; each against
 * the issue's baselines of the same records. `--kv=false` skips them;
 * `--kv-restore-compare=true` also times the in-memory restore path (state machine rebuilt,
 * image encoded; the only path before session 14), alternated with the streamed one.
 *
 * The `map` rows below are kept as history (supplementary once the kv rows run): a generic
 * `MapState` written in-process. Its restore is measured twice: in memory
 * (`restore`, against read + SHA-256; `--restore-memory=false` skips it) and into a node data
 * directory as `synod restore --dest` does it (`restoreDataDirs`: a full backup of this map
 * state streams, stream-restore.ts), against the issue's baseline, a file-to-file copy with
 * SHA-256 and fsync. Also: the bytes an incremental stores after
 * changing 1% of the keys, against the changed data plus the manifest (target ≤ 1.1×), and
 * the backup agent's apply latency (p99) while a full backup is written vs idle, and the
 * issue's cluster metric: the write p99 of an embedded 3-node KV cluster (Raft + KV state
 * machine, 16 concurrent writers) while the agent, joined as a learner, writes a full
 * backup, against the same cluster with the learner following and no backup running
 * (`--cluster-keys=N` sizes the cluster's state, default 20,000 × 1 KB; 0 skips it). And the
 * deployed case (bench/lib/backup-processes.ts): three `synod node` processes and a separate
 * `synod backup full --cluster` process, write p99 during the backup against the same cluster
 * with no agent (`--process-keys=N`, default 5,000 × 1 KB; `--process-rounds=N`, default 3;
 * 0 keys skips it). And the deployment docs/backup.md recommends
 * (bench/lib/backup-agent-processes.ts): the same three node processes and one standing
 * `synod backup agent` process whose schedule takes a full backup every `--agent-every=S`
 * seconds (default 10): the p99 of the writes that overlap one of its backups against the
 * writes of the same minutes that do not (the agent following, no backup), and, as a second
 * row, those against no-agent phases before, between and after the agent phases
 * (`--agent-keys=N`, default 50,000 × 1 KB, 0 skips it; `--agent-rounds=N` agent phases,
 * default 2; `--agent-backups=N` backups per agent phase, default 4; `--agent-idle-ms=MS`,
 * each no-agent phase, default 20000; `--agent-args='--nice 0'` extra agent arguments;
 * `--agent-wrapper='ionice -c3'` a command prefix for the agent; `--agent-repo-dir=DIR` puts
 * the repository elsewhere than the nodes' disk, e.g. /dev/shm to take the disk out). Only this row:
 * `--size=8 --runs=1 --cluster-keys=0 --process-keys=0 --agent-keys=50000`.
 * Default size 1024 MB (the issue's); pass --size=MB to scale down on a small machine, and
 * --compress=brotli|deflate|lz4|none to measure a repository with another codec (default: what a
 * new repository uses).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack } from 'msgpackr';
import { chunkPool } from '../actors/backup/chunk-pool.js';
import {
  type CompressionAlgo,
  defaultCompression,
  validateCompression,
} from '../actors/backup/chunk-store.js';
import { DEFAULT_CHUNKER } from '../actors/backup/chunker.js';
import { startEmbeddedBackup } from '../actors/backup/embedded.js';
import { KvKeyedState } from '../actors/backup/kv-state.js';
import { Repository } from '../actors/backup/repository.js';
import { restore } from '../actors/backup/restore.js';
import { restoreDataDirs } from '../actors/backup/restore-data-dirs.js';
import { SessionState } from '../actors/backup/sessions.js';
import { MapState } from '../actors/backup/state.js';
import { TrackedState } from '../actors/backup/tracker.js';
import { keyName } from '../actors/backup/workload.js';
import { KvStateMachine } from '../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../actors/kv/types.js';
import { LocalCluster } from '../lib/cluster/local-cluster.js';
import type { Command } from '../lib/replicated-log.js';
import {
  type BenchMain,
  loadNote,
  type Measurement,
  median,
  percentile,
  report,
  summarize,
} from './harness.js';
import { backupAgentProcessLatency } from './lib/backup-agent-processes.js';
import { backupProcessLatency, NODE_SNAPSHOT_EVERY } from './lib/backup-processes.js';

function arg(argv: string[], name: string, dflt: string): string {
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  if (eq) return eq.slice(name.length + 1);
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : dflt;
}

const VALUE = 1000;

/** Half random, half repeated bytes: compresses to about 55%. */
function value(): Buffer {
  const b = Buffer.allocUnsafe(VALUE);
  randomBytes(VALUE >> 1).copy(b, 0);
  b.fill(b[0] as number, VALUE >> 1);
  return b;
}

function cpuMs(a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number {
  return (b.user - a.user + b.system - a.system) / 1000;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function roundAll<T extends object>(o: T): Record<keyof T, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round1(v as number)])) as Record<
    keyof T,
    number
  >;
}

async function baselineCopy(file: string, pieces: Buffer[]): Promise<number> {
  const t0 = performance.now();
  const h = createHash('sha256');
  const fh = await open(file, 'w');
  let off = 0;
  for (const p of pieces) {
    h.update(p);
    await fh.write(p, 0, p.length, off);
    off += p.length;
  }
  await fh.sync();
  await fh.close();
  h.digest();
  return (performance.now() - t0) / 1000;
}

/** Copies `src` to `dst` in 1 MiB pieces with SHA-256 and fsync: the data-dir restore's baseline. */
async function baselineFileCopy(src: string, dst: string): Promise<number> {
  const t0 = performance.now();
  const h = createHash('sha256');
  const from = await open(src, 'r');
  const to = await open(dst, 'w');
  let off = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(1 << 20);
    const { bytesRead } = await from.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    await to.write(buf, 0, bytesRead, off);
    off += bytesRead;
  }
  await to.sync();
  await to.close();
  await from.close();
  h.digest();
  return (performance.now() - t0) / 1000;
}

async function baselineRead(file: string): Promise<number> {
  const t0 = performance.now();
  const fh = await open(file, 'r');
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
  }
  await fh.close();
  h.digest();
  return (performance.now() - t0) / 1000;
}

export const main: BenchMain = async (argv) => {
  const sizeMb = Number(arg(argv, '--size', '1024'));
  const runs = Number(arg(argv, '--runs', '3'));
  const base = await mkdtemp(path.join(arg(argv, '--dir', os.tmpdir()), 'synod-bench-backup-'));
  const keys = Math.floor((sizeMb * 1048576) / (VALUE + 14));
  let mb = 0;
  const backupRuns: number[] = [];
  const restoreRuns: number[] = [];
  /** Process CPU time (all threads: main, chunk workers, libuv's pool) per MB of state. */
  const backupCpu: number[] = [];
  const restoreCpu: number[] = [];
  const copyRuns: number[] = [];
  const readRuns: number[] = [];
  const copyCpu: number[] = [];
  const readCpu: number[] = [];
  /** Restore into a data directory (streamed) and its baseline, a file-to-file copy. */
  const dirRuns: number[] = [];
  const dirCpu: number[] = [];
  const fileCopyRuns: number[] = [];
  const fileCopyCpu: number[] = [];
  const inMemory = arg(argv, '--restore-memory', 'true') !== 'false';
  const algo = arg(argv, '--compress', '');
  if (algo !== '') {
    validateCompression({ algo: algo as CompressionAlgo, level: algo === 'deflate' ? 1 : 0 });
  }
  let incr: { stored: number; manifest: number; changed: number; ratio: number } | undefined;
  let lat: { idle: number; during: number; n: number } | undefined;
  const kvOn = arg(argv, '--kv', 'true') !== 'false';
  let kv: KvRows | undefined;
  /** The map rows (a function so that the map state is garbage before the kv rows build theirs). */
  const mapRuns = async (): Promise<void> => {
    const state = new MapState();
    for (let i = 0; i < keys; i++) state.apply({ type: 'put', key: keyName(i), value: value() });
    const tracked = new TrackedState(state);
    const stateBytes = [...state.entries()].reduce((s, [k, v]) => s + k.length + v.length + 9, 0);
    mb = stateBytes / 1048576;
    // The serialized bytes, in 1 MiB pieces, for the baseline.
    const pieces = recordPieces(tracked.captureFull().records);
    for (let r = 0; r < runs; r++) {
      const file = path.join(base, `copy-${r}`);
      const b0 = process.cpuUsage();
      copyRuns.push(mb / (await baselineCopy(file, pieces)));
      const b1 = process.cpuUsage();
      readRuns.push(mb / (await baselineRead(file)));
      copyCpu.push(cpuMs(b0, b1) / mb);
      const b2 = process.cpuUsage();
      readCpu.push(cpuMs(b1, b2) / mb);
      fileCopyRuns.push(mb / (await baselineFileCopy(file, `${file}.copy`)));
      fileCopyCpu.push(cpuMs(b2, process.cpuUsage()) / mb);
      await rm(file, { force: true });
      await rm(`${file}.copy`, { force: true });
      const dir = path.join(base, `repo-${r}`);
      const repo = await Repository.init(dir, {
        clusterId: 'bench',
        ...(algo !== '' ? { compression: { algo: algo as CompressionAlgo } } : {}),
      });
      const cap = tracked.captureFull();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const m = await repo.writeBackup({
        type: 'full',
        index: 1,
        term: 1,
        time: 0,
        clusterId: 'bench',
        records: cap.records,
        keyCount: cap.keyCount,
        stateDigest: cap.stateDigest,
        now: 0,
      });
      backupRuns.push(mb / ((performance.now() - t0) / 1000));
      const c1 = process.cpuUsage();
      backupCpu.push(cpuMs(c0, c1) / mb);
      if (inMemory) {
        const t1 = performance.now();
        const res = await restore(
          repo,
          { kind: 'backup', id: m.id },
          { factory: () => new MapState() },
        );
        restoreRuns.push(mb / ((performance.now() - t1) / 1000));
        restoreCpu.push(cpuMs(c1, process.cpuUsage()) / mb);
        if (res.digest !== cap.stateDigest) throw new Error('bench restore digest mismatch');
      }
      // What `synod restore --dest DIR` does with this repository: the full backup's chunks
      // streamed into a node data directory's snapshot, digest-checked (stream-restore.ts).
      const dataDir = path.join(base, `restored-${r}`);
      const c2 = process.cpuUsage();
      const t2 = performance.now();
      const dres = await restoreDataDirs(
        repo,
        { kind: 'backup', id: m.id },
        {
          members: ['n1'],
          clusterId: 'bench',
          clusterName: 'bench',
          now: 0,
          dest: { dir: dataDir },
        },
      );
      dirRuns.push(mb / ((performance.now() - t2) / 1000));
      dirCpu.push(cpuMs(c2, process.cpuUsage()) / mb);
      if (dres.result.digest !== cap.stateDigest) throw new Error('bench data-dir digest mismatch');
      await rm(dataDir, { recursive: true, force: true });
      if (r === runs - 1) {
        // Incremental after changing 1% of the keys.
        let changed = 0;
        const n = Math.max(1, Math.floor(keys / 100));
        const seen = new Set<number>();
        let index = 1;
        while (seen.size < n) {
          const k = Math.floor(Math.random() * keys);
          if (seen.has(k)) continue;
          seen.add(k);
          const v = value();
          changed += keyName(k).length + v.length;
          tracked.apply(
            { type: 'put', key: keyName(k), value: v },
            { index: ++index, term: 1, time: 0 },
          );
        }
        const c = tracked.captureChanges(1);
        const im = await repo.writeBackup({
          type: 'incr',
          parent: m,
          index,
          term: 1,
          time: 0,
          clusterId: 'bench',
          records: c.records,
          keyCount: c.keyCount,
          stateDigest: c.stateDigest,
          now: 1,
        });
        const manifest = await repo.manifestSize(im.id);
        incr = {
          stored: im.storedBytes,
          manifest,
          changed,
          ratio: (im.storedBytes + manifest) / (changed + manifest),
        };
        // Apply latency while a full backup is written, vs idle (same process, same loop).
        lat = await applyLatency(tracked, repo, keys);
      }
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    await mapRuns();
    if (kvOn) {
      kv = await kvThroughput(
        base,
        sizeMb,
        runs,
        algo,
        arg(argv, '--kv-restore-compare', 'false') === 'true',
      );
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  // With the kv rows (the default), they are the issue's rows of record and the map rows are
  // kept as history (supplementary, no target).
  const mapTarget = kv ? undefined : '≥ 0.6 × baseline';
  const full = summarize(
    `map full backup (in-memory MapState, Repository.writeBackup only${kv ? '; supplementary, the kv rows are of record' : ''})`,
    'MB/s',
    'higher',
    backupRuns,
    { name: 'copy + SHA-256 + fsync', runs: copyRuns },
    mapTarget,
  );
  full.extra = {
    cpuMsPerMb: backupCpu.map(round1),
    baselineCpuMsPerMb: copyCpu.map(round1),
    cpuRatio: round2(median(copyCpu) / median(backupCpu)),
  };
  const rest = summarize(
    'map restore into memory (digest-checked; supplementary)',
    'MB/s',
    'higher',
    restoreRuns,
    { name: 'read + SHA-256', runs: readRuns },
  );
  rest.extra = {
    cpuMsPerMb: restoreCpu.map(round1),
    baselineCpuMsPerMb: readCpu.map(round1),
    cpuRatio: round2(median(readCpu) / median(restoreCpu)),
  };
  const toDir = summarize(
    `map restore into a data directory (streamed, digest-checked${kv ? '; supplementary' : ''})`,
    'MB/s',
    'higher',
    dirRuns,
    { name: 'file copy + SHA-256 + fsync', runs: fileCopyRuns },
    mapTarget,
  );
  toDir.extra = {
    cpuMsPerMb: dirCpu.map(round1),
    baselineCpuMsPerMb: fileCopyCpu.map(round1),
    cpuRatio: round2(median(fileCopyCpu) / median(dirCpu)),
  };
  const ms: Measurement[] = inMemory ? [full, rest, toDir] : [full, toDir];
  if (kv) {
    const k = kv;
    const kb = summarize(
      "kv full backup (the agent's state: TrackedState(SessionState(KvKeyedState)); captureFull + Repository.writeBackup)",
      'MB/s',
      'higher',
      k.backupRuns,
      { name: 'copy + SHA-256 + fsync (same records)', runs: k.copyRuns },
      '≥ 0.6 × baseline',
    );
    kb.extra = {
      keys: k.keys,
      mb: round1(k.mb),
      storedBytes: k.storedBytes,
      cpuMsPerMb: k.backupCpu.map(round1),
      baselineCpuMsPerMb: k.copyCpu.map(round1),
      cpuRatio: round2(median(k.copyCpu) / median(k.backupCpu)),
    };
    ms.push(kb);
    const kr = summarize(
      'kv restore into a node data directory (`synod restore --to latest --dest`: restoreDataDirs in its own process, digest-checked)',
      'MB/s',
      'higher',
      k.dirRuns,
      { name: 'file copy + SHA-256 + fsync (same records)', runs: k.fileCopyRuns },
      '≥ 0.6 × baseline',
    );
    kr.extra = {
      cpuMsPerMb: k.dirCpu.map(round1),
      baselineCpuMsPerMb: k.fileCopyCpu.map(round1),
      cpuRatio: round2(median(k.fileCopyCpu) / median(k.dirCpu)),
      peakRssMb: k.dirRssMb,
    };
    ms.push(kr);
    if (k.memRuns.length > 0) {
      const km = summarize(
        'kv restore into a node data directory, in-memory path (state machine rebuilt, image encoded; --kv-restore-compare, alternated with the row above)',
        'MB/s',
        'higher',
        k.memRuns,
        { name: 'file copy + SHA-256 + fsync (same records)', runs: k.fileCopyRuns },
      );
      km.extra = {
        cpuMsPerMb: k.memCpu.map(round1),
        baselineCpuMsPerMb: k.fileCopyCpu.map(round1),
        cpuRatio: round2(median(k.fileCopyCpu) / median(k.memCpu)),
        peakRssMb: k.memRssMb,
      };
      ms.push(km);
    }
  }
  if (incr) {
    const m = summarize(
      'incremental after 1% keys changed',
      'bytes',
      'lower',
      [incr.stored + incr.manifest],
      { name: 'changed data + manifest', runs: [incr.changed + incr.manifest] },
      // lower is better, so the ratio is baseline / value: ≤ 1.1 × baseline is ratio ≥ 0.91
      '≤ 1.1 × baseline (ratio ≥ 0.91)',
    );
    m.extra = incr;
    ms.push(m);
  }
  if (lat) {
    const m = summarize(
      // the agent's own apply loop in this process, not the cluster's write latency (the
      // issue's measure is the deployed case below), so no target
      'agent apply p99 during a full backup (in-process, supplementary)',
      'ms',
      'lower',
      [lat.during],
      { name: 'apply p99 idle', runs: [lat.idle] },
    );
    m.extra = { entries: lat.n };
    ms.push(m);
  }
  const clusterKeys = Number(arg(argv, '--cluster-keys', '20000'));
  if (clusterKeys > 0) {
    const c = await clusterLatency(base, clusterKeys);
    const m = summarize(
      'cluster write p99 during a full backup (learner)',
      'ms',
      'lower',
      c.during,
      { name: 'write p99, learner following, no backup', runs: c.idle },
      'within 20% (ratio ≥ 0.833)',
    );
    m.extra = {
      keys: clusterKeys,
      writesIdle: c.nIdle,
      writesDuring: c.nDuring,
      backupMs: c.backupMs,
      noAgentP99: c.noAgent,
    };
    ms.push(m);
  }
  const processKeys = Number(arg(argv, '--process-keys', '5000'));
  if (processKeys > 0) {
    const c = await backupProcessLatency(
      base,
      processKeys,
      Number(arg(argv, '--process-rounds', '3')),
      (line) => console.error(line),
    );
    const m = summarize(
      'cluster write p99 during `synod backup full --cluster` (3 node processes + agent process)',
      'ms',
      'lower',
      c.during,
      { name: 'write p99, no agent', runs: c.idle },
      'within 20% (ratio ≥ 0.833)',
    );
    m.extra = {
      keys: processKeys,
      nodeSnapshotEvery: NODE_SNAPSHOT_EVERY,
      writesIdle: c.nIdle,
      writesDuring: c.nDuring,
      backupMs: c.backupMs.map((x) => Math.round(x)),
      nodeCpuUsPerWriteDuring: c.nodeCpuUsPerWriteDuring.map((x) => Math.round(x)),
      nodeCpuUsPerWriteIdle: c.nodeCpuUsPerWriteIdle.map((x) => Math.round(x)),
    };
    ms.push(m);
  }
  const agentKeys = Number(arg(argv, '--agent-keys', '50000'));
  if (agentKeys > 0) {
    const everyS = Number(arg(argv, '--agent-every', '10'));
    const afterMs = Number(arg(argv, '--agent-after-ms', '1000'));
    const c = await backupAgentProcessLatency(base, {
      keys: agentKeys,
      rounds: Number(arg(argv, '--agent-rounds', '4')),
      everyS,
      backupsPerRound: Number(arg(argv, '--agent-backups', '4')),
      noAgentMs: Number(arg(argv, '--agent-idle-ms', '20000')),
      afterMs,
      agentArgs: arg(argv, '--agent-args', '').split(' ').filter(Boolean),
      agentWrapper: arg(argv, '--agent-wrapper', '').split(' ').filter(Boolean),
      ...(arg(argv, '--agent-repo-dir', '') !== ''
        ? { repoBase: arg(argv, '--agent-repo-dir', '') }
        : {}),
      log: (line) => console.error(line),
    });
    const ph = c.phases;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const during = summarize(
      `cluster write p99 overlapping a scheduled full backup of a standing \`synod backup agent\` (3 node processes + agent process, --full '@every ${everyS}s')`,
      'ms',
      'lower',
      ph.map((p) => p.during),
      {
        name: 'write p99, same agent following, no backup (same minutes)',
        runs: ph.map((p) => p.idle),
      },
      'within 20% (ratio ≥ 0.833)',
    );
    during.extra = {
      keys: agentKeys,
      nodeSnapshotEvery: NODE_SNAPSHOT_EVERY,
      writesDuring: ph.map((p) => p.nDuring),
      writesAfter: ph.map((p) => p.nAfter),
      writesIdle: ph.map((p) => p.nIdle),
      writesExcluded: ph.map((p) => p.nExcluded),
      afterMs,
      pooledP99: {
        during: round1(c.pooled.during),
        after: round1(c.pooled.after),
        duringOrAfter: round1(c.pooled.duringOrAfter),
        idle: round1(c.pooled.idle),
      },
      backupMs: ph.map((p) => p.backupMs.map((x) => Math.round(x))),
      reusedShare: ph.map((p) => p.reusedShare.map((x) => round2(x))),
      backupShare: ph.map((p) => round2(p.backupShare)),
      catchUpMs: ph.map((p) => Math.round(p.catchUpMs)),
      agentCpuMsPerS: ph.map((p) => Math.round(p.agentCpuMsPerS)),
      agentCpuMsPerBackup: ph.map((p) => Math.round(p.agentCpuMsPerBackup)),
      agentExtraCpuMsPerBackup: ph.map((p) => Math.round(p.agentExtraCpuMsPerBackup)),
      nodeCpuUsPerWrite: ph.map((p) => Math.round(p.nodeCpuUsPerWrite)),
      perClass: ph.map((p) => ({
        during: roundAll(p.split.during),
        after: roundAll(p.split.after),
        idle: roundAll(p.split.idle),
      })),
      lastIndex: c.lastIndex,
    };
    ms.push(during);
    // The reviewer's caveat (session 13): what a backup leaves behind lands in the writes just
    // after it. Counted as during, and on its own.
    const sameMinutes = {
      name: 'write p99, same agent following, no backup (same minutes)',
      runs: ph.map((p) => p.idle),
    };
    const duringOrAfter = summarize(
      `cluster write p99 overlapping a scheduled full backup of a standing agent or the ${afterMs} ms after it`,
      'ms',
      'lower',
      ph.map((p) => p.duringOrAfter),
      sameMinutes,
      'within 20% (ratio ≥ 0.833)',
    );
    duringOrAfter.extra = {
      writes: ph.map((p) => p.nDuring + p.nAfter),
      pooledP99: { duringOrAfter: round1(c.pooled.duringOrAfter), idle: round1(c.pooled.idle) },
    };
    ms.push(duringOrAfter);
    const afterRow = summarize(
      `cluster write p99 in the ${afterMs} ms after a standing agent's scheduled full backup (no backup running)`,
      'ms',
      'lower',
      ph.map((p) => p.after),
      sameMinutes,
    );
    afterRow.extra = {
      writes: ph.map((p) => p.nAfter),
      pooledP99: { after: round1(c.pooled.after), idle: round1(c.pooled.idle) },
    };
    ms.push(afterRow);
    // The issue's Build line: "without stopping or slowing writes".
    const rate = summarize(
      'acknowledged writes/s while a standing agent\'s scheduled full backup runs ("without slowing writes")',
      'writes/s',
      'higher',
      ph.map((p) => round1(p.split.during.writesPerS)),
      {
        name: 'writes/s, same agent following, no backup (same minutes)',
        runs: ph.map((p) => round1(p.split.idle.writesPerS)),
      },
    );
    rate.extra = {
      seconds: ph.map((p) => ({
        during: round1(p.split.during.seconds),
        idle: round1(p.split.idle.seconds),
      })),
      afterWritesPerS: ph.map((p) => round1(p.split.after.writesPerS)),
    };
    ms.push(rate);
    const idle = summarize(
      "cluster write p99 with a standing `synod backup agent` following, no backup running (the agent's idle cost)",
      'ms',
      'lower',
      ph.map((p) => p.idle),
      {
        name: 'write p99, no agent (phases before, between and after)',
        runs: c.noAgent.map((p) => p.p99),
      },
    );
    idle.extra = {
      writesIdle: sum(ph.map((p) => p.nIdle)),
      writesNoAgent: c.noAgent.map((p) => p.n),
      pooledP99: { idle: round1(c.pooled.idle), noAgent: round1(c.pooled.noAgent) },
      noAgentNodeCpuUsPerWrite: c.noAgent.map((p) => Math.round(p.nodeCpuUsPerWrite)),
    };
    ms.push(idle);
  }
  // The cluster rows above work under `base` again (after the throughput rows removed it).
  await rm(base, { recursive: true, force: true });
  return report('backup', ms, [
    `state: ${keys.toLocaleString('en-US')} keys × ${VALUE} B values (half random) = ${mb.toFixed(0)} MB serialized (--size ${sizeMb})`,
    ...(kv
      ? [
          `kv state (the rows of record): ${kv.keys.toLocaleString('en-US')} KV keys × ${VALUE}-character values (half base64 of random bytes) put through the KV state machine by ${KV_CLIENTS} clients (Raft client sessions and KV sessions), = ${kv.mb.toFixed(0)} MB of records; the restore runs \`restoreDataDirs\` (what \`synod restore\` calls) in a child process, peakRssMb its peak RSS; --kv=false skips the kv rows`,
        ]
      : []),
    `repository: ${algo !== '' ? `${algo} (--compress)` : `${defaultCompression().algo} level ${defaultCompression().level} (the default here)`}, ${DEFAULT_CHUNKER.boundary} chunk boundaries, 1 MiB average chunks, no encryption, ${chunkPool.size} chunk worker threads; every chunk file fsynced, then its directory`,
    'cpuMsPerMb (in the JSON): process CPU time of all threads per MB of state, per run; baselineCpuMsPerMb the same for the baseline, and cpuRatio = baseline / ours (medians): less sensitive to the machine load than MB/s',
    loadNote(),
  ]);
};

/**
 * Applies small puts in slices of 100 (yielding between slices, as a mailbox does), timing
 * each slice; once idle and once while a full backup of the state is being written.
 */
async function applyLatency(
  tracked: TrackedState<import('../actors/backup/state.js').MapOp>,
  repo: Repository,
  keys: number,
): Promise<{ idle: number; during: number; n: number }> {
  let index = 1_000_000;
  const slice = async (): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      const v = Buffer.from(`v${index}`);
      tracked.apply(
        { type: 'put', key: keyName(index % keys), value: v },
        { index: ++index, term: 1, time: 0 },
      );
      pack({ op: 'put', v });
    }
    const d = performance.now() - t0;
    await new Promise<void>((r) => setImmediate(r));
    return d;
  };
  const idle: number[] = [];
  for (let i = 0; i < 300; i++) idle.push(await slice());
  const cap = tracked.captureFull();
  let done = false;
  const during: number[] = [];
  const w = repo
    .writeBackup({
      type: 'full',
      index,
      term: 1,
      time: 0,
      clusterId: 'bench',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 2,
    })
    .finally(() => {
      done = true;
    });
  // The latency a slice sees includes waiting for the backup's synchronous work between its awaits.
  while (!done) {
    const t0 = performance.now();
    await slice();
    during.push(performance.now() - t0);
  }
  await w;
  idle.sort((a, b) => a - b);
  during.sort((a, b) => a - b);
  return {
    idle: percentile(idle, 99),
    during: percentile(during, 99),
    n: (idle.length + during.length) * 100,
  };
}

/**
 * Write latency of an embedded 3-node KV cluster: 16 writers putting 1 KB values, p99 per
 * phase. Phases: no agent; the agent joined as a learner and following (no backup); a full
 * backup being written (repeated until at least 2 s of writes are sampled). Returns one p99
 * per repetition of the idle and during phases.
 */
async function clusterLatency(
  base: string,
  keys: number,
): Promise<{
  idle: number[];
  during: number[];
  noAgent: number;
  nIdle: number;
  nDuring: number;
  backupMs: number;
}> {
  const cluster = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    seed: 1,
    stateMachine: () => new KvStateMachine(),
  });
  const dir = path.join(base, 'cluster-repo');
  try {
    await cluster.start();
    await cluster.waitForLeader(20_000);
    const val = 'v'.repeat(1000);
    let next = 0;
    const load = async () => {
      while (next < keys) {
        const i = next++;
        await cluster.propose({ t: 'put', key: keyName(i), value: val }, 30_000);
      }
    };
    await Promise.all(Array.from({ length: 16 }, load));
    const writers = async (until: () => boolean): Promise<number[]> => {
      const lat: number[] = [];
      let k = 0;
      const one = async () => {
        while (!until()) {
          const t0 = performance.now();
          await cluster.propose({ t: 'put', key: keyName(k++ % keys), value: val }, 30_000);
          lat.push(performance.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: 16 }, one));
      return lat.sort((a, b) => a - b);
    };
    const forMs = (ms: number) => {
      const end = performance.now() + ms;
      return () => performance.now() >= end;
    };
    const noAgent = percentile(await writers(forMs(2000)), 99);
    const repo = await Repository.init(dir, { state: 'kv', clusterId: 'bench' });
    const agent = await startEmbeddedBackup(cluster, repo);
    await agent.live.catchUp(120_000);
    const idle: number[] = [];
    const during: number[] = [];
    let nIdle = 0;
    let nDuring = 0;
    let backupMs = 0;
    for (let r = 0; r < 3; r++) {
      const li = await writers(forMs(2000));
      idle.push(percentile(li, 99));
      nIdle += li.length;
      let done = false;
      const t0 = performance.now();
      const b = agent.live.backup('full').finally(() => {
        done = true;
        backupMs = performance.now() - t0;
      });
      const ld = await writers(() => done);
      await b;
      during.push(percentile(ld, 99));
      nDuring += ld.length;
    }
    await agent.live.leave();
    await agent.stop();
    return { idle, during, noAgent, nIdle, nDuring, backupMs };
  } finally {
    await cluster.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The record stream of `records` (records.ts's put records) in 1 MiB pieces: the baselines' bytes. */
function recordPieces(records: ReadonlyArray<readonly [string, Uint8Array | undefined]>): Buffer[] {
  const pieces: Buffer[] = [];
  let cur: Buffer[] = [];
  let len = 0;
  for (const [k, v] of records) {
    const val = v as Uint8Array;
    const kb = Buffer.byteLength(k);
    const hdr = Buffer.allocUnsafe(9 + kb);
    hdr[0] = 0;
    hdr.writeUInt32BE(kb, 1);
    hdr.write(k, 5);
    hdr.writeUInt32BE(val.length, 5 + kb);
    cur.push(hdr, Buffer.from(val.buffer, val.byteOffset, val.byteLength));
    len += hdr.length + val.length;
    if (len >= 1 << 20) {
      pieces.push(Buffer.concat(cur));
      cur = [];
      len = 0;
    }
  }
  if (cur.length) pieces.push(Buffer.concat(cur));
  return pieces;
}

/** KV clients (Raft client sessions and KV sessions) writing the bench's kv state. */
const KV_CLIENTS = 16;

/** A 1000-character value: half base64 of random bytes, half one repeated character. */
function kvValue(): string {
  return randomBytes(375).toString('base64') + 'x'.repeat(VALUE >> 1);
}

interface KvRestoreRun {
  wallMs: number;
  cpuMs: number;
  maxRssMb: number;
  digest: string;
  keyCount: number;
  bytesRead: number;
}

/** Runs bench/lib/restore-child.ts (one `restoreDataDirs` in a process of its own). */
async function restoreInChild(
  repoDir: string,
  dest: string,
  inMemory: boolean,
): Promise<KvRestoreRun> {
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 'restore-child.ts');
  const p = spawn(
    process.execPath,
    [...process.execArgv, child, repoDir, dest, ...(inMemory ? ['--in-memory'] : [])],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  p.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    p.on('error', reject);
    p.on('close', resolve);
  });
  const line = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) {
    throw new Error(`kv restore child exited ${code}: ${err.trim() || out.trim()}`);
  }
  return JSON.parse(line) as KvRestoreRun;
}

interface KvRows {
  keys: number;
  sessions: number;
  mb: number;
  backupRuns: number[];
  backupCpu: number[];
  copyRuns: number[];
  copyCpu: number[];
  dirRuns: number[];
  dirCpu: number[];
  dirRssMb: number[];
  fileCopyRuns: number[];
  fileCopyCpu: number[];
  /** With --kv-restore-compare: the in-memory path, alternated with the streamed one. */
  memRuns: number[];
  memCpu: number[];
  memRssMb: number[];
  storedBytes: number;
}

/**
 * The rows of record for the issue: a `kv` state — what a cluster's backup agent holds, the
 * KV state machine (revisions, KV sessions) inside Raft's client sessions
 * (`TrackedState(SessionState(KvKeyedState))`, agent.ts) — of the bench's size. Per run: the
 * baseline copy (the serialized records with SHA-256 and fsync); the full backup as the agent
 * takes it (`captureFull` + `Repository.writeBackup` into a `kv` repository); the data-dir
 * restore's baseline (file copy + SHA-256 + fsync); and `restoreDataDirs` of that repository
 * into a node data directory in a process of its own (bench/lib/restore-child.ts), whose
 * peak RSS is recorded. `compare`: also the in-memory restore path, alternated with the
 * streamed one (which goes first alternates by run).
 */
async function kvThroughput(
  base: string,
  sizeMb: number,
  runs: number,
  algo: string,
  compare: boolean,
): Promise<KvRows> {
  const tracked = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  // A record: 9 B of header, "k" + a 9-character key, msgpack [value, createRev, modRev, version].
  const keys = Math.floor((sizeMb * 1048576) / 1034);
  for (let i = 0; i < keys; i++) {
    const c = i % KV_CLIENTS;
    const q = Math.floor(i / KV_CLIENTS) + 1;
    tracked.apply(
      {
        clientId: `client-${c}`,
        seq: q,
        op: { t: 'put', key: keyName(i), value: kvValue(), s: { c: `kv-${c}`, q, a: q - 1 } },
      },
      { index: i + 1, term: 1, time: 0 },
    );
  }
  const first = tracked.captureFull();
  const mb = first.bytes / 1048576;
  const pieces = recordPieces(first.records);
  const rows: KvRows = {
    keys,
    sessions: 2 * KV_CLIENTS,
    mb,
    backupRuns: [],
    backupCpu: [],
    copyRuns: [],
    copyCpu: [],
    dirRuns: [],
    dirCpu: [],
    dirRssMb: [],
    fileCopyRuns: [],
    fileCopyCpu: [],
    memRuns: [],
    memCpu: [],
    memRssMb: [],
    storedBytes: 0,
  };
  for (let r = 0; r < runs; r++) {
    const file = path.join(base, `kv-copy-${r}`);
    const b0 = process.cpuUsage();
    rows.copyRuns.push(mb / (await baselineCopy(file, pieces)));
    const b1 = process.cpuUsage();
    rows.copyCpu.push(cpuMs(b0, b1) / mb);
    rows.fileCopyRuns.push(mb / (await baselineFileCopy(file, `${file}.copy`)));
    rows.fileCopyCpu.push(cpuMs(b1, process.cpuUsage()) / mb);
    await rm(file, { force: true });
    await rm(`${file}.copy`, { force: true });
    const dir = path.join(base, `kv-repo-${r}`);
    const repo = await Repository.init(dir, {
      state: 'kv',
      clusterId: 'bench',
      ...(algo !== '' ? { compression: { algo: algo as CompressionAlgo } } : {}),
    });
    // As the agent's `backup('full')`: the capture (synchronous, on the agent's loop), then
    // the write.
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const cap = tracked.captureFull();
    const m = await repo.writeBackup({
      type: 'full',
      index: cap.index,
      term: cap.term,
      time: cap.time,
      clusterId: 'bench',
      records: cap.records,
      keyCount: cap.keyCount,
      stateDigest: cap.stateDigest,
      now: 0,
      totalBytes: cap.bytes,
    });
    rows.backupRuns.push(mb / ((performance.now() - t0) / 1000));
    rows.backupCpu.push(cpuMs(c0, process.cpuUsage()) / mb);
    rows.storedBytes = m.storedBytes;
    const order = compare ? (r % 2 === 0 ? [false, true] : [true, false]) : [false];
    for (const inMemory of order) {
      const dest = path.join(base, `kv-restored-${r}-${inMemory ? 'mem' : 'stream'}`);
      const res = await restoreInChild(dir, dest, inMemory);
      if (res.digest !== cap.stateDigest || res.keyCount !== cap.keyCount) {
        throw new Error('bench kv data-dir restore: digest or key count mismatch');
      }
      const rate = mb / (res.wallMs / 1000);
      if (inMemory) {
        rows.memRuns.push(rate);
        rows.memCpu.push(res.cpuMs / mb);
        rows.memRssMb.push(Math.round(res.maxRssMb));
      } else {
        rows.dirRuns.push(rate);
        rows.dirCpu.push(res.cpuMs / mb);
        rows.dirRssMb.push(Math.round(res.maxRssMb));
      }
      await rm(dest, { recursive: true, force: true });
    }
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
