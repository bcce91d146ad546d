/**
 * Timers owned by an actor (`ctx.timers`), on a virtual clock: `once` fires once and is
 * replaced by a timer of the same key, `repeat` fires on its period and never piles ticks up
 * behind a slow handler, `cancel` and `cancelAll` stop them, and stopping or restarting the
 * actor cancels all of them (no delivery afterwards, nothing left on the clock).
 */
import t from 'tap';
import { Actor, type Terminated } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

type TimerMsg =
  | { type: 'fire'; tag: string }
  | { type: 'slow'; tag: string }
  | { type: 'once'; key: string; ms: number; tag: string }
  | { type: 'repeat'; key: string; ms: number; tag: string; slow?: boolean }
  | { type: 'cancel'; key?: string }
  | { type: 'boom' };

/** Every firing, with its virtual time, across instances (a restart makes a new one). */
type Log = { tag: string; at: number }[];

class Timed extends Actor<TimerMsg> {
  constructor(private readonly log: Log) {
    super();
  }
  timerActive(key: string): boolean {
    return this.ctx.timers.isActive(key);
  }
  async receive(msg: TimerMsg | Terminated): Promise<void> {
    const timers = this.ctx.timers;
    switch (msg.type) {
      case 'fire':
        this.log.push({ tag: msg.tag, at: this.ctx.clock.now() });
        return;
      case 'slow':
        this.log.push({ tag: msg.tag, at: this.ctx.clock.now() });
        // a handler that takes 35 ms of virtual time
        await new Promise<void>((resolve) => this.ctx.clock.setTimer(35, resolve));
        return;
      case 'once':
        timers.once(msg.key, msg.ms, { type: 'fire', tag: msg.tag });
        return;
      case 'repeat':
        timers.repeat(msg.key, msg.ms, { type: msg.slow ? 'slow' : 'fire', tag: msg.tag });
        return;
      case 'cancel':
        if (msg.key === undefined) timers.cancelAll();
        else timers.cancel(msg.key);
        return;
      case 'boom':
        throw new Error('boom');
    }
  }
}

function setup() {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(9),
  });
  const log: Log = [];
  let instance: Timed | undefined;
  const ref = system.spawn(
    'timed',
    () => {
      instance = new Timed(log);
      return instance;
    },
    { supervision: { kind: 'restart', minBackoffMs: 10, maxBackoffMs: 10, maxRestarts: 5 } },
  );
  const active = (key: string) => instance?.timerActive(key);
  return { clock, system, ref, log, active };
}

t.test('once fires once, at its time; the same key replaces it; cancel stops it', async (t) => {
  const { clock, ref, log, active } = setup();
  await advance(clock, 0);
  ref.tell({ type: 'once', key: 'k', ms: 100, tag: 'first' });
  await advance(clock, 10); // at 10
  t.equal(active('k'), true, 'armed');
  ref.tell({ type: 'once', key: 'k', ms: 50, tag: 'second' }); // replaces: due at 60
  ref.tell({ type: 'once', key: 'other', ms: 20, tag: 'other' }); // due at 30
  await advance(clock, 1_000);
  t.same(
    log,
    [
      { tag: 'other', at: 30 },
      { tag: 'second', at: 60 },
    ],
    'each once fired one time; the replaced one never',
  );
  t.equal(active('k'), false, 'a fired once is no longer active');

  ref.tell({ type: 'once', key: 'k', ms: 100, tag: 'cancelled' });
  await advance(clock, 50);
  ref.tell({ type: 'cancel', key: 'k' });
  await advance(clock, 1_000);
  t.equal(log.length, 2, 'a cancelled once never fires');
  t.equal(active('k'), false);
  t.equal(clock.pending(), 0, 'nothing left on the clock');
});

t.test('repeat fires on its period; cancel stops it', async (t) => {
  const { clock, ref, log, active } = setup();
  await advance(clock, 0);
  ref.tell({ type: 'repeat', key: 'r', ms: 25, tag: 'tick' });
  await advance(clock, 100);
  t.same(
    log.map((e) => e.at),
    [25, 50, 75, 100],
    'every 25 ms',
  );
  ref.tell({ type: 'repeat', key: 'r', ms: 40, tag: 'tock' }); // replaces, from 100
  await advance(clock, 100);
  t.same(
    log.slice(4),
    [
      { tag: 'tock', at: 140 },
      { tag: 'tock', at: 180 },
    ],
    'the same key replaces the period and the message',
  );
  ref.tell({ type: 'cancel', key: 'r' });
  await advance(clock, 1_000);
  t.equal(log.length, 6, 'no tick after cancel');
  t.equal(active('r'), false);
  t.equal(clock.pending(), 0, 'nothing left on the clock');
});

t.test('repeat behind a slow handler skips ticks instead of piling them up', async (t) => {
  const { clock, ref, log, system } = setup();
  await advance(clock, 0);
  // ticks every 10 ms, each handled in 35 ms
  ref.tell({ type: 'repeat', key: 'r', ms: 10, tag: 'slow', slow: true });
  await advance(clock, 1_000);
  const handled = log.length;
  t.ok(handled >= 25 && handled <= 30, `about 1000/35 ticks handled (${handled}), not 100`);
  // The cancel message waits its turn in the mailbox: behind it are at most the one tick
  // queued now and the one the timer adds while that tick is handled (a backlog would be
  // about 70 here, and growing while it drains).
  ref.tell({ type: 'cancel', key: 'r' });
  await advance(clock, 10_000);
  t.ok(
    log.length - handled <= 2,
    `at most two ticks handled after the cancel was sent (${log.length - handled})`,
  );
  t.equal(system.stats().deadLetters, 0, 'skipped ticks are not dead letters');
});

t.test('stopping the actor cancels its timers', async (t) => {
  const { clock, system, ref, log } = setup();
  await advance(clock, 0);
  ref.tell({ type: 'repeat', key: 'r', ms: 10, tag: 'tick' });
  ref.tell({ type: 'once', key: 'o', ms: 500, tag: 'late' });
  await advance(clock, 35);
  t.equal(log.length, 3);
  await system.stop('n/timed');
  await advance(clock, 1_000);
  t.equal(log.length, 3, 'no delivery after stop');
  t.equal(clock.pending(), 0, 'no timer left on the clock');
  t.equal(system.stats().deadLetters, 0, 'and none fired into dead letters');
});

t.test('a restart cancels the timers of the failed instance', async (t) => {
  const { clock, ref, log, active } = setup();
  await advance(clock, 0);
  ref.tell({ type: 'repeat', key: 'r', ms: 10, tag: 'tick' });
  ref.tell({ type: 'once', key: 'o', ms: 500, tag: 'late' });
  await advance(clock, 35);
  t.equal(log.length, 3);
  ref.tell({ type: 'boom' }); // restart after 10 ms of backoff
  await advance(clock, 1_000);
  t.equal(log.length, 3, 'no tick and no once after the restart');
  t.equal(active('r'), false, 'the new instance starts with no timers');
  t.equal(active('o'), false);
  t.equal(clock.pending(), 0, 'nothing left on the clock');
  // and the restarted actor can arm timers again
  ref.tell({ type: 'once', key: 'o', ms: 5, tag: 'again' });
  await advance(clock, 10);
  t.same(log.at(-1)?.tag, 'again');
});
