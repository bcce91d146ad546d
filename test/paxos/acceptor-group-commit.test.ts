/**
 * The acceptor actor's group commit (docs/paxos.md, "Acceptor group commit"), with a journal
 * whose writes the test holds and releases (a deferred promise per write, in front of a real
 * `AcceptorJournal` on a MemoryDisk):
 * 1. accepts arriving while a write is in flight share the next single write;
 * 2. no reply leaves before the write covering it resolved — also replies whose step wrote
 *    nothing (a duplicate accept, a nack, a promise in the promised ballot) wait behind it;
 * 3. a failed write answers nothing it covered, and the acceptor reloaded from its journal (or
 *    restarted after a crash before a write resolved) has every acknowledged accept and keeps
 *    every promise it sent.
 */
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import { type Ballot, ballot, compareBallots } from '../../actors/paxos/ballot.js';
import type {
  MultiAcceptorHardState,
  MultiAcceptorPersist,
} from '../../actors/paxos/multi-acceptor.js';
import { MultiPaxosAcceptor } from '../../actors/paxos/multi-acceptor-actor.js';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { Actor, type ActorEvent } from '../../lib/actor.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

interface Gate {
  readonly persists: readonly MultiAcceptorPersist[];
  open(): void;
  fail(e: Error): void;
}

/** A real journal whose every `persistGroup` first waits for the test to open its gate. */
class GatedJournal extends AcceptorJournal {
  readonly gates: Gate[] = [];
  /** Whether every write so far was started only after the previous one settled. */
  overlapped = false;
  private busy = false;

  override async persistGroup(ps: readonly MultiAcceptorPersist[]): Promise<void> {
    if (this.busy) this.overlapped = true;
    this.busy = true;
    try {
      await new Promise<void>((resolve, reject) => {
        this.gates.push({ persists: [...ps], open: resolve, fail: reject });
      });
      await super.persistGroup(ps);
    } finally {
      this.busy = false;
    }
  }
}

const got: MultiPaxosMessage[] = [];
class Probe extends Actor<MultiPaxosMessage> {
  receive(msg: MultiPaxosMessage): void {
    const m = fromWire(msg);
    if (!('problem' in m)) got.push(m);
  }
}

/** One simulation per test: node `a` runs the acceptor on a gated journal, `p` the probe. */
function setup() {
  const journals: GatedJournal[] = [];
  const events: ActorEvent[] = [];
  const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
    seed: 11,
    nodes: ['a', 'p'],
    createDisk: () => new MemoryDisk({ clock: sim.clock, syncDelayMs: 5 }),
    setup: async (node) => {
      if (node.id === 'p') {
        node.system.spawn('probe', new Probe());
        return;
      }
      const hard = await MemoryHardStateStore.open<MultiAcceptorHardState>(node.disk, {
        name: 'paxos-acceptor',
      });
      const log = await MemoryLogStore.open(node.disk, { name: 'paxos-acceptor' });
      const journal = new GatedJournal(hard, log);
      journals.push(journal);
      const ref = node.system.spawn('paxos/acceptor', new MultiPaxosAcceptor({ journal }));
      ref.events$.subscribe((e) => events.push(e));
    },
  });
  const send = (msg: MultiPaxosMessage) =>
    sim.system('p').send('a/paxos/acceptor', toWire(msg) as MultiPaxosMessage);
  const journal = () => journals[journals.length - 1] as GatedJournal;
  /** Opens the gate of write `i` of the current journal and lets the disk sync. */
  const open = async (i: number) => {
    const g = journal().gates[i];
    if (!g) throw new Error(`no write ${i} (${journal().gates.length} so far)`);
    g.open();
    await sim.runFor(20);
  };
  got.length = 0;
  return { sim, send, journal, open, events };
}

const P = 'p/probe';
const accept = (b: Ballot, slots: number[], sentAt = 0): MultiPaxosMessage => ({
  type: 'mp.accept',
  from: P,
  ballot: b,
  entries: slots.map((slot) => ({
    slot,
    value: commandValue({ clientId: 'c', seq: slot, op: { slot } }, b.round),
  })),
  sentAt,
});
const prepare = (b: Ballot): MultiPaxosMessage => ({
  type: 'mp.prepare',
  from: P,
  ballot: b,
  fromSlot: 1,
});
const summary = (m: MultiPaxosMessage) => {
  switch (m.type) {
    case 'mp.accepted':
      return `accepted ${m.ballot.round} [${m.slots.join(',')}]`;
    case 'mp.nack':
      return `nack ${m.ballot.round} promised ${m.promised.round}`;
    case 'mp.promise':
      return `promise ${m.ballot.round} [${m.accepted.map((a) => `${a.slot}@${a.ballot.round}`).join(',')}]`;
    default:
      return m.type;
  }
};

t.test(
  'accepts arriving during a write share the next one; no reply before its write',
  async (t) => {
    const { sim, send, journal, open } = setup();
    await sim.start();
    const b1 = ballot(1, P);
    send(accept(b1, [1]));
    await sim.runFor(20);
    t.equal(journal().gates.length, 1, 'the first accept started a write');
    for (let s = 2; s <= 10; s++) send(accept(b1, [s], s));
    send(accept(b1, [1], 99)); // a duplicate: nothing to write, but slot 1 is not durable yet
    await sim.runFor(50);
    t.equal(journal().gates.length, 1, 'no second write while the first is in flight');
    t.same(got, [], 'no reply while the first write is held');

    await open(0);
    t.same(got.map(summary), ['accepted 1 [1]'], 'the first write released only its own reply');
    t.equal(journal().gates.length, 2, 'the queued accepts went into the next write at once');
    t.equal(journal().gates[1]?.persists.length, 9, 'one write for the nine accepts queued');
    await sim.runFor(50);
    t.equal(got.length, 1, 'nothing else before the second write resolves');

    await open(1);
    t.same(
      got.map(summary),
      [
        'accepted 1 [1]',
        ...[2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => `accepted 1 [${s}]`),
        'accepted 1 [1]',
      ],
      'then every reply, in the order of the steps, the duplicate last',
    );
    t.equal(journal().gates.length, 2, 'two writes for eleven accepts');
    t.notOk(journal().overlapped, 'never two writes at once');

    // Negative control of the sharing: one at a time, each accept gets its own write.
    send(accept(b1, [11]));
    await sim.runFor(20);
    await open(2);
    send(accept(b1, [12]));
    await sim.runFor(20);
    await open(3);
    t.equal(journal().gates.length, 4, 'accepts that do not overlap a write each get one');
    t.equal(got.length, 13);
  },
);

t.test(
  'a nack and a promise with nothing to write still wait for the write in flight',
  async (t) => {
    const { sim, send, journal, open } = setup();
    await sim.start();
    const b1 = ballot(1, P);
    const b2 = ballot(2, P);
    send(prepare(b2));
    await sim.runFor(20);
    await open(0);
    t.same(got.map(summary), ['promise 2 []']);
    send(accept(b2, [1]));
    await sim.runFor(20);
    send(accept(b1, [2])); // below the promise: a nack, nothing to write
    send(prepare(b2)); // the ballot already promised: nothing to write, reports slot 1
    await sim.runFor(50);
    t.equal(journal().gates.length, 2, 'the nack and the promise wrote nothing');
    t.equal(got.length, 1, 'the nack and the promise wait behind the write of slot 1');
    await open(1);
    t.same(got.slice(1).map(summary), ['accepted 2 [1]', 'nack 1 promised 2', 'promise 2 [1@2]']);

    // With nothing in flight, a step that writes nothing answers at once.
    send(accept(b1, [3]));
    await sim.runFor(20);
    t.equal(got.length, 5, 'answered without a write');
    t.equal(journal().gates.length, 2);
  },
);

t.test(
  'a failed write answers nothing it covered; the reloaded acceptor keeps its word',
  async (t) => {
    const { sim, send, journal, open, events } = setup();
    await sim.start();
    const b1 = ballot(1, P);
    const b2 = ballot(2, P);
    const b3 = ballot(3, P);
    send(accept(b1, [1]));
    await sim.runFor(20);
    await open(0);
    send(prepare(b2));
    await sim.runFor(20);
    await open(1);
    t.same(got.map(summary), ['accepted 1 [1]', 'promise 2 [1@1]'], 'acknowledged: slot 1, b2');

    send(accept(b2, [2]));
    await sim.runFor(20);
    send(accept(b2, [3]));
    send(prepare(b2)); // reports slot 2 (not durable): must never leave
    await sim.runFor(20);
    t.equal(journal().gates.length, 3);
    journal().gates[2]?.fail(new Error('disk on fire'));
    await sim.runFor(20);
    t.equal(got.length, 2, 'nothing answered from the failed write or the one queued behind it');
    t.ok(
      events.some((e) => e.type === 'failed' && String(e.error).includes('disk on fire')),
      'the acceptor failed through its supervision',
    );
    await sim.runFor(500); // restart backoff, then preStart reloads the journal
    t.ok(
      events.some((e) => e.type === 'restarted'),
      'restarted (default supervision) and reloaded',
    );
    t.equal(journal().gates.length, 3, 'the failed and queued writes were not retried');

    send(accept(b1, [4])); // below the promise sent before the failure
    await sim.runFor(20);
    t.same(got.slice(2).map(summary), ['nack 1 promised 2'], 'the promise of b2 holds');
    send(prepare(b3));
    await sim.runFor(20);
    await open(3);
    t.same(
      got.slice(3).map(summary),
      ['promise 3 [1@1]'],
      'slot 1 (acknowledged) is there; slots 2 and 3 (never acknowledged) are not',
    );

    // A crash while a write is held: the restarted acceptor has what it acknowledged.
    send(accept(b3, [5]));
    await sim.runFor(20);
    await open(4);
    send(accept(b3, [6]));
    await sim.runFor(20);
    send(accept(b3, [7]));
    await sim.runFor(20);
    t.equal(got.length, 5, 'slot 5 acknowledged; 6 in flight, 7 queued');
    sim.crash('a');
    await sim.runFor(50);
    await sim.restart('a');
    await sim.runFor(50);
    send(accept(b2, [8]));
    await sim.runFor(20);
    t.same(
      got.slice(5).map(summary),
      ['nack 2 promised 3'],
      'the promise of b3 survived the crash',
    );
    send(prepare(ballot(4, P)));
    await sim.runFor(20);
    await open(0);
    const last = got[got.length - 1];
    t.equal(last?.type, 'mp.promise');
    if (last?.type === 'mp.promise') {
      t.same(
        last.accepted.map((a) => [a.slot, a.ballot.round]),
        [
          [1, 1],
          [5, 3],
        ],
        'every acknowledged accept survived; the unacknowledged ones did not',
      );
      t.ok(compareBallots(last.ballot, b3) > 0);
    }
  },
);
