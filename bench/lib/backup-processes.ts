/**
 * The backup benchmark's deployed case: three `synod node` processes (WebSockets, file
 * storage, fsync on) and a separate `synod backup full --cluster` process, as an operator
 * runs it. 16 closed-loop writers put 1 KB values the whole time; the write p99 is taken in
 * alternating phases — no agent at all, then while one `synod backup full` runs (it joins as
 * a learner, catches up, writes the full backup and leaves) — so the machine's load drifts
 * over both alike. What the cluster pays is the learner's AppendEntries stream and, when its
 * log was compacted, one InstallSnapshot; the agent's chunking, hashing and compression run in
 * its own process.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { percentile } from '../harness.js';
import { ensureBuiltCli } from './procs.js';
import { SynodProcessCluster } from './synod-cluster.js';

export interface BackupProcessLatency {
  /** Write p99 (ms) per phase without an agent. */
  idle: number[];
  /** Write p99 (ms) per phase while `synod backup full --cluster` ran. */
  during: number[];
  nIdle: number;
  nDuring: number;
  /** Wall time of each `synod backup full` process (ms). */
  backupMs: number[];
}

const WRITERS = 16;

export async function backupProcessLatency(
  base: string,
  keys: number,
  rounds: number,
  log: (line: string) => void = () => {},
): Promise<BackupProcessLatency> {
  const dir = path.join(base, 'process-cluster');
  const repo = path.join(base, 'process-repo');
  const bin = ensureBuiltCli(log);
  const cluster = await SynodProcessCluster.start({ dir, log });
  const { clients, close } = await cluster.clients(WRITERS, { timeoutMs: 30_000 });
  try {
    const val = 'v'.repeat(1000);
    const key = (i: number) => `bench/${String(i).padStart(8, '0')}`;
    let next = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (next < keys) {
          const r = await c.put(key(next++), val);
          if (r.outcome !== 'ok') throw new Error(`preload put failed: ${JSON.stringify(r)}`);
        }
      }),
    );
    /** Writes until `stop()` says so; returns the sorted latencies of acknowledged puts. */
    const write = async (stop: () => boolean): Promise<number[]> => {
      const lat: number[] = [];
      let k = 0;
      await Promise.all(
        clients.map(async (c) => {
          while (!stop()) {
            const t0 = performance.now();
            const r = await c.put(key(k++ % keys), val);
            if (r.outcome === 'ok') lat.push(performance.now() - t0);
          }
        }),
      );
      return lat.sort((a, b) => a - b);
    };
    const secretFile = path.join(dir, 'cluster.key');
    const out: BackupProcessLatency = { idle: [], during: [], nIdle: 0, nDuring: 0, backupMs: [] };
    for (let r = 0; r < rounds; r++) {
      let done = false;
      const t0 = performance.now();
      const backup = new Promise<void>((resolve, reject) => {
        execFile(
          process.execPath,
          [
            bin,
            'backup',
            'full',
            '--cluster',
            cluster.peerSpecs().join(','),
            '--secret-file',
            secretFile,
            '--repo',
            repo,
            '--agent-id',
            `bench-agent-${r}`,
          ],
          { timeout: 300_000 },
          (err, _stdout, stderr) => {
            done = true;
            out.backupMs.push(performance.now() - t0);
            if (err) reject(new Error(`synod backup full failed: ${err.message}\n${stderr}`));
            else resolve();
          },
        );
      });
      const during = await write(() => done);
      await backup;
      out.during.push(percentile(during, 99));
      out.nDuring += during.length;
      // The same length of writing with no agent at all.
      const end = performance.now() + (out.backupMs[r] as number);
      const idle = await write(() => performance.now() >= end);
      out.idle.push(percentile(idle, 99));
      out.nIdle += idle.length;
      log(
        `round ${r + 1}: backup ${Math.round(out.backupMs[r] as number)} ms, p99 during ${out.during[r]?.toFixed(1)} ms (${during.length} writes), without ${out.idle[r]?.toFixed(1)} ms (${idle.length})`,
      );
    }
    return out;
  } finally {
    await close().catch(() => undefined);
    await cluster.stop();
    await rm(repo, { recursive: true, force: true });
  }
}
