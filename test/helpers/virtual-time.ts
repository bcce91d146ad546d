import type { VirtualClock } from '../../lib/sim/virtual-clock.js';

/** Runs every event of `clock` due within `ms`, letting promise continuations settle between events. */
export async function advance(clock: VirtualClock, ms: number): Promise<void> {
  const end = clock.now() + ms;
  for (;;) {
    await new Promise<void>((r) => setImmediate(r));
    if (clock.step(end) === undefined) break;
  }
  clock.advanceTo(end);
}
