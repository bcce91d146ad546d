/**
 * A 3-member etcd cluster on loopback (Debian's `etcd-server`), data under one base directory
 * on the same disk as Synod's, default settings (fsync on, as etcd always does). `ensureEtcd`
 * installs the package with apt when the binary is missing and says clearly when it cannot.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { freePort, type Proc, sleep, startProc } from './procs.js';

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const out = r.stdout.trim();
  return r.status === 0 && out ? out : undefined;
}

export interface EtcdBinaries {
  etcd: string;
  etcdctl: string;
  version: string;
  /** What was done to get them (e.g. "installed etcd-server etcd-client with apt-get"). */
  note: string;
}

/**
 * Finds `etcd` and `etcdctl`, installing Debian's `etcd-server` and `etcd-client` with apt-get
 * when missing (needs root). Throws an error that says why when it cannot.
 */
export function ensureEtcd(log: (line: string) => void = () => {}): EtcdBinaries {
  let note = 'etcd-server was already installed';
  if (!which('etcd') || !which('etcdctl')) {
    const isRoot = process.getuid?.() === 0;
    const apt = which('apt-get');
    if (!apt)
      throw new Error(
        'etcd is not installed and apt-get is not available: install etcd 3.4 (etcd and etcdctl on PATH) and rerun',
      );
    const prefix = isRoot ? [] : which('sudo') ? ['sudo', '-n'] : undefined;
    if (!prefix)
      throw new Error(
        'etcd is not installed and this user cannot run apt-get (not root, no sudo): run `apt-get install etcd-server etcd-client` as root and rerun',
      );
    log('etcd not found: installing etcd-server and etcd-client with apt-get');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const run = (args: string[]) => {
      const [cmd, ...rest] = [...prefix, ...args] as [string, ...string[]];
      return spawnSync(cmd, rest, { encoding: 'utf8', env });
    };
    let r = run(['apt-get', 'install', '-y', 'etcd-server', 'etcd-client']);
    if (r.status !== 0) {
      run(['apt-get', 'update']);
      r = run(['apt-get', 'install', '-y', 'etcd-server', 'etcd-client']);
    }
    if (r.status !== 0 || !which('etcd') || !which('etcdctl'))
      throw new Error(
        `apt-get install etcd-server etcd-client failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`,
      );
    note = 'installed etcd-server and etcd-client with apt-get by this benchmark';
  }
  const etcd = which('etcd') as string;
  const etcdctl = which('etcdctl') as string;
  const v = spawnSync(etcd, ['--version'], { encoding: 'utf8' });
  const version = /etcd Version: (\S+)/.exec(v.stdout)?.[1] ?? 'unknown';
  return { etcd, etcdctl, version, note };
}

export interface EtcdClusterOptions {
  dir: string;
  bins: EtcdBinaries;
  size?: number;
  keepData?: boolean;
  log?: (line: string) => void;
}

export class EtcdCluster {
  readonly names: string[];
  readonly clientUrls: string[] = [];
  private readonly peerUrls: string[] = [];
  private readonly procs: Proc[] = [];

  private constructor(private readonly opts: EtcdClusterOptions) {
    this.names = Array.from({ length: opts.size ?? 3 }, (_, i) => `e${i}`);
  }

  static async start(opts: EtcdClusterOptions): Promise<EtcdCluster> {
    const c = new EtcdCluster(opts);
    try {
      for (let i = 0; i < c.names.length; i++) {
        c.clientUrls.push(`http://127.0.0.1:${await freePort()}`);
        c.peerUrls.push(`http://127.0.0.1:${await freePort()}`);
      }
      mkdirSync(opts.dir, { recursive: true });
      const token = `synod-bench-${process.pid}-${Date.now()}`;
      const initial = c.names.map((n, i) => `${n}=${c.peerUrls[i]}`).join(',');
      c.names.forEach((name, i) => {
        c.procs.push(
          startProc(name, opts.bins.etcd, [
            '--name',
            name,
            '--data-dir',
            path.join(opts.dir, name),
            '--listen-client-urls',
            c.clientUrls[i] as string,
            '--advertise-client-urls',
            c.clientUrls[i] as string,
            '--listen-peer-urls',
            c.peerUrls[i] as string,
            '--initial-advertise-peer-urls',
            c.peerUrls[i] as string,
            '--initial-cluster',
            initial,
            '--initial-cluster-state',
            'new',
            '--initial-cluster-token',
            token,
            '--logger',
            'zap',
            '--log-level',
            'warn',
          ]),
        );
      });
      await c.waitHealthy(30_000);
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  /** Runs etcdctl without blocking the event loop (the members' output pipes keep draining). */
  private ctl(
    args: string[],
    timeoutMs = 20_000,
  ): Promise<{ code: number; out: string; err: string }> {
    return new Promise((resolve) => {
      execFile(
        this.opts.bins.etcdctl,
        ['--endpoints', this.clientUrls.join(','), ...args],
        { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          resolve({ code, out: stdout ?? '', err: stderr ?? '' });
        },
      );
    });
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.ctl(['endpoint', 'health'], 5000);
      if (r.code === 0 && (await this.leaderEndpoint())) return;
      for (const p of this.procs) {
        const e = p.child.exitCode;
        if (e !== null) throw new Error(`etcd member ${p.name} exited with ${e}:\n${p.tail()}`);
      }
      if (Date.now() > deadline)
        throw new Error(
          `etcd cluster not healthy within ${timeoutMs} ms: ${r.err || r.out}\n${this.procs.map((p) => `${p.name}: ${p.tail()}`).join('\n')}`,
        );
      await sleep(200);
    }
  }

  /** The client URL of the current leader (from `etcdctl endpoint status`). */
  async leaderEndpoint(): Promise<string | undefined> {
    const r = await this.ctl(['endpoint', 'status', '-w', 'json'], 5000);
    if (r.code !== 0) return undefined;
    try {
      const list = JSON.parse(r.out) as {
        Endpoint: string;
        Status: { header: { member_id: number | string }; leader: number | string };
      }[];
      const l = list.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
      return l?.Endpoint;
    } catch {
      return undefined;
    }
  }

  /** Process ids of the members: the one whose client URL is `leaderUrl`, and the others. */
  pids(leaderUrl: string | undefined): { leader?: number; followers: number[] } {
    const out: { leader?: number; followers: number[] } = { followers: [] };
    this.procs.forEach((p, i) => {
      const pid = p.child.pid;
      if (pid === undefined) return;
      if (this.clientUrls[i] === leaderUrl) out.leader = pid;
      else out.followers.push(pid);
    });
    return out;
  }

  /** `etcdctl check perf --load=<load>` (runs about a minute); its output. */
  async checkPerf(load = 's'): Promise<string> {
    const r = await this.ctl(
      ['check', 'perf', `--load=${load}`, '--auto-compact', '--auto-defrag'],
      180_000,
    );
    const text = `${r.out}\n${r.err}`
      .split('\n')
      .filter((l) => l.trim() && !/^\s*\d+ \/ \d+ .*[%|]/.test(l) && !l.includes('\r'))
      .join('\n');
    return r.code === 0 ? text : `etcdctl check perf failed (exit ${r.code}): ${text}`;
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop(5000)));
    this.procs.length = 0;
    if (!this.opts.keepData) rmSync(this.opts.dir, { recursive: true, force: true });
  }
}
