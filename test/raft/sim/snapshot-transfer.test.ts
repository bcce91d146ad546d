/**
 * InstallSnapshot flow control on RaftNode actors in the deterministic simulation: the
 * leader keeps one chunk in flight per follower, so a transfer that lasts many heartbeats
 * sends every chunk once when nothing is lost (a heartbeat response must not start another
 * chunk/response chain), and a transfer under drops, duplicates and reordering completes
 * with the follower's state equal to the leader's, without resending the image many times.
 *
 * SYNOD_SEED=N moves the seeds; SYNOD_RAFT_SEEDS=N runs N faulty transfers (default 6).
 */
import t from 'tap';
import type { RaftMessage, SnapshotChunk } from '../../../actors/raft/core/types.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import type { LinkFaults } from '../../../transports/memory/faults.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(91);
const CHUNK = 64;
const KEYS = 40;
const VALUE = 'v'.repeat(60);

type Sent = { to: string; chunk: SnapshotChunk };

async function one(c: RaftCluster, op: KvOp, among: string[]): Promise<void> {
  const end = c.now() + 20_000;
  while (c.now() < end) {
    const l = await c.waitLeader(1000, among);
    if (!l) continue;
    const r = await c.proposeOn(l, op, 1000);
    if (r.ok) return;
    await c.sim.runFor(50);
  }
  throw new Error(`seed ${c.sim.seed}: ${JSON.stringify(op)} did not commit in 20 s`);
}

/**
 * Cuts one follower off, writes enough that the leader compacts past it (an image of
 * ~3 KB: ~50 chunks of 64 bytes), heals and waits until the follower holds the leader's
 * state. Returns what the leader sent to the follower from the heal on.
 */
async function transfer(seed: number, faults: LinkFaults, resendBeats?: number) {
  const sent: Sent[] = [];
  const c = new RaftCluster({
    seed,
    ids: ['a', 'b', 'c'],
    faults,
    node: {
      snapshotEvery: 10,
      keepEntries: 3,
      snapshotChunkSize: CHUNK,
      ...(resendBeats !== undefined ? { snapshotResendBeats: resendBeats } : {}),
      onSend: (to, body) => {
        for (const m of body.ms as RaftMessage[])
          if (m.type === 'snapshot') sent.push({ to, chunk: m as SnapshotChunk });
      },
    },
  });
  await c.start();
  await one(c, { f: 'write', k: 'k0', v: VALUE }, ['a', 'b', 'c']);
  const leader = (await c.waitLeader())!;
  const f = ['a', 'b', 'c'].find((id) => id !== leader)!;
  const rest = ['a', 'b', 'c'].filter((id) => id !== f);
  c.partition([[f], rest]);
  for (let i = 1; i < KEYS; i++) await one(c, { f: 'write', k: `k${i}`, v: VALUE }, rest);
  const l = c.leaders()[0]!;
  const compacted = c.core(l)!.log.firstIndex() > (c.core(f)?.log.lastIndex() ?? 0) + 1;
  sent.length = 0;
  const healedAt = c.now();
  c.heal();
  const same = () => {
    const lm = c.machines.get(c.leaders()[0] ?? l)!.data;
    const fm = c.machines.get(f)!.data;
    return fm.size === lm.size && [...lm].every(([k, v]) => fm.get(k) === v);
  };
  const caughtUp = await c.sim.runUntil(() => c.machines.get(f)!.data.size === KEYS && same(), {
    timeout: 60_000,
  });
  const took = c.now() - healedAt;
  // Let straggling copies and answers arrive: nothing more may be sent once it is done.
  await c.sim.runFor(2000);
  return {
    c,
    f,
    compacted,
    caughtUp,
    same: same(),
    took,
    toF: sent.filter((s) => s.to === f).map((s) => s.chunk),
  };
}

t.test('without loss, each chunk of a multi-chunk snapshot is sent exactly once', async (t) => {
  // Latency but no loss: each chunk takes a round trip of 10–20 ms, so the transfer spans
  // many 50 ms heartbeats, each answered while a chunk is in flight.
  const r = await transfer(SEED, { delay: { min: 5, max: 10 } });
  t.ok(r.compacted, 'the leader compacted past the lagging follower');
  t.ok(r.caughtUp, `seed ${SEED}: the follower caught up`);
  t.ok(r.same, 'the follower state equals the leader state');
  t.ok(r.c.core(r.f)!.log.snapIndex > 0, 'the follower installed a snapshot');
  const transfers = new Set(r.toF.map((m) => `${m.meta.index}/${m.term}`));
  t.equal(transfers.size, 1, 'one transfer');
  const first = r.toF[0]!;
  const chunks = Math.ceil(first.totalSize / CHUNK);
  t.ok(chunks >= 20, `a multi-chunk snapshot (${chunks} chunks of ${first.totalSize} bytes)`);
  t.ok(r.took > 500, `the transfer spanned many heartbeats (${Math.round(r.took)} ms)`);
  const perOffset = new Map<number, number>();
  for (const m of r.toF) perOffset.set(m.offset, (perOffset.get(m.offset) ?? 0) + 1);
  const repeated = [...perOffset].filter(([, n]) => n !== 1);
  t.same(repeated, [], `seed ${SEED}: no chunk sent more than once`);
  t.equal(r.toF.length, chunks, `${chunks} chunk messages in all`);
  t.same(
    r.toF.map((m) => m.offset),
    Array.from({ length: chunks }, (_, i) => i * CHUNK),
    'in order, covering the image',
  );
});

t.test('under drops, duplicates and reordering the transfer completes', async (t) => {
  const runs = Number(process.env.SYNOD_RAFT_SEEDS ?? 6);
  const faults: LinkFaults = {
    drop: 0.1,
    duplicate: 0.1,
    reorder: 0.2,
    reorderWindowMs: 30,
    delay: { min: 1, max: 15 },
  };
  let worst = 0;
  for (let i = 0; i < runs; i++) {
    const seed = SEED + 100 + i;
    // Resends after 5 quiet beats instead of 20: the same rule, less virtual time to wait.
    const r = await transfer(seed, faults, 5);
    t.ok(r.caughtUp, `seed ${seed}: the follower caught up (${Math.round(r.took)} ms)`);
    t.ok(r.same, `seed ${seed}: the follower state equals the leader state`);
    // Per transfer (a leader change or a newer snapshot starts another), the chunks sent
    // stay within a small multiple of the image: losses cost a resend each, duplicates
    // and reordered answers cost nothing.
    const byTransfer = new Map<string, { chunks: number; sent: number }>();
    for (const m of r.toF) {
      const key = `${m.meta.index}/${m.term}`;
      const e = byTransfer.get(key) ?? { chunks: Math.ceil(m.totalSize / CHUNK), sent: 0 };
      e.sent++;
      byTransfer.set(key, e);
    }
    for (const [key, e] of byTransfer) {
      worst = Math.max(worst, e.sent / e.chunks);
      t.ok(
        e.sent <= 2 * e.chunks,
        `seed ${seed}: transfer ${key} sent ${e.sent} chunks for a ${e.chunks}-chunk image`,
      );
    }
  }
  t.comment(`worst ratio of chunks sent to image chunks: ${worst.toFixed(2)}`);
});
