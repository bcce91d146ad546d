/**
 * A Synod cluster of real `synod node` processes on loopback: fresh data directories under one
 * base directory (file storage, fsync on: the node's defaults), a shared secret file, and a
 * control connection (an actor system on the WebSocket transport, the same one the KV clients
 * use) that reads each node's status from `<id>/admin`. `stop()` tears everything down and
 * removes the data; processes are SIGKILLed on exit of the benchmark even if it fails.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KvClient, type KvClientOptions } from '../../lib/kv-client/client.js';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { ensureBuiltCli, freePort, type Proc, sleep, startProc } from './procs.js';

export interface SynodClusterOptions {
  /** Base directory for data and secret (created; removed by stop() unless keepData). */
  dir: string;
  ids?: string[];
  /** Extra `node` flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/x'] (per node id). */
  nodeFlags?: (id: string) => string[];
  /** Extra `synod node` arguments per node id, e.g. ['--snapshot-every', '1000000']. */
  nodeArgs?: (id: string) => string[];
  /** A command prefix per node, e.g. ['strace', '-f', '-c', '-o', file] (default none). */
  wrapper?: (id: string) => string[];
  keepData?: boolean;
  log?: (line: string) => void;
}

const SECRET = 'synod-bench-secret-0123456789abcdef';

export class SynodProcessCluster {
  readonly ids: string[];
  readonly urls = new Map<string, string>();
  private readonly procs = new Map<string, Proc>();
  private readonly secretFile: string;
  private readonly cli: string;
  private control: RemoteKvClient | undefined;

  private constructor(
    private readonly opts: SynodClusterOptions,
    ports: number[],
  ) {
    this.ids = opts.ids ?? ['a', 'b', 'c'];
    this.ids.forEach((id, i) => {
      this.urls.set(id, `ws://127.0.0.1:${ports[i]}`);
    });
    mkdirSync(opts.dir, { recursive: true });
    this.secretFile = path.join(opts.dir, 'cluster.key');
    writeFileSync(this.secretFile, `${SECRET}\n`, { mode: 0o600 });
    this.cli = ensureBuiltCli(opts.log);
  }

  static async start(opts: SynodClusterOptions): Promise<SynodProcessCluster> {
    const n = opts.ids?.length ?? 3;
    const ports: number[] = [];
    for (let i = 0; i < n; i++) ports.push(await freePort());
    const c = new SynodProcessCluster(opts, ports);
    try {
      await Promise.all(c.ids.map((id) => c.startNode(id)));
      c.control = await connect(c.peerSpecs(), { secret: SECRET, timeoutMs: 5000 });
      await c.waitForLeader(30_000);
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  /** `id=ws://127.0.0.1:port` for every node. */
  peerSpecs(): string[] {
    return this.ids.map((id) => `${id}=${this.urls.get(id)}`);
  }

  get secret(): string {
    return SECRET;
  }

  dataDir(id: string): string {
    return path.join(this.opts.dir, id);
  }

  pid(id: string): number | undefined {
    return this.procs.get(id)?.child.pid;
  }

  /** Starts (or restarts, on its existing data) node `id`; resolves once it listens. */
  async startNode(id: string): Promise<void> {
    const url = this.urls.get(id) as string;
    const port = url.slice(url.lastIndexOf(':') + 1);
    const peers = this.ids
      .filter((p) => p !== id)
      .map((p) => `${p}=${this.urls.get(p)}`)
      .join(',');
    const wrap = this.opts.wrapper?.(id) ?? [];
    const [cmd, ...pre] = [...wrap, process.execPath] as unknown as [string, ...string[]];
    const proc = startProc(id, cmd, [
      ...pre,
      ...(this.opts.nodeFlags?.(id) ?? []),
      this.cli,
      'node',
      '--id',
      id,
      '--listen',
      `127.0.0.1:${port}`,
      '--peers',
      peers,
      '--data',
      this.dataDir(id),
      '--secret-file',
      this.secretFile,
      '--log-level',
      'warn',
      ...(this.opts.nodeArgs?.(id) ?? []),
    ]);
    this.procs.set(id, proc);
    // At --log-level warn the node prints nothing when healthy: wait until it accepts connections.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const done = await Promise.race([
        proc.exited().then((e) => e),
        canConnect(Number(port)).then((ok) => (ok ? 'up' : undefined)),
      ]);
      if (done === 'up') return;
      if (done !== undefined)
        throw new Error(
          `node ${id} exited (code ${done.code}, signal ${done.signal}):\n${proc.tail()}`,
        );
      if (Date.now() > deadline)
        throw new Error(`node ${id} did not listen within 30 s:\n${proc.tail()}`);
      await sleep(50);
    }
  }

  /** Sends a signal to node `id` (default SIGKILL); resolves when the process is gone. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(id);
    if (!p) return;
    p.kill(signal);
    await p.exited();
  }

  /** The status of each node that answers within `timeoutMs`. */
  async statuses(ids: string[] = this.ids, timeoutMs = 1500): Promise<NodeStatus[]> {
    const system = this.controlClient().system;
    const all = await Promise.all(
      ids.map((id) =>
        system
          .ask(`${id}/admin`, { type: 'node.status' } as never, timeoutMs)
          .then((s) => s as NodeStatus)
          .catch(() => undefined),
      ),
    );
    return all.filter((s): s is NodeStatus => s !== undefined && s.role !== undefined);
  }

  /**
   * Waits until the nodes in `ids` that answer agree on one leader (not in `exclude`) with every
   * listed node at that term; returns it.
   */
  async waitForLeader(
    timeoutMs: number,
    opts: { ids?: string[]; exclude?: string[]; caughtUp?: boolean } = {},
  ): Promise<NodeStatus> {
    const ids = opts.ids ?? this.ids;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.statuses(ids);
      const leader = s.find((n) => n.role === 'leader' && !opts.exclude?.includes(n.id));
      if (
        leader &&
        s.length === ids.length &&
        s.every((n) => n.term === leader.term && n.leader === leader.id) &&
        (!opts.caughtUp || s.every((n) => n.appliedIndex >= leader.commitIndex))
      )
        return leader;
      if (Date.now() > deadline)
        throw new Error(
          `no agreed leader among ${ids.join(',')} within ${timeoutMs} ms: ${JSON.stringify(
            s.map((n) => ({ id: n.id, role: n.role, term: n.term, leader: n.leader })),
          )}`,
        );
      await sleep(50);
    }
  }

  private controlClient(): RemoteKvClient {
    if (!this.control) throw new Error('the cluster control connection is not open');
    return this.control;
  }

  /**
   * `n` KV clients sharing one WebSocket actor system (one connection per node), each its own
   * session: writes of one client are sequential, so `n` clients = `n` concurrent writers.
   */
  async clients(
    n: number,
    options: Partial<Omit<KvClientOptions, 'system' | 'nodes'>> = {},
  ): Promise<{ clients: KvClient[]; close(): Promise<void> }> {
    const first = await connect(this.peerSpecs(), { ...options, secret: SECRET });
    const clients: KvClient[] = [first];
    for (let i = 1; i < n; i++)
      clients.push(new KvClient({ ...options, system: first.system, nodes: this.ids }));
    return {
      clients,
      close: async () => {
        for (const c of clients.slice(1)) await c.close();
        await first.disconnect();
      },
    };
  }

  /** The last lines node `id` printed. */
  output(id: string): string {
    return this.procs.get(id)?.tail() ?? '';
  }

  /** A KV client on the control connection that talks only to `nodes`. */
  client(
    nodes: string[],
    options: Partial<Omit<KvClientOptions, 'system' | 'nodes'>> = {},
  ): KvClient {
    return new KvClient({ ...options, system: this.controlClient().system, nodes });
  }

  /** Stops every node (SIGTERM, then SIGKILL), closes the control connection, removes data. */
  async stop(): Promise<void> {
    await this.control?.disconnect().catch(() => {});
    this.control = undefined;
    await Promise.all([...this.procs.values()].map((p) => p.stop(5000)));
    this.procs.clear();
    if (!this.opts.keepData) rmSync(this.opts.dir, { recursive: true, force: true });
  }
}

async function canConnect(port: number): Promise<boolean> {
  const { connect: netConnect } = await import('node:net');
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
