/**
 * The chaos network: one Linux network namespace per node, each with a veth pair whose host
 * end is plugged into a bridge in the root namespace (where the harness and the clients run).
 * Faults are real packet drops, as Jepsen does them: iptables (nf_tables) rules inside the
 * namespaces for partitions and random loss. Latency: `tc netem` when the kernel has it; when
 * it does not (this machine's kernel has no netem and no fq qdisc), a delaying TCP relay in each
 * node's namespace that iptables DNAT puts between the node and its peers (delay-relay.ts).
 *
 * Clients are never partitioned from nodes: partitions cut node-to-node traffic only, the way
 * Jepsen's nemesis does (the harness must still be able to observe and heal everything).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RelayStats } from './delay-relay.js';

export class NetError extends Error {
  readonly code = 'SYNOD_ERR_CHAOS_NET';
}

function run(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0 && !allowFail) {
    throw new NetError(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`,
    );
  }
  return r.stdout ?? '';
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** Why the chaos network cannot be built here, or undefined when it can. */
export function netUnavailableReason(): string | undefined {
  if (process.platform !== 'linux')
    return `needs Linux network namespaces (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'needs root (network namespaces, veth pairs and iptables); run as root, as CI does';
  for (const c of ['ip', 'iptables', 'tc']) {
    if (!has(c)) return `needs the "${c}" command (apt-get install iproute2 iptables)`;
  }
  const probe = `synod-chaos-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create a network namespace: ${(r.stderr || '').trim()}`;
  try {
    const ipt = spawnSync(
      'ip',
      ['netns', 'exec', probe, 'iptables', '-A', 'INPUT', '-s', '10.0.0.9', '-j', 'DROP'],
      {
        encoding: 'utf8',
      },
    );
    if (ipt.status !== 0)
      return `iptables does not work inside a namespace: ${(ipt.stderr || '').trim()}`;
  } finally {
    spawnSync('ip', ['netns', 'del', probe]);
  }
  return undefined;
}

export interface NetNode {
  id: string;
  ns: string;
  ip: string;
  /** The interface inside the namespace. */
  dev: string;
}

export interface Capabilities {
  netem: boolean;
  statistic: boolean;
  /**
   * How the `slow` nemesis adds latency: `netem` (the kernel's), `relay` (delay-relay.ts,
   * inserted with iptables DNAT), or `none` (then `slow` is skipped, saying why).
   */
  latency: 'netem' | 'relay' | 'none';
  /** Why the relay cannot be used (when latency is `none`). */
  latencyProblem?: string;
}

/** The node port every chaos node listens on (cluster.ts). */
export const NODE_PORT = 7001;
/** The group the relays' sockets belong to; the DNAT rules skip it (no relay loop). */
const RELAY_GID = 4243;
/** Relay ports inside a node's namespace: 17000 + peer index for outgoing, 17900 inbound. */
const RELAY_OUT_BASE = 17000;
const RELAY_IN_PORT = 17900;

/** A delay-relay.ts process inside one node's namespace, driven over its stdin. */
class RelayProc {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  readonly ready: Promise<void>;
  private output = '';

  constructor(readonly child: ChildProcess) {
    let onReady: () => void = () => {};
    let onFail: (e: Error) => void = () => {};
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    child.stderr?.on('data', (b: Buffer) => {
      this.output = `${this.output}${b.toString()}`.slice(-2000);
    });
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(line);
      } catch {
        this.output = `${this.output}${line}\n`.slice(-2000);
        return;
      }
      if (m.ready) onReady();
      const w = typeof m.ack === 'number' ? this.waiting.get(m.ack) : undefined;
      if (w) {
        this.waiting.delete(m.ack as number);
        w(m);
      }
    });
    child.once('exit', (code, signal) => {
      const e = new NetError(`delay relay exited (${code ?? signal}): ${this.output.trim()}`);
      onFail(e);
      for (const w of this.waiting.values()) w({ error: e.message });
      this.waiting.clear();
    });
  }

  /** Sends a control line; resolves with the relay's answer (rejects on an error answer). */
  async send(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      throw new NetError(`delay relay is gone: ${this.output.trim()}`);
    const id = this.nextId++;
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(
          new NetError(`delay relay did not answer ${JSON.stringify(cmd)} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.child.stdin?.write(`${JSON.stringify({ id, ...cmd })}\n`);
    });
    if (typeof reply.error === 'string') throw new NetError(reply.error);
    return reply;
  }

  /** Fire and forget (heal() is synchronous): delay 0, every relayed connection closed. */
  resetNow(): void {
    if (this.child.exitCode === null && this.child.signalCode === null)
      this.child.stdin?.write(`${JSON.stringify({ reset: true })}\n`);
  }
}

/** Removes namespaces, bridges and veths left by chaos runs whose process is gone. */
export function cleanupStale(): void {
  const list = run('ip', ['-o', 'netns', 'list'], true);
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^synod-chaos-(\d+)-(\d+)-/.exec(name);
    if (m && !existsSync(`/proc/${m[2]}`)) run('ip', ['netns', 'del', name], true);
  }
  const links = run('ip', ['-o', 'link', 'show'], true);
  for (const line of links.split('\n')) {
    const m = /^\d+: (sc(\d+)br)[:@]/.exec(line);
    if (!m) continue;
    const tag = m[2] as string;
    const owners = readdirSync('/var/run/netns', { withFileTypes: true })
      .map((d) => d.name)
      .filter((n) => n.startsWith(`synod-chaos-${tag}-`));
    if (owners.length === 0) run('ip', ['link', 'del', m[1] as string], true);
  }
}

/**
 * Runs `fn` holding a lock shared by every chaos run on this machine (a directory created
 * atomically, holding its owner's pid). Picking a free subnet, creating its bridge and
 * removing stale ones must not interleave between two runs: two test files run in parallel by
 * tap once picked the same subnet, and one run's clean-up could take another's new bridge for
 * stale before its namespaces existed.
 */
function withNetLock<T>(fn: () => T): T {
  const dir = path.join(tmpdir(), 'synod-chaos-net.lock');
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
      } catch {}
      // The owner died holding it (or died between mkdir and writing its pid).
      if ((owner > 0 && !existsSync(`/proc/${owner}`)) || (owner === 0 && attempt > 100))
        rmSync(dir, { recursive: true, force: true });
      if (attempt > 1200)
        throw new NetError(`the chaos network lock ${dir} is held by pid ${owner} for over 60 s`);
      Atomics.wait(pause, 0, 0, 50); // a short synchronous pause between attempts
    }
  }
  try {
    return fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class ChaosNet {
  nodes: NetNode[] = [];
  hostIp = '';
  bridge = '';
  capabilities: Capabilities = { netem: false, statistic: false, latency: 'none' };
  private tag: number;
  private readonly relays = new Map<string, RelayProc>();
  /** Nodes whose connections currently go through their relay. */
  private readonly relayed = new Set<string>();
  private up = false;

  /** `tag`: 1..250, picks the subnet 10.231.<tag>.0/24 and the interface names. */
  constructor(
    readonly ids: readonly string[],
    tag?: number,
    /** The port the nodes listen on (their peers dial it). */
    readonly port = NODE_PORT,
  ) {
    if (ids.length > 200) throw new NetError('at most 200 nodes');
    this.fixedTag = tag !== undefined;
    this.tag = tag ?? ChaosNet.freeTag();
    this.assign(this.tag);
  }

  private readonly fixedTag: boolean;

  /** Names and addresses for subnet `tag`. */
  private assign(tag: number): void {
    this.tag = tag;
    this.bridge = `sc${tag}br`;
    this.hostIp = `10.231.${tag}.1`;
    this.nodes = this.ids.map((id, i) => ({
      id,
      ns: `synod-chaos-${tag}-${process.pid}-${id}`,
      ip: `10.231.${tag}.${11 + i}`,
      dev: `sc${tag}n${i}`,
    }));
  }

  static freeTag(): number {
    const links = run('ip', ['-o', 'link', 'show'], true);
    // A subnet is in use while its bridge or any of its veths exists (another test's veths
    // can outlive its bridge while a process still holds their namespace).
    for (let t = 1; t < 250; t++)
      if (!links.includes(`sc${t}br`) && !new RegExp(`: sc${t}h\\d+@`).test(links)) return t;
    throw new NetError('no free chaos subnet (250 in use?)');
  }

  node(id: string): NetNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new NetError(`unknown node ${id}`);
    return n;
  }

  setup(): void {
    withNetLock(() => {
      cleanupStale();
      // Another run may have taken the subnet picked at construction: pick again under the lock.
      if (!this.fixedTag) this.assign(ChaosNet.freeTag());
      this.up = true;
      run('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
      // Namespaces now, still under the lock, so no clean-up sees this bridge without owners.
      for (const n of this.nodes) run('ip', ['netns', 'add', n.ns]);
    });
    run('ip', ['addr', 'add', `${this.hostIp}/24`, 'dev', this.bridge]);
    run('ip', ['link', 'set', this.bridge, 'up']);
    this.nodes.forEach((n, i) => {
      const hostEnd = `sc${this.tag}h${i}`;
      run('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', n.dev]);
      run('ip', ['link', 'set', n.dev, 'netns', n.ns]);
      run('ip', ['link', 'set', hostEnd, 'master', this.bridge, 'up']);
      this.exec(n.id, ['ip', 'addr', 'add', `${n.ip}/24`, 'dev', n.dev]);
      this.exec(n.id, ['ip', 'link', 'set', n.dev, 'up']);
      this.exec(n.id, ['ip', 'link', 'set', 'lo', 'up']);
    });
    const first = this.nodes[0] as NetNode;
    const netem = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        first.ns,
        'tc',
        'qdisc',
        'add',
        'dev',
        first.dev,
        'root',
        'netem',
        'delay',
        '1ms',
      ],
      { encoding: 'utf8' },
    );
    spawnSync('ip', ['netns', 'exec', first.ns, 'tc', 'qdisc', 'del', 'dev', first.dev, 'root']);
    const stat = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        first.ns,
        'iptables',
        '-A',
        'INPUT',
        '-s',
        this.hostIp,
        '-m',
        'statistic',
        '--mode',
        'random',
        '--probability',
        '0.0',
        '-j',
        'DROP',
      ],
      { encoding: 'utf8' },
    );
    this.exec(first.id, ['iptables', '-F', 'INPUT']);
    const relayProblem = netem.status === 0 ? undefined : this.relayProblem(first);
    this.capabilities = {
      netem: netem.status === 0,
      statistic: stat.status === 0,
      latency: netem.status === 0 ? 'netem' : relayProblem === undefined ? 'relay' : 'none',
      ...(relayProblem !== undefined ? { latencyProblem: relayProblem } : {}),
    };
  }

  /** Why the delaying relay cannot work here (nat DNAT with the owner match, `ss -K`), if so. */
  private relayProblem(n: NetNode): string | undefined {
    const rule = [
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'tcp',
      '-d',
      '10.0.0.9',
      '--dport',
      String(this.port),
      '-m',
      'owner',
      '!',
      '--gid-owner',
      String(RELAY_GID),
      '-j',
      'DNAT',
      '--to-destination',
      `${n.ip}:${RELAY_OUT_BASE}`,
    ];
    const nat = spawnSync('ip', ['netns', 'exec', n.ns, 'iptables', ...rule], { encoding: 'utf8' });
    this.exec(n.id, ['iptables', '-t', 'nat', '-F', 'OUTPUT'], true);
    if (nat.status !== 0)
      return `iptables nat DNAT with the owner match does not work: ${(nat.stderr || '').trim()}`;
    const ss = spawnSync('ip', ['netns', 'exec', n.ns, 'ss', '-K', '-tn', 'dst', '10.0.0.9'], {
      encoding: 'utf8',
    });
    if (ss.status !== 0) return `ss -K does not work: ${(ss.stderr || '').trim()}`;
    return undefined;
  }

  /**
   * Starts the delay relay in every node's namespace (capabilities.latency === 'relay'), so a
   * `slow` fault later costs no process start. Idle until a node is slowed.
   */
  async startRelays(seed: number): Promise<void> {
    if (this.capabilities.latency !== 'relay') return;
    const script = fileURLToPath(new URL('./delay-relay.ts', import.meta.url));
    const started = this.nodes.map((n, i) => {
      const maps = [
        ...this.nodes
          .map((p, j) => ({ p, j }))
          .filter(({ p }) => p.id !== n.id)
          .map(({ p, j }) => `${RELAY_OUT_BASE + j}=${p.ip}:${this.port}:up`),
        `${RELAY_IN_PORT}=${n.ip}:${this.port}:down`,
      ];
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          n.ns,
          process.execPath,
          '--import',
          'tsx',
          script,
          '--listen-ip',
          n.ip,
          '--gid',
          String(RELAY_GID),
          '--map',
          maps.join(','),
          '--seed',
          String(seed * 1000 + i),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      const r = new RelayProc(child);
      this.relays.set(n.id, r);
      return r.ready;
    });
    await Promise.all(started);
  }

  /** The relay's counters for a node (tests and the nemesis log). */
  async relayStats(id: string): Promise<RelayStats> {
    const r = this.relays.get(id);
    if (!r) throw new NetError(`no delay relay for ${id}`);
    return (await r.send({ stats: true })).stats as RelayStats;
  }

  /** Runs a command inside a node's namespace. */
  exec(id: string, args: string[], allowFail = false): string {
    return run('ip', ['netns', 'exec', this.node(id).ns, ...args], allowFail);
  }

  /** Command prefix that runs a program inside the node's namespace. */
  prefix(id: string): string[] {
    return ['ip', 'netns', 'exec', this.node(id).ns];
  }

  /**
   * Installs iptables INPUT rules, one `iptables-restore --noflush` per namespace (a process
   * per rule is slow enough on a loaded machine to blur the fault's start).
   */
  private rules(perNode: Map<string, string[]>): void {
    for (const [id, rules] of perNode) {
      if (rules.length === 0) continue;
      this.restore(id, `*filter\n${rules.map((r) => `-A INPUT ${r}`).join('\n')}\nCOMMIT\n`);
    }
  }

  private restore(id: string, text: string): void {
    const r = spawnSync(
      'ip',
      ['netns', 'exec', this.node(id).ns, 'iptables-restore', '--noflush'],
      {
        input: text,
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    if (r.status !== 0)
      throw new NetError(`iptables-restore in ${id} failed: ${(r.stderr || '').trim()}`);
  }

  private add(map: Map<string, string[]>, to: string, rule: string): void {
    const list = map.get(to) ?? [];
    list.push(rule);
    map.set(to, list);
  }

  /** `to` stops receiving packets from `from` (the other direction still flows). */
  dropFrom(to: string, from: string): void {
    const m = new Map<string, string[]>();
    this.add(m, to, `-s ${this.node(from).ip} -j DROP`);
    this.rules(m);
  }

  /** Cuts the nodes into groups that cannot talk to each other (node traffic only). */
  partition(groups: readonly (readonly string[])[]): void {
    const m = new Map<string, string[]>();
    for (const g of groups)
      for (const h of groups) {
        if (g === h) continue;
        for (const a of g) for (const b of h) this.add(m, a, `-s ${this.node(b).ip} -j DROP`);
      }
    this.rules(m);
  }

  /** Each node hears only the nodes in `visible[id]` (plus itself and the clients). */
  restrict(visible: Record<string, readonly string[]>): void {
    const map = new Map<string, string[]>();
    for (const n of this.nodes) {
      const ok = new Set(visible[n.id] ?? []);
      for (const m of this.nodes)
        if (m.id !== n.id && !ok.has(m.id)) this.add(map, n.id, `-s ${m.ip} -j DROP`);
    }
    this.rules(map);
  }

  /** Random loss of `probability` of the packets the nodes receive from other nodes. */
  loss(ids: readonly string[], probability: number): void {
    if (!this.capabilities.statistic) throw new NetError('iptables statistic match missing');
    const map = new Map<string, string[]>();
    for (const id of ids)
      for (const m of this.nodes) {
        if (m.id === id) continue;
        this.add(
          map,
          id,
          `-s ${m.ip} -m statistic --mode random --probability ${probability} -j DROP`,
        );
      }
    this.rules(map);
  }

  /**
   * Adds latency to what node `id` sends (its egress): `tc netem delay` on its interface when
   * the kernel has netem; otherwise its relay holds every byte it sends to a peer for
   * `delayMs ± jitterMs`, the node's TCP connections with its peers being sent through the
   * relay by DNAT rules (new connections) and `ss -K` (its established ones, which then
   * reconnect through the relay). Connections with clients are not slowed by the relay.
   * Undone by heal().
   */
  async slow(id: string, delayMs: number, jitterMs: number): Promise<'netem' | 'relay'> {
    const n = this.node(id);
    if (this.capabilities.latency === 'netem') {
      this.exec(id, [
        'tc',
        'qdisc',
        'replace',
        'dev',
        n.dev,
        'root',
        'netem',
        'delay',
        `${delayMs}ms`,
        `${jitterMs}ms`,
      ]);
      return 'netem';
    }
    const relay = this.relays.get(id);
    if (this.capabilities.latency !== 'relay' || !relay)
      throw new NetError(
        `no way to add latency here: ${this.capabilities.latencyProblem ?? 'the delay relays were not started (startRelays)'}`,
      );
    await relay.send({ delay: delayMs, jitter: jitterMs });
    const peers = this.nodes.map((p, j) => ({ p, j })).filter(({ p }) => p.id !== id);
    const rules = [
      ...peers.map(
        ({ p, j }) =>
          `-A OUTPUT -p tcp -d ${p.ip} --dport ${this.port} -m owner ! --gid-owner ${RELAY_GID} -j DNAT --to-destination ${n.ip}:${RELAY_OUT_BASE + j}`,
      ),
      ...peers.map(
        ({ p }) =>
          `-A PREROUTING -p tcp -s ${p.ip} -d ${n.ip} --dport ${this.port} -j DNAT --to-destination ${n.ip}:${RELAY_IN_PORT}`,
      ),
    ];
    this.restore(id, `*nat\n${rules.join('\n')}\nCOMMIT\n`);
    this.relayed.add(id);
    // Established connections with peers do not see new DNAT rules: close them (both the ones
    // the node opened and the ones its peers opened); the nodes reconnect through the relay.
    this.exec(id, [
      'ss',
      '-K',
      '-tn',
      'state',
      'established',
      `( dport = :${this.port} or sport = :${this.port} )`,
      'and',
      `( ${peers.map(({ p }) => `dst ${p.ip}`).join(' or ')} )`,
    ]);
    return 'relay';
  }

  /** Removes every rule and qdisc, and takes the relays out: the network is whole again. */
  heal(): void {
    for (const n of this.nodes) {
      this.exec(n.id, [
        'sh',
        '-c',
        `iptables -F INPUT; iptables -t nat -F OUTPUT; iptables -t nat -F PREROUTING; tc qdisc del dev ${n.dev} root 2>/dev/null; true`,
      ]);
    }
    // The rules are gone, so the nodes reconnect directly once their relayed connections close.
    for (const id of this.relayed) this.relays.get(id)?.resetNow();
    this.relayed.clear();
  }

  teardown(): void {
    // Relays live in the namespaces and would keep them (and their listeners) alive.
    for (const r of this.relays.values()) r.child.kill('SIGKILL');
    this.relays.clear();
    this.relayed.clear();
    if (!this.up) return;
    this.up = false;
    for (const n of this.nodes) {
      // Processes still inside keep a namespace alive; the caller kills them first.
      run('ip', ['netns', 'del', n.ns], true);
    }
    run('ip', ['link', 'del', this.bridge], true);
  }
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
