/**
 * Restoring a Multi-Paxos cluster from a replica image (actors/paxos/restore.ts): three data
 * directories written with `writePaxosDataDir`, three `synod node --protocol paxos` nodes
 * (startPaxosNode, in this process, over WebSockets) started from them. They serve the restored
 * state, their first write lands right above the restored index (no slot ≤ index is decided
 * again), the restored client sessions still deduplicate, and an outside puller (an actor
 * system the cluster does not know) gets the leader's read index (`paxosReadIndex`) and pulls
 * the snapshot and the new slots with `mp.catchup`. Then a full restart from the same
 * directories keeps everything. Plus the writer's and the image decoder's refusals.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp } from '../../actors/kv/types.js';
import { ZERO_BALLOT } from '../../actors/paxos/ballot.js';
import { MultiAcceptorCore } from '../../actors/paxos/multi-acceptor.js';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import type { MCatchupReply } from '../../actors/paxos/multi-messages.js';
import { decodeCommand, fromWire, multiMessageProblem } from '../../actors/paxos/multi-messages.js';
import { MultiPaxosProposer } from '../../actors/paxos/multi-proposer-actor.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';
import { paxosReadIndex } from '../../actors/paxos/read-index.js';
import {
  decodeReplicaImage,
  emptySessions,
  encodeReplicaImage,
} from '../../actors/paxos/replica-image.js';
import { writePaxosDataDir } from '../../actors/paxos/restore.js';
import { ClientSessions } from '../../actors/paxos/sessions.js';
import { Actor } from '../../lib/actor.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { encodeValue } from '../../lib/codec.js';
import { silentLogger } from '../../lib/logger.js';
import { type RunningPaxosNode, startPaxosNode } from '../../lib/node/paxos-node.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort, until } from '../helpers/node-processes.js';

const INDEX = 1000;
const IDS = ['a', 'b', 'c'];
const ZERO_STATE = { promised: ZERO_BALLOT, floor: 0, accepted: [] };

/** The image a backup would hold: 50 keys, and client c1's session with seq 5 applied. */
function makeImage() {
  const sm = new KvStateMachine();
  for (let i = 0; i < 50; i++) {
    sm.apply({ t: 'put', key: `k${i}`, value: `v${i}` }, { index: i + 1, term: 3 });
  }
  const sessions = new ClientSessions(256);
  sessions.record('c1', 5, { original: true });
  return { sm: sm.snapshot(), sessions: sessions.toImage() };
}

t.test('replica images: round trip and refusals', async (t) => {
  const img = makeImage();
  const data = encodeReplicaImage(img);
  const back = decodeReplicaImage(data);
  t.same(Buffer.from(back.sm), Buffer.from(img.sm), 'state machine image round-trips');
  t.same(back.sessions, img.sessions, 'sessions round-trip');
  const restored = ClientSessions.fromImage(back.sessions);
  t.same(restored.check('c1', 5), { duplicate: true, known: true, result: { original: true } });
  for (const [what, bytes] of [
    ['not msgpack', new Uint8Array([0xc1])],
    ['another version', encodeValue({ v: 3, sm: new Uint8Array(1), sessions: emptySessions() })],
    ['no sm', encodeValue({ v: 1, sessions: emptySessions() })],
    ['bad sessions', encodeValue({ v: 1, sm: new Uint8Array(1), sessions: { window: 0 } })],
    [
      'bad client',
      encodeValue({ v: 1, sm: new Uint8Array(1), sessions: { window: 4, clients: [[1, 2]] } }),
    ],
  ] as const) {
    t.throws(() => decodeReplicaImage(bytes), { code: 'SYNOD_ERR_PAXOS_BAD_STATE' }, what);
  }
  t.throws(
    () => encodeReplicaImage({ sm: img.sm, sessions: { window: -1, clients: [] } }),
    { code: 'SYNOD_ERR_PAXOS_BAD_STATE' },
    'the encoder refuses a malformed session table',
  );
});

t.test('the data-directory writer refuses what it must not write', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-paxos-restore-refuse-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = makeImage();
  const base = { members: IDS, index: INDEX, image };
  await t.rejects(
    writePaxosDataDir({ ...base, dataDir: path.join(dir, 'x'), index: 0 }),
    { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' },
    'index 0',
  );
  await t.rejects(
    writePaxosDataDir({ ...base, dataDir: path.join(dir, 'x'), members: ['a', 'a'] }),
    { code: 'SYNOD_ERR_PAXOS_BAD_CONFIG' },
    'duplicate members',
  );
  await t.rejects(
    writePaxosDataDir({ ...base, dataDir: path.join(dir, 'x'), image: new Uint8Array([1, 2]) }),
    { code: 'SYNOD_ERR_PAXOS_BAD_STATE' },
    'an image that is not a replica image',
  );
  t.notOk(readdirSync(dir).includes('x'), 'refused before anything was written');
  mkdirSync(path.join(dir, 'r', 'raft'), { recursive: true });
  await t.rejects(
    writePaxosDataDir({ ...base, dataDir: path.join(dir, 'r') }),
    { code: 'SYNOD_ERR_DATADIR_OTHER_PROTOCOL' },
    'a Raft data directory',
  );
  const ok = await writePaxosDataDir({ ...base, dataDir: path.join(dir, 'p') });
  t.equal(ok.dir, path.join(dir, 'p', 'paxos'));
  await t.rejects(
    writePaxosDataDir({ ...base, dataDir: path.join(dir, 'p') }),
    { code: 'SYNOD_ERR_PAXOS_RESTORE_NOT_EMPTY' },
    'never overwrites Multi-Paxos state',
  );
  t.same(
    readdirSync(path.join(dir, 'p')).filter((f) => f.startsWith('.paxos-restore')),
    [],
    'no temporary directory left behind',
  );
});

t.test('restored acceptors keep the first leader above the index (core level)', async (t) => {
  // The race the floor guards against: a proposer elected before its learner reported the
  // restored index (fromSlot 1). With the floor it still starts at index + 1; the control
  // (acceptors restored without the floor) shows it would propose slot 1 again.
  for (const floor of [INDEX, 0]) {
    const names = ['A', 'B', 'C'];
    const accs = names.map((id) => new MultiAcceptorCore({ id }, { ...ZERO_STATE, floor }));
    const p = new MultiLeaderCore({
      id: 'P',
      quorums: majorityQuorums(names),
      proposers: ['P'],
      learners: ['L'],
      localLearner: 'L',
      random: new Random(1),
    });
    const out = p.tick(10_000);
    const events = [];
    for (const s of out.send) {
      const i = names.indexOf(s.to);
      if (i < 0 || s.msg.type !== 'mp.prepare') continue;
      for (const r of (accs[i] as MultiAcceptorCore).step(s.msg).send) {
        events.push(...p.step(r.msg, 10_001).events);
      }
    }
    const elected = events.find((e) => e.type === 'elected');
    const sub = p.submit({ clientId: 'w', seq: 1, op: 'x' }, 10_002);
    const accept = sub.output.send.find((s) => s.msg.type === 'mp.accept')?.msg as
      | { entries: { slot: number }[] }
      | undefined;
    if (floor === INDEX) {
      t.equal(elected?.type === 'elected' && elected.firstSlot, INDEX + 1, 'elected above it');
      t.same(
        accept?.entries.map((e) => e.slot),
        [INDEX + 1],
        'the first write is index + 1',
      );
    } else {
      t.same(
        accept?.entries.map((e) => e.slot),
        [1],
        'control: without the floor, slot 1',
      );
    }
  }
});

t.test('remote input for the puller-facing messages is checked', async (t) => {
  const reply = { type: 'mp.catchup-reply', from: 'x/paxos/learner', entries: [], decidedUpTo: 3 };
  t.equal(multiMessageProblem({ ...reply, chosenUpTo: 7, leader: 'a/paxos/learner' }), undefined);
  t.match(multiMessageProblem({ ...reply, chosenUpTo: -1 }), /chosenUpTo/);
  t.match(multiMessageProblem({ ...reply, leader: 5 }), /leader/);
  const proposer = new MultiPaxosProposer({
    quorums: majorityQuorums(['a/paxos/acceptor']),
    proposers: ['a/paxos/proposer'],
    learners: ['a/paxos/learner'],
    store: new MemoryHardStateStoreForTest(),
  });
  t.ok(proposer.accepts({ type: 'mp.read', barrier: 'agent-1' }), 'a remote read is accepted');
  t.notOk(proposer.accepts({ type: 'mp.read', barrier: 7 }), 'a read without a string id is not');
  t.notOk(proposer.accepts({ type: 'mp.read', barrier: 'x'.repeat(513) }), 'nor a huge id');
  t.notOk(proposer.accepts({ type: 'mp.tick' }), 'timer messages are local only');
  t.notOk(proposer.accepts({ type: 'mp.submit', command: { clientId: 'c' } }), 'a bad command');
  t.ok(proposer.accepts({ type: 'mp.submit', command: { clientId: 'c', seq: 1, op: 1 } }));
  t.ok(proposer.accepts({ type: 'mp.heartbeat' }), 'protocol messages are checked on receipt');
});

/** A hard state store that is never used (the proposer is only constructed). */
class MemoryHardStateStoreForTest {
  async load() {
    return undefined;
  }
  async save() {}
  async close() {}
}

/** Collects what is sent to `agent/puller`. */
class Puller extends Actor<{ type: string }> {
  readonly got: unknown[] = [];
  receive(msg: { type: string }): void {
    this.got.push(msg);
  }
}

t.test('three nodes start from restored directories, serve it, and write on', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-paxos-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = makeImage();
  for (const id of IDS) {
    await writePaxosDataDir({ dataDir: path.join(dir, id), members: IDS, index: INDEX, image });
  }
  const ports = new Map<string, number>();
  for (const id of IDS) ports.set(id, await freePort());
  const url = (id: string) => `ws://127.0.0.1:${ports.get(id)}`;
  const running = new Map<string, RunningPaxosNode>();
  const startAll = async () => {
    await Promise.all(
      IDS.map(async (id) => {
        const node = await startPaxosNode({
          id,
          listen: { host: '127.0.0.1', port: ports.get(id) as number },
          peers: IDS.filter((p) => p !== id).map((p) => `${p}=${url(p)}`),
          dataDir: path.join(dir, id),
          cluster: 'paxos-restore',
          logger: silentLogger,
          heartbeatMs: 20,
          electionMs: 300,
          drainMs: 200,
        });
        running.set(id, node);
      }),
    );
  };
  const stopAll = async () => {
    await Promise.all([...running.values()].map((n) => n.stop()));
    running.clear();
  };
  t.teardown(stopAll);
  const leader = () =>
    until('a Multi-Paxos leader', async () => {
      for (const [id, n] of running) if ((await n.status()).role === 'leader') return id;
      return undefined;
    });

  await startAll();
  for (const [id, n] of running) {
    t.equal(n.log.appliedIndex, INDEX, `${id} starts applied at the restored index`);
    t.equal(n.sm.get('k7')?.value, 'v7', `${id} serves the restored state`);
    t.equal(n.sm.size, 50, `${id} holds the 50 restored keys`);
  }
  let lead = await leader();
  /**
   * A write on the leader, retried (same clientId and seq: sessions apply it once) when a
   * loaded machine makes the leader change under it.
   */
  const put = async (clientId: string, seq: number, key: string, value: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await (running.get(lead) as RunningPaxosNode).log.propose(
          { clientId, seq, op: { t: 'put', key, value } as KvOp },
          { timeoutMs: 3000 },
        );
      } catch (err) {
        if (attempt >= 10) throw err;
        lead = await leader();
      }
    }
  };
  const first = await put('w', 1, 'new1', 'x1');
  // (Exactly INDEX + 1 unless a leader change under load wasted a slot; the core-level test
  // above pins the exact slot.)
  t.ok(first.index > INDEX, 'the first write lands above the restored index');
  const dup = await put('c1', 5, 'k0', 'overwritten?');
  t.same(dup.result, { original: true }, 'a restored session still answers a retry');
  t.equal(
    (running.get(lead) as RunningPaxosNode).sm.get('k0')?.value,
    'v0',
    'the retried command was not applied again',
  );
  const second = await put('w', 2, 'new2', 'x2');
  t.ok(second.index > first.index, 'writes go on');
  for (const [id, n] of running) {
    await until(`${id} applied ${second.index}`, () =>
      n.log.appliedIndex >= second.index ? true : undefined,
    );
    t.equal(n.sm.get('new2')?.value, 'x2', `${id} applied the new writes`);
    const st = await n.status();
    t.ok(st.paxos && st.paxos.floor >= INDEX, `${id}'s acceptor floor is the restored index`);
  }

  // An outside puller: an actor system the cluster does not know, over WebSockets.
  const agentT = await WebSocketTransport.create({
    nodeId: 'agent',
    cluster: 'paxos-restore',
    peers: IDS.map((p) => `${p}=${url(p)}`),
    random: new Random(9),
    logger: { log: () => {} },
  });
  const agent = new ActorSystem({ nodeId: 'agent', transport: agentT, logger: silentLogger });
  t.teardown(async () => {
    await agent.shutdown();
    await agentT.close(100);
  });
  const follower = IDS.find((i) => i !== lead) as string;
  const ri = await paxosReadIndex({
    ask: (to, msg, ms) => agent.ask(to, msg as never, ms),
    members: IDS,
    first: follower,
    id: 'agent-backup',
  });
  t.equal(ri.leader, lead, 'the read index comes from the leader (a follower hinted at it)');
  t.ok(ri.index >= second.index, `read index ${ri.index} covers every acknowledged write`);

  const pullerActor = new Puller();
  agent.spawn('puller', pullerActor);
  agent.send(`${follower}/paxos/learner`, {
    type: 'mp.catchup',
    from: 'agent/puller',
    fromSlot: 1,
    toSlot: ri.index,
  });
  const raw = await until('a catch-up reply', () => pullerActor.got[0]);
  const reply = fromWire(raw) as MCatchupReply;
  t.equal(reply.type, 'mp.catchup-reply');
  t.equal(reply.snapshot?.index, INDEX, 'slots up to the restored index come as the snapshot');
  const pulled = decodeReplicaImage(reply.snapshot?.data as Uint8Array);
  const sm = new KvStateMachine();
  sm.restore(pulled.sm);
  t.equal(sm.get('k49')?.value, 'v49', 'the pulled snapshot decodes to the restored state');
  t.ok(ClientSessions.fromImage(pulled.sessions).check('c1', 5).duplicate, 'with the sessions');
  const slots = reply.entries.map((e) => e.slot);
  t.equal(slots[0], INDEX + 1, 'then the slots above it');
  const cmds = reply.entries.flatMap((e) => {
    const c = e.value.k === 'cmd' ? decodeCommand(e.value.d) : undefined;
    return c && typeof c !== 'string' ? [(c.op as { key: string }).key] : [];
  });
  t.ok(cmds.includes('new1') && cmds.includes('new2'), 'the new writes are in the pull');
  t.ok((reply.chosenUpTo ?? 0) >= second.index, 'the reply says how far the log is chosen');
  t.equal(reply.leader, `${lead}/paxos/learner`, "and names the leader's learner");

  // Restart everything from the same directories.
  await stopAll();
  await startAll();
  await leader();
  for (const [id, n] of running) {
    await until(`${id} back at ${second.index}`, () =>
      n.log.appliedIndex >= second.index ? true : undefined,
    );
    t.equal(n.sm.get('k3')?.value, 'v3', `${id} still has the restored keys after a restart`);
    t.equal(n.sm.get('new1')?.value, 'x1', `${id} and the writes made since`);
  }
  lead = await leader();
  const third = await put('w', 3, 'new3', 'x3');
  t.ok(third.index > second.index, 'and takes writes after the restart');
  await until('every node applied the write after the restart', () =>
    [...running.values()].every((n) => n.sm.get('new3')?.value === 'x3') ? true : undefined,
  );
  t.pass('every node applied the write after the restart');
});
