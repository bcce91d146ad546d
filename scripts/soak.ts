/**
 * `npm run soak -- --minutes M [--protocol raft|paxos] [--nodes 3] [--clients 8] [--backup-every S] [--out DIR]`
 *
 * Steady load on a real cluster (`synod node` processes on loopback, no root needed) for M
 * minutes: closed-loop clients writing and reading, samples every 5 s of each node's RSS and
 * open file descriptors (from /proc) and of the throughput, written to samples.jsonl and drawn
 * as soak.svg (memory, fds, ops/s over time). Exit 1 when memory or fds keep growing (last
 * quarter's median above 1.5× the second quarter's) or throughput collapses (last quarter's
 * median below half of the second quarter's), else 0.
 *
 * Periodic backups: a `synod backup agent` process joins as a learner for the whole run and
 * follows a schedule of an incremental every S seconds and a full every 5·S (`--backup-every`,
 * default 60; 0 turns it off); at the end it is stopped (SIGTERM), and the repository is
 * listed and verified (on Multi-Paxos the agent pulls chosen slots instead of joining, see
 * docs/backup.md). Its RSS and fds are sampled like a node's. Snapshots: the nodes compact
 * on their own (by log size); the soak samples each node's newest snapshot index and reports
 * how many distinct snapshots each took. Exit 1 also when no backup was taken or the
 * repository does not verify.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monotonicNow } from '../test/chaos/harness/clock.js';
import { ChaosCluster, LoopbackNet, rssOfPid as rssOf } from '../test/chaos/harness/cluster.js';

const SECRET = 'soak-secret-of-enough-length-0000000001';

function flag(argv: string[], name: string, dflt: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : dflt;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function fds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/**
 * Index of the newest snapshot in a node's data directory (`raft/snapshots/<index>-<term>.snap`,
 * or `paxos/snapshots/…`, the learner's).
 */
function newestSnapshot(dataDir: string, protocol: string): number | undefined {
  try {
    const idx = readdirSync(path.join(dataDir, protocol, 'snapshots'))
      .filter((f) => f.endsWith('.snap'))
      .map((f) => Number(f.split('-')[0]));
    return idx.length ? Math.max(...idx) : undefined;
  } catch {
    return undefined;
  }
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? (s[Math.floor(s.length / 2)] as number) : 0;
};

interface Sample {
  t: number;
  opsPerSec: number;
  rss: Record<string, number>;
  fds: Record<string, number>;
}

function svg(samples: Sample[], ids: string[]): string {
  const W = 900;
  const H = 220;
  const pad = 40;
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const panel = (
    title: string,
    y0: number,
    series: { name: string; pts: [number, number][] }[],
    unit: string,
  ) => {
    const vMax = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p[1])));
    const x = (t: number) => pad + ((W - 2 * pad) * t) / tMax;
    const y = (v: number) => y0 + H - pad / 2 - ((H - pad) * v) / vMax;
    const lines = series
      .map(
        (s, i) =>
          `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5" points="${s.pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>` +
          `<text x="${W - pad - 60}" y="${y0 + 20 + 14 * i}" font-size="11" fill="${colors[i % colors.length]}">${s.name}</text>`,
      )
      .join('');
    return (
      `<text x="${pad}" y="${y0 + 14}" font-size="13">${title} (max ${vMax.toFixed(1)} ${unit})</text>` +
      `<line x1="${pad}" y1="${y0 + H - pad / 2}" x2="${W - pad}" y2="${y0 + H - pad / 2}" stroke="#999"/>` +
      `<text x="${pad}" y="${y0 + H - 4}" font-size="10">0 s</text><text x="${W - pad - 30}" y="${y0 + H - 4}" font-size="10">${(tMax / 1000).toFixed(0)} s</text>` +
      lines
    );
  };
  const mem = ids.map((id) => ({
    name: id,
    pts: samples
      .filter((s) => s.rss[id] !== undefined)
      .map((s) => [s.t, (s.rss[id] as number) / 1048576] as [number, number]),
  }));
  const fd = ids.map((id) => ({
    name: id,
    pts: samples
      .filter((s) => s.fds[id] !== undefined)
      .map((s) => [s.t, s.fds[id] as number] as [number, number]),
  }));
  const ops = [{ name: 'ops/s', pts: samples.map((s) => [s.t, s.opsPerSec] as [number, number]) }];
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${3 * H}" font-family="sans-serif">` +
    panel('RSS per node', 0, mem, 'MiB') +
    panel('open file descriptors per node', H, fd, 'fds') +
    panel('throughput', 2 * H, ops, 'ops/s') +
    '</svg>'
  );
}

const FLAGS = ['minutes', 'protocol', 'nodes', 'clients', 'backup-every', 'out'];
const USAGE =
  'usage: npm run soak -- [--minutes M] [--protocol raft|paxos] [--nodes N] [--clients C] [--backup-every S] [--out DIR]';

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  for (let i = 0; i < argv.length; i += 2) {
    const a = argv[i] as string;
    if (!a.startsWith('--') || !FLAGS.includes(a.slice(2)) || argv[i + 1] === undefined) {
      console.error(`soak: unknown or incomplete option ${JSON.stringify(a)}\n${USAGE}`);
      return 2;
    }
  }
  const minutes = Number(flag(argv, 'minutes', '5'));
  const protocol = flag(argv, 'protocol', 'raft');
  if (protocol !== 'raft' && protocol !== 'paxos') {
    console.error(`soak: --protocol is raft or paxos, not ${JSON.stringify(protocol)}\n${USAGE}`);
    return 2;
  }
  const n = Number(flag(argv, 'nodes', '3'));
  const clients = Number(flag(argv, 'clients', '8'));
  const backupEvery = Number(flag(argv, 'backup-every', '60'));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = path.resolve(flag(argv, 'out', `test-artifacts/soak/${stamp}`));
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-soak-'));
  const secretFile = path.join(dir, 'cluster.key');
  writeFileSync(secretFile, `${SECRET}\n`);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const ports = await Promise.all(ids.map(freePort));
  const c = new ChaosCluster({
    net: new LoopbackNet(ids, ports),
    dir,
    secretFile,
    secret: SECRET,
    protocol,
  });
  let stopAgent = () => {};
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      stopAgent();
      c.killAllNow();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  console.log(
    `soak: ${minutes} min, ${protocol}, ${n} nodes (from ${c.cli.from}), ${clients} clients; data in ${dir}, results in ${out}`,
  );
  c.startAll();
  for (let l = await c.leader(); !(l && l.voters.length === n); l = await c.leader())
    await new Promise((r) => setTimeout(r, 500));
  // The backup agent: a learner for the whole run, taking the scheduled backups.
  const repo = path.join(dir, 'backup-repo');
  const synod = (args: string[]) => {
    const [cmd, ...pre] = c.cli.cmd;
    return spawnSync(cmd as string, [...pre, ...args], { encoding: 'utf8', timeout: 120_000 });
  };
  let agent: ChildProcess | undefined;
  let agentOut = '';
  if (backupEvery > 0) {
    for (const args of [
      ['backup', 'init', '--repo', repo],
      [
        'backup',
        'schedule',
        '--repo',
        repo,
        '--full',
        `@every ${5 * backupEvery}s`,
        '--incr',
        `@every ${backupEvery}s`,
      ],
    ]) {
      const r = synod(args);
      if (r.status !== 0) throw new Error(`synod ${args.join(' ')}: ${r.stderr}`);
    }
    const [cmd, ...pre] = c.cli.cmd;
    agent = spawn(
      cmd as string,
      [
        ...pre,
        'backup',
        'agent',
        '--cluster',
        ids.map((id, i) => `${id}=ws://127.0.0.1:${ports[i]}`).join(','),
        '--secret-file',
        secretFile,
        '--repo',
        repo,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const running = agent;
    stopAgent = () => running.kill('SIGKILL');
    const keep = (b: Buffer) => {
      agentOut = (agentOut + b.toString()).slice(-20_000);
    };
    agent.stdout?.on('data', keep);
    agent.stderr?.on('data', keep);
    const joined = monotonicNow();
    while (!/caught up at index \d+/.test(agentOut)) {
      if (agent.exitCode !== null || monotonicNow() - joined > 120_000)
        throw new Error(`the backup agent did not catch up:\n${agentOut}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(
      `backup agent joined (incr every ${backupEvery} s, full every ${5 * backupEvery} s)`,
    );
  }
  const snapshots = new Map<string, Set<number>>(ids.map((id) => [id, new Set<number>()]));
  const kvs = await Promise.all(
    Array.from({ length: clients }, () => c.kvClient({ timeoutMs: 5000 })),
  );
  let done = 0;
  let failed = 0;
  const stopAt = monotonicNow() + minutes * 60_000;
  const t0 = monotonicNow();
  const loops = kvs.map(async (kv, p) => {
    for (let i = 0; monotonicNow() < stopAt; i++) {
      const key = `k${(p * 7919 + i) % 1000}`;
      const r =
        i % 3 === 2
          ? await kv.get(key, { level: 'strong' })
          : await kv.put(key, `${p}.${i}`.padEnd(100, 'x'));
      if (r.outcome === 'ok') done++;
      else failed++;
    }
  });
  const samples: Sample[] = [];
  let last = 0;
  let lastT = t0;
  const sampler = setInterval(() => {
    const now = monotonicNow();
    const s: Sample = {
      t: now - t0,
      opsPerSec: ((done - last) * 1000) / (now - lastT),
      rss: {},
      fds: {},
    };
    last = done;
    lastT = now;
    for (const id of ids) {
      const r = c.rss(id);
      const f = fds(c.procs.get(id)?.pid);
      if (r !== undefined) s.rss[id] = r;
      if (f !== undefined) s.fds[id] = f;
      const snap = newestSnapshot(c.dataDir(id), protocol);
      if (snap !== undefined) snapshots.get(id)?.add(snap);
    }
    if (agent?.pid !== undefined && agent.exitCode === null) {
      const r = rssOf(agent.pid);
      const f = fds(agent.pid);
      if (r !== undefined) s.rss.agent = r;
      if (f !== undefined) s.fds.agent = f;
    }
    samples.push(s);
    console.log(
      `+${(s.t / 1000).toFixed(0)}s ${s.opsPerSec.toFixed(0)} ops/s rss ${ids.map((id) => ((s.rss[id] ?? 0) / 1048576).toFixed(0)).join('/')} MiB fds ${ids.map((id) => s.fds[id] ?? '-').join('/')}`,
    );
  }, 5000);
  await Promise.all(loops);
  clearInterval(sampler);
  let backups: Record<string, unknown> | undefined;
  const problems: string[] = [];
  if (agent) {
    const a = agent;
    const gone = new Promise<number | null>((r) => a.once('exit', (code) => r(code)));
    if (a.exitCode === null) a.kill('SIGTERM');
    const code = await gone;
    const list = synod(['backup', 'list', '--repo', repo, '--json']);
    const listed =
      list.status === 0 ? (JSON.parse(list.stdout) as { backups: { type: string }[] }).backups : [];
    const byType: Record<string, number> = {};
    for (const b of listed) byType[b.type] = (byType[b.type] ?? 0) + 1;
    const verify = synod(['backup', 'verify', '--repo', repo]);
    backups = {
      agentExit: code,
      taken: listed.length,
      byType,
      verify: verify.status === 0 ? 'ok' : verify.stdout.trim().split('\n').slice(-3).join(' | '),
    };
    if (listed.length === 0) problems.push(`no backup was taken:\n${agentOut.slice(-2000)}`);
    if (verify.status !== 0)
      problems.push(`the repository does not verify: ${String(backups.verify)}`);
    if (code !== 0) problems.push(`the backup agent exited with ${code}`);
  }
  await Promise.all(kvs.map((k) => k.close()));
  await c.stopAll();
  writeFileSync(
    path.join(out, 'samples.jsonl'),
    `${samples.map((s) => JSON.stringify(s)).join('\n')}\n`,
  );
  writeFileSync(path.join(out, 'soak.svg'), svg(samples, agent ? [...ids, 'agent'] : ids));
  const q = Math.floor(samples.length / 4);
  const second = samples.slice(q, 2 * q);
  const lastQ = samples.slice(3 * q);
  if (q >= 1) {
    for (const id of agent ? [...ids, 'agent'] : ids) {
      const a = median(second.map((s) => s.rss[id] ?? 0));
      const b = median(lastQ.map((s) => s.rss[id] ?? 0));
      if (b > 1.5 * a)
        problems.push(
          `${id} RSS grew from ${(a / 1048576).toFixed(0)} to ${(b / 1048576).toFixed(0)} MiB`,
        );
      const fa = median(second.map((s) => s.fds[id] ?? 0));
      const fb = median(lastQ.map((s) => s.fds[id] ?? 0));
      if (fb > 1.5 * fa + 5) problems.push(`${id} open fds grew from ${fa} to ${fb}`);
    }
    const ta = median(second.map((s) => s.opsPerSec));
    const tb = median(lastQ.map((s) => s.opsPerSec));
    if (tb < 0.5 * ta)
      problems.push(`throughput fell from ${ta.toFixed(0)} to ${tb.toFixed(0)} ops/s`);
  }
  const summary = {
    minutes,
    protocol,
    nodes: n,
    clients,
    ok: done,
    failed,
    opsPerSec: (done * 1000) / (monotonicNow() - t0),
    problems,
    snapshots: Object.fromEntries([...snapshots].map(([id, set]) => [id, set.size])),
    ...(backups ? { backups } : {}),
    svg: path.join(out, 'soak.svg'),
  };
  writeFileSync(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  console.log(JSON.stringify(summary));
  return problems.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
