/**
 * `npm run bench -- actors`: in-process ping-pong between two actors (messages/s), against
 * the same loop on a bare array-queue drain in the same run.
 */
import { Actor } from '../lib/actor.js';
import { ActorSystem } from '../lib/actor-system.js';
import { silentLogger } from '../lib/logger.js';
import { Random } from '../lib/random.js';
import { type BenchMain, report, summarize } from './harness.js';

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

export const main: BenchMain = async (argv) => {
  const repeats = Number(argv.find((a) => a.startsWith('--repeats='))?.split('=')[1] ?? 7);
  const messages = 2_000_000;
  await actorPingPong(200_000); // warm-up
  barePingPong(200_000);
  const actor: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < repeats; i++) {
    actor.push(await actorPingPong(messages));
    bare.push(barePingPong(messages));
  }
  return report('actors', [
    summarize(
      'ping-pong between two actors',
      'msgs/s',
      'higher',
      actor,
      { name: 'bare array-queue drain', runs: bare },
      '≥ 2,000,000 msgs/s and ≥ 0.4 of bare',
    ),
  ]);
};
