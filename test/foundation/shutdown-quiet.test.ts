/**
 * A node shutting down cleanly stops its actors one by one while peers still send to them.
 * Those messages are expected: a debug line, not a warning about a misbehaving peer (a review
 * found five WARN lines between "shutting down" and "stopped cleanly" on every SIGTERM). The
 * same message before shutdown is still a warning (the control).
 */
import t from 'tap';
import { Actor } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { systemClock } from '../../lib/clock.js';
import { Random } from '../../lib/random.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import { CapturingLogger, until } from '../helpers/ws-util.js';

class SlowToStop extends Actor<{ type: 'x' }> {
  constructor(private readonly stopGate: Promise<void>) {
    super();
  }
  receive(): void {}
  override postStop(): Promise<void> {
    return this.stopGate;
  }
}

t.test('messages for stopped actors during shutdown are not warnings', async (t) => {
  const network = new MemoryNetwork({ clock: systemClock, random: new Random(3) });
  const logA = new CapturingLogger();
  const logB = new CapturingLogger();
  const a = new ActorSystem({ nodeId: 'a', transport: network.connect('a'), logger: logA });
  const b = new ActorSystem({ nodeId: 'b', transport: network.connect('b'), logger: logB });
  t.teardown(async () => {
    await a.shutdown();
  });
  let open = () => {};
  const gate = new Promise<void>((r) => {
    open = r;
  });
  b.spawn('slow', new SlowToStop(gate));

  a.send('b/gone', { type: 'x' });
  await until(() => logB.has('warn', 'b/gone'), 5000, 'the control warning');
  t.ok(logB.has('warn', 'b/gone'), 'before shutdown: a message for no actor is a warning');

  const stopping = b.shutdown();
  a.send('b/gone-too', { type: 'x' });
  await until(
    () => logB.lines.some((l) => l.message.includes('b/gone-too')),
    5000,
    'the message seen while shutting down',
  );
  open();
  await stopping;
  t.notOk(logB.has('warn', 'b/gone-too'), 'while shutting down: no warning');
  t.ok(logB.has('debug', 'b/gone-too'), 'a debug line instead');
});
