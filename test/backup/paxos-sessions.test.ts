/**
 * The Multi-Paxos session rule of the backup agent (actors/backup/paxos-sessions.ts) against
 * the cluster's own: a randomized KV workload with retries, pipelined (out-of-order) seqs and
 * retries from below the window, applied as a Multi-Paxos replica does (ClientSessions +
 * KvStateMachine, actors/paxos) and by the agent's tracked copy (PaxosSessionState around
 * KvKeyedState), must give the same KV state and the same session table; a replica snapshot
 * image read by the agent (`reset`) must give the agent's own digest; the agent's state written
 * as a replica image must restore in the replica's stack to the same state, answering retries
 * alike. Negative control: Raft's rule (SessionState) on the same workload gives another state.
 * SYNOD_SEED=n reproduces a run.
 */
import t from 'tap';
import {
  KvKeyedState,
  kvEntriesFromPaxosImage,
  kvPaxosReplicaImage,
} from '../../actors/backup/kv-state.js';
import { PaxosSessionState } from '../../actors/backup/paxos-sessions.js';
import { SessionState } from '../../actors/backup/sessions.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp } from '../../actors/kv/types.js';
import { decodeReplicaImage, encodeReplicaImage } from '../../actors/paxos/replica-image.js';
import { ClientSessions } from '../../actors/paxos/sessions.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';

const seed = Number(process.env.SYNOD_SEED ?? Math.floor(Math.random() * 2 ** 31));
const WINDOW = 8; // small, so the window moves many times in a short workload

function workload(r: Random, n: number): Command<KvOp>[] {
  const out: Command<KvOp>[] = [];
  const clients = Array.from({ length: 5 }, (_, i) => ({ id: `c${i}`, seq: 0 }));
  for (let i = 0; i < n; i++) {
    const roll0 = r.next();
    if (roll0 < 0.08 && out.length > 0) {
      // a retry of something recent, or of something long gone (below the window)
      const back = r.next() < 0.3 ? r.between(30, 200) : r.between(1, 10);
      out.push(out[Math.max(0, out.length - back)] as Command<KvOp>);
      continue;
    }
    const c = clients[r.between(0, clients.length - 1)] as { id: string; seq: number };
    c.seq += r.next() < 0.05 ? r.between(2, WINDOW + 3) : 1; // pipelined clients skip ahead
    const s = { c: c.id, q: c.seq, a: Math.max(0, c.seq - 20) }; // bounded KV session
    const key = `key-${r.between(0, 30)}`;
    const op: KvOp = r.next() < 0.75 ? { t: 'put', key, value: `v${i}`, s } : { t: 'del', key, s };
    out.push({ clientId: c.id, seq: c.seq, op });
    // pipelining: now and then the command overtakes the previous one of another client
    if (r.next() < 0.1 && out.length > 2) {
      const j = out.length - 1;
      [out[j], out[j - 1]] = [out[j - 1] as Command<KvOp>, out[j] as Command<KvOp>];
    }
  }
  return out;
}

/** Applies as a Multi-Paxos learner does (multi-learner.ts applyOne). */
function replica(cmds: readonly Command<KvOp>[], window = WINDOW) {
  const sm = new KvStateMachine();
  const cs = new ClientSessions(window);
  cmds.forEach((c, i) => {
    if (cs.check(c.clientId, c.seq).duplicate) return;
    cs.record(c.clientId, c.seq, sm.apply(c.op, { index: i + 1, term: 1 }));
  });
  return { sm, cs };
}

function kvState(sm: KvStateMachine) {
  return { rev: sm.revision, kvs: sm.range({ start: '' }).kvs, size: sm.size };
}

t.test(`the agent's Multi-Paxos copy equals a replica's (seed ${seed})`, async (t) => {
  t.comment(`seed ${seed} (reproduce with SYNOD_SEED=${seed})`);
  const cmds = workload(new Random(seed), 1000);
  const { sm, cs } = replica(cmds);
  const tracked = new TrackedState<Command<KvOp>>(
    new PaxosSessionState(new KvKeyedState(), WINDOW),
  );
  cmds.forEach((c, i) => {
    tracked.apply(c, { index: i + 1, term: 1, time: i });
  });
  const agent = tracked.state as PaxosSessionState<KvOp>;
  const agentKv = (agent.inner as KvKeyedState).machine;
  t.ok(sm.revision > 100, `the workload made ${sm.revision} revisions`);
  // JSON strings: tap's deep comparison of these large structures takes seconds.
  const json = (v: unknown) => JSON.stringify(v);
  t.equal(json(kvState(agentKv)), json(kvState(sm)), 'same keys and revisions');
  t.equal(json(agent.toImage()), json(cs.toImage()), 'same session table (seqs, results, window)');

  // What the cluster sends when it compacted: the agent reads it to its own digest.
  const image = encodeReplicaImage({ sm: sm.snapshot(), sessions: cs.toImage() });
  const fromImage = new PaxosSessionState<KvOp>(new KvKeyedState());
  fromImage.load(kvEntriesFromPaxosImage(image));
  t.equal(
    new TrackedState(fromImage).digestHex,
    tracked.digestHex,
    'a replica snapshot read by the agent has the agent digest',
  );
  // ... and applying more commands on either gives the same again.
  const more = workload(new Random(seed + 7), 300).map((c) => ({
    ...c,
    clientId: `m${c.clientId}`,
  }));
  const t2 = new TrackedState<Command<KvOp>>(fromImage);
  t2.reset(cmds.length, 1, 0);
  more.forEach((c, i) => {
    tracked.apply(c, { index: cmds.length + i + 1, term: 1, time: 0 });
    t2.apply(c, { index: cmds.length + i + 1, term: 1, time: 0 });
  });
  t.equal(t2.digestHex, tracked.digestHex, 'and both go on alike');

  // The agent's state as a replica image restores in the replica's stack.
  const mine = kvPaxosReplicaImage(agent, cmds.length + more.length);
  const img = decodeReplicaImage(mine);
  const sm2 = new KvStateMachine();
  sm2.restore(img.sm);
  const cs2 = ClientSessions.fromImage(img.sessions);
  const ref = replica([...cmds, ...more]);
  t.equal(
    json(kvState(sm2)),
    json(kvState(ref.sm)),
    'the replica image restores the same KV state',
  );
  let alike = 0;
  const differ: string[] = [];
  for (const c of [...cmds, ...more]) {
    const a = JSON.stringify(cs2.check(c.clientId, c.seq));
    const b = JSON.stringify(ref.cs.check(c.clientId, c.seq));
    if (a === b) alike++;
    else differ.push(`${c.clientId}/${c.seq}: ${a} vs ${b}`);
  }
  t.same(differ.slice(0, 3), [], `its sessions answer ${alike} retries as the replica's do`);

  // Negative control: Raft's rule drops a pipelined seq that arrives after a later one.
  const raft = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  cmds.forEach((c, i) => {
    raft.apply(c, { index: i + 1, term: 1, time: i });
  });
  const raftKv = ((raft.state as SessionState<KvOp>).inner as KvKeyedState).machine;
  t.not(
    JSON.stringify(kvState(raftKv)),
    JSON.stringify(kvState(sm)),
    "negative control: Raft's session rule gives another state on this workload",
  );
});

t.test('a session value that does not decode is refused with a code', async (t) => {
  const s = new PaxosSessionState<KvOp>(new KvKeyedState());
  t.throws(() => s.load([['\u0000psession/x', new Uint8Array([2, 0, 0])]]), {
    code: 'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
  });
  t.throws(() => kvEntriesFromPaxosImage(new Uint8Array([1, 2, 3])), {
    code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
  });
});
