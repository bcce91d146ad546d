import t from 'tap';
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';
import { Simulation, SimulationError } from '../../lib/sim/simulation.js';

type Gossip =
  | { type: 'tick' }
  | { type: 'rumor'; hops: number; from: string }
  | ({ type: 'count' } & Replies<number>);

/** A small chatty protocol: random peers, random timers — a good determinism probe. */
class Chatter extends Actor<Gossip> {
  heard = 0;
  constructor(private readonly peers: string[]) {
    super();
  }
  override preStart() {
    this.ctx.timers.repeat('tick', 10 + this.ctx.random.int(20), { type: 'tick' });
  }
  receive(msg: Gossip) {
    switch (msg.type) {
      case 'tick': {
        const peer = this.ctx.random.pick(this.peers);
        this.ctx.send(`${peer}/chat`, { type: 'rumor', hops: 3, from: this.ctx.self });
        return;
      }
      case 'rumor':
        this.heard++;
        if (msg.hops > 0) {
          this.ctx.send(`${this.ctx.random.pick(this.peers)}/chat`, { ...msg, hops: msg.hops - 1 });
        }
        return;
      case 'count':
        this.ctx.reply(msg, this.heard);
    }
  }
}

async function chatRun(
  seed: number | undefined,
): Promise<{ hash: string; counts: number[]; stats: unknown; seed: number }> {
  const nodes = ['a', 'b', 'c', 'd'];
  const sim = new Simulation({
    ...(seed === undefined ? {} : { seed }),
    nodes,
    faults: { drop: 0.1, duplicate: 0.05, delay: { min: 1, max: 20 }, reorder: 0.2 },
  });
  sim.onStart((n) => {
    n.system.spawn('chat', new Chatter(nodes));
  });
  await sim.start();
  await sim.runFor(1_000);
  sim.crash('b');
  await sim.runFor(200);
  await sim.restart('b');
  sim.network.partition([
    ['a', 'b'],
    ['c', 'd'],
  ]);
  await sim.runFor(300);
  sim.network.heal();
  await sim.runFor(300);
  const counts: number[] = [];
  for (const n of nodes) {
    counts.push(
      await sim.await(
        sim.system(n).ask(`${n}/chat`, { type: 'count' } as Gossip & Replies<number>, 100),
        { timeout: 200 },
      ),
    );
  }
  return { hash: sim.traceHash(), counts, stats: { ...sim.network.counters }, seed: sim.seed };
}

t.test('same seed ⇒ identical trace; different seed ⇒ different trace', async (t) => {
  const one = await chatRun(42);
  const two = await chatRun(42);
  const other = await chatRun(43);
  t.equal(one.hash, two.hash, 'trace hashes equal for one seed');
  t.same(one.counts, two.counts);
  t.same(one.stats, two.stats);
  t.not(one.hash, other.hash, 'another seed gives another run');
  t.ok(
    one.counts.every((c) => c > 0),
    'messages flowed',
  );
});

/** Sets environment variables for the duration of `fn` (restores them afterwards). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function tickingSim(seed: number): Simulation {
  const sim = new Simulation({ seed, nodes: ['a'] });
  sim.onStart((n) => {
    n.system.spawn('chat', new Chatter(['a']));
  });
  return sim;
}

t.test('a failing run names its seed, whatever failed', async (t) => {
  // an afterEachStep check (how the Raft and Paxos invariants report)
  const checked = tickingSim(1234);
  await checked.start();
  const violation = new Error('invariant violated');
  let steps = 0;
  checked.afterEachStep(() => {
    if (++steps === 5) throw violation;
  });
  const e1 = await checked.runFor(1_000).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(e1 instanceof SimulationError, 'a SimulationError');
  t.match((e1 as Error).message, /invariant violated/, 'with the original message');
  t.match((e1 as Error).message, /seed 1234; replay with SYNOD_SIM_SEED=1234\b/, 'and the seed');
  t.equal((e1 as Error).cause, violation, 'the original error is the cause');
  t.equal((e1 as SimulationError).seed, 1234);

  // an exception inside a step (here a scheduled clock event), under runUntil
  const stepped = tickingSim(77);
  await stepped.start();
  stepped.clock.setTimer(50, () => {
    throw new RangeError('boom in a step');
  });
  const e2 = await stepped
    .runUntil(() => false, { timeout: 1_000 })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.ok(e2 instanceof SimulationError, 'a SimulationError from runUntil');
  t.match((e2 as Error).message, /RangeError: boom in a step.*SYNOD_SIM_SEED=77\b/);
  t.ok((e2 as Error).cause instanceof RangeError);

  // a throwing runUntil predicate is a check too
  const e3 = await stepped
    .runUntil(
      () => {
        throw new Error('predicate failed');
      },
      { timeout: 10 },
    )
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  t.match((e3 as Error).message, /predicate failed.*SYNOD_SIM_SEED=77\b/);

  // sim.fail and await timeouts keep their seeds (and are not wrapped twice)
  const e4 = await stepped.await(new Promise(() => {}), { timeout: 10 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match((e4 as Error).message, /^promise did not settle within 10 ms \(simulation seed 77;/);
  t.equal((e4 as Error).message.match(/seed/g)?.length, 1, 'the seed is named once');
});

t.test('the printed seed replays the run: same trace hash', async (t) => {
  const reference = await chatRun(4242);
  // a test that derives its seed (SEED + k) still replays exactly with SYNOD_SIM_SEED
  const pinned = await withEnv({ SYNOD_SIM_SEED: '4242' }, () => chatRun(4242 + 3));
  t.equal(pinned.seed, 4242, 'SYNOD_SIM_SEED overrides the seed the test passed');
  t.equal(pinned.hash, reference.hash, 'SYNOD_SIM_SEED gives the same trace hash');
  t.same(pinned.counts, reference.counts);
  // a simulation given no seed takes SYNOD_SEED
  const fromEnv = await withEnv({ SYNOD_SEED: '4242' }, () => chatRun(undefined));
  t.equal(fromEnv.seed, 4242);
  t.equal(fromEnv.hash, reference.hash, 'SYNOD_SEED gives the same trace hash');
  const unpinned = await chatRun(4242 + 3);
  t.not(unpinned.hash, reference.hash, 'without it the derived seed is another run');
  await t.rejects(
    withEnv({ SYNOD_SIM_SEED: '12abc' }, async () => new Simulation({ nodes: ['a'] })),
    /SYNOD_SIM_SEED must be an integer, got "12abc"/,
  );
});

type Ping =
  | ({ type: 'ping'; n: number } & Replies<number>)
  | Terminated
  | { type: 'watch'; target: string };
class Ponger extends Actor<Ping> {
  terminated: Terminated[] = [];
  receive(msg: Ping) {
    if (msg.type === 'ping') this.ctx.reply(msg, msg.n + 1);
    else if (msg.type === 'watch') this.ctx.watch(msg.target);
    else this.terminated.push(msg);
  }
}

t.test(
  'remote ask, remote watch, crash ⇒ node-down terminated, pause holds messages',
  async (t) => {
    const actors = new Map<string, Ponger>();
    const sim = new Simulation({ seed: 5, nodes: ['a', 'b'] });
    sim.onStart((n) => {
      const p = new Ponger();
      actors.set(n.id, p);
      n.system.spawn('p', p);
    });
    await sim.start();
    const reply = await sim.await(
      sim.system('a').ask('b/p', { type: 'ping', n: 1 } as Ping & Replies<number>, 1_000),
      { timeout: 2_000 },
    );
    t.equal(reply, 2, 'ask across nodes through the codec');
    sim.system('a').send('a/p', { type: 'watch', target: 'b/p' });
    sim.system('a').send('a/p', { type: 'watch', target: 'b/nobody' });
    await sim.runFor(10);
    t.same(
      actors.get('a')?.terminated.map((x) => [x.address, x.reason]),
      [['b/nobody', 'not-found']],
    );
    await sim.system('b').stop('b/p');
    await sim.runFor(10);
    t.same(
      actors.get('a')?.terminated.map((x) => x.reason),
      ['not-found', 'stopped'],
      'remote stop is watched',
    );

    await sim.crash('b');
    await sim.restart('b');
    sim.system('a').send('a/p', { type: 'watch', target: 'b/p' });
    await sim.runFor(10);
    sim.crash('b');
    await sim.runFor(10);
    t.equal(
      actors.get('a')?.terminated.at(-1)?.reason,
      'node-down',
      'a crashed node triggers terminated',
    );
    await sim.restart('b');

    sim.pause('b');
    const held = sim
      .system('a')
      .ask('b/p', { type: 'ping', n: 10 } as Ping & Replies<number>, 5_000);
    let done = false;
    held.then(() => (done = true));
    await sim.runFor(1_000);
    t.notOk(done, 'a paused node does not answer');
    sim.resume('b');
    t.equal(await sim.await(held, { timeout: 100 }), 11, 'and answers once resumed');
  },
);
