import t from 'tap';
import { Actor, type Replies } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';

type LogMsg = { type: 'item'; n: number; slow: boolean } | ({ type: 'dump' } & Replies<number[]>);

class AsyncLogger extends Actor<LogMsg> {
  readonly seen: number[] = [];
  private inFlight = 0;
  maxInFlight = 0;
  async receive(msg: LogMsg): Promise<void> {
    if (msg.type === 'dump') {
      this.ctx.reply(msg, this.seen);
      return;
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    if (msg.slow) {
      // Several turns of the event loop: the next message must still wait.
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    }
    this.seen.push(msg.n);
    this.inFlight--;
  }
}

/** Frames on the stack right now (all of them, not the default 10). */
function stackDepth(): number {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = Number.POSITIVE_INFINITY;
  const depth = (new Error().stack ?? '').split('\n').length;
  Error.stackTraceLimit = limit;
  return depth;
}

/** Resolves when `done()` holds; rejects at the first supervision failure (a lost message). */
function finished(system: ActorSystem, done: () => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    const sub = system.failures$.subscribe((f) => {
      failed = true;
      reject(new Error(`${f.address} failed: ${String(f.error)}`));
    });
    const check = () => {
      if (failed) return; // stop polling: the test fails with the reason above
      if (!done()) return void setImmediate(check);
      sub.unsubscribe();
      resolve();
    };
    check();
  });
}

// A regression to recursive delivery would lose a message to supervision (stack overflow)
// and leave a test waiting: fail it within a minute instead of tap's ten.
const LONG = { timeout: 60_000 };

function newSystem(): ActorSystem {
  return new ActorSystem({ nodeId: 'n1', logger: silentLogger, random: new Random(1) });
}

t.test(
  'messages are handled one at a time, in arrival order, even with async handlers',
  async (t) => {
    const system = newSystem();
    const actor = new AsyncLogger();
    const ref = system.spawn('log', actor);
    for (let n = 0; n < 200; n++) ref.tell({ type: 'item', n, slow: n % 7 === 0 });
    const seen = await ref.ask({ type: 'dump' }, 5_000);
    t.same(
      seen,
      Array.from({ length: 200 }, (_, i) => i),
    );
    t.equal(actor.maxInFlight, 1, 'never two handlers at once');
    await system.shutdown();
  },
);

type PP = { type: 'ball'; left: number } | ({ type: 'done?' } & Replies<boolean>);

class Player extends Actor<PP> {
  peer = '';
  finished = false;
  /** Stack depth in the handler, by messages left: the first and the last ball. */
  readonly depth = new Map<number, number>();
  receive(msg: PP): void {
    if (msg.type === 'done?') {
      this.ctx.reply(msg, this.finished);
      return;
    }
    if (msg.left === 1_000_000 || msg.left === 500_000 || msg.left === 0) {
      this.depth.set(msg.left, stackDepth());
    }
    if (msg.left === 0) {
      this.finished = true;
      return;
    }
    this.ctx.send(this.peer, { type: 'ball', left: msg.left - 1 });
  }
}

t.test(
  '1,000,000 synchronous ping-pong messages complete without stack growth',
  LONG,
  async (t) => {
    const system = newSystem();
    const a = new Player();
    const b = new Player();
    const ra = system.spawn('a', a);
    const rb = system.spawn('b', b);
    a.peer = rb.address;
    b.peer = ra.address;
    const done = finished(system, () => a.finished || b.finished);
    ra.tell({ type: 'ball', left: 1_000_000 });
    await done;
    t.ok(a.finished || b.finished, 'the ball reached zero');
    t.equal(system.stats().deadLetters, 0);
    // a (even left) handles the first and the middle ball, b the last one (left 0: even
    // too, so a): all three in the same actor, at the same depth
    const first = a.depth.get(1_000_000);
    t.ok(first !== undefined && first > 1, `stack depth measured at the first message (${first})`);
    t.equal(a.depth.get(500_000), first, 'same stack depth at message 500,001');
    t.equal(a.depth.get(0), first, 'same stack depth at the last message');
    await system.shutdown();
  },
);

type Count = { type: 'inc' } | ({ type: 'get' } & Replies<number>);
class Counter extends Actor<Count> {
  n = 0;
  readonly depth = new Map<number, number>();
  receive(msg: Count): void {
    if (msg.type === 'inc') {
      this.n++;
      if (this.n === 1 || this.n === 200_000) this.depth.set(this.n, stackDepth());
    } else this.ctx.reply(msg, this.n);
  }
}

t.test(
  'a 200,000-message backlog is processed completely, without stack growth',
  LONG,
  async (t) => {
    const system = newSystem();
    const counter = new Counter();
    const ref = system.spawn('c', counter, { mailboxCapacity: 300_000 });
    let accepted = 0;
    for (let i = 0; i < 200_000; i++) if (ref.tell({ type: 'inc' })) accepted++;
    t.equal(accepted, 200_000, 'every message accepted');
    await finished(system, () => counter.n === 200_000);
    t.equal(await ref.ask({ type: 'get' }, 10_000), 200_000);
    const first = counter.depth.get(1);
    t.ok(first !== undefined && first > 1, `stack depth measured at the first message (${first})`);
    t.equal(counter.depth.get(200_000), first, 'same stack depth at the last message');
    await system.shutdown();
  },
);

t.test('a backlog behind one async message does not stall', LONG, async (t) => {
  const system = newSystem();
  const actor = new AsyncLogger();
  const ref = system.spawn('log', actor, { mailboxCapacity: 300_000 });
  ref.tell({ type: 'item', n: 0, slow: true });
  for (let n = 1; n < 50_000; n++) ref.tell({ type: 'item', n, slow: false });
  const seen = await ref.ask({ type: 'dump' }, 10_000);
  t.equal(seen.length, 50_000);
  t.equal(seen[49_999], 49_999);
  await system.shutdown();
});
