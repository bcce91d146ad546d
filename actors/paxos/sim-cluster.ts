/**
 * A deterministic, core-level Multi-Paxos cluster simulation: every node runs an acceptor, a
 * proposer and a learner core behind a model of the actor shells (one message at a time per
 * actor, writes that complete after a delay, sends held until the write before them is
 * durable; the learner's snapshots saved in the background; the acceptor's shell with group commit, as MultiPaxosAcceptor: it steps messages
 * while a write is in flight, queues their writes for the next one, and holds every reply
 * behind the write covering its step or, for a step that writes nothing, behind the newest
 * write in flight or queued), connected by a seeded network with drops, duplicates, reordering (random
 * delays), partitions, and crash-restarts that lose every write not yet durable.
 *
 * After every event it checks safety:
 * - no two learners apply different values at one slot, and no value is chosen twice
 *   differently by the acceptors (per slot, per ballot, a phase-2 quorum of durable accepts);
 * - every applied command was proposed by a client;
 * - an acceptor never accepts below a ballot it promised (promise messages that left it),
 *   across crash-restart, and never sends a promise that is not durable.
 * Clients run register operations (read, write, cas) and record a Jepsen-style history; reads
 * go through the log (barriers) or, with leases, are served locally. After the fault phase the
 * network heals and every node restarts: the cluster must make progress again (liveness).
 *
 * Used by test/paxos/multi-sim.test.ts (CI seeds) and sim/paxos.ts (long runs).
 */

import { checkHistory } from '../../lib/history/index.js';
import { Random } from '../../lib/random.js';
import type { Command } from '../../lib/replicated-log.js';
import { type Ballot, compareBallots, formatBallot, ZERO_BALLOT } from './ballot.js';
import { type KvOp, KvStateMachine } from './kv-machine.js';
import { sameValue } from './learner.js';
import { MultiAcceptorCore, type MultiAcceptorOutput } from './multi-acceptor.js';
import { MultiLeaderCore, type MultiLeaderOutput } from './multi-leader.js';
import { type AppliedRecord, MultiLearnerCore, type MultiLearnerOutput } from './multi-learner.js';
import {
  type AcceptedSlot,
  decodeCommand,
  type MOutbound,
  type MultiPaxosMessage,
  type SlotValue,
  type SnapshotImage,
} from './multi-messages.js';
import { majorityQuorums, type QuorumSystem, quorumSystem } from './quorum.js';

export interface SimFaults {
  readonly drop: number;
  readonly duplicate: number;
  readonly delayMin: number;
  readonly delayMax: number;
  readonly partitions: boolean;
  readonly crashes: boolean;
  /** Crash/partition events per simulated second. */
  readonly faultRate: number;
}

export const DEFAULT_FAULTS: SimFaults = {
  drop: 0.05,
  duplicate: 0.03,
  delayMin: 1,
  delayMax: 15,
  partitions: true,
  crashes: true,
  faultRate: 2,
};

export interface SimClusterOptions {
  readonly seed: number;
  readonly nodes?: number;
  readonly phase1?: number;
  readonly phase2?: number;
  /** Negative controls: skip the quorum intersection check / acceptors forget on restart. */
  readonly unsafeQuorums?: QuorumSystem;
  readonly amnesia?: boolean;
  readonly faults?: Partial<SimFaults>;
  readonly clients?: number;
  readonly faultPhaseMs?: number;
  readonly healPhaseMs?: number;
  readonly leaseMs?: number;
  readonly snapshotEvery?: number;
  readonly window?: number;
  /** Check the client history with lib/history's linearizability checker (default true). */
  readonly checkLinearizability?: boolean;
  /** Negative control: serve reads from the local replica without a barrier or lease. */
  readonly unsafeLocalReads?: boolean;
}

export interface HistoryOp {
  process: number;
  type: 'invoke' | 'ok' | 'fail' | 'info';
  f: 'read' | 'write' | 'cas';
  key: string;
  value: unknown;
  time: number;
}

export interface SimResult {
  readonly seed: number;
  readonly violation?: string;
  readonly history: HistoryOp[];
  readonly events: number;
  readonly chosenSlots: number;
  readonly okOps: number;
  readonly okAfterHeal: number;
  readonly live: boolean;
  readonly leaderChanges: number;
}

type Item =
  | { kind: 'msg'; msg: MultiPaxosMessage }
  | { kind: 'tick' }
  | { kind: 'snapshot-done'; index: number };

interface ActorSlot {
  mailbox: Item[];
  busy: boolean;
}

/** One acceptor write (group commit): the steps' durable effects and the replies they hold. */
interface AcceptorWrite {
  readonly durable: (() => void)[];
  readonly sends: MOutbound[];
}

interface Node {
  readonly id: string;
  up: boolean;
  epoch: number;
  acceptor: MultiAcceptorCore;
  proposer: MultiLeaderCore;
  learner: MultiLearnerCore;
  sm: KvStateMachine;
  disk: {
    promised: Ballot;
    floor: number;
    accepted: Map<number, AcceptedSlot>;
    round: number;
    snapshot?: SnapshotImage;
  };
  actors: Record<'acceptor' | 'proposer' | 'learner', ActorSlot>;
  /** When the learner's last snapshot save completes (saves complete in order). */
  learnerSaveDoneAt?: number;
  /** The acceptor's write in flight, and the one queued behind it. */
  accWriting?: AcceptorWrite;
  accQueued?: AcceptorWrite;
}

interface Event {
  time: number;
  seq: number;
  run: () => void;
}

class Heap {
  private a: Event[] = [];
  get size(): number {
    return this.a.length;
  }
  push(e: Event): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (Heap.less(a[p]!, a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && Heap.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && Heap.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
  private static less(x: Event, y: Event): boolean {
    return x.time < y.time || (x.time === y.time && x.seq < y.seq);
  }
}

const nodeOf = (addr: string) => addr.slice(0, addr.indexOf('/'));
const roleOf = (addr: string) => addr.slice(addr.indexOf('/') + 1) as keyof Node['actors'];

// A command's key per byte string: the checker keys every vote and every application, and
// one command's bytes reach every acceptor and learner (the sim does not copy them).
// Bytes are never changed in place.
const commandKeys = new WeakMap<Uint8Array, string>();

function valueKey(v: SlotValue): string {
  if (v.k === 'noop') return `noop:${v.b ?? ''}`;
  let k = commandKeys.get(v.d);
  if (k === undefined) {
    k = commandKey(decodeCommand(v.d));
    commandKeys.set(v.d, k);
  }
  return k;
}

function commandKey(c: Command | string): string {
  return typeof c === 'string'
    ? `bad-command:${c}`
    : `cmd:${c.clientId}:${c.seq}:${JSON.stringify(c.op)}`;
}

export function runSimCluster(opts: SimClusterOptions): SimResult {
  const rnd = new Random(opts.seed);
  const faults: SimFaults = { ...DEFAULT_FAULTS, ...opts.faults };
  const n = opts.nodes ?? 3;
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const acceptorAddrs = ids.map((i) => `${i}/acceptor`);
  const quorums =
    opts.unsafeQuorums ??
    (opts.phase1 !== undefined || opts.phase2 !== undefined
      ? quorumSystem({
          acceptors: acceptorAddrs,
          ...(opts.phase1 !== undefined ? { phase1: opts.phase1 } : {}),
          ...(opts.phase2 !== undefined ? { phase2: opts.phase2 } : {}),
        })
      : majorityQuorums(acceptorAddrs));
  const leaseMs = opts.leaseMs ?? 0;
  const faultPhaseMs = opts.faultPhaseMs ?? 3000;
  const healPhaseMs = opts.healPhaseMs ?? 4000;
  const endTime = faultPhaseMs + healPhaseMs;
  const heap = new Heap();
  let now = 0;
  let seq = 0;
  let events = 0;
  let violation: string | undefined;
  let leaderChanges = 0;
  const fail = (why: string) => {
    violation ??= `${why} (t=${now})`;
  };
  const at = (time: number, run: () => void) => heap.push({ time, seq: seq++, run });

  // ---- global safety bookkeeping
  const appliedAt = new Map<number, string>(); // slot → value key applied by some learner
  const proposed = new Set<string>(); // value keys of submitted commands
  const maxPromiseSent = new Map<string, Ballot>();
  const votes = new Map<number, Map<string, { key: string; from: Set<string> }>>();
  const chosenAt = new Map<number, string>();

  const partition = new Map<string, number>(); // node → group
  const sameSide = (a: string, b: string) => (partition.get(a) ?? 0) === (partition.get(b) ?? 0);

  const nodes = new Map<string, Node>();

  const buildNode = (id: string, prev?: Node): Node => {
    const disk = prev?.disk ?? {
      promised: ZERO_BALLOT,
      floor: 0,
      accepted: new Map<number, AcceptedSlot>(),
      round: 0,
    };
    const forget = opts.amnesia && prev;
    const sm = new KvStateMachine();
    const acceptor = new MultiAcceptorCore(
      { id: `${id}/acceptor`, leaseMs, localProposer: `${id}/proposer` },
      forget
        ? undefined
        : prev
          ? { promised: disk.promised, floor: disk.floor, accepted: [...disk.accepted.values()] }
          : undefined,
      now,
    );
    if (forget) {
      disk.promised = ZERO_BALLOT;
      disk.accepted = new Map();
      disk.floor = 0;
    }
    const proposer = new MultiLeaderCore(
      {
        id: `${id}/proposer`,
        quorums,
        proposers: ids.map((i) => `${i}/proposer`),
        learners: ids.map((i) => `${i}/learner`),
        localLearner: `${id}/learner`,
        learnersWithAcceptor: new Set(ids.map((i) => `${i}/learner`)),
        random: rnd.fork(),
        heartbeatMs: 30,
        electionTimeoutMs: 150,
        retransmitMs: 60,
        // phase 1 in pages of a few slots, so every election that recovers slots pages
        promisePageBytes: 512,
        window: opts.window ?? 32,
        maxBatch: 16,
        leaseMs,
        maxClockDrift: 0,
      },
      disk.round,
      now,
    );
    const learner = new MultiLearnerCore(
      {
        id: `${id}/learner`,
        peers: ids.map((i) => `${i}/learner`),
        localAcceptor: `${id}/acceptor`,
        localProposer: `${id}/proposer`,
        localSlots: acceptor.slots,
        stateMachine: sm,
        snapshotEvery: opts.snapshotEvery ?? 25,
        // a little behind each snapshot: catch-up takes both paths, entries and snapshots
        keepAfterSnapshot: 10,
        catchupRetryMs: 50,
        maxCatchupEntries: 64,
      },
      disk.snapshot,
    );
    return {
      id,
      up: true,
      epoch: (prev?.epoch ?? 0) + 1,
      acceptor,
      proposer,
      learner,
      sm,
      disk,
      actors: {
        acceptor: { mailbox: [], busy: false },
        proposer: { mailbox: [], busy: false },
        learner: { mailbox: [], busy: false },
      },
    };
  };

  // ---- network
  const transmit = (fromNode: string, out: MOutbound) => {
    const toNode = nodeOf(out.to);
    if (fromNode === toNode) {
      at(now, () => deliver(out));
      return;
    }
    if (!sameSide(fromNode, toNode)) return;
    if (rnd.chance(faults.drop)) return;
    const copies = rnd.chance(faults.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      at(now + faults.delayMin + rnd.int(faults.delayMax - faults.delayMin + 1), () => {
        if (sameSide(fromNode, toNode)) deliver(out);
      });
    }
  };

  const deliver = (out: MOutbound) => {
    const node = nodes.get(nodeOf(out.to));
    if (!node?.up) return;
    enqueue(node, roleOf(out.to), { kind: 'msg', msg: out.msg });
  };

  const enqueue = (node: Node, role: keyof Node['actors'], item: Item) => {
    const a = node.actors[role];
    a.mailbox.push(item);
    if (!a.busy) drain(node, role);
  };

  const drain = (node: Node, role: keyof Node['actors']) => {
    const a = node.actors[role];
    while (!a.busy && a.mailbox.length > 0 && node.up) {
      const item = a.mailbox.shift()!;
      try {
        if (role === 'acceptor') handleAcceptor(node, item);
        else if (role === 'proposer') handleProposer(node, item);
        else handleLearner(node, item);
      } catch (err) {
        fail(`${node.id}/${role} threw: ${(err as Error).message}`);
      }
    }
  };

  /** Runs `durable` and releases `sends` after a simulated write; a crash first loses both. */
  const afterWrite = (
    node: Node,
    role: keyof Node['actors'],
    durable: () => void,
    sends: MOutbound[],
    then?: () => void,
  ) => {
    const a = node.actors[role];
    a.busy = true;
    const epoch = node.epoch;
    at(now + rnd.int(3), () => {
      if (node.epoch !== epoch || !node.up) return;
      durable();
      a.busy = false;
      release(node, sends);
      then?.();
      drain(node, role);
    });
  };

  const release = (node: Node, sends: MOutbound[]) => {
    for (const s of sends) {
      if (s.msg.type === 'mp.promise') {
        const cur = maxPromiseSent.get(s.msg.from) ?? ZERO_BALLOT;
        if (compareBallots(node.disk.promised, s.msg.ballot) < 0 && !opts.amnesia) {
          fail(
            `${s.msg.from} sent a promise for ${formatBallot(s.msg.ballot)} before it was durable`,
          );
        }
        if (compareBallots(s.msg.ballot, cur) > 0) maxPromiseSent.set(s.msg.from, s.msg.ballot);
      }
      if (s.msg.type === 'mp.accepted') {
        // The other half of the acceptor's rule: an accepted leaves only once its record is
        // durable (at its ballot, or superseded in a higher one by a later step of the same
        // group). Without this check a vote sent early is merely not counted below.
        if (!opts.amnesia) {
          for (const slot of s.msg.slots) {
            if (slot <= node.disk.floor) continue;
            const rec = node.disk.accepted.get(slot);
            if (!rec || compareBallots(rec.ballot, s.msg.ballot) < 0)
              fail(
                `${s.msg.from} sent accepted ${formatBallot(s.msg.ballot)} for slot ${slot} before it was durable`,
              );
          }
        }
        recordVotes(node, s.msg.ballot, s.msg.slots);
      }
      transmit(node.id, s);
    }
  };

  const recordVotes = (node: Node, ballot: Ballot, slots: readonly number[]) => {
    const from = `${node.id}/acceptor`;
    const bk = formatBallot(ballot);
    for (const slot of slots) {
      const rec = node.disk.accepted.get(slot);
      if (!rec || compareBallots(rec.ballot, ballot) !== 0) continue; // superseded meanwhile
      const perSlot = votes.get(slot) ?? new Map<string, { key: string; from: Set<string> }>();
      votes.set(slot, perSlot);
      const key = valueKey(rec.value);
      const v = perSlot.get(bk) ?? { key, from: new Set<string>() };
      perSlot.set(bk, v);
      if (v.key !== key) fail(`two values accepted in slot ${slot} ballot ${bk}`);
      v.from.add(from);
      if (quorums.isPhase2Quorum(v.from)) {
        const c = chosenAt.get(slot);
        if (c === undefined) chosenAt.set(slot, key);
        else if (c !== key) fail(`slot ${slot}: two different values chosen (${c} / ${key})`);
      }
    }
  };

  // ---- actors
  const handleAcceptor = (node: Node, item: Item) => {
    if (item.kind !== 'msg') return;
    const acc = node.acceptor;
    const out: MultiAcceptorOutput = acc.step(item.msg, now);
    if (out.persist?.records) {
      const floorBefore = maxPromiseSent.get(`${node.id}/acceptor`) ?? ZERO_BALLOT;
      for (const r of out.persist.records) {
        if (compareBallots(r.ballot, floorBefore) < 0 && !opts.amnesia) {
          fail(`${node.id}/acceptor accepted ${formatBallot(r.ballot)} below its promise`);
        }
      }
    }
    if (!out.persist) {
      const behind = node.accQueued ?? node.accWriting;
      if (behind) behind.sends.push(...out.send);
      else release(node, out.send);
      return;
    }
    const p = out.persist;
    node.accQueued ??= { durable: [], sends: [] };
    node.accQueued.durable.push(() => {
      for (const r of p.records ?? []) node.disk.accepted.set(r.slot, r);
      if (p.hard) {
        node.disk.promised = p.hard.promised;
        node.disk.floor = p.hard.floor;
      }
      if (p.compactTo !== undefined) {
        for (const s of [...node.disk.accepted.keys()]) {
          if (s <= p.compactTo) node.disk.accepted.delete(s);
        }
      }
    });
    node.accQueued.sends.push(...out.send);
    if (!node.accWriting) startAcceptorWrite(node);
  };

  /** The acceptor's next write: every queued step at once, its replies after it. */
  const startAcceptorWrite = (node: Node) => {
    const w = node.accQueued as AcceptorWrite;
    node.accQueued = undefined;
    node.accWriting = w;
    const epoch = node.epoch;
    at(now + rnd.int(3), () => {
      if (node.epoch !== epoch || !node.up) return;
      for (const d of w.durable) d();
      node.accWriting = undefined;
      release(node, w.sends);
      if (node.accQueued) startAcceptorWrite(node);
    });
  };

  const handleProposer = (node: Node, item: Item) => {
    let out: MultiLeaderOutput;
    if (item.kind === 'tick') out = node.proposer.tick(now);
    else if (item.kind === 'msg') out = node.proposer.step(item.msg, now);
    else return;
    proposerOutput(node, out);
  };

  const proposerOutput = (node: Node, out: MultiLeaderOutput) => {
    for (const e of out.events) if (e.type === 'elected') leaderChanges++;
    for (const f of out.fates) clientFate(node, f.kind, f.value);
    for (const r of out.reads) confirmedRead(node, r.id, r.index);
    if (out.persist) {
      const round = out.persist.round;
      afterWrite(node, 'proposer', () => (node.disk.round = round), out.send);
    } else release(node, out.send);
  };

  const handleLearner = (node: Node, item: Item) => {
    let out: MultiLearnerOutput;
    if (item.kind === 'tick') out = node.learner.tick(now);
    else if (item.kind === 'msg') out = node.learner.step(item.msg, now);
    else out = node.learner.snapshotPersisted(item.index);
    learnerOutput(node, out);
  };

  const learnerOutput = (node: Node, out: MultiLearnerOutput) => {
    for (const r of out.applied) onApplied(node, r);
    release(node, out.send);
    if (out.snapshot) {
      // Stored in the background, as MultiPaxosLearner does: the learner goes on stepping;
      // saves complete in order; only a durable snapshot is reported to the core.
      const snap = out.snapshot;
      const epoch = node.epoch;
      const doneAt = Math.max(now + rnd.int(3), node.learnerSaveDoneAt ?? 0);
      node.learnerSaveDoneAt = doneAt;
      at(doneAt, () => {
        if (node.epoch !== epoch || !node.up) return;
        node.disk.snapshot = snap;
        learnerOutput(node, node.learner.snapshotPersisted(snap.index));
      });
    }
    checkReads(node);
  };

  const onApplied = (node: Node, r: AppliedRecord) => {
    if (r.kind === 'snapshot') return;
    const v = node.learner.valueAt(r.index);
    if (!v) {
      fail(`${node.id} applied slot ${r.index} without holding its value`);
      return;
    }
    const key = valueKey(v);
    if (v.k === 'cmd' && !proposed.has(key)) fail(`slot ${r.index}: ${key} was never proposed`);
    const prev = appliedAt.get(r.index);
    if (prev === undefined) appliedAt.set(r.index, key);
    else if (prev !== key) fail(`slot ${r.index}: learners applied ${prev} and ${key}`);
    const c = chosenAt.get(r.index);
    if (c !== undefined && c !== key) fail(`slot ${r.index}: applied ${key} but ${c} was chosen`);
    clientApplied(node, r);
  };

  // ---- clients
  interface Client {
    readonly id: number;
    readonly name: string;
    seq: number;
    target: string;
    op?: {
      f: HistoryOp['f'];
      key: string;
      value: unknown;
      node: string;
      seq?: number;
      barrier?: string;
      confirm?: string;
      readIndex?: number;
      deadline: number;
      epoch: number;
    };
  }
  const history: HistoryOp[] = [];
  const clients: Client[] = [];
  let okOps = 0;
  let okAfterHeal = 0;
  let barrierSeq = 0;
  const keys = ['x', 'y'];

  const complete = (c: Client, type: HistoryOp['type'], value: unknown) => {
    const op = c.op;
    if (!op) return;
    c.op = undefined;
    history.push({ process: c.id, type, f: op.f, key: op.key, value, time: now });
    if (type === 'ok') {
      okOps++;
      if (now > faultPhaseMs) okAfterHeal++;
    }
    at(now + 1 + rnd.int(20), () => startOp(c));
  };

  const startOp = (c: Client) => {
    if (c.op || now >= endTime - 500) return;
    const node = nodes.get(c.target);
    const key = rnd.pick(keys);
    const r = rnd.next();
    const f: HistoryOp['f'] = r < 0.4 ? 'read' : r < 0.8 ? 'write' : 'cas';
    const value =
      f === 'write' ? rnd.int(5) : f === 'cas' ? [rnd.int(5), rnd.int(5)] : (null as unknown);
    history.push({ process: c.id, type: 'invoke', f, key, value, time: now });
    c.op = { f, key, value, node: c.target, deadline: now + 600, epoch: node?.epoch ?? 0 };
    if (!node?.up) {
      c.target = rnd.pick(ids);
      complete(c, 'fail', value);
      return;
    }
    const p = node.proposer;
    if (f === 'read' && opts.unsafeLocalReads) {
      complete(c, 'ok', node.sm.read(key));
      return;
    }
    if (f === 'read' && rnd.chance(0.7)) {
      const li = p.leaseReadIndex(now);
      if (li !== undefined) {
        c.op.readIndex = li;
        checkReads(node);
        return;
      }
      const barrier = `b${barrierSeq++}`;
      if (rnd.chance(0.5)) {
        // a read index confirmed by a phase-2 quorum (no log slot)
        c.op.confirm = barrier;
        const { result, output } = p.confirmRead(barrier, now, rnd.chance(0.5));
        proposerOutput(node, output);
        if (!result.ok) return redirect(c, result.leaderHint, value);
        if (rnd.chance(0.5)) proposerOutput(node, p.flush(now));
        return;
      }
      c.op.barrier = barrier;
      const { result, output } = p.submitBarrier(barrier, now);
      proposerOutput(node, output);
      if (!result.ok) return redirect(c, result.leaderHint, value);
      return;
    }
    c.seq++;
    const kop: KvOp =
      f === 'read'
        ? { f: 'read', key }
        : f === 'write'
          ? { f: 'write', key, value }
          : { f: 'cas', key, from: (value as number[])[0], to: (value as number[])[1] };
    const cmd: Command = { clientId: c.name, seq: c.seq, op: kop };
    c.op.seq = c.seq;
    proposed.add(commandKey(cmd));
    const { result, output } = p.submit(cmd, now);
    proposerOutput(node, output);
    if (!result.ok) redirect(c, result.leaderHint, value);
  };

  const redirect = (c: Client, hint: string | undefined, value: unknown) => {
    c.target = hint !== undefined ? nodeOf(hint) : rnd.pick(ids);
    complete(c, 'fail', value);
  };

  const clientFate = (node: Node, kind: 'dropped' | 'indeterminate', v: SlotValue) => {
    if (kind !== 'dropped') return; // indeterminate: wait (it may still be applied) or time out
    const vc = v.k === 'cmd' ? decodeCommand(v.d) : undefined;
    for (const c of clients) {
      const op = c.op;
      if (!op || op.node !== node.id) continue;
      const mine =
        (typeof vc === 'object' && vc.clientId === c.name && vc.seq === op.seq) ||
        (v.k === 'noop' && v.b !== undefined && v.b === op.barrier);
      if (mine) redirect(c, undefined, op.value);
    }
  };

  const clientApplied = (node: Node, r: AppliedRecord) => {
    for (const c of clients) {
      const op = c.op;
      if (!op || op.node !== node.id || op.epoch !== node.epoch) continue;
      if (r.kind === 'cmd' && op.seq !== undefined && r.command.clientId === c.name) {
        if (r.command.seq !== op.seq) continue;
        if (op.f === 'read') complete(c, 'ok', r.result);
        else if (op.f === 'write') complete(c, 'ok', op.value);
        else if (r.result === true) complete(c, 'ok', op.value);
        else complete(c, 'fail', op.value);
      } else if (r.kind === 'noop' && op.barrier !== undefined && r.barrier === op.barrier) {
        op.readIndex = r.index;
      }
    }
  };

  const confirmedRead = (node: Node, id: string, index: number | undefined) => {
    for (const c of clients) {
      const op = c.op;
      if (!op || op.node !== node.id || op.confirm !== id || op.epoch !== node.epoch) continue;
      if (index === undefined) redirect(c, undefined, op.value);
      else {
        op.readIndex = index;
        checkReads(node);
      }
    }
  };

  const checkReads = (node: Node) => {
    for (const c of clients) {
      const op = c.op;
      if (!op || op.node !== node.id || op.readIndex === undefined || op.epoch !== node.epoch) {
        continue;
      }
      if (node.learner.applied >= op.readIndex) complete(c, 'ok', node.sm.read(op.key));
    }
  };

  const clientTimeouts = () => {
    for (const c of clients) {
      const op = c.op;
      if (!op) continue;
      const node = nodes.get(op.node);
      if (now >= op.deadline || !node || !node.up || node.epoch !== op.epoch) {
        c.target = rnd.pick(ids);
        // reads never change state: a lost read is a failed read
        complete(c, op.f === 'read' ? 'fail' : 'info', op.value);
      }
    }
  };

  // ---- faults
  const crash = (node: Node) => {
    node.up = false;
    node.epoch++;
    for (const a of Object.values(node.actors)) {
      a.mailbox = [];
      a.busy = false;
    }
  };
  const restart = (id: string) => {
    const prev = nodes.get(id)!;
    const node = buildNode(id, prev);
    node.epoch = prev.epoch + 1;
    nodes.set(id, node);
  };
  const injectFault = () => {
    if (now >= faultPhaseMs) return;
    const r = rnd.next();
    if (faults.crashes && r < 0.5) {
      const node = nodes.get(rnd.pick(ids))!;
      if (node.up) {
        const down = ids.filter((i) => !nodes.get(i)!.up).length;
        if (down < n - 1) crash(node);
      } else restart(node.id);
    } else if (faults.partitions) {
      if (partition.size > 0 && rnd.chance(0.5)) partition.clear();
      else {
        partition.clear();
        for (const i of ids) partition.set(i, rnd.int(2));
      }
    }
    const gap = 1000 / Math.max(0.001, faults.faultRate);
    at(now + 1 + rnd.int(Math.ceil(gap * 2)), injectFault);
  };
  const heal = () => {
    partition.clear();
    for (const id of ids) if (!nodes.get(id)!.up) restart(id);
  };

  // ---- run
  for (const id of ids) nodes.set(id, buildNode(id));
  const tickEvery = 10;
  const tick = () => {
    for (const node of nodes.values()) {
      if (!node.up) continue;
      enqueue(node, 'proposer', { kind: 'tick' });
      enqueue(node, 'learner', { kind: 'tick' });
    }
    clientTimeouts();
    if (now + tickEvery <= endTime) at(now + tickEvery, tick);
  };
  at(tickEvery, tick);
  if (faults.crashes || faults.partitions) at(200 + rnd.int(200), injectFault);
  at(faultPhaseMs, heal);
  for (let i = 0; i < (opts.clients ?? 3); i++) {
    const c: Client = { id: i, name: `c${i}-${opts.seed}`, seq: 0, target: rnd.pick(ids) };
    clients.push(c);
    at(50 + rnd.int(100), () => startOp(c));
  }

  let sameTime = 0;
  while (heap.size > 0 && !violation) {
    const e = heap.pop()!;
    if (e.time > endTime) break;
    // a message storm that never lets time advance is a livelock
    sameTime = e.time === now ? sameTime + 1 : 0;
    if (sameTime > 20_000) fail('livelock: 20,000 events without time advancing');
    now = e.time;
    e.run();
    events++;
  }
  for (const c of clients) if (c.op) complete(c, c.op.f === 'read' ? 'fail' : 'info', c.op.value);

  // convergence: all learners reach the same applied prefix and the same state
  if (!violation) {
    const applied = [...nodes.values()].map((nd) => nd.learner.applied);
    const max = Math.max(...applied);
    const behind = [...nodes.values()].filter((nd) => nd.learner.applied < max - 0);
    if (behind.length > 0 && !opts.unsafeQuorums && !opts.amnesia) {
      fail(`learners did not converge after healing: applied ${applied.join(',')}`);
    } else {
      const images = [...nodes.values()].map((nd) => Buffer.from(nd.sm.snapshot()).toString('hex'));
      if (images.some((i) => i !== images[0]) && !opts.unsafeQuorums && !opts.amnesia) {
        fail('replicas at the same index hold different states');
      }
    }
  }
  if (!violation && opts.checkLinearizability !== false) {
    const verdict = checkHistory(history, { model: 'register', maxSteps: 5_000_000 });
    if (verdict.result === 'violation') violation = `not linearizable: ${verdict.summary}`;
    else if (verdict.result === 'unknown') violation = `checker gave up: ${verdict.reason}`;
  }
  const live = okAfterHeal > 0;
  return {
    seed: opts.seed,
    ...(violation !== undefined ? { violation } : {}),
    history,
    events,
    chosenSlots: chosenAt.size,
    okOps,
    okAfterHeal,
    live,
    leaderChanges,
  };
}

/** True when `a` and `b` hold the same plain value (exported for tests). */
export const valuesEqual = sameValue;
