import t from 'tap';
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import type { FailureReport } from '../../lib/actor-system.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

type Msg = { type: 'boom' } | { type: 'inc' } | ({ type: 'get' } & Replies<number>);

let instances = 0;
class Fragile extends Actor<Msg> {
  n = 0;
  readonly id = ++instances;
  restartedWith: unknown;
  receive(msg: Msg): void {
    switch (msg.type) {
      case 'boom':
        throw new Error('kaboom');
      case 'inc':
        this.n++;
        return;
      case 'get':
        this.ctx.reply(msg, this.n);
    }
  }
}

function virtualSystem(clock: VirtualClock, nodeId = 'n1'): ActorSystem {
  return new ActorSystem({ nodeId, clock, logger: silentLogger, random: new Random(7) });
}

t.test(
  'restart: the failing message is reported, the actor waits its backoff, keeps its address and mailbox, and gets fresh state from its factory',
  async (t) => {
    const clock = new VirtualClock();
    const system = virtualSystem(clock);
    const failures: FailureReport[] = [];
    system.failures$.subscribe((f) => failures.push(f));
    const events: string[] = [];
    const ref = system.spawn('f', () => new Fragile(), {
      supervision: {
        kind: 'restart',
        minBackoffMs: 100,
        maxBackoffMs: 1_000,
        factor: 2,
        maxRestarts: 5,
        withinMs: 60_000,
      },
    });
    ref.events$.subscribe((e) => events.push(e.type));
    await advance(clock, 0);
    ref.tell({ type: 'inc' });
    ref.tell({ type: 'boom' });
    ref.tell({ type: 'inc' });
    await advance(clock, 50);
    t.equal(failures.length, 1, 'the failure is reported');
    t.same(failures[0]?.message, { type: 'boom' }, 'with the failing message');
    t.equal((failures[0]?.error as Error | undefined)?.message, 'kaboom');
    t.notOk(events.includes('restarted'), 'still backing off after 50 ms');
    await advance(clock, 100);
    t.ok(events.includes('restarted'), 'restarted after the backoff');
    const got = ref.ask({ type: 'get' }, 1_000);
    await advance(clock, 1);
    t.equal(await got, 1, 'fresh instance saw only the message queued after the failure');
    t.ok(ref.isAlive());
    t.equal(system.lookup(ref.address), ref, 'same address');

    // The second failure waits twice as long (exponential backoff).
    ref.tell({ type: 'boom' });
    await advance(clock, 150);
    t.equal(
      events.filter((e) => e === 'restarted').length,
      1,
      'second restart waits longer than the first',
    );
    await advance(clock, 200);
    t.equal(events.filter((e) => e === 'restarted').length, 2);
    await system.shutdown();
  },
);

t.test('restart budget exhausted stops the actor and notifies watchers', async (t) => {
  const clock = new VirtualClock();
  const system = virtualSystem(clock);
  const ref = system.spawn('f', () => new Fragile(), {
    supervision: {
      kind: 'restart',
      minBackoffMs: 1,
      maxBackoffMs: 1,
      maxRestarts: 2,
      withinMs: 10_000,
    },
  });
  const seen: Terminated[] = [];
  class Watcher extends Actor<Terminated> {
    override preStart() {
      this.ctx.watch(ref.address);
    }
    receive(msg: Terminated) {
      seen.push(msg);
    }
  }
  system.spawn('w', new Watcher());
  await advance(clock, 0);
  for (let i = 0; i < 3; i++) {
    ref.tell({ type: 'boom' });
    await advance(clock, 10);
  }
  t.notOk(ref.isAlive(), 'stopped after exceeding maxRestarts');
  t.same(seen, [{ type: 'terminated', address: ref.address, reason: 'failed' }]);
  await system.shutdown();
});

t.test('resume keeps state; stop stops; escalate fails the parent', async (t) => {
  const clock = new VirtualClock();
  const system = virtualSystem(clock);
  const resumed = system.spawn('r', new Fragile(), { supervision: { kind: 'resume' } });
  resumed.tell({ type: 'inc' });
  resumed.tell({ type: 'boom' });
  resumed.tell({ type: 'inc' });
  const got = resumed.ask({ type: 'get' }, 100);
  await advance(clock, 1);
  t.equal(await got, 2, 'resume keeps the state');

  const stopped = system.spawn('s', new Fragile(), { supervision: { kind: 'stop' } });
  stopped.tell({ type: 'boom' });
  await advance(clock, 1);
  t.notOk(stopped.isAlive(), 'stop strategy stops');

  type ParentMsg = { type: 'spawn-child' } | ({ type: 'child' } & Replies<string>);
  let parentStarts = 0;
  class Parent extends Actor<ParentMsg> {
    child = '';
    override preStart() {
      parentStarts++;
      this.child = this.ctx.spawn('kid', new Fragile(), {
        supervision: { kind: 'escalate' },
      }).address;
    }
    receive(msg: ParentMsg) {
      if (msg.type === 'child') this.ctx.reply(msg, this.child);
    }
  }
  const parent = system.spawn('p', () => new Parent(), {
    supervision: { kind: 'restart', minBackoffMs: 5, maxBackoffMs: 5 },
  });
  await advance(clock, 1);
  const childAddress = await (async () => {
    const p = parent.ask({ type: 'child' }, 100);
    await advance(clock, 1);
    return p;
  })();
  t.equal(childAddress, 'n1/p/kid', 'children live under their parent');
  system.send(childAddress, { type: 'boom' });
  await advance(clock, 20);
  t.equal(parentStarts, 2, 'the escalation restarted the parent');
  t.ok(system.lookup('n1/p/kid')?.isAlive(), 'the restarted parent spawned a new child');
  await system.shutdown();
});

t.test('an async handler that rejects is supervised like a throw', async (t) => {
  const clock = new VirtualClock();
  const system = virtualSystem(clock);
  const failures: FailureReport[] = [];
  system.failures$.subscribe((f) => failures.push(f));
  class AsyncBoom extends Actor<{ type: 'x' }> {
    async receive() {
      await Promise.resolve();
      throw new Error('late failure');
    }
  }
  system.spawn('a', new AsyncBoom(), { supervision: { kind: 'resume' } }).tell({ type: 'x' });
  await advance(clock, 1);
  t.equal(failures.length, 1);
  t.equal((failures[0]?.error as Error | undefined)?.message, 'late failure');
  await system.shutdown();
});
