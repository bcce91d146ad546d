/**
 * Starts the chaos client processes of a run (client-proc.ts for Raft / Multi-Paxos,
 * eventual-client.ts for the leaderless store): the same command line, output capture, ready
 * signal and exit accounting for both runners.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

export interface SpawnClientsOptions {
  /** The client script, relative to the repository root. */
  script: string;
  procs: number;
  workers: number;
  keys: number;
  durationMs: number;
  peers: readonly string[];
  secret: string;
  /** Where `history-<i>.jsonl` is written. */
  dir: string;
  seed: number;
  /** Further arguments for every process (e.g. `--counters 2`). */
  extraArgs?: readonly string[];
  /** Every child is pushed here as it starts, so the runner's cleanup can kill it. */
  children: ChildProcess[];
  /** A process that exits with a non-zero code adds a failure here. */
  failures: string[];
  log: (line: string) => void;
}

export interface SpawnedClients {
  /** One a process: resolves when it prints `{"ready":true}` (or exits). */
  ready: Promise<void>[];
  /** One a process: resolves when it exits. */
  done: Promise<void>[];
}

export function spawnClients(o: SpawnClientsOptions): SpawnedClients {
  const script = path.resolve(o.script);
  const ready: Promise<void>[] = [];
  const done: Promise<void>[] = [];
  for (let i = 0; i < o.procs; i++) {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        script,
        '--peers',
        o.peers.join(','),
        '--secret',
        o.secret,
        '--workers',
        String(o.workers),
        '--keys',
        String(o.keys),
        ...(o.extraArgs ?? []),
        '--duration-ms',
        String(o.durationMs),
        '--out',
        path.join(o.dir, `history-${i}.jsonl`),
        '--process-base',
        String(i * 100),
        '--seed',
        String(o.seed * 31 + i),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    o.children.push(child);
    let out = '';
    let isReady: () => void = () => {};
    ready.push(new Promise<void>((r) => (isReady = r)));
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('"ready":true')) isReady();
    });
    child.stderr?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    done.push(
      new Promise((resolve) =>
        child.once('exit', (code) => {
          o.log(`[client ${i}] exit ${code}: ${out.trim().split('\n').slice(-3).join(' | ')}`);
          isReady();
          if (code !== 0)
            o.failures.push(`client process ${i} exited with ${code}: ${out.trim().slice(-500)}`);
          resolve();
        }),
      ),
    );
  }
  return { ready, done };
}
