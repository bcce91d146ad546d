/**
 * Five (or N) real `synod node` processes, each inside its own network namespace (see net.ts),
 * with their own data directories on disk. The harness can SIGKILL and restart, SIGSTOP and
 * SIGCONT them, sample their memory from /proc, and ask each node's admin actor for its status
 * over its own WebSocket transport from the root namespace (never partitioned).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  createWriteStream,
  type Dirent,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  type WriteStream,
} from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { ActorSystem } from '../../../lib/actor-system.js';
import { KvClient, type KvClientOptions } from '../../../lib/kv-client/client.js';
import { silentLogger } from '../../../lib/logger.js';
import type { AdminMsg, NodeStatus } from '../../../lib/node/node-admin.js';
import { randomFromEntropy } from '../../../lib/random.js';
import { WebSocketTransport } from '../../../transports/websocket/transport.js';
import { monotonicNow } from './clock.js';
import { NODE_PORT } from './net.js';
/** Where the nodes live: network namespaces (ChaosNet) or loopback ports (LoopbackNet). */
export interface NodePlacement {
  readonly nodes: readonly { id: string; ip: string; port?: number }[];
  node(id: string): { id: string; ip: string; port?: number };
  /** Command prefix that runs a program where the node lives. */
  prefix(id: string): string[];
}

/** Nodes on 127.0.0.1, one port each: no root needed, no network faults. */
export class LoopbackNet implements NodePlacement {
  readonly nodes: { id: string; ip: string; port: number }[];
  constructor(ids: readonly string[], ports: readonly number[]) {
    this.nodes = ids.map((id, i) => ({ id, ip: '127.0.0.1', port: ports[i] as number }));
  }
  node(id: string): { id: string; ip: string; port: number } {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`unknown node ${id}`);
    return n;
  }
  prefix(): string[] {
    return [];
  }
}

/** The port every chaos node listens on (its own address is what differs). */
export const PORT = NODE_PORT;

export interface ClusterOptions {
  net: NodePlacement;
  dir: string;
  secretFile: string;
  secret: string;
  protocol: string;
  /** Data directory per node (default `<dir>/data/<id>`). */
  dataDirs?: Record<string, string>;
  /** Extra `synod node` arguments. */
  nodeArgs?: string[];
  /** Called for every line a node prints (already written to its log file). */
  onLine?: (id: string, line: string) => void;
}

function newestSource(dir: string): number {
  let newest = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * How to run the CLI: the compiled dist/ when it is newer than every source file (a stale
 * build would test old code), else the sources through tsx (slower to start, more memory).
 */
export function cliCommand(root = process.cwd()): { cmd: string[]; from: 'dist' | 'source' } {
  const dist = path.join(root, 'dist/cli/main.js');
  if (process.env.SYNOD_CHAOS_FROM_SOURCE !== '1' && existsSync(dist)) {
    const built = statSync(dist).mtimeMs;
    const src = Math.max(
      ...['lib', 'actors', 'transports', 'cli'].map((d) => newestSource(path.join(root, d))),
    );
    if (built >= src)
      return { cmd: [process.execPath, path.join(root, 'bin/synod.js')], from: 'dist' };
  }
  return {
    cmd: [process.execPath, '--import', 'tsx', path.join(root, 'test/helpers/synod-cli.ts')],
    from: 'source',
  };
}

/**
 * The prefix of every line of `logs/<id>.log`: the time it was read, in CLOCK_MONOTONIC ms as
 * in nemesis.jsonl, rss.jsonl and the histories, so a node's lines can be placed among the
 * faults, the memory samples and the clients' operations (the nodes' own lines carry no time).
 */
function stamp(): string {
  return `[${monotonicNow().toFixed(1)}] `;
}

/**
 * Cuts a stream's chunks into lines (a line split across two chunks is one line); `end`
 * hands over a last line without a newline.
 */
export function lineSplitter(onLine: (line: string) => void): {
  push: (chunk: Buffer | string) => void;
  end: () => void;
} {
  let rest = '';
  const decoder = new StringDecoder('utf8');
  return {
    push: (chunk) => {
      const text = rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk));
      const lines = text.split('\n');
      rest = lines.pop() as string;
      for (const line of lines) if (line) onLine(line);
    },
    end: () => {
      rest += decoder.end();
      if (rest) onLine(rest);
      rest = '';
    },
  };
}

/** Resident set size of a process in bytes (from /proc), or undefined once it is gone. */
export function rssOfPid(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface NodeProc {
  id: string;
  child: ChildProcess | undefined;
  pid: number | undefined;
  state: 'down' | 'running' | 'paused';
  starts: number;
  exits: { code: number | null; signal: string | null; at: number; expected: boolean }[];
  log: WriteStream;
  tail: string[];
  /**
   * Set once the node was removed and re-added with a fresh data directory: it joins through
   * this node (`id=ws://…`) until its data directory holds Raft state, then restarts as usual.
   */
  rejoinVia?: string;
  /** Set while the membership nemesis removes it: exiting 0 by itself is then expected. */
  removing?: boolean;
}

export class ChaosCluster {
  readonly procs = new Map<string, NodeProc>();
  private probeSystem: ActorSystem | undefined;
  private probeTransport: WebSocketTransport | undefined;
  readonly cli = cliCommand();

  constructor(readonly opts: ClusterOptions) {
    mkdirSync(path.join(opts.dir, 'logs'), { recursive: true });
    for (const n of opts.net.nodes) {
      this.procs.set(n.id, {
        id: n.id,
        child: undefined,
        pid: undefined,
        state: 'down',
        starts: 0,
        exits: [],
        log: createWriteStream(path.join(opts.dir, 'logs', `${n.id}.log`), { flags: 'a' }),
        tail: [],
      });
    }
  }

  get ids(): string[] {
    return this.opts.net.nodes.map((n) => n.id);
  }

  url(id: string): string {
    const n = this.opts.net.node(id);
    return `ws://${n.ip}:${n.port ?? PORT}`;
  }

  /** `id=ws://ip:port` of every node. */
  peerSpecs(ids = this.ids): string[] {
    return ids.map((id) => `${id}=${this.url(id)}`);
  }

  proc(id: string): NodeProc {
    const p = this.procs.get(id);
    if (!p) throw new Error(`unknown node ${id}`);
    return p;
  }

  dataDir(id: string): string {
    return this.opts.dataDirs?.[id] ?? path.join(this.opts.dir, 'data', id);
  }

  /**
   * The membership nemesis: the node was removed from the cluster; kill it and wipe its data
   * directory (what an operator does before re-adding a member, as with etcd).
   */
  async retire(id: string): Promise<void> {
    await this.kill(id);
    rmSync(this.dataDir(id), { recursive: true, force: true });
  }

  /** Starts (or restarts) a node with the founding-member arguments, or `--join`. */
  start(id: string, opts: { join?: string; dataDir?: string } = {}): NodeProc {
    const p = this.proc(id);
    if (p.state !== 'down') throw new Error(`${id} is already running`);
    const n = this.opts.net.node(id);
    if (opts.join !== undefined) p.rejoinVia = opts.join;
    const dataDir = opts.dataDir ?? this.dataDir(id);
    // A re-added node that has not received any Raft state yet must join again, not bootstrap
    // as a founder with an empty log.
    const join =
      opts.join ??
      (p.rejoinVia !== undefined && !existsSync(path.join(dataDir, 'raft', 'hardstate'))
        ? p.rejoinVia
        : undefined);
    const args = [
      'node',
      '--id',
      id,
      '--listen',
      `${n.ip}:${n.port ?? PORT}`,
      '--data',
      dataDir,
      '--secret-file',
      this.opts.secretFile,
      '--protocol',
      this.opts.protocol,
      '--log-level',
      'info',
      ...(join
        ? ['--join', join]
        : this.ids.length > 1
          ? ['--peers', this.peerSpecs(this.ids.filter((x) => x !== id)).join(',')]
          : []),
      ...(this.opts.nodeArgs ?? []),
    ];
    const [cmd, ...pre] = [...this.opts.net.prefix(id), ...this.cli.cmd];
    const child = spawn(cmd as string, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.child = child;
    p.pid = child.pid;
    p.state = 'running';
    p.starts++;
    p.log.write(`${stamp()}--- start #${p.starts} pid ${child.pid}: ${args.join(' ')}\n`);
    const onLine = (line: string) => {
      p.log.write(`${stamp()}${line}\n`);
      p.tail.push(line);
      if (p.tail.length > 40) p.tail.shift();
      this.opts.onLine?.(id, line);
    };
    const out = lineSplitter(onLine);
    const err = lineSplitter(onLine);
    child.stdout?.on('data', out.push);
    child.stderr?.on('data', err.push);
    child.stdout?.once('end', out.end);
    child.stderr?.once('end', err.end);
    child.once('exit', (code, signal) => {
      const expected =
        p.child !== child || p.state === 'down' || (p.removing === true && code === 0);
      p.exits.push({ code, signal, at: Date.now(), expected });
      p.log.write(
        `${stamp()}--- exit code ${code} signal ${signal}${expected ? '' : ' (UNEXPECTED)'}\n`,
      );
      if (p.child === child) {
        p.child = undefined;
        p.pid = undefined;
        p.state = 'down';
      }
    });
    return p;
  }

  startAll(): void {
    for (const id of this.ids) this.start(id);
  }

  /** Waits up to `ms` for the node's process to exit by itself; true if it did. */
  async exitsWithin(id: string, ms: number): Promise<boolean> {
    const child = this.proc(id).child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** SIGKILL; resolves when the process is gone. */
  async kill(id: string): Promise<void> {
    const p = this.proc(id);
    const child = p.child;
    if (!child) return;
    p.state = 'down';
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await gone;
  }

  pause(id: string): void {
    const p = this.proc(id);
    if (p.state !== 'running' || !p.child) return;
    p.child.kill('SIGSTOP');
    p.state = 'paused';
  }

  resume(id: string): void {
    const p = this.proc(id);
    if (p.state !== 'paused' || !p.child) return;
    p.child.kill('SIGCONT');
    p.state = 'running';
  }

  /** SIGTERM (clean stop), SIGKILL after `graceMs`. */
  async stop(id: string, graceMs = 5000): Promise<void> {
    const p = this.proc(id);
    const child = p.child;
    if (!child) return;
    p.state = 'down';
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.stop(id)));
    await this.closeProbe();
    for (const p of this.procs.values()) p.log.end();
  }

  /** Resident set size in bytes, from /proc (undefined when the process is not running). */
  rss(id: string): number | undefined {
    return rssOfPid(this.proc(id).pid);
  }

  private probing: Promise<ActorSystem> | undefined;

  /** One probe transport, however many callers ask at once. */
  private probe(): Promise<ActorSystem> {
    this.probing ??= this.openProbe();
    return this.probing;
  }

  private async openProbe(): Promise<ActorSystem> {
    const random = randomFromEntropy();
    const nodeId = `chaos-probe-${random.nextUint32().toString(36)}`;
    const transport = await WebSocketTransport.create({
      nodeId,
      peers: this.peerSpecs(),
      random: random.fork(),
      secret: this.opts.secret,
      logger: { log: () => {} },
    } as unknown as ConstructorParameters<typeof WebSocketTransport>[0]);
    this.probeTransport = transport;
    this.probeSystem = new ActorSystem({ nodeId, transport, random, logger: silentLogger });
    return this.probeSystem;
  }

  /** The admin status of one node, or undefined when it does not answer in time. */
  async status(id: string, timeoutMs = 1500): Promise<NodeStatus | undefined> {
    const sys = await this.probe();
    try {
      return (await sys.ask(
        `${id}/admin`,
        { type: 'node.status' } as AdminMsg & { type: 'node.status' },
        timeoutMs,
      )) as NodeStatus;
    } catch {
      return undefined;
    }
  }

  async statuses(timeoutMs = 1500): Promise<Map<string, NodeStatus>> {
    const out = new Map<string, NodeStatus>();
    const live = this.ids.filter((id) => this.proc(id).state === 'running');
    const all = await Promise.all(live.map((id) => this.status(id, timeoutMs)));
    live.forEach((id, i) => {
      const s = all[i];
      if (s) out.set(id, s);
    });
    return out;
  }

  /** The leader with the highest term among the nodes that answer, if any. */
  async leader(timeoutMs = 1500): Promise<NodeStatus | undefined> {
    let best: NodeStatus | undefined;
    for (const s of (await this.statuses(timeoutMs)).values()) {
      if (s.role === 'leader' && (!best || s.term > best.term)) best = s;
    }
    return best;
  }

  /** A KV client on the harness's own transport (root namespace: never partitioned). */
  async kvClient(opts: Partial<Omit<KvClientOptions, 'system' | 'nodes'>> = {}): Promise<KvClient> {
    const system = await this.probe();
    return new KvClient({ ...opts, system, nodes: this.ids });
  }

  /** Sends any message to any actor of a node (used by the membership nemesis). */
  async ask<R>(to: string, msg: unknown, timeoutMs: number): Promise<R> {
    const sys = await this.probe();
    return (await sys.ask(to, msg as AdminMsg & { type: 'node.status' }, timeoutMs)) as R;
  }

  async closeProbe(): Promise<void> {
    await this.probing?.catch(() => undefined);
    await this.probeSystem?.shutdown();
    await this.probeTransport?.close(100);
    this.probeSystem = undefined;
    this.probeTransport = undefined;
    this.probing = undefined;
  }

  /** Kills every process still running (teardown on error). */
  killAllNow(): void {
    for (const p of this.procs.values()) {
      if (p.child) {
        p.state = 'down';
        p.child.kill('SIGCONT');
        p.child.kill('SIGKILL');
      }
    }
  }
}
