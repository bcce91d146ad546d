/**
 * After a Multi-Paxos learner restarted alone (its state machine threw) and reset to an older
 * state, the KV service on that node serves no read from the older state: prefix reads wait
 * as on a fresh start (docs/kv.md: prefix "never moves backwards on that replica"), and strong,
 * session and bounded reads wait for the catch-up or refuse. Found by review (session 13):
 * the service's `ready` flag stayed set.
 */
import t from 'tap';
import { KvService } from '../../actors/kv/service.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import {
  type MultiPaxosNode,
  openMemoryPaxosStorage,
  startMultiPaxosNode,
} from '../../actors/paxos/multi-paxos-node.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';

class FaultySm extends KvStateMachine {
  failNext = false;
  faults = 0;
  override apply(...a: Parameters<KvStateMachine['apply']>): ReturnType<KvStateMachine['apply']> {
    if (this.failNext) {
      this.failNext = false;
      this.faults++;
      throw new Error('injected fault');
    }
    return super.apply(...a);
  }
}

t.test('prefix read after a learner-alone restart', async (t) => {
  const nodes = ['n1', 'n2', 'n3'];
  const sim = new Simulation<MemoryDisk>({ seed: 5, nodes, createDisk: () => new MemoryDisk() });
  const m = new Map<string, { paxos: MultiPaxosNode; sm: FaultySm }>();
  sim.onStart(async (node) => {
    const storage = await openMemoryPaxosStorage(node.disk, node.clock);
    const sm = new FaultySm();
    const paxos = startMultiPaxosNode({
      heartbeatMs: 30,
      electionTimeoutMs: 150,
      retransmitMs: 60,
      snapshotEvery: 50,
      proposeTimeoutMs: 1000,
      system: node.system,
      members: nodes,
      stateMachine: sm as never,
      storage,
    });
    m.set(node.id, { paxos, sm });
    node.system.spawn('kv', new KvService({ log: paxos.log as never, sm }));
  });
  await sim.start();
  await sim.runUntil(
    () => nodes.some((n) => m.get(n)?.paxos.proposer.getSnapshot()?.role === 'leader'),
    { timeout: 5000 },
  );
  const leader = nodes.find(
    (n) => m.get(n)?.paxos.proposer.getSnapshot()?.role === 'leader',
  ) as string;
  const f = nodes.find((n) => n !== leader) as string;
  const ask = (node: string, msg: unknown) =>
    sim.await(
      sim
        .system(node)
        .refFor(`${node}/kv`)
        .ask(msg as never, 1500) as Promise<unknown>,
      { timeout: 3000 },
    );
  for (let i = 1; i <= 3; i++) {
    const r = (await ask(leader, {
      type: 'kv.write',
      op: { t: 'put', key: `k${i}`, value: `v${i}` },
      session: { c: 'cl', q: i, a: i - 1 },
    })) as { ok: boolean };
    t.ok(r.ok, `put k${i}: ${JSON.stringify(r)}`);
  }
  const fm = m.get(f)!;
  await sim.runFor(300);
  const get = async () =>
    (await ask(f, { type: 'kv.get', key: 'k1', read: { level: 'prefix', waitMs: 200 } })) as {
      ok: boolean;
      value?: { kv: unknown; index?: number };
    };
  const before = await get();
  t.comment(`before: ${JSON.stringify(before)}`);
  t.ok(before.ok && before.value?.kv != null, 'prefix read sees k1 before');
  const appliedBefore = fm.paxos.log.appliedIndex;
  fm.sm.failNext = true;
  void ask(leader, {
    type: 'kv.write',
    op: { t: 'put', key: 'k4', value: 'v4' },
    session: { c: 'cl', q: 4, a: 3 },
  }).catch(() => undefined);
  await sim.runUntil(() => fm.sm.faults > 0, { timeout: 2000 });
  sim.network.partition([[f], nodes.filter((n) => n !== f)]);
  await sim.runFor(50);
  t.comment(
    `log applied ${appliedBefore} -> ${fm.paxos.log.appliedIndex}; sm.get(k1)=${JSON.stringify(fm.sm.get('k1'))}`,
  );
  const after = await get();
  t.comment(`after: ${JSON.stringify(after)}`);
  for (const read of [
    { level: 'strong', waitMs: 200 },
    { level: 'session', token: { index: 3, rev: 3 }, waitMs: 200, forward: false },
    { level: 'bounded', maxLagVersions: 0, waitMs: 200, forward: false },
  ]) {
    const r = (await ask(f, { type: 'kv.get', key: 'k1', read })) as {
      ok: boolean;
      value?: { kv: unknown };
    };
    t.ok(
      !r.ok || r.value?.kv != null,
      `${read.level}: not served from the reset state (${JSON.stringify(r).slice(0, 160)})`,
    );
  }
  t.ok(
    !after.ok || after.value?.kv != null,
    'a prefix read after the reset must not return the older (empty) state',
  );
});
