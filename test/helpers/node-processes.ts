/**
 * Real `synod node` processes on loopback for tests: free ports, a secret file, fresh data
 * directories, start/kill/restart by id, and teardown that kills whatever is left. Waits are
 * bounded (`until`) on observable state, never fixed sleeps.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../bench/lib/procs.js';

export { freePort };

/** Runs the CLI from source: `node --import tsx test/helpers/synod-cli.ts …`. */
// tsx by absolute URL, so processes started in another folder (cwd) still find it.
export const SYNOD_CLI = [
  '--import',
  import.meta.resolve('tsx'),
  path.resolve(import.meta.dirname, 'synod-cli.ts'),
];
export const TEST_SECRET = 'a-test-secret-of-enough-length-123';

/** Polls `probe` every `everyMs` until it returns a value; throws after `deadlineMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  deadlineMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs one `synod …` command without blocking this process; never rejects. `command` is how
 * to start synod (default: from source, `node --import tsx test/helpers/synod-cli.ts`).
 */
export function runSynod(
  args: string[],
  timeoutMs = 120_000,
  command: readonly string[] = [process.execPath, ...SYNOD_CLI],
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const [cmd, ...pre] = command;
    const child = spawn(cmd as string, [...pre, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

export interface NodeProcess {
  id: string;
  port: number;
  url: string;
  dataDir: string;
  child?: ChildProcess;
  /** Everything the process wrote (stdout and stderr), for failure messages. */
  output: string;
}

export class NodeProcesses {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'synod-nodes-'));
  readonly secretFile = path.join(this.dir, 'cluster.key');
  readonly nodes = new Map<string, NodeProcess>();
  private readonly extra = new Map<string, string[]>();

  private constructor() {
    writeFileSync(this.secretFile, `${TEST_SECRET}\n`);
  }

  /**
   * Reserves ports for `ids`; nothing starts yet. Data directories are `<dir>/<id>` unless
   * `dataDir` names them (a cluster restored into directories made elsewhere).
   */
  static async create(
    ids: string[],
    opts: { dataDir?: (id: string) => string } = {},
  ): Promise<NodeProcesses> {
    const p = new NodeProcesses();
    for (const id of ids) {
      const port = await freePort();
      p.nodes.set(id, {
        id,
        port,
        url: `ws://127.0.0.1:${port}`,
        dataDir: opts.dataDir?.(id) ?? path.join(p.dir, id),
        output: '',
      });
    }
    return p;
  }

  /** `id=ws://…` for every node, as `--peers`/`--cluster` take them. */
  peerList(except?: string): string {
    return [...this.nodes.values()]
      .filter((n) => n.id !== except)
      .map((n) => `${n.id}=${n.url}`)
      .join(',');
  }

  /** Starts node `id` with the founding members as peers (plus `extraArgs`, kept for restarts). */
  start(id: string, extraArgs: string[] = this.extra.get(id) ?? []): NodeProcess {
    const n = this.node(id);
    this.extra.set(id, extraArgs);
    const peers = this.peerList(id);
    const args = [
      ...SYNOD_CLI,
      'node',
      '--id',
      id,
      '--listen',
      `127.0.0.1:${n.port}`,
      ...(peers ? ['--peers', peers] : []),
      '--data',
      n.dataDir,
      '--secret-file',
      this.secretFile,
      ...extraArgs,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      n.output = (n.output + b.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    n.child = child;
    return n;
  }

  startAll(extraArgs: (id: string) => string[] = () => []): void {
    for (const id of this.nodes.keys()) this.start(id, extraArgs(id));
  }

  /** Sends `signal` and waits until the process has exited. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.node(id).child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  node(id: string): NodeProcess {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async close(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
