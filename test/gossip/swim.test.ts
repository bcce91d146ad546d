/**
 * SWIM core: precedence rules, refutation, joining through one seed, and cluster-level
 * properties on a deterministic discrete-time network of pure cores (drops, per-member
 * delays, crashes). Every randomized case prints its seed; SWIM_SEEDS=n runs more seeds.
 */
import t from 'tap';
import {
  SwimCore,
  type SwimMessage,
  type SwimOptions,
  type SwimOutput,
} from '../../actors/gossip/swim.js';
import { Random } from '../../lib/random.js';

const SEEDS = Number(process.env.SWIM_SEEDS ?? 3);

interface Flight {
  at: number;
  from: string;
  to: string;
  msg: SwimMessage;
}

/** N SWIM cores on a virtual network, stepped every `step` ms. */
class Cluster {
  time = 0;
  readonly cores = new Map<string, SwimCore>();
  readonly crashed = new Set<string>();
  readonly slow = new Map<string, [number, number]>();
  loss = 0;
  private flights: Flight[] = [];
  readonly rnd: Random;
  delivered = 0;
  sentAfter = 0;
  counting = false;

  constructor(
    readonly seed: number,
    readonly opts: Partial<SwimOptions> = {},
    readonly step = 5,
  ) {
    this.rnd = new Random(seed);
  }

  add(id: string, seeds: string[], incarnation = 0): SwimCore {
    const core = new SwimCore({ ...this.opts, self: id, seeds, incarnation }, this.rnd.fork());
    this.cores.set(id, core);
    this.crashed.delete(id);
    this.send(id, core.start(this.time));
    return core;
  }

  crash(id: string): void {
    this.crashed.add(id);
  }

  private send(from: string, outs: SwimOutput[]): void {
    for (const o of outs) {
      if (this.counting) this.sentAfter++;
      if (this.rnd.chance(this.loss)) continue;
      let delay = 1 + this.rnd.int(4);
      const s = this.slow.get(from);
      if (s) delay += this.rnd.between(s[0], s[1]);
      this.flights.push({ at: this.time + delay, from, to: o.to, msg: o.msg });
    }
  }

  run(ms: number, each?: () => void): void {
    const end = this.time + ms;
    while (this.time < end) {
      this.time += this.step;
      const due = this.flights.filter((f) => f.at <= this.time).sort((a, b) => a.at - b.at);
      this.flights = this.flights.filter((f) => f.at > this.time);
      for (const f of due) {
        const core = this.cores.get(f.to);
        if (!core || this.crashed.has(f.to)) continue;
        this.delivered++;
        this.send(f.to, core.receive(f.from, f.msg, this.time));
      }
      for (const [id, core] of this.cores) {
        if (this.crashed.has(id)) continue;
        if (core.nextDeadline() <= this.time) this.send(id, core.tick(this.time));
      }
      each?.();
    }
  }

  /** True when every live member sees every other live member alive. */
  stable(): boolean {
    const live = [...this.cores.keys()].filter((id) => !this.crashed.has(id));
    return live.every((a) =>
      live.every((b) => (this.cores.get(a) as SwimCore).stateOf(b) === 'alive'),
    );
  }

  boot(n: number): string[] {
    const ids = Array.from({ length: n }, (_, i) => `m${i}`);
    this.add('m0', []);
    for (const id of ids.slice(1)) this.add(id, ['m0']); // one seed each
    for (let i = 0; i < 200 && !this.stable(); i++) this.run(1000);
    return ids;
  }
}

t.test(
  'precedence: suspect overrides alive at the same incarnation; alive needs a higher one',
  async (t) => {
    const c = new SwimCore({ self: 'a' }, new Random(1));
    t.ok(c.apply({ id: 'b', s: 'alive', i: 0 }, 0));
    t.ok(c.apply({ id: 'b', s: 'suspect', i: 0 }, 0));
    t.notOk(c.apply({ id: 'b', s: 'alive', i: 0 }, 0), 'stale alive ignored');
    t.ok(c.apply({ id: 'b', s: 'alive', i: 1 }, 0), 'refutation accepted');
    t.ok(c.apply({ id: 'b', s: 'dead', i: 1 }, 0));
    t.notOk(c.apply({ id: 'b', s: 'suspect', i: 1 }, 0), 'no resurrection at the same incarnation');
    t.ok(c.apply({ id: 'b', s: 'alive', i: 2 }, 0), 'a rejoin with a higher incarnation revives');
    t.ok(c.apply({ id: 'b', s: 'left', i: 2 }, 0));
    t.same(
      c.takeEvents().map((e) => e.type),
      [
        'member-alive',
        'member-suspect',
        'member-alive',
        'member-dead',
        'member-alive',
        'member-left',
      ],
    );
    t.throws(
      () => new SwimCore({ self: 'x', periodMs: 100, pingTimeoutMs: 100 }, new Random(1)),
      RangeError,
    );
  },
);

t.test('a member refutes a suspicion about itself by raising its incarnation', async (t) => {
  const c = new SwimCore({ self: 'a' }, new Random(1));
  c.start(0);
  c.apply({ id: 'a', s: 'suspect', i: 0 }, 0);
  t.equal(c.currentIncarnation, 1);
  const outs = c.receive('b', { type: 'swim-ping', seq: 1, ups: [] }, 0);
  const ack = outs[0]?.msg as Extract<SwimMessage, { type: 'swim-ack' }>;
  t.ok(
    ack.ups.some((u) => u.id === 'a' && u.s === 'alive' && u.i === 1),
    'the ack carries the refutation',
  );
});

t.test('ping-req relays an ack back to the requester', async (t) => {
  const b = new SwimCore({ self: 'b' }, new Random(2));
  const out1 = b.receive('a', { type: 'swim-ping-req', seq: 7, target: 'c', ups: [] }, 0);
  t.equal(out1[0]?.to, 'c');
  const relaySeq = (out1[0]!.msg as { seq: number }).seq;
  const out2 = b.receive('c', { type: 'swim-ack', seq: relaySeq, ups: [] }, 10);
  t.equal(out2[0]?.to, 'a');
  t.equal((out2[0]!.msg as { seq: number }).seq, 7);
});

t.test('a joining member needs one seed; everyone learns of it', async (t) => {
  for (let s = 0; s < SEEDS; s++) {
    const seed = 1000 + s;
    const c = new Cluster(seed);
    c.boot(10);
    t.ok(c.stable(), `seed ${seed}: 10 members stable after booting through one seed`);
    const joinedAt = c.time;
    c.add('newcomer', ['m7']);
    let took = -1;
    c.run(30_000, () => {
      if (took < 0 && c.stable()) took = c.time - joinedAt;
    });
    t.ok(took >= 0, `seed ${seed}: newcomer known alive everywhere after ${took} ms`);
  }
});

t.test('a crashed member is declared dead by all others within the expected periods', async (t) => {
  for (const n of [5, 10, 20, 40]) {
    for (let s = 0; s < SEEDS; s++) {
      const seed = 2000 + n * 10 + s;
      const c = new Cluster(seed);
      const ids = c.boot(n);
      t.ok(c.stable(), `seed ${seed}: stable`);
      const victim = ids[n - 1] as string;
      const anyCore = c.cores.get('m0') as SwimCore;
      const period = anyCore.periodMs;
      const suspicionPeriods = anyCore.suspicionTimeoutMs() / period;
      c.crash(victim);
      const crashedAt = c.time;
      const detected = new Map<string, number>();
      c.run(60_000, () => {
        for (const id of ids) {
          if (id === victim || detected.has(id)) continue;
          if ((c.cores.get(id) as SwimCore).stateOf(victim) === 'dead')
            detected.set(id, c.time - crashedAt);
        }
      });
      const worst = Math.max(...detected.values()) / period;
      // first probe of the victim (≤ 2 periods with shuffled round-robin, usually 1), the
      // suspicion timeout, then dissemination of "dead" in O(log n) periods
      const bound = 2 + Math.ceil(suspicionPeriods) + 2 * Math.ceil(Math.log2(n));
      t.equal(detected.size, n - 1, `seed ${seed}: all ${n - 1} survivors detect the crash`);
      t.ok(
        worst <= bound,
        `seed ${seed}: n=${n} detected by all in ${worst.toFixed(2)} periods (bound ${bound})`,
      );
    }
  }
});

function slowMemberRun(seed: number, opts: Partial<SwimOptions>) {
  const c = new Cluster(seed, opts);
  const ids = c.boot(10);
  c.loss = 0.1;
  c.slow.set('m3', [50, 450]); // often slower than the 200 ms ping timeout, never dead
  let falseDeaths = 0;
  let suspicions = 0;
  const seen = new Set<string>();
  c.run(120_000, () => {
    for (const id of ids) {
      for (const e of (c.cores.get(id) as SwimCore).takeEvents()) {
        if (e.type === 'member-dead') falseDeaths++;
        if (e.type === 'member-suspect' && e.id === 'm3') suspicions++;
        seen.add(e.type);
      }
    }
  });
  return { falseDeaths, suspicions };
}

t.test('a slow but alive member is not declared dead under 10% message loss', async (t) => {
  for (let s = 0; s < SEEDS; s++) {
    const seed = 3000 + s;
    const r = slowMemberRun(seed, {});
    t.comment(
      `seed ${seed}: suspicions of the slow member ${r.suspicions}, false deaths ${r.falseDeaths}`,
    );
    t.equal(r.falseDeaths, 0, `seed ${seed}: nobody declared dead in 120 periods`);
  }
});

t.test(
  'negative control: without a suspicion period the same run declares false deaths',
  async (t) => {
    const r = slowMemberRun(3000, { suspicionMult: 0.0001, indirectChecks: 0 });
    t.ok(r.falseDeaths > 0, `false deaths flagged: ${r.falseDeaths}`);
  },
);

t.test('messages per member per period stay constant from 5 to 40 members', async (t) => {
  const rates: Array<[number, number]> = [];
  for (const n of [5, 10, 20, 40]) {
    const c = new Cluster(4000 + n, {}, 10);
    c.boot(n);
    t.ok(c.stable(), `n=${n} stable`);
    c.counting = true;
    const periods = 30;
    c.run(periods * 1000);
    const rate = c.sentAfter / n / periods;
    rates.push([n, rate]);
    t.comment(`n=${n}: ${rate.toFixed(3)} messages sent per member per period`);
  }
  const values = rates.map(([, r]) => r);
  t.ok(
    Math.max(...values) / Math.min(...values) < 1.15,
    `rates ${values.map((v) => v.toFixed(3)).join(', ')}`,
  );
  t.ok(
    values.every((v) => v >= 1.9 && v <= 2.2),
    'about one ping and one ack each',
  );
});

t.test(
  'a crashed member that restarts (incarnation reset) rejoins and is alive everywhere',
  async (t) => {
    const c = new Cluster(5000);
    c.boot(6);
    c.crash('m4');
    c.run(20_000);
    t.equal((c.cores.get('m0') as SwimCore).stateOf('m4'), 'dead');
    c.add('m4', ['m1'], 0); // forgot its incarnation
    let ok = false;
    c.run(30_000, () => {
      ok ||= c.stable();
    });
    t.ok(ok, 'refuted its death with a higher incarnation');
    t.ok((c.cores.get('m4') as SwimCore).currentIncarnation > 0);
  },
);

t.test('a member that leaves is marked left, not dead', async (t) => {
  const c = new Cluster(6000);
  const ids = c.boot(6);
  const leaver = c.cores.get('m2') as SwimCore;
  // deliver the leave through the cluster's network
  (c as unknown as { send(from: string, o: SwimOutput[]): void }).send('m2', leaver.leave(c.time));
  c.run(15_000);
  for (const id of ids) {
    if (id === 'm2') continue;
    t.equal((c.cores.get(id) as SwimCore).stateOf('m2'), 'left', `${id} sees m2 left`);
  }
});

t.test(
  'two groups formed through each other merge through a seed they do not know yet',
  async (t) => {
    const c = new Cluster(7000);
    c.add('m0', []);
    c.add('m3', []);
    c.run(3000);
    // m1 and m2 seed each other first: they may form a group of their own
    c.add('m1', ['m2', 'm0']);
    c.add('m2', ['m1']);
    c.add('m4', ['m3', 'm1']);
    let merged = false;
    c.run(60_000, () => {
      merged ||= c.stable();
    });
    t.ok(merged, 'all five members see each other');
  },
);
