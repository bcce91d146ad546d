/**
 * `npm run bench -- actors`: in-process ping-pong between two actors (messages/s), against
 * the same loop on a bare array-queue drain in the same run.
 */
import { Actor } from '../lib/actor.js';
import { ActorSystem } from '../lib/actor-system.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import { type BenchMain, median, report, summarize } from './harness.js';

type Ball = { type: 'ball'; left: number };

class Player extends Actor<Ball> {
  peer = '';
  constructor(private readonly done: () => void) {
    super();
  }
  receive(msg: Ball): void {
    if (msg.left === 0) {
      this.done();
      return;
    }
    this.ctx.send(this.peer, { type: 'ball', left: msg.left - 1 });
  }
}

export async function actorPingPong(messages: number): Promise<number> {
  const system = new ActorSystem({ nodeId: 'bench', logger: silentLogger, random: new Random(1) });
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const a = new Player(finish);
  const b = new Player(finish);
  const ra = system.spawn('a', a);
  const rb = system.spawn('b', b);
  a.peer = rb.address;
  b.peer = ra.address;
  await new Promise<void>((r) => setImmediate(r));
  const start = performance.now();
  ra.tell({ type: 'ball', left: messages });
  await finished;
  const secs = (performance.now() - start) / 1000;
  await system.shutdown();
  return messages / secs;
}

/** The same ping-pong with no runtime: two handlers and one array queue. */
export function barePingPong(messages: number): number {
  const queue: { to: number; msg: Ball }[] = [];
  let done = false;
  const handler = (peer: number) => (m: Ball) => {
    if (m.left === 0) done = true;
    else queue.push({ to: peer, msg: { type: 'ball', left: m.left - 1 } });
  };
  const handlers = [handler(1), handler(0)];
  const start = performance.now();
  queue.push({ to: 0, msg: { type: 'ball', left: messages } });
  let head = 0;
  while (head < queue.length) {
    const item = queue[head++] as { to: number; msg: Ball };
    (handlers[item.to] as (m: Ball) => unknown)(item.msg);
    if (head > 65_536) {
      queue.splice(0, head);
      head = 0;
    }
  }
  if (!done) throw new Error('bare loop did not finish');
  return messages / ((performance.now() - start) / 1000);
}

/** CPU time this process has used (user + system, all threads), in seconds. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs `run(messages)` and returns its wall-clock rate and its rate per CPU-second. */
async function timed(
  run: (messages: number) => number | Promise<number>,
  messages: number,
): Promise<{ wall: number; cpu: number }> {
  const c0 = cpuSeconds();
  const wall = await run(messages);
  return { wall, cpu: messages / (cpuSeconds() - c0) };
}

export const main: BenchMain = async (argv) => {
  const arg = (name: string, dflt: number) =>
    Number(argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
  const repeats = arg('repeats', 9);
  const messages = arg('messages', 10_000_000);
  if (!(Number.isInteger(repeats) && repeats > 0 && Number.isInteger(messages) && messages > 0))
    throw new Error('--repeats and --messages must be positive integers');
  await actorPingPong(500_000); // warm-up: both loops optimised before the first measured run
  barePingPong(500_000);
  const actor: { wall: number; cpu: number }[] = [];
  const bare: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < repeats; i++) {
    // alternate which one goes first, so a load change hits both alike
    if (i % 2 === 0) {
      actor.push(await timed(actorPingPong, messages));
      bare.push(await timed(barePingPong, messages));
    } else {
      bare.push(await timed(barePingPong, messages));
      actor.push(await timed(actorPingPong, messages));
    }
  }
  const pairRatios = (k: 'wall' | 'cpu') =>
    actor.map(
      (a, i) => Math.round((a[k] / (bare[i] as { wall: number; cpu: number })[k]) * 1000) / 1000,
    );
  const target = '≥ 2,000,000 msgs/s and ≥ 0.4 of bare';
  const wall = summarize(
    'ping-pong between two actors',
    'msgs/s',
    'higher',
    actor.map((r) => r.wall),
    { name: 'bare array-queue drain', runs: bare.map((r) => r.wall) },
    target,
  );
  wall.extra = { pairRatios: pairRatios('wall'), pairRatioMedian: median(pairRatios('wall')) };
  const cpu = summarize(
    'ping-pong between two actors, per CPU-second',
    'msgs/s',
    'higher',
    actor.map((r) => r.cpu),
    { name: 'bare array-queue drain, per CPU-second', runs: bare.map((r) => r.cpu) },
    target,
  );
  cpu.extra = { pairRatios: pairRatios('cpu'), pairRatioMedian: median(pairRatios('cpu')) };
  return report(
    'actors',
    [wall, cpu],
    [
      `${messages.toLocaleString('en-US')} messages per run, ${repeats} runs of each, alternated (actor first in even rounds, bare first in odd ones).`,
      `Per-round ratios (actor / bare), wall clock: ${pairRatios('wall').join(', ')} (median ${median(pairRatios('wall')).toFixed(3)}); per CPU-second: ${pairRatios('cpu').join(', ')} (median ${median(pairRatios('cpu')).toFixed(3)}).`,
      'The CPU-time rate counts every thread of the process (GC helpers included); it moves much less than the wall-clock rate when other processes share the cores.',
    ],
    argv,
  );
};
