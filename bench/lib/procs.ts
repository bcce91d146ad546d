/**
 * Child processes for the multi-process benchmarks: every process started here is registered,
 * and SIGKILLed when the benchmark process exits for any reason (normal exit, an uncaught error,
 * SIGINT/SIGTERM), so a failed run leaves no cluster behind. Also: free loopback ports, waiting
 * for a line of output, and building the CLI once (`dist/`) so nodes start with plain `node`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const live = new Set<ChildProcess>();
let hooked = false;

function killAllNow(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllNow();
      process.exit(130);
    });
  }
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** The last lines of stdout+stderr (for error messages). */
  tail(): string;
  /** Resolves with the first output line matching `re` (rejects on exit or timeout). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when the process has exited. */
  exited(): Promise<{ code: number | null; signal: string | null }>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when gone. */
  stop(graceMs?: number): Promise<void>;
}

export function startProc(
  name: string,
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Proc {
  hook();
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? repoRoot,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: string[] = [];
  const watchers: { re: RegExp; resolve: (l: string) => void }[] = [];
  let partial = '';
  const onData = (buf: Buffer): void => {
    const text = partial + buf.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      for (let i = watchers.length - 1; i >= 0; i--) {
        const w = watchers[i];
        if (w?.re.test(line)) {
          watchers.splice(i, 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', () => {
      live.delete(child);
      resolve({ code: -1, signal: null });
    });
  });
  const tail = (): string => lines.slice(-15).join('\n');
  return {
    name,
    child,
    tail,
    waitFor(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const w = {
          re,
          resolve: (l: string) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        watchers.push(w);
        const timer = setTimeout(() => {
          watchers.splice(watchers.indexOf(w), 1);
          reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms:\n${tail()}`));
        }, timeoutMs);
        void exit.then(({ code, signal }) => {
          if (!watchers.includes(w)) return;
          watchers.splice(watchers.indexOf(w), 1);
          clearTimeout(timer);
          reject(new Error(`${name} exited (code ${code}, signal ${signal}):\n${tail()}`));
        });
      });
    },
    exited: () => exit,
    kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Ports this process has handed out: the kernel may give a closed port back at once. */
const handedOut = new Set<number>();

/**
 * A port free on 127.0.0.1 now and never returned before by this process. The kernel can
 * give the same ephemeral port to two `listen(0)` calls in a row once the first is closed:
 * a node's transport and its dashboard then got one port (the dashboard refused to start).
 * The tests use this one too (test/helpers/node-processes.ts).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The compiled CLI entry (`bin/synod.js` over `dist/`), rebuilt with `tsc -p
 * tsconfig.build.json` when any source under lib/actors/transports/cli is newer than it.
 * Test files run in parallel, so the check and the build happen under a lock directory
 * (`mkdir` is atomic): a second caller waits for a build in progress instead of starting its
 * own tsc over the same files, or reading a dist/ that is half written.
 */
export function ensureBuiltCli(log: (line: string) => void = () => {}): string {
  const entry = path.join(repoRoot, 'dist', 'cli', 'main.js');
  const src = ['lib', 'actors', 'transports', 'cli'].map((d) => path.join(repoRoot, d));
  const release = lockDir(path.join(repoRoot, '.dist-build.lock'));
  try {
    const newest = Math.max(...src.map(newestMtime));
    if (!existsSync(entry) || statSync(entry).mtimeMs < newest) {
      log('building dist/ (tsc -p tsconfig.build.json) so the nodes run compiled JavaScript');
      const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
        cwd: repoRoot,
        encoding: 'utf8',
      });
      if (r.status !== 0) {
        if (!existsSync(entry) || statSync(entry).mtimeMs < newest)
          throw new Error(`tsc failed:\n${r.stdout}\n${r.stderr}`);
        log(`tsc reported errors but emitted dist/: ${r.stdout.split('\n')[0]}`);
      }
    }
  } finally {
    release();
  }
  return path.join(repoRoot, 'bin', 'synod.js');
}

/**
 * Takes a lock directory, waiting (synchronously: callers are test set-up and CLI scripts) while
 * another process holds it; a lock older than `staleMs` is from a process that died and is
 * broken. Returns the release function.
 */
function lockDir(dir: string, staleMs = 300_000): () => void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(dir);
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(dir).mtimeMs > staleMs)
          rmSync(dir, { recursive: true, force: true });
      } catch {
        // released between the two calls: try again
      }
      Atomics.wait(nap, 0, 0, 100);
    }
  }
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat (Linux);
 * undefined when it cannot be read. Load-independent: a busy machine delays a process but
 * does not change how much CPU its work takes.
 */
export function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Linux reports /proc times in clock ticks of 1/100 s on every common platform. */
const CLK_TCK = 100;

/** CPU time of this process (user + system, ms). */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
