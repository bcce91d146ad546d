import t from 'tap';
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import type { DeadLetter } from '../../lib/dead-letter.js';
import { AskTimeoutError, DeliveryError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

type Msg =
  | { type: 'hold' }
  | ({ type: 'echo'; text: string } & Replies<string>)
  | ({ type: 'ignore' } & Replies<string>);
class Echo extends Actor<Msg> {
  receive(msg: Msg): void | Promise<void> {
    if (msg.type === 'echo') this.ctx.reply(msg, msg.text);
    if (msg.type === 'hold') return new Promise<void>(() => {}); // never finishes
  }
}

t.test(
  'overflow: a full mailbox rejects the message to dead letters and tells the sender',
  async (t) => {
    const clock = new VirtualClock();
    const system = new ActorSystem({
      nodeId: 'n',
      clock,
      logger: silentLogger,
      random: new Random(1),
    });
    const dead: DeadLetter[] = [];
    system.deadLetters$.subscribe((d) => dead.push(d));
    const ref = system.spawn('e', new Echo(), { mailboxCapacity: 3 });
    await advance(clock, 0);
    t.ok(ref.tell({ type: 'hold' }));
    await advance(clock, 0); // 'hold' is now in flight forever
    const accepted = [0, 1, 2, 3, 4].map(() => ref.tell({ type: 'hold' }));
    t.same(accepted, [true, true, true, false, false], 'capacity 3: the 4th and 5th are rejected');
    t.equal(dead.length, 2);
    t.equal(dead[0]?.code, 'SYNOD_ERR_MAILBOX_FULL');
    t.match(dead[0]?.reason, /capacity 3/);
    // An ask into a full mailbox fails at once instead of timing out.
    const asked = t.rejects(ref.ask({ type: 'echo', text: 'x' }, 60_000), {
      code: 'SYNOD_ERR_MAILBOX_FULL',
    });
    await advance(clock, 0);
    await asked;
    t.throws(() => system.spawn('bad', new Echo(), { mailboxCapacity: 0 }), {
      code: 'SYNOD_ERR_BAD_OPTION',
    });
  },
);

t.test('ask: typed reply, timeout, and replies after the timeout are dead letters', async (t) => {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(1),
  });
  const ref = system.spawn('e', new Echo());
  const p = ref.ask({ type: 'echo', text: 'hi' }, 100);
  await advance(clock, 1);
  const answer: string = await p;
  t.equal(answer, 'hi');
  const silent = ref.ask({ type: 'ignore' }, 250);
  await advance(clock, 249);
  let settled = false;
  silent.then(
    () => (settled = true),
    () => (settled = true),
  );
  await advance(clock, 0);
  t.notOk(settled, 'not timed out before 250 ms');
  await advance(clock, 2);
  await t.rejects(silent, AskTimeoutError);
  await t.rejects(silent, { code: 'SYNOD_ERR_ASK_TIMEOUT' });
  t.equal(system.stats().pendingAsks, 0, 'no pending ask leaks');
});

t.test('dead letters: unknown actor, stopped actor, unhandled, bad address', async (t) => {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(1),
  });
  const dead: DeadLetter[] = [];
  system.deadLetters$.subscribe((d) => dead.push(d));
  t.notOk(system.send('n/nobody', { type: 'x' }));
  t.equal(dead.at(-1)?.code, 'SYNOD_ERR_NO_SUCH_ACTOR');
  await t.rejects(
    system.ask('n/nobody', { type: 'x' } as { type: 'x' } & Replies<1>, 100),
    DeliveryError,
  );
  t.notOk(system.send('other-node/x', { type: 'x' }), 'no transport: remote send rejected');
  t.equal(dead.at(-1)?.code, 'SYNOD_ERR_NO_ROUTE');
  class Picky extends Actor<{ type: 'a' } | { type: 'b' }> {
    receive(msg: { type: 'a' } | { type: 'b' }) {
      if (msg.type === 'b') this.ctx.unhandled(msg);
    }
  }
  const ref = system.spawn('p', new Picky());
  ref.tell({ type: 'b' });
  await advance(clock, 1);
  t.equal(dead.at(-1)?.code, 'SYNOD_ERR_UNHANDLED');
  await system.stop(ref.address);
  t.notOk(ref.tell({ type: 'a' }));
  t.equal(dead.at(-1)?.code, 'SYNOD_ERR_ACTOR_STOPPED');
  t.throws(() => system.spawn('bad path!', new Picky()), { code: 'SYNOD_ERR_BAD_ADDRESS' });
  system.spawn('dup', new Picky());
  t.throws(() => system.spawn('dup', new Picky()), { code: 'SYNOD_ERR_NAME_TAKEN' });
});

t.test(
  'watch: terminated on stop, on a missing actor, and lifecycle hooks run in order',
  async (t) => {
    const clock = new VirtualClock();
    const system = new ActorSystem({
      nodeId: 'n',
      clock,
      logger: silentLogger,
      random: new Random(1),
    });
    const hooks: string[] = [];
    class Lived extends Actor<{ type: 'x' }> {
      override preStart() {
        hooks.push('preStart');
      }
      override async postStop() {
        await Promise.resolve();
        hooks.push('postStop');
      }
      receive() {
        hooks.push('receive');
      }
    }
    const got: Terminated[] = [];
    class Watcher extends Actor<Terminated | { type: 'watch'; target: string }> {
      receive(msg: Terminated | { type: 'watch'; target: string }) {
        if (msg.type === 'watch') this.ctx.watch(msg.target);
        else got.push(msg);
      }
    }
    const lived = system.spawn('l', new Lived());
    const w = system.spawn('w', new Watcher());
    w.tell({ type: 'watch', target: lived.address });
    w.tell({ type: 'watch', target: 'n/ghost' });
    lived.tell({ type: 'x' });
    await advance(clock, 1);
    await system.stop(lived.address);
    await advance(clock, 1);
    t.same(hooks, ['preStart', 'receive', 'postStop']);
    t.same(
      got.map((g) => [g.address, g.reason]),
      [
        ['n/ghost', 'not-found'],
        ['n/l', 'stopped'],
      ],
    );
    const states: string[] = [];
    system.lifecycle$.subscribe((e) => states.push(`${e.address}:${e.event}`));
    await system.shutdown();
    t.ok(states.includes('n/w:stopped'));
  },
);

t.test('state$ behaves like a BehaviorSubject and completes on stop', async (t) => {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(1),
  });
  class Stateful extends Actor<{ type: 'set'; v: number }, { v: number }> {
    override initialState() {
      return { v: 0 };
    }
    receive(msg: { type: 'set'; v: number }) {
      this.ctx.setState({ v: msg.v });
    }
  }
  const ref = system.spawn('s', new Stateful());
  t.same(ref.getSnapshot(), { v: 0 });
  const seen: number[] = [];
  let completed = false;
  ref.state$.subscribe({ next: (s) => seen.push(s.v), complete: () => (completed = true) });
  ref.tell({ type: 'set', v: 5 });
  await advance(clock, 1);
  t.same(seen, [0, 5]);
  t.same(ref.getSnapshot(), { v: 5 });
  await system.stop(ref.address);
  t.ok(completed);
});

t.test('ctx.send remembers its last target but never delivers to a stopped actor', async (t) => {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(1),
  });
  const dead: DeadLetter[] = [];
  system.deadLetters$.subscribe((d) => dead.push(d));
  type Fwd = { type: 'fwd'; to: string; n: number };
  type Got = { type: 'got'; n: number };
  class Forwarder extends Actor<Fwd> {
    receive(msg: Fwd): void {
      this.ctx.send(msg.to, { type: 'got', n: msg.n });
    }
  }
  class Sink extends Actor<Got> {
    constructor(readonly seen: number[]) {
      super();
    }
    receive(msg: Got): void {
      this.seen.push(msg.n);
    }
  }
  const first: number[] = [];
  const second: number[] = [];
  const fwd = system.spawn('fwd', new Forwarder());
  const sink = system.spawn('sink', new Sink(first));
  await advance(clock, 0);
  fwd.tell({ type: 'fwd', to: sink.address, n: 1 });
  fwd.tell({ type: 'fwd', to: sink.address, n: 2 });
  await advance(clock, 0);
  t.same(first, [1, 2], 'delivered through the remembered target');
  await system.stop(sink.address);
  fwd.tell({ type: 'fwd', to: sink.address, n: 3 });
  await advance(clock, 0);
  t.same(first, [1, 2], 'nothing reaches the stopped instance');
  t.equal(
    dead.at(-1)?.code,
    'SYNOD_ERR_NO_SUCH_ACTOR',
    'a send to the stopped address is a dead letter',
  );
  system.spawn('sink', new Sink(second));
  await advance(clock, 0);
  fwd.tell({ type: 'fwd', to: sink.address, n: 4 });
  await advance(clock, 0);
  t.same(second, [4], 'a new actor at the same address gets the message');
  t.same(first, [1, 2]);
});

t.test('using ctx before the actor starts throws a clear error', async (t) => {
  class Early extends Actor<{ type: 'x' }> {
    constructor() {
      super();
      this.ctx.send('n/elsewhere', { type: 'x' });
    }
    receive(): void {}
  }
  t.throws(() => new Early(), /actor context is not available before the actor starts/);
});
