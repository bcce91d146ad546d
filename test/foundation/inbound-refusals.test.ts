/**
 * What a node does with a message it cannot take from another node: bytes its codec cannot
 * read, and a message its target actor's `accepts()` refuses. Each is a dead letter naming
 * the sending node and a rate-limited warning, an ask is answered at once, and the node keeps
 * running. On the in-memory transport in the simulation (virtual clock).
 */
import t from 'tap';
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { encodeValue } from '../../lib/codec.js';
import type { DeadLetter } from '../../lib/dead-letter.js';
import { DeliveryError } from '../../lib/errors.js';
import { MemoryLogger } from '../../lib/logger.js';
import { Simulation } from '../../lib/sim/simulation.js';

type EchoMsg = { type: 'note'; n: number } | ({ type: 'echo'; n: number } & Replies<number>);

/** Takes only well-formed messages from other nodes. */
class Strict extends Actor<EchoMsg> {
  readonly seen: number[] = [];
  override accepts(msg: unknown): msg is EchoMsg {
    const m = msg as { type?: unknown; n?: unknown };
    return (
      typeof msg === 'object' &&
      msg !== null &&
      (m.type === 'note' || m.type === 'echo') &&
      typeof m.n === 'number'
    );
  }
  receive(msg: EchoMsg | Terminated): void {
    if (msg.type === 'terminated') return;
    this.seen.push(msg.n);
    if (msg.type === 'echo') this.ctx.reply(msg, msg.n);
  }
}

async function twoNodes() {
  const log = new MemoryLogger();
  const strict = new Strict();
  const sim = new Simulation({ seed: 3, nodes: ['a', 'b'], logger: log });
  sim.onStart((n) => {
    if (n.id === 'b') n.system.spawn('strict', strict);
  });
  await sim.start();
  const dead: DeadLetter[] = [];
  sim.system('b').deadLetters$.subscribe((d) => dead.push(d));
  const warnings = () => log.lines.filter((l) => l.level === 'warn');
  const echo = (n: number) =>
    sim.await(sim.system('a').ask('b/strict', { type: 'echo', n } as EchoMsg & Replies<number>), {
      timeout: 1_000,
    });
  return { sim, log, strict, dead, warnings, echo };
}

t.test(
  'undecodable bytes from a peer: dead letter, rate-limited warning, node unharmed',
  async (t) => {
    const { sim, log, strict, dead, warnings, echo } = await twoNodes();
    const garbage = new Uint8Array([0xc1, 0x00, 0x07]); // 0xc1 is never valid msgpack
    const future = encodeValue({ v: 99, k: 'tell', to: 'b/strict', m: { type: 'note', n: 1 } });
    sim.network.injectBytes('a', 'b', garbage);
    sim.network.injectBytes('a', 'b', future);
    await sim.runFor(10);

    t.same(
      dead.map((d) => [d.code, d.peer]),
      [
        ['SYNOD_ERR_UNDECODABLE', 'a'],
        ['SYNOD_ERR_UNDECODABLE', 'a'],
      ],
      'two dead letters naming the sending node',
    );
    t.match(dead[0]?.reason, /malformed msgpack/);
    t.match(dead[1]?.reason, /protocol version/);
    t.equal(warnings().length, 2, 'a warning for each');
    t.match(warnings()[0]?.message, /^dropped an undecodable message from node a: /);
    t.same(strict.seen, [], 'the actor saw nothing');
    t.equal(sim.system('b').stats().refusedInbound, 2);

    // a flood is not a flood of warnings: 20 per 10 s, then a count
    for (let i = 0; i < 100; i++) sim.network.injectBytes('a', 'b', garbage);
    await sim.runFor(10);
    t.equal(dead.length, 102, 'every one is a dead letter');
    t.equal(warnings().length, 20, 'at most 20 warnings in the window');
    await sim.runFor(10_000);
    sim.network.injectBytes('a', 'b', garbage);
    await sim.runFor(10);
    t.ok(
      log.lines.some((l) => l.level === 'warn' && l.message === 'suppressed 82 similar log lines'),
      'the next window reports how many were suppressed',
    );
    t.equal(warnings().length, 22, 'and warns again');

    t.equal(await echo(7), 7, 'the node still answers');
    t.same(strict.seen, [7]);
  },
);

t.test(
  "a message the actor's accepts() refuses: dead letter, warning, ask answered at once",
  async (t) => {
    const { sim, strict, dead, warnings, echo } = await twoNodes();
    const a = sim.system('a');
    t.ok(a.send('b/strict', { type: 'note', n: 'one' }), 'a remote tell is handed to the network');
    await sim.runFor(10);
    t.same(
      dead.map((d) => [d.code, d.to, d.peer]),
      [['SYNOD_ERR_BAD_MESSAGE', 'b/strict', 'a']],
      'a dead letter on the receiving node, naming the sender',
    );
    t.same(dead[0]?.message, { type: 'note', n: 'one' }, 'carrying the message');
    t.equal(warnings().length, 1);
    t.match(warnings()[0]?.message, /from node a for b\/strict: SYNOD_ERR_BAD_MESSAGE/);

    const started = sim.clock.now();
    const refused = await sim
      .await(
        a.ask(
          'b/strict',
          { type: 'echo', n: 'two' } as unknown as EchoMsg & Replies<number>,
          5_000,
        ),
        {
          timeout: 6_000,
        },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    t.ok(refused instanceof DeliveryError, 'the ask is refused');
    t.equal((refused as DeliveryError).code, 'SYNOD_ERR_BAD_MESSAGE');
    t.ok(sim.clock.now() - started < 5_000, 'at once, not by the ask timeout');
    t.same(strict.seen, [], 'receive never saw either message');

    t.equal(await echo(3), 3, 'a good message still gets through');
    t.same(strict.seen, [3]);
  },
);
