/**
 * Fuzzes a running cluster: three real `synod node` processes on loopback, a KV workload
 * recording a history, and an intruder that holds the cluster secret (so its frames reach the
 * actors) sending SYNOD_CLUSTER_FUZZ_INPUTS (default 2,000) hostile inputs:
 * - Raft messages with absurd values: terms and indexes near 2^53, negative, fractional, NaN,
 *   strings; giant batches (thousands of entries or messages); wrong `to`; claimed senders
 *   that are members, the intruder itself, or unknown ids (messages from non-members);
 * - the same messages replayed (delivered again, later, after the cluster moved on);
 * - KV requests with absurd keys, values, sessions, levels and timeouts, and proposals of
 *   garbage commands straight to the Raft actor;
 * - admin messages with junk; and garbage frames after a valid handshake.
 * Then the cluster must still be up (a leader, writes served), no node may have exited, the
 * history must be linearizable and no acknowledged write lost. A second run sends only
 * well-formed Raft messages (finding F1: they must be dropped for their forged sender or
 * non-member origin). A third run does the same to a Multi-Paxos cluster: well-formed
 * Multi-Paxos messages (decisions nobody proposed, unbeatable ballots, snapshots) from a
 * non-member and claiming members' actors (finding F6); there, every replica must also
 * converge to the cluster's values and no forged value may ever be read.
 * SYNOD_CLUSTER_FUZZ_SEED replays.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test as Tap } from 'tap';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { raftMessageProblem } from '../../actors/raft/core/messages.js';
import { ActorSystem } from '../../lib/actor-system.js';
import { HistoryRecorder } from '../../lib/history/recorder.js';
import { silentLogger } from '../../lib/logger.js';
import { Random } from '../../lib/random.js';
import { FrameType } from '../../transports/websocket/frames.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { freePort } from '../helpers/node-processes.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import { monotonicNow } from './harness/clock.js';
import { ChaosCluster, LoopbackNet } from './harness/cluster.js';
import { judgeHistory } from './harness/verdict.js';

const INPUTS = Number(process.env.SYNOD_CLUSTER_FUZZ_INPUTS ?? 2000);
const SEED = Number(process.env.SYNOD_CLUSTER_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SECRET = 'cluster-fuzz-secret-of-enough-length-01';
t.comment(
  `cluster fuzz seed ${SEED} (replay with SYNOD_CLUSTER_FUZZ_SEED=${SEED}), ${INPUTS} inputs`,
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ABSURD = [
  0,
  1,
  2,
  -1,
  -(2 ** 31),
  2 ** 31,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53 - 2,
  2 ** 53,
  2 ** 60,
  -(2 ** 53),
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '7',
  null,
  true,
  [],
  {},
];
const TYPES = [
  'vote',
  'preVote',
  'voteResp',
  'preVoteResp',
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'snapshot',
  'snapshotResp',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
];

/**
 * `hostile`: Raft cluster, inputs its validation must reject; `forged`: Raft cluster,
 * well-formed Raft messages (F1); `paxos`: Multi-Paxos cluster, well-formed Multi-Paxos
 * messages from a non-member and claiming to be members (F6).
 */
type Mode = 'hostile' | 'forged' | 'paxos';

async function fuzzCluster(t: Tap, mode: Mode, inputs: number): Promise<void> {
  const forged = mode === 'forged';
  const protocol = mode === 'paxos' ? 'paxos' : 'raft';
  const ids = ['n1', 'n2', 'n3'];
  const ports = await Promise.all(ids.map(freePort));
  const errors: string[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-cluster-fuzz-'));
  const secretFile = path.join(dir, 'cluster.key');
  writeFileSync(secretFile, `${SECRET}\n`);
  const cluster = new ChaosCluster({
    net: new LoopbackNet(ids, ports),
    dir,
    secretFile,
    secret: SECRET,
    protocol,
    onLine: (id, line) => {
      if (/^ERROR|stopping:/.test(line)) errors.push(`${id}: ${line.slice(0, 300)}`);
    },
  });
  t.teardown(() => cluster.killAllNow());
  t.comment(`nodes run from ${cluster.cli.from}; logs in ${dir}/logs`);
  cluster.startAll();
  const end = monotonicNow() + 120_000;
  let leader = await cluster.leader();
  while (!(leader && leader.voters.length === 3)) {
    if (monotonicNow() > end) throw new Error('no leader with three voters within 120 s');
    await sleep(400);
    leader = await cluster.leader();
  }
  t.comment(`leader ${leader.id} term ${leader.term}`);

  // ---- the workload, recording a history
  const rec = new HistoryRecorder({ clock: { now: monotonicNow } });
  const clients = await Promise.all(
    [0, 1, 2].map(() => cluster.kvClient({ timeoutMs: 4000, attemptTimeoutMs: 1000 })),
  );
  let stop = false;
  const workload = clients.map(async (kv, p) => {
    const r = new Random(SEED + p);
    let n = 0;
    while (!stop) {
      const key = `k${r.int(3)}`;
      if (r.chance(0.5)) {
        const h = rec.invoke(p, 'read', key);
        const res = await kv.get(key, { level: 'strong' });
        if (res.outcome === 'ok') h.ok(res.value.value);
        else h.fail(res.error.code);
      } else {
        const v = `${p}.${n++}`;
        const h = rec.invoke(p, 'write', key, v);
        const res = await kv.put(key, v);
        if (res.outcome === 'ok') h.ok();
        else if (res.outcome === 'failed') h.fail(res.error.code);
        else h.info(res.error.code);
      }
    }
  });

  // ---- the intruder: a node that knows the secret but is not a member
  const random = new Random(SEED);
  const transport = await WebSocketTransport.create({
    nodeId: 'intruder',
    peers: cluster.peerSpecs(),
    random: random.fork(),
    secret: SECRET,
    logger: { log: () => {} },
  } as unknown as ConstructorParameters<typeof WebSocketTransport>[0]);
  const intruder = new ActorSystem({ nodeId: 'intruder', transport, random, logger: silentLogger });
  const r = random.fork();
  const num = () => (r.chance(0.5) ? r.pick(ABSURD) : r.int(50));
  const idx = () => (r.chance(0.6) ? r.pick([0, 1, 2 ** 53 - 1, 2 ** 53 - 2, 2 ** 40, 7]) : num());
  const sender = () => r.pick(['n1', 'n2', 'n3', 'intruder', 'ghost', '', 'x'.repeat(300), 7]);
  const raftMsg = (to: string): Record<string, unknown> => {
    const type = r.pick(TYPES);
    const m: Record<string, unknown> = {
      type,
      from: sender(),
      to: r.chance(0.9) ? to : sender(),
      term: idx(),
    };
    switch (type) {
      case 'vote':
      case 'preVote':
        Object.assign(m, {
          lastIndex: idx(),
          lastTerm: idx(),
          ...(r.chance(0.3) ? { transfer: true } : {}),
        });
        break;
      case 'voteResp':
      case 'preVoteResp':
        m.reject = r.chance(0.5);
        break;
      case 'append': {
        const prevIndex = idx();
        const count = r.chance(0.03) ? 1000 + r.int(2000) : r.int(4);
        const base = typeof prevIndex === 'number' ? prevIndex + 1 : 1;
        m.prevIndex = prevIndex;
        m.prevTerm = idx();
        m.commit = idx();
        m.entries = Array.from({ length: count }, (_, i) => ({
          index: r.chance(0.95) ? base + i : num(),
          term: idx(),
          type: r.pick(['normal', 'noop', 'config', 'bogus']),
          data: r.chance(0.9) ? new Uint8Array(r.int(20)).map(() => r.int(256)) : 'nope',
        }));
        break;
      }
      case 'appendResp':
        Object.assign(m, {
          index: idx(),
          reject: r.chance(0.5),
          hintIndex: idx(),
          hintTerm: idx(),
        });
        break;
      case 'heartbeat':
        m.commit = idx();
        if (r.chance(0.3)) m.context = 'ctx';
        break;
      case 'snapshot': {
        const size = r.int(64);
        m.meta = {
          index: idx(),
          term: idx(),
          membership: r.chance(0.8)
            ? { voters: [r.pick(['n1', 'intruder', 'ghost'])], learners: [] }
            : 'x',
        };
        Object.assign(m, {
          totalSize: r.chance(0.8) ? size : num(),
          offset: 0,
          data: new Uint8Array(size),
          done: r.chance(0.5),
        });
        break;
      }
      case 'snapshotResp':
        Object.assign(m, { index: idx(), offset: idx(), reject: r.chance(0.5) });
        break;
      case 'readIndex':
      case 'readIndexResp':
        Object.assign(m, {
          context: r.pick(['c', '', 'ctx']),
          index: idx(),
          reject: r.chance(0.5),
        });
        break;
    }
    return m;
  };
  // Well-formed messages (they pass the node's validation) only in the forged phase; the
  // main phase sends messages the validation must reject, so F1 does not mask the rest.
  const pickRaft = (to: string): Record<string, unknown> => {
    for (;;) {
      const m = raftMsg(to);
      if ((raftMessageProblem(m) === undefined) === forged) return m;
    }
  };
  // Well-formed Multi-Paxos messages (they pass `fromWire`), from the intruder's own actors
  // or claiming a member's: decided values nobody proposed (on the workload's keys, so a
  // forged value that got applied shows in the history), ballots no member can outbid,
  // snapshots, compaction, catch-up.
  const mpMsg = (target: string): { to: string; msg: unknown } => {
    const roles = ['acceptor', 'proposer', 'learner'];
    const from = `${r.pick(['intruder', 'intruder', 'n1', 'n2', 'n3', 'ghost'])}/paxos/${r.pick(roles)}`;
    const round = () => r.pick([1, 2, 5, 50, 2 ** 40, 2 ** 53 - 1]);
    const ballot = () => ({ round: round(), proposer: r.pick(['n1', 'n2', 'n3', 'intruder']) });
    const slot = () => r.pick([1, 2, 3, 10, 100, 1000, 5000, 2 ** 40]);
    const value = () =>
      r.chance(0.85)
        ? commandValue(
            {
              clientId: `fz${r.int(3)}`,
              seq: r.int(1_000_000),
              op: { t: 'put', key: `k${r.int(3)}`, value: `forged-${r.int(1e9)}` },
            } as never,
            round(),
          )
        : { k: 'noop' as const, t: round() };
    const entries = () => {
      const base = slot();
      return Array.from({ length: 1 + r.int(r.chance(0.05) ? 500 : 5) }, (_, i) => ({
        slot: base + i,
        value: value(),
      }));
    };
    const type = r.pick([
      'mp.decide',
      'mp.decide',
      'mp.chosen',
      'mp.prepare',
      'mp.accept',
      'mp.heartbeat',
      'mp.catchup-reply',
      'mp.compact',
      'mp.learned',
      'mp.nack',
      'mp.promise',
      'mp.accepted',
      'mp.catchup',
    ]);
    let m: Record<string, unknown>;
    switch (type) {
      case 'mp.decide':
        m = { type, from, entries: entries() };
        break;
      case 'mp.chosen': {
        const lo = slot();
        m = { type, from, ballot: ballot(), runs: [lo, lo + r.int(50)] };
        break;
      }
      case 'mp.prepare':
        m = { type, from, ballot: ballot(), fromSlot: r.pick([0, 1, slot()]) };
        break;
      case 'mp.accept':
        m = { type, from, ballot: ballot(), entries: entries(), sentAt: 0 };
        break;
      case 'mp.heartbeat':
        m = { type, from, ballot: ballot(), chosenUpTo: slot(), learner: from };
        break;
      case 'mp.catchup-reply':
        m = {
          type,
          from,
          entries: entries(),
          decidedUpTo: slot(),
          ...(r.chance(0.3)
            ? {
                snapshot: {
                  index: slot(),
                  term: 1,
                  data: new Uint8Array(r.int(64)).map(() => r.int(256)),
                },
              }
            : {}),
        };
        break;
      case 'mp.compact':
        m = { type, from, upTo: slot() };
        break;
      case 'mp.learned':
        m = { type, from, decidedUpTo: slot() };
        break;
      case 'mp.nack':
        m = { type, from, ballot: ballot(), promised: ballot() };
        break;
      case 'mp.promise':
        m = { type, from, ballot: ballot(), floor: 0, accepted: [] };
        break;
      case 'mp.accepted':
        m = { type, from, ballot: ballot(), slots: [slot()], sentAt: 0, floor: 0 };
        break;
      default:
        m = { type, from, fromSlot: 1, toSlot: 10 };
    }
    const wire = toWire(m as unknown as MultiPaxosMessage);
    const check = fromWire(wire);
    if ('problem' in check) throw new Error(`the fuzz built a malformed ${type}: ${check.problem}`);
    return { to: `${target}/paxos/${r.pick(roles)}`, msg: wire };
  };
  const sent: { to: string; msg: unknown }[] = [];
  const counts: Record<string, number> = {};
  let raw: Awaited<ReturnType<typeof rawDial>> | undefined;
  const fuzzStart = monotonicNow();
  for (let i = 0; i < inputs; i++) {
    const target = r.pick(ids);
    const kind =
      mode === 'paxos'
        ? r.pick(['mp', 'mp', 'mp', 'mp-batch', 'replay'])
        : forged
          ? r.pick(['raft', 'raft', 'raft-batch', 'replay'])
          : r.pick([
              'raft',
              'raft',
              'raft',
              'raft',
              'raft-batch',
              'replay',
              'replay',
              'kv',
              'kv',
              'propose',
              'admin',
              'garbage-frame',
            ]);
    counts[kind] = (counts[kind] ?? 0) + 1;
    let to = `${target}/raft`;
    let msg: unknown;
    switch (kind) {
      case 'mp': {
        const x = mpMsg(target);
        to = x.to;
        msg = x.msg;
        break;
      }
      case 'mp-batch': {
        // Many at once to one actor (the transport batches them into few frames).
        for (let j = 0; j < 49; j++) {
          const x = mpMsg(target);
          intruder.send(x.to, x.msg as never);
        }
        const x = mpMsg(target);
        to = x.to;
        msg = x.msg;
        break;
      }
      case 'raft':
        msg = { type: 'raft', ms: [pickRaft(target)] };
        break;
      case 'raft-batch':
        msg = {
          type: 'raft',
          ms: Array.from({ length: r.chance(0.1) ? 2000 : 20 }, () => pickRaft(target)),
        };
        break;
      case 'replay': {
        const old = sent.length ? r.pick(sent) : undefined;
        if (old) {
          to = old.to;
          msg = old.msg;
        } else if (mode === 'paxos') ({ to, msg } = mpMsg(target));
        else msg = { type: 'raft', ms: [raftMsg(target)] };
        break;
      }
      case 'kv': {
        to = `${target}/kv`;
        const key = r.pick(['fz', '', 'k'.repeat(5000), 'fz/\u0000', 7, null]);
        msg = r.pick([
          {
            type: 'kv.write',
            op: {
              t: r.pick(['put', 'del', 'cas', 'zap']),
              key,
              value: r.pick(['v', 'x'.repeat(200_000), 3, null]),
            },
            session: { c: r.pick(['fz', '', 7]), q: num(), a: num() },
            timeoutMs: num(),
          },
          {
            type: 'kv.get',
            key,
            read: {
              level: r.pick(['strong', 'bogus', 'eventual', 7]),
              maxStalenessMs: num(),
              token: { index: num(), rev: num() },
            },
          },
          { type: 'kv.range', start: key, end: r.pick(['', 'zz', 7]), limit: num() },
          {
            type: 'kv.watch',
            id: 'w',
            key,
            fromRev: num(),
            subscriber: r.pick(['intruder/$w', 'n1/raft', 'nobody/x']),
          },
          { type: 'kv.readIndex' },
          { type: 'kv.status' },
        ]);
        break;
      }
      case 'propose':
        msg = {
          type: 'propose',
          command: r.pick([
            { clientId: 'fz', seq: r.int(1000), op: { t: 'put', key: 'fz', value: 'x' } },
            {
              clientId: 'fz',
              seq: r.int(1000),
              op: r.pick([null, 7, 'zap', { t: 'zap' }, { t: 'put' }]),
            },
            { c: 'fz', s: num(), o: { t: 'put', key: 'fz', value: 'x' } },
            null,
            'garbage',
            { client: 'fz', seq: num(), op: { t: 'put', key: 'fz', value: 'y' } },
          ]),
          timeoutMs: num(),
        };
        break;
      case 'admin':
        to = `${target}/admin`;
        msg = r.pick([
          { type: 'node.status' },
          { type: 'node.members', members: { ghost: 'ws://127.0.0.1:1' } },
          { type: 'node.members', members: r.pick([null, 7, { n1: 7 }, { '': 'ws://x' }]) },
          { type: 'node.join', id: r.pick(['', 'x'.repeat(300), 7]), url: 'http://nope' },
          { type: 'node.bogus' },
        ]);
        break;
      case 'garbage-frame': {
        if (!raw || raw.readyState !== raw.OPEN) {
          try {
            raw = await rawDial(
              cluster.url(target).replace('ws://', 'ws://'),
              identity(`fz-raw-${i}`, SECRET),
              target,
            );
          } catch {
            raw = undefined;
          }
        }
        if (raw?.readyState === raw?.OPEN) {
          const body = new Uint8Array(r.int(200)).map(() => r.int(256));
          raw?.send(
            r.chance(0.5)
              ? Buffer.concat([Buffer.from([FrameType.BATCH]), body])
              : Buffer.from(body),
          );
        }
        continue;
      }
    }
    const ask = kind === 'kv' || kind === 'propose' || (kind === 'admin' && r.chance(0.5));
    if (ask) {
      void intruder.ask(to, msg as never, 1000).catch(() => undefined);
    } else {
      try {
        intruder.send(to, msg as never);
      } catch {
        // refused locally (not encodable): fine, that is what the codec is for
      }
    }
    if ((kind === 'raft' || kind === 'mp') && sent.length < 500) sent.push({ to, msg });
    if (i % 25 === 0) await sleep(10);
  }
  t.comment(
    `inputs by kind: ${JSON.stringify(counts)}, sent in ${Math.round(monotonicNow() - fuzzStart)} ms`,
  );
  raw?.terminate();
  await sleep(2000);

  // ---- the cluster must be up and correct
  stop = true;
  await Promise.all(workload);
  const kv = clients[0] as (typeof clients)[number];
  const healedAt = monotonicNow();
  let wrote = false;
  while (!wrote && monotonicNow() - healedAt < 60_000)
    wrote = (await kv.put('fz-after', 'ok')).outcome === 'ok';
  t.ok(
    wrote,
    `writes are served after the fuzz (${Math.round(monotonicNow() - healedAt)} ms to the first)`,
  );
  for (let k = 0; k < 3; k++) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const h = rec.invoke('final', 'read', `k${k}`);
      const res = await kv.get(`k${k}`, { level: 'strong' });
      if (res.outcome === 'ok') {
        h.ok(res.value.value);
        break;
      }
      h.fail(res.error.code);
    }
  }
  // Every replica holds what the cluster decided: each node's local (eventual) read of each
  // key converges to the strong read (a replica that applied a forged decision would not).
  const strong = new Map<string, string | null>();
  for (let k = 0; k < 3; k++) {
    const res = await kv.get(`k${k}`, { level: 'strong' });
    if (res.outcome === 'ok') strong.set(`k${k}`, res.value.value);
  }
  const local = async (): Promise<string[]> => {
    const differ: string[] = [];
    for (const id of ids)
      for (const [key, want] of strong) {
        const got = await cluster
          .ask<{ ok: boolean; value?: { kv: { value: string } | null } }>(
            `${id}/kv`,
            { type: 'kv.get', key, read: { level: 'eventual' } },
            3000,
          )
          .then((x) => (x.ok ? (x.value?.kv?.value ?? null) : `(refused)`))
          .catch((e: unknown) => `(${(e as Error).message})`);
        if (got !== want)
          differ.push(`${id} ${key}=${JSON.stringify(got)} (cluster: ${JSON.stringify(want)})`);
      }
    return differ;
  };
  let differ = await local();
  for (const until = monotonicNow() + 30_000; differ.length && monotonicNow() < until; ) {
    await sleep(500);
    differ = await local();
  }
  t.same(differ, [], `every replica converges to the cluster's values (${strong.size} keys)`);
  const forgedSeen = rec.events.filter(
    (e) => e.type === 'ok' && typeof e.value === 'string' && e.value.startsWith('forged-'),
  );
  t.same(
    forgedSeen.map((e) => `${e.key}=${String(e.value)}`),
    [],
    'no forged value was ever read',
  );
  const st = await cluster.statuses(3000);
  const terms = [...st.values()].map((s) => s.term);
  t.comment(
    `after the fuzz: terms ${JSON.stringify(terms)}, leader ${[...st.values()].find((s) => s.role === 'leader')?.id}`,
  );
  t.ok(
    terms.every((x) => Number.isSafeInteger(x) && x < 2 ** 40),
    `no node adopted an absurd term (${terms.join(', ')})`,
  );
  const v = judgeHistory(rec.events, {
    finalProcess: 'final',
    reportFile: path.join(dir, 'report.html'),
    title: `cluster fuzz seed ${SEED}`,
    timeoutMs: 60_000,
  });
  t.equal(v.checker.result, 'linearizable', `${v.checker.summary} (report ${dir}/report.html)`);
  t.same(v.lost, [], 'no acknowledged write lost');
  const oks = rec.events.filter((e) => e.type === 'ok' && e.process !== 'final').length;
  t.ok(oks > 10, `the workload made progress during the fuzz (${oks} ok)`);
  const exits = [...cluster.procs.values()].flatMap((p) =>
    p.exits.map((e) => `${p.id}: code ${e.code}`),
  );
  t.same(exits, [], 'no node exited');
  t.same(errors, [], 'no node logged an error (a stopped Raft actor leaves a zombie process)');
  await Promise.all(clients.map((c) => c.close()));
  await intruder.shutdown();
  await transport.close(100);
  cluster.killAllNow();
  await cluster.closeProbe();
}

t.test('a running cluster survives hostile inputs and stays linearizable', (t) =>
  fuzzCluster(t, 'hostile', INPUTS),
);

// Finding F1 (RELIABILITY.md), fixed: RaftNode drops Raft messages whose envelope sender
// is not their `from` and messages from non-members, and terms are capped at 2^40 − 1.
t.test(
  'well-formed Raft messages with absurd terms from non-members and impersonated members',
  (t) => fuzzCluster(t, 'forged', 300),
);

// Finding F6 (RELIABILITY.md), fixed: a Multi-Paxos node's actors hear members only
// (lib/node/paxos-admission.ts); before, every learner applied a forged mp.decide.
t.test(
  'a Multi-Paxos cluster: well-formed Multi-Paxos messages from a non-member, claiming members',
  (t) => fuzzCluster(t, 'paxos', 300),
);
