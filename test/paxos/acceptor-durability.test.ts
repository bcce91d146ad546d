/**
 * The acceptor actor's durability contract, end to end on a disk with a slow sync (virtual
 * time): an `mp.accepted` leaves only after the accepted records are durable, and a crash
 * before the sync loses the records *and* the reply, so no proposer ever counted a vote the
 * acceptor forgot.
 */
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import { type Ballot, ballot } from '../../actors/paxos/ballot.js';
import type { MultiAcceptorHardState } from '../../actors/paxos/multi-acceptor.js';
import { MultiPaxosAcceptor } from '../../actors/paxos/multi-acceptor-actor.js';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { Actor } from '../../lib/actor.js';
import { Simulation } from '../../lib/sim/simulation.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

const SYNC_MS = 50;
const got: { at: number; msg: MultiPaxosMessage }[] = [];

class Probe extends Actor<MultiPaxosMessage> {
  receive(msg: MultiPaxosMessage): void {
    const m = fromWire(msg);
    if (!('problem' in m)) got.push({ at: this.ctx.clock.now(), msg: m });
  }
}

const sim: Simulation<MemoryDisk> = new Simulation<MemoryDisk>({
  seed: 7,
  nodes: ['a', 'p'],
  createDisk: () => new MemoryDisk({ clock: sim.clock, syncDelayMs: SYNC_MS }),
  setup: async (node) => {
    if (node.id === 'p') {
      node.system.spawn('probe', new Probe());
      return;
    }
    const hard = await MemoryHardStateStore.open<MultiAcceptorHardState>(node.disk, {
      name: 'paxos-acceptor',
    });
    const log = await MemoryLogStore.open(node.disk, { name: 'paxos-acceptor' });
    node.system.spawn(
      'paxos/acceptor',
      new MultiPaxosAcceptor({ journal: new AcceptorJournal(hard, log) }),
    );
  },
});

const send = (msg: MultiPaxosMessage) =>
  sim.system('p').send('a/paxos/acceptor', toWire(msg) as MultiPaxosMessage);
const accept = (b: Ballot, slots: number[]): MultiPaxosMessage => ({
  type: 'mp.accept',
  from: 'p/probe',
  ballot: b,
  entries: slots.map((slot) => ({
    slot,
    value: commandValue({ clientId: 'c', seq: slot, op: { slot } }, b.round),
  })),
  sentAt: sim.clock.now(),
});

t.test('accepted only after the write is durable; a crash before it loses both', async (t) => {
  await sim.start();
  const b1 = ballot(1, 'p/probe');
  const sentAt = sim.clock.now();
  send(accept(b1, [1, 2]));
  await sim.runFor(SYNC_MS - 5);
  t.same(got, [], 'no accepted while the records are not durable');
  t.ok(sim.disk('a').unsynced > 0, 'the write is still in flight');
  // records, then the new promised ballot: two syncs
  await sim.runFor(SYNC_MS * 2 + 20);
  t.equal(got.length, 1, 'accepted once the syncs completed');
  const first = got[0];
  t.equal(first?.msg.type, 'mp.accepted');
  if (first?.msg.type === 'mp.accepted') t.same(first.msg.slots, [1, 2]);
  t.ok((first?.at ?? 0) >= sentAt + SYNC_MS, `sent at ${first?.at}, after the sync`);

  got.length = 0;
  send(accept(ballot(2, 'p/probe'), [3]));
  await sim.runFor(SYNC_MS / 2);
  sim.crash('a');
  await sim.runFor(200);
  t.same(got, [], 'the crashed acceptor never answered the accept it lost');
  await sim.restart('a');
  // a new proposer's prepare: the promise reports what survived
  sim.system('p').send('a/paxos/acceptor', {
    type: 'mp.prepare',
    from: 'p/probe',
    ballot: ballot(5, 'p/probe'),
    fromSlot: 1,
  } as MultiPaxosMessage);
  await sim.runFor(SYNC_MS * 3);
  const promise = got.find((g) => g.msg.type === 'mp.promise')?.msg;
  t.equal(promise?.type, 'mp.promise');
  if (promise?.type === 'mp.promise') {
    t.same(
      promise.accepted.map((a) => [a.slot, a.ballot.round]),
      [
        [1, 1],
        [2, 1],
      ],
      'slots 1 and 2 survived in ballot 1; slot 3 (never acknowledged) is gone',
    );
  }
});
