/**
 * The KV adapter (actors/backup/kv-state.ts): a randomized KV workload with client
 * sessions and retries applied by the cluster's own stack (RaftNode's SessionStateMachine
 * around KvStateMachine) and by the agent's tracked copy must give the same keys,
 * revisions and sessions; the agent's state written as a node image must restore in the
 * node's stack to exactly the cluster's state; a node snapshot read back by the agent
 * (`reset`) must give the agent's own digest; and the backup → restore path (agent,
 * repository, restore with the KV kind) must rebuild it. SYNOD_SEED=n reproduces a run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BackupAgent, type BackupAgentMsg, type BackupSummary } from '../../actors/backup/agent.js';
import { CommittedFeed } from '../../actors/backup/fake-log.js';
import {
  KV_REV_KEY,
  KvKeyedState,
  kvEntriesFromNodeImage,
  kvNodeImage,
} from '../../actors/backup/kv-state.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { SessionState } from '../../actors/backup/sessions.js';
import { KV_KIND } from '../../actors/backup/state-kind.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { KvStateMachine } from '../../actors/kv/state-machine.js';
import type { KvOp } from '../../actors/kv/types.js';
import { SessionStateMachine } from '../../actors/raft/session-state-machine.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';

const seed = Number(process.env.SYNOD_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** A KV workload as the KV service proposes it: sessions, acks, cas, deletes, retries. */
function workload(r: Random, n: number, retries: boolean): Command<KvOp>[] {
  const out: Command<KvOp>[] = [];
  const clients = Array.from({ length: 6 }, (_, i) => ({ id: `c${i}`, seq: 0 }));
  for (let i = 0; i < n; i++) {
    if (retries && out.length > 0 && r.next() < 0.08) {
      out.push(out[r.between(Math.max(0, out.length - 10), out.length - 1)] as Command<KvOp>);
      continue;
    }
    const c = clients[r.between(0, clients.length - 1)] as { id: string; seq: number };
    c.seq++;
    const s = { c: c.id, q: c.seq, a: Math.max(0, c.seq - 1 - r.between(0, 3)) };
    const key = `key-${r.between(0, 40)}${r.next() < 0.05 ? '\u0000odd' : ''}`;
    const roll = r.next();
    let op: KvOp;
    if (roll < 0.6) op = { t: 'put', key, value: `v${i}-${'x'.repeat(r.between(0, 30))}`, s };
    else if (roll < 0.8) op = { t: 'del', key, s };
    else if (roll < 0.9) op = { t: 'cas', key, if: { value: null }, value: `new${i}`, s };
    else op = { t: 'cas', key, if: { modRev: r.between(0, i) }, value: null, s };
    out.push({ clientId: c.id, seq: c.seq, op });
  }
  return out;
}

function kvState(sm: KvStateMachine) {
  const ids = [...sm.sessionIds()].sort();
  return {
    rev: sm.revision,
    kvs: sm.range({ start: '' }).kvs,
    sessions: ids.map((id) => sm.sessionImage(id)),
  };
}

t.test(`the agent's KV copy equals the cluster's state machine (seed ${seed})`, async (t) => {
  t.comment(`seed ${seed} (reproduce with SYNOD_SEED=${seed})`);
  const r = new Random(seed);
  const cmds = workload(r, 2000, true);
  const cluster = new SessionStateMachine(new KvStateMachine());
  const tracked = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  cmds.forEach((c, i) => {
    cluster.apply(c, { index: i + 1, term: 1 });
    tracked.apply(c, { index: i + 1, term: 1, time: i });
  });
  const clusterKv = cluster.inner as KvStateMachine;
  const agentState = tracked.state as SessionState<KvOp>;
  const agentKv = (agentState.inner as KvKeyedState).machine;
  t.ok(clusterKv.revision > 100, `the workload made ${clusterKv.revision} revisions`);
  t.same(kvState(agentKv), kvState(clusterKv), 'same keys, revisions and KV sessions');

  // The agent's state as a node image restores in the node's own stack to the same state.
  const image = kvNodeImage(agentState, cmds.length);
  const node = new KvStateMachine();
  const wrapped = new SessionStateMachine(node);
  wrapped.restore(image);
  t.same(kvState(node), kvState(clusterKv), 'the node image restores the same KV state');
  t.equal(node.appliedIndex, cmds.length, 'at the restored index');
  t.equal(node.compactedRevision, clusterKv.revision, 'watch history starts at the revision');
  const last = new Map<string, number>();
  for (const c of cmds) last.set(c.clientId, Math.max(last.get(c.clientId) ?? 0, c.seq));
  for (const [id, seq] of last) t.equal(wrapped.lastSeq(id), seq, `Raft session ${id} restored`);

  // Loading the agent's entries rebuilds the same digest (what a restore checks).
  const again = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  again.state.load([...agentState.entries()]);
  const reloaded = new TrackedState(again.state);
  t.equal(reloaded.digestHex, tracked.digestHex, 'load(entries) keeps the digest');
  // The load builds the state machine directly (KvStateMachine.load), not through an image:
  // the same image comes out, and the commands that follow give the same results.
  const loadedKv = (again.state as SessionState<KvOp>).inner as KvKeyedState;
  t.same(
    Buffer.from(loadedKv.image(cmds.length)),
    Buffer.from((agentState.inner as KvKeyedState).image(cmds.length)),
    'load(entries) gives the same KV image',
  );
  const more = workload(new Random(seed + 1), 300, true);
  more.forEach((c, i) => {
    const meta = { index: cmds.length + i + 1, term: 1, time: i };
    t.same(reloaded.apply(c, meta), tracked.apply(c, meta), `command ${i} after the load`);
  });
  t.equal(reloaded.digestHex, tracked.digestHex, 'and the same digest after them');
  t.ok(agentState.get(KV_REV_KEY), 'the revision is a key of the state');

  // Negative control: a state that differs by one revision has another digest. Leave out
  // the last command that made a revision (the workload's last one may change nothing, e.g.
  // a failed cas: seed 405605119 ended with one).
  const probe = new SessionStateMachine(new KvStateMachine());
  let lastChange = -1;
  cmds.forEach((c, i) => {
    const before = (probe.inner as KvStateMachine).revision;
    probe.apply(c, { index: i + 1, term: 1 });
    if ((probe.inner as KvStateMachine).revision !== before) lastChange = i;
  });
  const other = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
  cmds.slice(0, lastChange).forEach((c, i) => {
    other.apply(c, { index: i + 1, term: 1, time: i });
  });
  t.not(other.digestHex, tracked.digestHex, 'negative control: one revision less differs');
});

t.test(
  `a node snapshot read by the agent gives the agent's own state (seed ${seed})`,
  async (t) => {
    const r = new Random(seed + 1);
    const cmds = workload(r, 800, false);
    const cluster = new SessionStateMachine(new KvStateMachine());
    const tracked = new TrackedState<Command<KvOp>>(new SessionState(new KvKeyedState()));
    cmds.forEach((c, i) => {
      cluster.apply(c, { index: i + 1, term: 1 });
      tracked.apply(c, { index: i + 1, term: 1, time: i });
    });
    const fromSnap = new SessionState<KvOp>(new KvKeyedState());
    fromSnap.load(kvEntriesFromNodeImage(cluster.snapshot()));
    t.equal(new TrackedState(fromSnap).digestHex, tracked.digestHex, 'same digest');
    t.throws(
      () => kvEntriesFromNodeImage(new Uint8Array([1, 2, 3])),
      /SYNOD_ERR|not a Raft session/,
      'a foreign image is refused',
    );
  },
);

t.test('agent with the KV kind: backups restore the cluster state', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-kvstate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, {
    clusterId: 'c1',
    state: 'kv',
    chunker: { avgSize: 1024, minSize: 256, maxSize: 4096 },
  });
  const feed = new CommittedFeed<KvOp>();
  const system = new ActorSystem({ nodeId: 'a', logger: silentLogger, random: new Random(seed) });
  t.teardown(() => system.shutdown());
  const agent = system.spawn<BackupAgentMsg<KvOp>, unknown>(
    'backup',
    () =>
      new BackupAgent<KvOp>({
        repo,
        clusterId: 'c1',
        factory: KV_KIND.factory,
        source: feed,
        archive: { maxEntries: 50, flushMs: 0 },
      }),
  );
  await new Promise<void>((res) => {
    const sub = agent.events$.subscribe((e) => {
      if (e.type === 'started') {
        sub.unsubscribe();
        res();
      }
    });
  });
  const r = new Random(seed + 2);
  const cmds = workload(r, 600, true);
  const cluster = new SessionStateMachine(new KvStateMachine());
  const at = new Map<number, ReturnType<typeof kvState>>();
  const ask = (kind: 'full' | 'incr' | 'diff') =>
    agent.ask({ type: 'backup', kind } as never, 30_000) as Promise<BackupSummary>;
  for (let i = 0; i < cmds.length; i++) {
    const c = cmds[i] as Command<KvOp>;
    cluster.apply(c, { index: i + 1, term: 1 });
    feed.push(c);
    at.set(i + 1, structuredClone(kvState(cluster.inner as KvStateMachine)));
    if (i + 1 === 200) await ask('full');
    if (i + 1 === 400) await ask('incr');
  }
  await agent.ask({ type: 'flush' } as never, 30_000);
  for (const idx of [150, 200, 333, 400, 600]) {
    const res = await restore(repo, { kind: 'index', index: idx }, { factory: KV_KIND.factory });
    const kv = (res.state.inner as KvKeyedState).machine;
    t.same(kvState(kv), at.get(idx), `restore to index ${idx} equals the cluster's state`);
  }
});

t.test('KvStateMachine.load takes keys in any order', async (t) => {
  const kv = (key: string, rev: number) => ({
    key,
    value: key,
    createRev: rev,
    modRev: rev,
    version: 1,
  });
  const sm = new KvStateMachine();
  sm.load({ kvs: [kv('b', 2), kv('a', 1), kv('c', 3)], rev: 3, index: 7, sessions: [] });
  t.same(
    sm.range({ start: '' }).kvs.map((x) => x.key),
    ['a', 'b', 'c'],
    'range is in key order',
  );
  t.equal(sm.revision, 3);
  t.equal(sm.appliedIndex, 7);
  t.equal(sm.compactedRevision, 3, 'the watch history starts compacted at the revision');
  const img = new KvStateMachine();
  img.restore(sm.snapshot());
  t.same(img.range({ start: '' }).kvs, sm.range({ start: '' }).kvs, 'its snapshot restores it');
});

t.test("the agent's KV copy keeps one watch event, unless told otherwise", async (t) => {
  const put = (key: string): KvOp => ({ t: 'put', key, value: `v-${key}` }) as KvOp;
  const agent = new KvKeyedState();
  const asked = new KvKeyedState({ historyLimit: 100 });
  const node = new KvStateMachine(); // the cluster's default: 10,000 events
  for (let i = 1; i <= 50; i++) {
    agent.apply(put(`k${i % 7}`), { index: i, term: 1 });
    asked.apply(put(`k${i % 7}`), { index: i, term: 1 });
    node.apply(put(`k${i % 7}`), { index: i, term: 1 });
  }
  t.equal(agent.machine.revision, 50, 'the agent applied every put');
  t.equal(agent.machine.compactedRevision, 49, 'and keeps only the newest watch event');
  t.equal(asked.machine.compactedRevision, 0, 'historyLimit given: kept as asked');
  t.equal(node.compactedRevision, 0, "control: the cluster's state machine keeps them all");
  t.same(
    [...agent.entries()],
    [...new KvKeyedState({ historyLimit: 10_000 }, node).entries()],
    'the backed-up entries are the same either way',
  );
});
