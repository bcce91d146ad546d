/**
 * A 3-node `@markwylde/liferaft` cluster (the JavaScript peer the issue names), one process per
 * node (bench/lib/liferaft-node.ts), and the load generator's target for it. liferaft is not a
 * dependency of Synod: `ensureLiferaft` installs it on first use into `.bench-cache/liferaft`
 * (git-ignored) with npm, and says clearly when it cannot.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import type { KvClientSet, KvTarget } from './loadgen.js';
import { cpuMsOf, freePort, type Proc, repoRoot, sleep, startProc } from './procs.js';
import { OpError } from './targets.js';

export const LIFERAFT_PACKAGE = '@markwylde/liferaft@1.4.0';

/** The directory holding `node_modules/@markwylde/liferaft`, installing it when missing. */
export function ensureLiferaft(log: (line: string) => void = () => {}): {
  dir: string;
  note: string;
} {
  const dir = path.join(repoRoot, '.bench-cache', 'liferaft');
  const pkg = path.join(dir, 'node_modules', '@markwylde', 'liferaft', 'package.json');
  if (existsSync(pkg)) return { dir, note: `${LIFERAFT_PACKAGE} already in ${dir}` };
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'synod-bench-liferaft', private: true }),
  );
  log(
    `installing ${LIFERAFT_PACKAGE} into ${path.relative(repoRoot, dir)} (not a Synod dependency)`,
  );
  const r = spawnSync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error', LIFERAFT_PACKAGE],
    { cwd: dir, encoding: 'utf8' },
  );
  if (r.status !== 0 || !existsSync(pkg))
    throw new Error(
      `npm install ${LIFERAFT_PACKAGE} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ')}`,
    );
  // LevelDB's native binding comes prebuilt inside leveldown; check that it loads here.
  const probe = spawnSync(
    process.execPath,
    ['-e', "require('leveldown')(require('os').tmpdir() + '/synod-leveldown-probe')"],
    { cwd: dir, encoding: 'utf8' },
  );
  if (probe.status !== 0)
    throw new Error(`leveldown (liferaft's log store) does not load: ${probe.stderr.trim()}`);
  return { dir, note: `installed ${LIFERAFT_PACKAGE} with npm into ${dir} for this benchmark` };
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  leader?: boolean | string;
  term?: number;
  rejections?: number;
}

/** A request/reply WebSocket to one liferaft node. */
class NodeLink {
  private next = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (buf) => {
      const r = JSON.parse(String(buf)) as Reply;
      const w = this.waiting.get(r.id);
      if (w) {
        this.waiting.delete(r.id);
        w(r);
      }
    });
    ws.on('close', () => {
      for (const w of this.waiting.values()) w({ id: 0, ok: false, error: 'closed' });
      this.waiting.clear();
    });
  }
  static open(port: number): Promise<NodeLink> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`);
      ws.once('open', () => resolve(new NodeLink(ws)));
      ws.once('error', reject);
    });
  }
  request(m: Record<string, unknown>): Promise<Reply> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ ...m, id }));
    });
  }
  close(): void {
    this.ws.close();
  }
}

export class LiferaftCluster {
  private constructor(
    private readonly procs: Proc[],
    private readonly ports: number[],
  ) {}

  static async start(opts: {
    dir: string;
    liferaftDir: string;
    log?: (line: string) => void;
  }): Promise<LiferaftCluster> {
    rmSync(opts.dir, { recursive: true, force: true });
    const ports = [await freePort(), await freePort(), await freePort()];
    const script = path.join(repoRoot, 'bench', 'lib', 'liferaft-node.ts');
    const procs = ports.map((port, i) => {
      const data = path.join(opts.dir, `n${i}`);
      mkdirSync(data, { recursive: true });
      const others = ports.filter((p) => p !== port).join(',');
      return startProc(`liferaft-n${i}`, process.execPath, [
        '--import',
        'tsx',
        script,
        opts.liferaftDir,
        `n${i}`,
        String(port),
        data,
        others,
      ]);
    });
    await Promise.all(procs.map((p) => p.waitFor(/^ready$/, 30_000)));
    return new LiferaftCluster(procs, ports);
  }

  /** The index of the node that says it leads, waiting up to `timeoutMs`. */
  async waitForLeader(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const links = await Promise.all(this.ports.map((p) => NodeLink.open(p)));
    try {
      while (Date.now() < deadline) {
        const st = await Promise.all(links.map((l) => l.request({ t: 'status' })));
        const leaders = st.flatMap((s, i) => (s.leader === true ? [i] : []));
        if (leaders.length === 1) return leaders[0] as number;
        await sleep(50);
      }
    } finally {
      for (const l of links) l.close();
    }
    throw new Error(`liferaft elected no leader within ${timeoutMs} ms`);
  }

  /** Unhandled promise rejections each node logged so far (liferaft's follower bug). */
  async rejections(): Promise<number[]> {
    const links = await Promise.all(this.ports.map((p) => NodeLink.open(p).catch(() => undefined)));
    try {
      return await Promise.all(
        links.map(async (l) => (l ? ((await l.request({ t: 'status' })).rejections ?? 0) : -1)),
      );
    } finally {
      for (const l of links) l?.close();
    }
  }

  pids(leader: number): { leader?: number; followers: number[] } {
    const pid = (i: number) => this.procs[i]?.child.pid;
    return {
      leader: pid(leader),
      followers: [0, 1, 2].filter((i) => i !== leader).flatMap((i) => pid(i) ?? []),
    };
  }

  /** Writes-only target: liferaft has no read path (no read-index, no lease reads). */
  target(name = 'liferaft', perConn = 64): KvTarget {
    let leader = -1;
    return {
      name,
      cpu: () => {
        const out: Record<string, number> = {};
        if (leader < 0) return out;
        const p = this.pids(leader);
        const l = cpuMsOf(p.leader);
        if (l !== undefined) out.leader = l;
        p.followers.forEach((pid, i) => {
          const ms = cpuMsOf(pid);
          if (ms !== undefined) out[`follower ${i + 1}`] = ms;
        });
        return out;
      },
      open: async (n: number): Promise<KvClientSet> => {
        leader = await this.waitForLeader(30_000);
        const port = this.ports[leader] as number;
        const links = await Promise.all(
          Array.from({ length: Math.max(1, Math.ceil(n / perConn)) }, () => NodeLink.open(port)),
        );
        const of = (i: number) => links[i % links.length] as NodeLink;
        return {
          put: async (i, key, value) => {
            // liferaft commits one command at a time; at high concurrency a put can wait for
            // minutes. Give up after 10 s (counted as a failure) so a level ends on time.
            let timer: NodeJS.Timeout | undefined;
            const r = await Promise.race([
              of(i).request({ t: 'put', key, value }),
              new Promise<Reply>((resolve) => {
                timer = setTimeout(
                  () => resolve({ id: 0, ok: false, error: 'timeout after 10 s' }),
                  10_000,
                );
              }),
            ]);
            clearTimeout(timer);
            if (!r.ok) throw new OpError(r.error ?? 'failed', r.error ?? 'put failed');
          },
          get: async () => {
            throw new OpError('unsupported', 'liferaft has no linearizable read');
          },
          close: async () => {
            for (const l of links) l.close();
          },
        };
      },
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop(3000)));
  }
}
