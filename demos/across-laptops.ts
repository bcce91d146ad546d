/**
 * The across-laptops guide, run on one machine: the README's commands for three machines
 * (secret file, three `synod node`s, `synod status`, a `synod kv put`, a fourth node joining
 * with `--join`), with each machine's address replaced by a loopback port. It prints every
 * command before running it, so what you see is what you type on real laptops: replace
 * `127.0.0.1:700N` by each laptop's address and port 7001.
 *
 * Run it: `npx tsx demos/across-laptops.ts` (ports 7001-7004; `--base-port 9001` to move).
 * The README's guide is generated from the same `guideCommands` (a test checks they agree).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Machine {
  id: string;
  /** What the node listens on (`0.0.0.0:7001` on a laptop). */
  listen: string;
  /** How the others reach it (`10.0.0.1:7001` on a laptop). */
  address: string;
}

/** The guide's commands, one string per command line (continuations joined). */
export function guideCommands(machines: Machine[], joiner: Machine, secretFile: string) {
  const url = (m: Machine) => `ws://${m.address}`;
  const node = (m: Machine) =>
    `npx synod node --id ${m.id} --listen ${m.listen} --data ./data/${m.id} --secret-file ${secretFile} --peers ${machines
      .filter((o) => o !== m)
      .map((o) => `${o.id}=${url(o)}`)
      .join(',')}`;
  const first = machines[0] as Machine;
  return {
    nodes: machines.map(node),
    status: `npx synod status --cluster ${url(first)} --secret-file ${secretFile}`,
    put: `npx synod kv put greeting hello --cluster ${first.id}=${url(first)} --secret-file ${secretFile}`,
    join: `npx synod node --id ${joiner.id} --listen ${joiner.listen} --data ./data/${joiner.id} --secret-file ${secretFile} --join ${url(first)}`,
  };
}

export interface AcrossLaptopsOptions {
  basePort?: number;
  /** Four explicit ports (a, b, c, then the joiner) instead of basePort..basePort+3. */
  ports?: number[];
  /** How to run `synod` (default: this checkout's `bin/synod.js`, built by `npm install`). */
  synod?: string[];
  print?: (line: string) => void;
  /** Give up waiting for the cluster after this long. */
  timeoutMs?: number;
}

export async function runAcrossLaptops(options: AcrossLaptopsOptions = {}): Promise<{
  leader: string;
  members: string[];
}> {
  const print = options.print ?? ((l: string) => console.log(l));
  const base = options.basePort ?? 7001;
  const ports = options.ports ?? [base, base + 1, base + 2, base + 3];
  const synod = options.synod ?? [path.resolve(import.meta.dirname, '../bin/synod.js')];
  const timeoutMs = options.timeoutMs ?? 60_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-laptops-'));
  const children: ChildProcess[] = [];
  const machines: Machine[] = ['a', 'b', 'c'].map((id, i) => ({
    id,
    listen: `127.0.0.1:${ports[i]}`,
    address: `127.0.0.1:${ports[i]}`,
  }));
  const joiner: Machine = {
    id: 'd',
    listen: `127.0.0.1:${ports[3]}`,
    address: `127.0.0.1:${ports[3]}`,
  };
  const cmds = guideCommands(machines, joiner, './cluster.key');

  /** Runs `npx synod …` as `node <synod> …` in the demo's folder. */
  const argv = (cmd: string) => cmd.replace(/^npx synod /, '').split(' ');
  const run = (cmd: string) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const c = spawn(process.execPath, [...synod, ...argv(cmd)], { cwd: dir });
      let out = '';
      c.stdout.on('data', (b) => (out += b));
      c.stderr.on('data', (b) => (out += b));
      c.on('close', (code) => resolve({ code: code ?? 1, out }));
    });
  const background = (cmd: string) => {
    const c = spawn(process.execPath, [...synod, ...argv(cmd)], { cwd: dir, stdio: 'ignore' });
    children.push(c);
    return c;
  };
  const statusJson = async () => {
    const r = await run(`${cmds.status} --json --timeout-ms 1500`);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.out) as { nodes: { id: string; role?: string; voters?: string[] }[] })
      .nodes;
  };
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  try {
    print(`In ${dir} (each laptop would use its own folder):\n`);
    print('$ openssl rand -hex 32 > cluster.key   # once; copy it to every machine');
    writeFileSync(path.join(dir, 'cluster.key'), `${randomBytes(32).toString('hex')}\n`);
    for (const [i, cmd] of cmds.nodes.entries()) {
      print(`$ ${cmd}   # laptop ${i + 1}`);
      background(cmd);
    }
    print(`$ ${cmds.status}`);
    const formed = await waitFor('a leader with three voters', async () => {
      const s = await statusJson();
      const leader = s?.find((n) => n.role === 'leader');
      return leader && leader.voters?.length === 3 ? s : undefined;
    });
    print((await run(cmds.status)).out.trimEnd());
    print(`\n$ ${cmds.put}`);
    const put = await run(cmds.put);
    print(put.out.trimEnd());
    if (put.code !== 0)
      throw new Error(`synod kv put failed (exit ${put.code}): ${put.out.trim()}`);
    print(`\n$ ${cmds.join}   # a fourth laptop`);
    background(cmds.join);
    const grown = await waitFor('the fourth node as a voter', async () => {
      const s = await statusJson();
      const leader = s?.find((n) => n.role === 'leader');
      return leader?.voters?.includes('d') ? leader : undefined;
    });
    print((await run(cmds.status)).out.trimEnd());
    print('\nStopping the nodes (SIGTERM: in-flight writes finish, logs close).');
    return {
      leader: (formed.find((n) => n.role === 'leader') as { id: string }).id,
      members: grown.voters ?? [],
    };
  } finally {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--base-port');
  const basePort = i > 0 ? Number(process.argv[i + 1]) : 7001;
  runAcrossLaptops({ basePort }).then(
    (r) => console.log(`\nDone: ${r.leader} led; members ${r.members.join(', ')}.`),
    (err) => {
      console.error(`across-laptops demo failed: ${(err as Error).message}`);
      process.exitCode = 1;
    },
  );
}
