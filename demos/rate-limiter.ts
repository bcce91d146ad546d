/**
 * Write your own actor: a token-bucket rate limiter.
 *
 * Clients ask it for permission; it grants up to `burst` requests at once and refills
 * `ratePerSec` tokens per second. It uses only the runtime's public API: a typed message
 * union, `ask`/`reply`, a repeating timer (owned by the actor, cancelled when it stops),
 * `state$` for observers and `events$` for domain events.
 *
 * Run it: `npx tsx demos/rate-limiter.ts`, or `npx synod demo actor` once built (`--actor` is
 * the same).
 */
import { Actor, type Replies } from '../lib/actor.js';
import { ActorSystem } from '../lib/actor-system.js';
import type { Clock } from '../lib/clock.js';

export type LimiterMsg =
  | ({ type: 'acquire'; client: string; tokens?: number } & Replies<{
      granted: boolean;
      remaining: number;
    }>)
  | { type: 'refill' };

export interface LimiterState {
  tokens: number;
  granted: number;
  denied: number;
}

export class RateLimiter extends Actor<LimiterMsg, LimiterState> {
  private tokens: number;
  private granted = 0;
  private denied = 0;

  constructor(
    private readonly burst: number,
    private readonly ratePerSec: number,
    private readonly refillEveryMs = 100,
  ) {
    super();
    if (!(burst >= 1) || !(ratePerSec > 0))
      throw new RangeError('burst must be ≥ 1 and ratePerSec > 0');
    this.tokens = burst;
  }

  override initialState(): LimiterState {
    return { tokens: this.burst, granted: 0, denied: 0 };
  }

  override preStart(): void {
    this.ctx.timers.repeat('refill', this.refillEveryMs, { type: 'refill' });
  }

  receive(msg: LimiterMsg): void {
    switch (msg.type) {
      case 'refill':
        this.tokens = Math.min(
          this.burst,
          this.tokens + (this.ratePerSec * this.refillEveryMs) / 1000,
        );
        break;
      case 'acquire': {
        const want = msg.tokens ?? 1;
        const granted = this.tokens >= want;
        if (granted) {
          this.tokens -= want;
          this.granted++;
        } else {
          this.denied++;
          this.ctx.emit({ type: 'throttled', client: msg.client });
        }
        this.ctx.reply(msg, { granted, remaining: Math.floor(this.tokens) });
        break;
      }
    }
    this.ctx.setState({ tokens: this.tokens, granted: this.granted, denied: this.denied });
  }
}

/** Runs the demo: 3 clients hammer a limiter of burst 5, 10/s for `seconds`. */
export async function runRateLimiterDemo(
  options: { clock?: Clock; seconds?: number; print?: (line: string) => void } = {},
): Promise<LimiterState> {
  const print = options.print ?? console.log;
  const system = new ActorSystem({
    nodeId: 'demo',
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const limiter = system.spawn('limiter', new RateLimiter(5, 10));
  limiter.events$.subscribe((e) => {
    if (e.type === 'throttled') print(`throttled ${String(e.client)}`);
  });
  const clock = system.clock;
  const end = clock.now() + (options.seconds ?? 1) * 1000;
  const client = async (name: string) => {
    while (clock.now() < end) {
      const r = await limiter.ask({ type: 'acquire', client: name }, 1_000);
      if (r.granted) print(`${name} granted (remaining ${r.remaining})`);
      await new Promise<void>((resolve) => clock.setTimer(50, resolve));
    }
  };
  await Promise.all(['alice', 'bob', 'carol'].map(client));
  const state = limiter.getSnapshot();
  print(`done: ${state.granted} granted, ${state.denied} denied`);
  await system.shutdown();
  return state;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runRateLimiterDemo({ seconds: 2 });
}
