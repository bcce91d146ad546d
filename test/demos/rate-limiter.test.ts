import t from 'tap';
import { RateLimiter, runRateLimiterDemo } from '../../demos/rate-limiter.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

t.test('the rate limiter grants a burst, denies the excess, and refills over time', async (t) => {
  const clock = new VirtualClock();
  const system = new ActorSystem({
    nodeId: 'n',
    clock,
    logger: silentLogger,
    random: new Random(1),
  });
  const ref = system.spawn('rl', new RateLimiter(3, 10));
  const results: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    const p = ref.ask({ type: 'acquire', client: 'x' }, 100);
    await advance(clock, 0);
    results.push((await p).granted);
  }
  t.same(results, [true, true, true, false, false], 'burst of 3');
  await advance(clock, 200); // 2 tokens refilled
  const after = ref.ask({ type: 'acquire', client: 'x', tokens: 2 }, 100);
  await advance(clock, 0);
  t.ok((await after).granted, 'refilled after 200 ms at 10/s');
  t.same(ref.getSnapshot().denied, 2);
  t.throws(() => new RateLimiter(0, 1), RangeError);
  await system.shutdown();
});

t.test('the demo runs end to end on a virtual clock', async (t) => {
  const clock = new VirtualClock();
  const lines: string[] = [];
  const done = runRateLimiterDemo({ clock, seconds: 1, print: (l) => lines.push(l) });
  let finished = false;
  done.then(() => (finished = true));
  while (!finished) await advance(clock, 10);
  const state = await done;
  t.ok(state.granted >= 5 && state.granted <= 16, `granted ${state.granted} ≈ burst + rate × 1 s`);
  t.ok(state.denied > 0, 'some requests were throttled');
  t.match(lines.at(-1), /^done: \d+ granted, \d+ denied$/);
});
