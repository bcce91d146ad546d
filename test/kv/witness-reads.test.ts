/**
 * Witnessed strong reads through the KV client and service on Raft (docs/kv.md, "Witnessed
 * reads"), in the deterministic simulation: the leader serves them on the followers' witnesses,
 * lost witnesses fall back to the heartbeat round, the client's switch, and bad input.
 */
import t, { type Test } from 'tap';
import { raftBackend } from '../../actors/kv/testing/backends.js';
import { CLIENT_NODE, type KvBackend, KvSim } from '../../actors/kv/testing/sim-cluster.js';
import type { KvOp, KvResult } from '../../actors/kv/types.js';
import { RaftCore } from '../../actors/raft/core/raft-core.js';
import { RaftNode } from '../../actors/raft/raft-node.js';
import { KvClient } from '../../lib/kv-client/client.js';
import type { ReplicatedLog } from '../../lib/replicated-log.js';
import { openMemoryDataDir } from '../../lib/storage/data-dir.js';

async function cluster(
  seed = 7,
): Promise<{ k: KvSim; leader: string; raft: RaftNode<never, never> }> {
  const k = new KvSim({ backend: raftBackend, seed, faults: { delay: { min: 1, max: 3 } } });
  await k.start();
  const leader = await k.waitLeader();
  const raft = k.logs.get(leader) as unknown as RaftNode<never, never>;
  return { k, leader, raft };
}

t.test('the leader serves witnessed reads on the followers’ witnesses', async (t) => {
  const { k, raft } = await cluster();
  const kv = k.client({ witnessReads: true });
  t.equal((await k.run(kv.put('x', '1'))).outcome, 'ok');
  const before = raft.witnessedReads;
  for (let i = 0; i < 20; i++) {
    const r = await k.run(kv.get('x', { level: 'strong' }));
    t.match(r, { outcome: 'ok', value: { value: '1', level: 'strong' } });
  }
  t.equal(kv.stats.witnessed, 20, 'every attempt sent witnesses');
  const served = raft.witnessedReads - before;
  t.ok(served >= 15, `the leader served ${served} of 20 on witnesses`);
});

t.test('witnessReads: false sends none, and the leader serves none on witnesses', async (t) => {
  const { k, raft } = await cluster();
  const kv = k.client({ witnessReads: false });
  await k.run(kv.put('x', '1'));
  const before = raft.witnessedReads;
  for (let i = 0; i < 5; i++)
    t.equal((await k.run(kv.get('x', { level: 'strong' }))).outcome, 'ok');
  t.equal(kv.stats.witnessed, 0);
  t.equal(raft.witnessedReads, before);
});

t.test('lost witnesses: the reads are served by the heartbeat round', async (t) => {
  const { k, leader, raft } = await cluster();
  for (const n of k.nodes)
    if (n !== leader) k.sim.network.setLinkFaults(CLIENT_NODE, n, { drop: 1 });
  const kv = k.client({ witnessReads: true });
  await k.run(kv.put('x', '2'));
  const before = raft.witnessedReads;
  for (let i = 0; i < 5; i++) {
    const r = await k.run(kv.get('x', { level: 'strong' }));
    t.match(r, { outcome: 'ok', value: { value: '2' } });
  }
  t.equal(raft.witnessedReads, before, 'none served on witnesses');
});

t.test('the default witnesses only while few strong reads are in flight', async (t) => {
  const { k } = await cluster();
  const one = k.client();
  await k.run(one.put('x', '1'));
  for (let i = 0; i < 4; i++) await k.run(one.get('x', { level: 'strong' }));
  t.equal(one.stats.witnessed, 4, 'one client, one read at a time: witnessed');
  const many = Array.from({ length: 8 }, () => k.client());
  await k.run(Promise.all(many.map((c) => c.get('x', { level: 'strong' }))));
  const w = many.reduce((n, c) => n + c.stats.witnessed, 0);
  t.equal(w, 2, 'eight at once on one actor system: only the first two (maxInFlight 2)');
  const eventual = k.client({ witnessReads: true });
  await k.run(eventual.get('x', { level: 'eventual' }));
  t.equal(eventual.stats.witnessed, 0, 'only strong reads are witnessed');
});

t.test('bad input gets a clear error', async (t) => {
  const { k } = await cluster();
  for (const bad of [{ maxInFlight: -1 }, { maxInFlight: 1.5 }, { maxInFlight: 'x' }, 'yes']) {
    t.throws(
      () => k.client({ witnessReads: bad as never }),
      { code: 'SYNOD_ERR_KV_INVALID_ARGUMENT', message: /witnessReads must be/ },
      JSON.stringify(bad),
    );
  }
  const leader = await k.waitLeader();
  const sys = k.sim.system(CLIENT_NODE);
  const r = await k.run(
    sys.ask(
      `${leader}/kv`,
      { type: 'kv.get', key: 'x', read: { level: 'strong', witness: '' } },
      1000,
    ),
  );
  t.match(r, { ok: false, code: 'SYNOD_ERR_KV_INVALID_ARGUMENT', message: /witness key/ });
  // A witness of another version is dead-lettered; the node carries on.
  const follower = k.nodes.find((n) => n !== leader) as string;
  sys.send(`${follower}/kv`, { type: 'kv.witness', v: 2, key: 'k' });
  sys.send(`${follower}/kv`, { type: 'kv.witness', v: 1, key: 'x'.repeat(300) });
  const kv = new KvClient({ system: sys, nodes: k.nodes, witnessReads: true });
  t.equal((await k.run(kv.get('x', { level: 'strong' }))).outcome, 'ok');
});

/** Raft without check-quorum: a leader cut off from its followers keeps believing it leads. */
const staleLeaderBackend: KvBackend = {
  name: 'raft (no check-quorum)',
  start(node, sm, members) {
    const raft = new RaftNode<KvOp, KvResult>({
      storage: () => openMemoryDataDir(node.disk, { clock: node.clock }),
      stateMachine: () => sm,
      bootstrap: [...members],
      checkQuorum: false,
      requestTimeoutMs: 1000,
    });
    node.system.spawn('raft', raft);
    return raft as ReplicatedLog<KvOp, KvResult>;
  },
};

/**
 * The deposed-leader scenario: returns the reader's strong read of `x` after a new leader wrote
 * '2' over '1', with the old leader (cut off from its followers, check-quorum off) still
 * reachable by the reader.
 */
async function deposedLeaderRead(t: Test) {
  // The case witnesses must get right: the old leader, cut off from both followers but not from
  // the clients, still thinks it leads; a new leader commits a write; a client that still
  // believes in the old leader reads. Its witness reaches a follower of the new term, which
  // tells the new leader, not the old one: the old leader must not serve the read.
  const k = new KvSim({
    backend: staleLeaderBackend,
    seed: 11,
    faults: { delay: { min: 1, max: 3 } },
  });
  await k.start();
  const old = await k.waitLeader();
  const reader = k.client({ witnessReads: true, attemptTimeoutMs: 300, timeoutMs: 3000 });
  const writer = k.client({ witnessReads: true });
  t.equal((await k.run(writer.put('x', '1'))).outcome, 'ok');
  // A write teaches the reader who leads (a read may be served by the follower it went to).
  t.match(await k.run(reader.put('y', '0')), { outcome: 'ok', servedBy: old });
  t.equal(reader.leader, old);
  for (const n of k.nodes) {
    if (n === old) continue;
    k.sim.network.setLinkFaults(old, n, { drop: 1 });
    k.sim.network.setLinkFaults(n, old, { drop: 1 });
  }
  await k.sim.runUntil(() => k.leader() !== undefined && k.leader() !== old, { timeout: 5000 });
  const fresh = k.leader() as string;
  t.not(fresh, old, 'a new leader in a new term');
  const oldRaft = k.logs.get(old) as unknown as RaftNode<never, never>;
  t.equal(oldRaft.status().role, 'leader', 'the old leader still thinks it leads');
  t.equal((await k.run(writer.put('x', '2'))).outcome, 'ok', 'written through the new leader');
  t.equal(reader.leader, old, 'the reader still believes in the old leader');
  const r = await k.run(reader.get('x', { level: 'strong' }));
  return { r, old, fresh, witnessed: reader.stats.witnessed };
}

t.test('a deposed leader that clients still reach serves no stale witnessed read', async (t) => {
  const { r, fresh, witnessed } = await deposedLeaderRead(t);
  t.ok(witnessed >= 2, 'the reads were witnessed');
  if (r.outcome === 'ok') {
    t.equal(r.value.value, '2', 'never the value the write replaced');
    t.equal(r.servedBy, fresh, 'served by the new leader after the old one timed out');
  } else t.pass(`failed rather than stale (${r.error.code})`);
});

t.test('negative control: a leader that serves witnessed reads at once is caught', async (t) => {
  // The same scenario with the core's check replaced by "confirmed" (the bug witnesses must
  // not have): the old leader then answers from its own, stale state.
  const core = RaftCore.prototype as unknown as { confirmedAlone: (p: unknown) => boolean };
  const confirmedAlone = core.confirmedAlone;
  core.confirmedAlone = () => true;
  t.teardown(() => {
    core.confirmedAlone = confirmedAlone;
  });
  const { r, old } = await deposedLeaderRead(t);
  t.equal(r.outcome, 'ok', 'the broken leader answers');
  if (r.outcome === 'ok') {
    t.equal(r.value.value, '1', 'with the value the new leader had replaced: stale');
    t.equal(r.servedBy, old, 'from the deposed leader');
  }
});
