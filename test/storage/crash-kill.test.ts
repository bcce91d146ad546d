/**
 * kill -9 test. A child process opens a data directory and appends (pipelined batches,
 * segment rolls, compactions, hard-state saves), printing every acknowledgement to stdout.
 * The parent SIGKILLs it at a random moment (seeded), reopens the directory itself and
 * checks that every acknowledged record is present and intact, every record that is
 * present is readable and correct, and the acknowledged compaction point and hard state
 * survived. Then it starts the next child on the same directory.
 *
 *   npx tap test/storage/crash-kill.test.ts                   # SYNOD_CRASH_KILLS=50 by default
 *   npm run test:crash                                        # 1,000 kills
 *   SYNOD_SEED=123 npx tap test/storage/crash-kill.test.ts    # replay a seed's kill schedule
 *
 * The same file is the child when SYNOD_CRASH_CHILD=1.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Random } from '../../lib/random.js';
import { openDataDir } from '../../lib/storage/data-dir.js';
import type { LogEntry } from '../../lib/storage/types.js';

const SEGMENT_BYTES = 8192;

/** The record at `index` is fully determined by its index: the parent can check it. */
function expected(index: number): LogEntry {
  const len = 8 + ((index * 7919) % 180);
  const data = new Uint8Array(len);
  new DataView(data.buffer).setFloat64(0, index, true);
  for (let i = 8; i < len; i++) data[i] = (index * 31 + i) & 0xff;
  return {
    index,
    term: 1 + Math.floor(index / 5000),
    type: index % 97 === 0 ? 'noop' : 'normal',
    data,
  };
}

async function child(dir: string, seed: number): Promise<void> {
  const random = new Random(seed);
  const broken = process.env.SYNOD_CRASH_BROKEN === '1';
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const dd = await openDataDir<{ n: number }>(dir, { log: { segmentBytes: SEGMENT_BYTES } });
  const log = dd.log;
  out(`open ${log.firstIndex()} ${log.lastIndex()}`);
  let hs = (await dd.hardState.load())?.n ?? 0;
  let next = log.lastIndex() + 1;
  const depth = random.between(1, 48);
  let inFlight = 0;
  let sinceCompact = 0;
  let wake: (() => void) | undefined;
  for (;;) {
    while (inFlight >= depth) await new Promise<void>((r) => (wake = r));
    const n = random.between(1, 8);
    const batch: LogEntry[] = [];
    for (let i = 0; i < n; i++) batch.push(expected(next + i));
    next += n;
    const last = next - 1;
    inFlight++;
    // Negative control: acknowledge before the write is even issued to the disk.
    if (broken) out(`ack ${last}`);
    log.append(batch).then(
      () => {
        if (!broken) out(`ack ${last}`);
        inFlight--;
        wake?.();
      },
      (err) => {
        process.stderr.write(`append failed: ${err}\n`);
        process.exit(3);
      },
    );
    sinceCompact += n;
    if (sinceCompact > 400 && random.chance(0.5)) {
      sinceCompact = 0;
      const upTo = Math.max(log.firstIndex() - 1, last - random.between(0, 300));
      out(`compact-issue ${upTo}`);
      void log.compact(upTo, expected(upTo).term).then(() => out(`compact-ack ${upTo}`));
    }
    if (random.chance(0.05)) {
      const v = ++hs;
      void dd.hardState.save({ n: v }).then(() => out(`hs-ack ${v}`));
    }
    if (random.chance(0.3)) await new Promise<void>((r) => setImmediate(r));
  }
}

interface Round {
  acked: number;
  compactAcked: number;
  compactIssued: number;
  hsAcked: number;
  opened: boolean;
}

/**
 * The child must start fast (hundreds of spawns): bundle this file to plain JavaScript
 * once with esbuild (installed with tsx) and run it without a loader; fall back to tsx.
 */
async function childCommand(dir: string): Promise<string[]> {
  const file = fileURLToPath(import.meta.url);
  try {
    const esbuild = await import('esbuild');
    const outfile = `${dir}/crash-child.mjs`;
    await esbuild.build({
      entryPoints: [file],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['tap'],
      outfile,
      logLevel: 'silent',
    });
    return [outfile];
  } catch {
    return ['--import', 'tsx', file];
  }
}

async function runChild(
  command: string[],
  dir: string,
  seed: number,
  killAfterAcks: number,
  killMode: 'acks' | 'timer',
  timerMs: number,
  broken: boolean,
): Promise<{ round: Round; stderr: string; exit: string }> {
  const round: Round = { acked: 0, compactAcked: 0, compactIssued: 0, hsAcked: 0, opened: false };
  const env: NodeJS.ProcessEnv = { ...process.env, SYNOD_CRASH_CHILD: '1' };
  delete env.NODE_OPTIONS; // tap's process-info hooks: not wanted in the child
  if (broken) env.SYNOD_CRASH_BROKEN = '1';
  const proc = spawn(process.execPath, [...command, dir, String(seed)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let buffered = '';
  let acks = 0;
  const kill = () => proc.kill('SIGKILL');
  if (killMode === 'timer') setTimeout(kill, timerMs);
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const [kind, a] = buffered.slice(0, nl).split(' ');
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      const v = Number(a);
      if (kind === 'open') round.opened = true;
      else if (kind === 'ack') {
        round.acked = Math.max(round.acked, v);
        acks++;
        if (killMode === 'acks' && acks >= killAfterAcks) kill();
      } else if (kind === 'compact-issue') round.compactIssued = Math.max(round.compactIssued, v);
      else if (kind === 'compact-ack') round.compactAcked = Math.max(round.compactAcked, v);
      else if (kind === 'hs-ack') round.hsAcked = Math.max(round.hsAcked, v);
    }
  });
  const exit = await new Promise<string>((resolve) =>
    proc.on('close', (code, signal) => resolve(signal ?? `code ${code}`)),
  );
  return { round, stderr, exit };
}

async function parent(): Promise<void> {
  const { default: t } = await import('tap');
  const kills = Number(process.env.SYNOD_CRASH_KILLS ?? 50);
  const seed = Number(process.env.SYNOD_SEED ?? 20261127);
  const lanes = Math.max(1, Math.min(kills, Number(process.env.SYNOD_CRASH_LANES ?? 4)));
  t.test(`${kills} SIGKILLs lose no acknowledged write (seed ${seed})`, async (t) => {
    const root = t.testdir();
    const command = await childCommand(root);
    t.comment(`child: node ${command.join(' ')}; ${lanes} data directories killed in parallel`);
    const results = await Promise.all(
      Array.from({ length: lanes }, (_, lane) =>
        killLane(
          command,
          `${root}/data-${lane}`,
          seed,
          lane,
          Math.floor(kills / lanes) + (lane < kills % lanes ? 1 : 0),
        ),
      ),
    );
    const problems = results.flatMap((r) => r.problems);
    for (const p of problems) t.fail(p);
    const done = results.reduce((n, r) => n + r.kills, 0);
    t.equal(done, kills, `${done} kills done`);
    t.equal(problems.length, 0, `no lost or damaged record over ${done} kills (seed ${seed})`);
    const maxSeen = Math.max(...results.map((r) => r.maxSeen));
    // Negative control: a child that acknowledges before writing must be caught.
    const control = await killLane(command, `${root}/control`, seed, 99, 10, true);
    t.ok(
      control.problems.length > 0,
      `the checker flags a child that acknowledges before writing (${control.problems[0] ?? 'not caught'})`,
    );
    t.ok(maxSeen > 0, `the children wrote records (logs reached ${maxSeen})`);
    t.comment(
      `logs reached ${results.map((r) => r.maxSeen).join(', ')}; torn tails truncated on ${results.reduce((n, r) => n + r.torn, 0)} reopens`,
    );
  });
}

/** One data directory: spawn, kill, reopen and verify, `kills` times. */
async function killLane(
  command: string[],
  dir: string,
  seed: number,
  lane: number,
  kills: number,
  broken = false,
): Promise<{ problems: string[]; kills: number; maxSeen: number; torn: number }> {
  const random = new Random(seed + lane * 7919);
  let acked = 0;
  let compactAcked = 0;
  let compactIssued = 0;
  let hsAcked = 0;
  let maxSeen = 0;
  let torn = 0;
  const problems: string[] = [];
  let k = 0;
  for (; k < kills; k++) {
    const where = `seed ${seed} lane ${lane} kill ${k}`;
    const timer = random.chance(0.1);
    const res = await runChild(
      command,
      dir,
      random.nextUint32(),
      random.int(120),
      timer ? 'timer' : 'acks',
      random.between(0, 300),
      broken,
    );
    if (res.exit !== 'SIGKILL') {
      problems.push(`${where}: child ended with ${res.exit}: ${res.stderr}`);
      break;
    }
    acked = Math.max(acked, res.round.acked);
    compactAcked = Math.max(compactAcked, res.round.compactAcked);
    compactIssued = Math.max(compactIssued, res.round.compactIssued);
    hsAcked = Math.max(hsAcked, res.round.hsAcked);
    let dd: Awaited<ReturnType<typeof openDataDir<{ n: number }>>>;
    try {
      dd = await openDataDir<{ n: number }>(dir, { log: { segmentBytes: SEGMENT_BYTES } });
    } catch (err) {
      problems.push(`${where}: reopen failed: ${(err as Error).message}`);
      break;
    }
    const log = dd.log;
    if (log.recovery.tornTail) torn++;
    const first = log.firstIndex();
    const last = log.lastIndex();
    maxSeen = Math.max(maxSeen, last);
    const bad: string[] = [];
    if (last < acked) bad.push(`acknowledged ${acked} but the log ends at ${last}`);
    if (first - 1 < compactAcked) {
      bad.push(`compaction to ${compactAcked} was acknowledged but the log starts at ${first}`);
    }
    if (first - 1 > Math.max(compactIssued, 0)) {
      bad.push(`the log starts at ${first} but no compaction beyond ${compactIssued} was issued`);
    }
    if (log.term(first - 1) !== (first - 1 === 0 ? 0 : expected(first - 1).term)) {
      bad.push(`compaction term ${log.term(first - 1)} at ${first - 1} is wrong`);
    }
    // Every record present must be readable and exactly what was written.
    for (let lo = first; lo <= last && bad.length === 0; lo += 512) {
      const hi = Math.min(last + 1, lo + 512);
      let got: LogEntry[];
      try {
        got = await log.entries(lo, hi);
      } catch (err) {
        bad.push(`reading [${lo}, ${hi}) failed: ${(err as Error).message}`);
        break;
      }
      for (const e of got) {
        const x = expected(e.index);
        if (
          e.term !== x.term ||
          e.type !== x.type ||
          Buffer.compare(Buffer.from(e.data), Buffer.from(x.data)) !== 0
        ) {
          bad.push(`record ${e.index} is not what was written`);
          break;
        }
      }
    }
    const hs = (await dd.hardState.load())?.n ?? 0;
    if (hs < hsAcked) bad.push(`hard state ${hs} is older than the acknowledged ${hsAcked}`);
    await dd.close();
    if (bad.length > 0) {
      problems.push(`${where}: ${bad.join('; ')}`);
      break;
    }
    // The next child continues from what is durable now.
    acked = last;
    hsAcked = hs;
  }
  return { problems, kills: problems.length > 0 ? k : kills, maxSeen, torn };
}

if (process.env.SYNOD_CRASH_CHILD === '1') {
  const [dir, seed] = process.argv.slice(2);
  await child(dir as string, Number(seed));
} else {
  await parent();
}
