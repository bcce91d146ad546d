/**
 * Asynchronous storage writes in RaftNode (docs/raft.md "Persistence pipeline"), in the
 * deterministic simulation with a disk whose syncs take 3 virtual ms: the I/O loop keeps
 * taking Readies while a write is in flight, Readies queued meanwhile share the next write
 * (group commit), and no follower acknowledges an entry before its own disk holds it
 * durably. Invariants (including DurableCommit) are checked after every step.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that replays it.
 */
import t from 'tap';
import type { LogEntry, RaftMessage } from '../../../actors/raft/core/types.js';
import { unpackEntries } from '../../../actors/raft/entry-codec.js';
import { coalesceAcks, type RaftNodeOptions } from '../../../actors/raft/raft-node.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { StorageError } from '../../../lib/storage/errors.js';
import type { LogStore } from '../../../lib/storage/types.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(61);

interface DurableLog {
  view: { lastIndex(): number; term(i: number): number | undefined };
}

async function run(seed: number, node: Partial<RaftNodeOptions<KvOp, unknown>>) {
  const ids = ['a', 'b', 'c'];
  const stats = { acks: 0, undurableAcks: 0, appends: 0, aheadOfLeaderDisk: 0 };
  let c: RaftCluster | undefined;
  const durable = (id: string) =>
    (c as RaftCluster).sim.disk(id).durableState<DurableLog>('log:log')?.view;
  const onSend = (_to: string, body: { ms: RaftMessage[] }) => {
    for (const m of body.ms) {
      if (m.type === 'appendResp' && !m.reject && m.index > 0) {
        stats.acks++;
        const d = durable(m.from);
        if (!d || d.lastIndex() < m.index) stats.undurableAcks++;
      } else if (m.type === 'append') {
        const packed = m.entries as unknown;
        const ents = packed instanceof Uint8Array ? unpackEntries(packed) : m.entries;
        const last = ents[ents.length - 1] as LogEntry | undefined;
        if (!last) continue;
        stats.appends++;
        const d = durable(m.from);
        if (!d || d.lastIndex() < last.index) stats.aheadOfLeaderDisk++;
      }
    }
  };
  c = new RaftCluster({ seed, ids, syncDelayMs: 3, node: { ...node, onSend } });
  await c.start();
  const leader = await c.waitLeader(2000);
  if (!leader) throw new Error(`seed ${seed}: no leader`);
  const started = c.now();
  const ps: Promise<unknown>[] = [];
  let latency = 0;
  for (let i = 0; i < 300; i++) {
    const t0 = c.now();
    const p = c
      .node(leader)
      .propose({ clientId: 'p', seq: i + 1, op: { f: 'write', k: `k${i % 7}`, v: i } });
    ps.push(p);
    p.then(() => (latency += (c as RaftCluster).now() - t0)).catch(() => {});
    await c.sim.runFor(0.25);
  }
  let failed = 0;
  for (const p of ps) p.catch(() => failed++);
  const settled = await c.drive(ps, 10_000);
  const elapsed = c.now() - started;
  await c.sim.runFor(100);
  const writes = Object.fromEntries(ids.map((id) => [id, c.node(id).logWriteStats()]));
  const applied = ids.map((id) => c.machines.get(id)?.data.size ?? 0);
  return { stats, writes, settled, failed, elapsed, applied, leader, meanLatency: latency / 300 };
}

t.test(
  'pipelined log writes: group commit, and no acknowledgement before durability',
  async (t) => {
    const r = await run(SEED, {});
    t.ok(r.settled, `seed ${SEED}: every proposal settled`);
    t.equal(r.failed, 0, `seed ${SEED}: no proposal failed`);
    t.same(r.applied, [7, 7, 7], 'every node applied every key');
    t.ok(r.stats.acks > 0, `followers acknowledged (${r.stats.acks} acks)`);
    t.equal(r.stats.undurableAcks, 0, 'no follower acknowledged an entry its disk did not hold');
    // The same check flags messages sent ahead of the sender's disk: the leader's appends
    // (Raft thesis §10.2.1) are such messages, so the check can fail.
    t.ok(
      r.stats.aheadOfLeaderDisk > 0,
      `negative control: ${r.stats.aheadOfLeaderDisk} of ${r.stats.appends} leader appends left before the leader's own write was durable`,
    );
    for (const [id, w] of Object.entries(r.writes)) {
      t.ok(
        w.readies > w.writes,
        `${id}: ${w.readies} Readies' entries written by ${w.writes} log writes (group commit)`,
      );
    }
    t.comment(`async: mean latency ${r.meanLatency.toFixed(2)} virtual ms`);

    const s = await run(SEED, { asyncStorageWrites: false });
    t.ok(s.settled && s.failed === 0, 'the synchronous loop settles every proposal too');
    t.equal(s.stats.undurableAcks, 0, 'synchronous loop: no undurable acknowledgement either');
    t.same(
      s.writes.a,
      { writes: 0, readies: 0 },
      'the synchronous loop does not use the asynchronous writer',
    );
    t.comment(`sync: mean latency ${s.meanLatency.toFixed(2)} virtual ms`);
    t.ok(
      r.meanLatency < s.meanLatency,
      `pipelining answers the same load sooner in virtual time (mean ${r.meanLatency.toFixed(2)} < ${s.meanLatency.toFixed(2)} ms)`,
    );
  },
);

t.test(
  'pipelined writes across crashes: acknowledged writes survive (several seeds)',
  async (t) => {
    const seeds = Number(process.env.SYNOD_RAFT_SEEDS ?? 5);
    for (let k = 0; k < seeds; k++) {
      const seed = SEED + 100 + k;
      const ids = ['a', 'b', 'c'];
      const c = new RaftCluster({ seed, ids, syncDelayMs: { min: 1, max: 5 } });
      await c.start();
      const acked: number[] = [];
      let seq = 0;
      for (let round = 0; round < 6; round++) {
        const l = await c.waitLeader(3000);
        if (l) {
          const ps: Promise<unknown>[] = [];
          for (let i = 0; i < 40; i++) {
            const v = ++seq;
            ps.push(
              c
                .node(l)
                .propose(
                  { clientId: 'w', seq: v, op: { f: 'write', k: `k${v}`, v } },
                  { timeoutMs: 2000 },
                )
                .then(() => acked.push(v)),
            );
            await c.sim.runFor(0.3);
          }
          // Crash a node while writes are in flight (its unsynced writes are lost).
          const victim = round % 2 === 0 ? l : (ids.find((id) => id !== l) as string);
          c.crash(victim);
          await c.drive(ps, 3000);
          await c.restart(victim);
        }
        await c.sim.runFor(300);
      }
      await c.waitLeader(3000);
      await c.sim.runFor(1000);
      const missing = ids.flatMap((id) =>
        acked.filter((v) => c.machines.get(id)?.data.get(`k${v}`) !== v).map((v) => `${id}:k${v}`),
      );
      t.same(
        missing.slice(0, 5),
        [],
        `seed ${seed}: ${acked.length} acknowledged writes on every node`,
      );
      t.ok(acked.length > 0, `seed ${seed}: some writes were acknowledged`);
    }
  },
);

t.test('acknowledgements released by one write are coalesced per peer and term', async (t) => {
  const ack = (to: string, term: number, index: number, reject = false): RaftMessage =>
    ({ type: 'appendResp', from: 'b', to, term, index, reject }) as RaftMessage;
  const hb: RaftMessage = { type: 'heartbeatResp', from: 'b', to: 'a', term: 2 };
  const ms = [
    ack('a', 2, 5),
    hb,
    ack('a', 2, 4, true),
    ack('a', 2, 7),
    ack('a', 3, 8),
    ack('c', 2, 6),
  ];
  t.same(
    coalesceAcks(ms),
    [hb, ack('a', 2, 4, true), ack('a', 2, 7), ack('a', 3, 8), ack('c', 2, 6)],
    'the earlier accepting ack to a in term 2 is covered by the later one; the rest stays, in order',
  );
  const one = [ack('a', 2, 5), hb];
  t.equal(coalesceAcks(one), one, 'nothing to coalesce: the same array');
});

t.test(
  'snapshots under pipelined load: every node snapshots, and a crash of all keeps everything',
  async (t) => {
    const ids = ['a', 'b', 'c'];
    const c = new RaftCluster({
      seed: SEED + 7,
      ids,
      syncDelayMs: 3,
      node: { snapshotEvery: 40, keepEntries: 5 },
    });
    await c.start();
    const l = await c.waitLeader(2000);
    if (!l) throw new Error('no leader');
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < 400; i++) {
      ps.push(
        c.node(l).propose({ clientId: 's', seq: i + 1, op: { f: 'write', k: `k${i}`, v: i } }),
      );
      await c.sim.runFor(0.2);
    }
    t.ok(await c.drive(ps, 10_000), 'every proposal settled');
    await c.sim.runFor(200);
    for (const id of ids) {
      const snaps =
        c.sim.disk(id).durableState<{ meta: { index: number } }[]>('snapshots:snapshots') ?? [];
      t.ok(snaps.length > 0, `${id} wrote snapshots under load`);
    }
    // Everything survives a crash of every node at once. (That a snapshot is never durable
    // ahead of its node's log is argued in docs/raft.md, not tested here: MemoryDisk syncs
    // every store of a node in one FIFO queue, so it cannot reorder them as separate files can.)
    for (const id of ids) c.crash(id);
    for (const id of ids) await c.restart(id);
    await c.waitLeader(3000);
    await c.sim.runFor(500);
    for (const id of ids)
      t.equal(c.machines.get(id)?.data.size, 400, `${id} has all 400 keys after restart`);
  },
);

t.test(
  'a full disk under pipelined writes: the writer retries what was queued, nothing acknowledged is lost',
  async (t) => {
    const ids = ['a', 'b', 'c'];
    const c = new RaftCluster({ seed: SEED + 9, ids, syncDelayMs: 2 });
    await c.start();
    const full = new Set<string>();
    const refusals = new Map<string, number>();
    for (const id of ids) {
      const log = (c.node(id) as unknown as { storage: { log: LogStore } }).storage.log;
      const append = log.append.bind(log);
      log.append = (entries) => {
        if (!full.has(id)) return append(entries);
        refusals.set(id, (refusals.get(id) ?? 0) + 1);
        return Promise.reject(new StorageError('SYNOD_ERR_NO_SPACE', `test: ${id}'s disk is full`));
      };
    }
    const acked = new Map<string, number>();
    let seq = 0;
    const writeSome = async (n: number) => {
      const ps: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const l = c.leaders()[0];
        if (l) {
          const v = ++seq;
          ps.push(
            c
              .node(l)
              .propose(
                { clientId: 'd', seq: v, op: { f: 'write', k: `k${v}`, v } },
                { timeoutMs: 3000 },
              )
              .then(
                () => acked.set(`k${v}`, v),
                () => {},
              ),
          );
        }
        await c.sim.runFor(1);
      }
      await c.drive(ps, 4000);
    };

    const l1 = (await c.waitLeader(2000)) as string;
    const f = ids.find((id) => id !== l1) as string;
    full.add(f);
    await writeSome(30);
    t.ok(c.node(f).storageStalled, `follower ${f} is stalled while its disk is full`);
    t.ok(
      (refusals.get(f) ?? 0) > 1,
      `its writes were refused and retried (${refusals.get(f)} times)`,
    );
    full.delete(f);
    await c.sim.runFor(2000);
    t.notOk(c.node(f).storageStalled, `${f} recovered once space returned`);

    const l2 = (await c.waitLeader(2000)) as string;
    full.add(l2);
    await writeSome(30);
    full.delete(l2);
    await c.sim.runFor(3000);
    await c.waitLeader(3000);
    await writeSome(5);
    await c.sim.runFor(1000);
    t.same(c.fatal, [], 'no node stopped');
    t.ok(acked.size > 30, `${acked.size} writes acknowledged`);
    for (const id of ids) {
      const missing = [...acked].filter(([k, v]) => c.machines.get(id)?.data.get(k) !== v);
      t.same(missing, [], `${id} holds every acknowledged write`);
    }
  },
);
