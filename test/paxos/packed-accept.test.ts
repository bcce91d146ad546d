/**
 * Accepts kept packed: an acceptor that gets an `mp.accept` from another process checks its
 * packed entries where they lie (`packedAcceptFromWire`), stores each accepted entry as a byte
 * offset into those bytes (`acceptPacked`, `SlotTable.putPacked`), journals the bytes as they
 * are, and its learner applies and retains the values from there (`LocalSlots`). Checked
 * here against the object path (`fromWire` + `step`): the same replies, the same accepted
 * proposals, the same journal after a restart, the same applied state and catch-up answers,
 * and the same refusals of malformed input.
 */
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import { type Ballot, ballot } from '../../actors/paxos/ballot.js';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import {
  MultiAcceptorCore,
  type MultiAcceptorHardState,
  type MultiAcceptorOutput,
} from '../../actors/paxos/multi-acceptor.js';
import { MultiLearnerCore } from '../../actors/paxos/multi-learner.js';
import {
  commandValue,
  fromWire,
  localForm,
  type MAccept,
  type MultiPaxosMessage,
  packedAcceptFromWire,
  packSlotEntries,
  type SlotEntry,
  type SlotValue,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

const cmd = (seq: number, value: unknown = seq) => ({
  clientId: `c${seq % 3}`,
  seq,
  op: { f: 'write', key: `k${seq % 5}`, value },
});
/** A command value as a peer has it (without the proposer's own command object). */
const cv = (seq: number, term: number, value?: unknown): SlotValue => {
  const v = commandValue(cmd(seq, value), term);
  return v.k === 'cmd' ? { k: 'cmd', d: v.d, t: v.t } : v;
};

/** The accept as another process receives it: through toWire, the codec and back. */
function received(m: MAccept): unknown {
  return decodeValue(encodeValue(toWire(m)));
}

function accept(b: Ballot, entries: SlotEntry[], rid?: number): MAccept {
  return {
    type: 'mp.accept',
    from: 'p/proposer',
    ballot: b,
    entries,
    sentAt: 5,
    ...(rid !== undefined ? { rid } : {}),
  };
}

function packedStep(core: MultiAcceptorCore, raw: unknown): MultiAcceptorOutput {
  const m = packedAcceptFromWire(raw);
  if (m === undefined || 'problem' in m) throw new Error(`not a packed accept: ${String(m)}`);
  return core.acceptPacked(m, 0);
}

function objectStep(core: MultiAcceptorCore, raw: unknown): MultiAcceptorOutput {
  const m = fromWire(raw);
  if ('problem' in m) throw new Error(m.problem);
  return core.step(m, 0);
}

const b1 = ballot(1, 'p/proposer');
const b2 = ballot(2, 'q/proposer');

/** A run of accepts with duplicates, a gap, a no-op, a barrier, a far slot, a new ballot. */
const script: MAccept[] = [
  accept(b1, [
    { slot: 1, value: cv(1, 1) },
    { slot: 2, value: cv(2, 1, 'héllo ✓') },
    { slot: 3, value: { k: 'noop', t: 1 } },
  ]),
  accept(b1, [
    { slot: 3, value: { k: 'noop', t: 1 } }, // again in the same ballot: a duplicate
    { slot: 4, value: cv(4, 1, { nested: [1, null, true] }) },
  ]),
  accept(
    b1,
    [
      { slot: 6, value: { k: 'noop', t: 1, b: 'n1:x:ü:9' } },
      { slot: 5, value: cv(5, 1) },
    ],
    7,
  ),
  accept(b1, [{ slot: 2 ** 40, value: cv(9, 1) }]), // far above the others
  accept(b1, []), // a keep-alive
  accept(b2, [
    { slot: 4, value: cv(4, 1, { nested: [1, null, true] }) },
    { slot: 7, value: cv(7, 2) },
  ]),
];

t.test('packed accepts decide exactly as object accepts, and journal alike', async (t) => {
  const diskP = new MemoryDisk();
  const diskO = new MemoryDisk();
  const open = async (disk: MemoryDisk) =>
    new AcceptorJournal(
      await MemoryHardStateStore.open<MultiAcceptorHardState>(disk, { name: 'h' }),
      await MemoryLogStore.open(disk, { name: 'j' }),
    );
  const diskR = new MemoryDisk();
  const jp = await open(diskP);
  const jo = await open(diskO);
  const jr = await open(diskR);
  await jp.load();
  await jo.load();
  await jr.load();
  const packed = new MultiAcceptorCore({ id: 'A' });
  const object = new MultiAcceptorCore({ id: 'A' });
  const records = new MultiAcceptorCore({ id: 'A' });
  let batches = 0;
  for (const m of script) {
    const outP = packedStep(packed, received(m));
    const outO = objectStep(object, received(m));
    t.same(outP.send, outO.send, `same reply to ${JSON.stringify(m.entries.map((e) => e.slot))}`);
    t.equal(outP.persist === undefined, outO.persist === undefined, 'a write on both or neither');
    if (outP.persist?.batch) batches++;
    t.equal(Boolean(outO.persist?.batch), Boolean(outP.persist?.batch), 'bytes or records alike');
    // Built in this process (no packed bytes at hand): records, the earlier journal form.
    const outR = records.step(m, 0);
    t.same(outR.send, outO.send);
    t.notOk(outR.persist?.batch);
    if (outP.persist) await jp.persist(outP.persist);
    if (outO.persist) await jo.persist(outO.persist);
    if (outR.persist) await jr.persist(outR.persist);
  }
  t.equal(batches, 4, 'accepts whose every entry was accepted are journalled as received');
  for (const slot of [1, 2, 3, 4, 5, 6, 7, 8, 2 ** 40]) {
    t.same(packed.acceptedAt(slot), object.acceptedAt(slot), `slot ${slot} alike`);
  }
  t.same(packed.view(), object.view());
  // A promise (phase 1) reports the same proposals, values made from the packed bytes.
  const prepare: MultiPaxosMessage = {
    type: 'mp.prepare',
    from: 'r/proposer',
    ballot: ballot(3, 'r/proposer'),
    fromSlot: 1,
  };
  t.same(packed.step(prepare).send, object.step(prepare).send, 'same promise');
  // Restarted from their journals, both hold the same proposals.
  await jp.close();
  await jo.close();
  await jr.close();
  const sp = await (await open(diskP)).load();
  const so = await (await open(diskO)).load();
  const sr = await (await open(diskR)).load();
  const bySlot = (s: typeof sp) =>
    [...s.accepted].sort((a, b) => a.slot - b.slot).map((a) => [a.slot, a.ballot, a.value]);
  t.same(bySlot(sp), bySlot(so), 'same journal contents after a restart');
  t.same(bySlot(sp), bySlot(sr), 'and the same as a journal of records');
  t.same(sp.promised, so.promised);
  t.equal(sp.accepted.length, 8, 'every slot accepted is in the journal');
});

t.test('an accept with a skipped entry journals only the entries accepted', async (t) => {
  const core = new MultiAcceptorCore({ id: 'A' }, { promised: b1, floor: 2, accepted: [] });
  const m = accept(b1, [
    { slot: 2, value: cv(2, 1) }, // at the floor: skipped
    { slot: 3, value: cv(3, 1) },
    { slot: 3, value: cv(3, 1) }, // twice in one accept
    { slot: 4, value: { k: 'noop', t: 1 } },
  ]);
  const out = packedStep(core, received(m));
  t.notOk(out.persist?.batch, 'not the bytes as received (they hold slot 2)');
  t.same(
    out.persist?.records?.map((r) => [r.slot, r.value]),
    [
      [3, cv(3, 1)],
      [4, { k: 'noop', t: 1 }],
    ],
  );
  t.same((out.send[0]?.msg as unknown as { slots?: number[] } | undefined)?.slots, [3, 3, 4]);
  // a stale ballot is refused and nothing is stored
  const stale = packedStep(core, received(accept(ballot(0, 'z'), [{ slot: 9, value: cv(9, 1) }])));
  t.equal(stale.send[0]?.msg.type, 'mp.nack');
  t.equal(stale.persist, undefined);
  t.equal(core.acceptedAt(9), undefined);
});

t.test('only wire-form accepts take the packed path', async (t) => {
  const m = accept(b1, [{ slot: 1, value: cv(1, 1) }]);
  t.equal(packedAcceptFromWire(m), undefined, 'object entries: use fromWire');
  t.equal(packedAcceptFromWire(localForm(m, toWire(m))), undefined, 'a local send: fromWire');
  t.equal(packedAcceptFromWire(received({ ...m, type: 'mp.decide' } as never)), undefined);
  t.equal(packedAcceptFromWire(null), undefined);
  t.equal(packedAcceptFromWire('mp.accept'), undefined);
  const r = packedAcceptFromWire(received(m));
  t.ok(r !== undefined && !('problem' in r) && r.entries instanceof Uint8Array);
});

t.test('malformed packed accepts are refused with the reasons fromWire gives', async (t) => {
  const good = packSlotEntries([
    { slot: 1, value: cv(1, 1) },
    { slot: 2, value: { k: 'noop', t: 1, b: 'ab' } },
  ]);
  const bad: [string, Uint8Array][] = [
    ['truncated header', good.subarray(0, 10)],
    ['runs past the end', good.subarray(0, good.length - 1)],
  ];
  const set = (f: (b: Uint8Array) => void) => {
    const b = good.slice();
    f(b);
    return b;
  };
  bad.push(['unknown value kind', set((b) => (b[16] = 9))]);
  bad.push(['bad slot', set((b) => new DataView(b.buffer).setFloat64(0, -1, true))]);
  bad.push(['bad slot', set((b) => new DataView(b.buffer).setFloat64(0, 1.5, true))]);
  bad.push(['bad term', set((b) => new DataView(b.buffer).setFloat64(8, Number.NaN, true))]);
  const noop = packSlotEntries([{ slot: 1, value: { k: 'noop', t: 1 } }]);
  noop[16] = 0;
  bad.push(['empty command', noop]);
  const withData = packSlotEntries([{ slot: 1, value: { k: 'noop', t: 1, b: 'x' } }]);
  withData[16] = 1;
  bad.push(['no-op with data', withData]);
  const utf8 = packSlotEntries([{ slot: 1, value: { k: 'noop', t: 1, b: 'ab' } }]);
  utf8[21] = 0xff;
  bad.push(['not UTF-8', utf8]);
  const wire = (entries: Uint8Array) => ({
    type: 'mp.accept',
    from: 'p',
    ballot: b1,
    entries,
    sentAt: 0,
  });
  const ok = packedAcceptFromWire(wire(good));
  t.ok(ok !== undefined && !('problem' in ok), 'negative control: the intact bytes pass');
  for (const [why, bytes] of bad) {
    const p = packedAcceptFromWire(wire(bytes));
    const o = fromWire(wire(bytes));
    t.ok(p !== undefined && 'problem' in p, `refused: ${why}`);
    t.match((p as { problem: string }).problem, why);
    t.same(p, o, `the same reason as fromWire (${why})`);
  }
  const noBallot = packedAcceptFromWire({ ...wire(good), ballot: { round: 'x' } });
  t.match((noBallot as { problem: string }).problem, /ballot/, 'the other fields are checked');
  const noSender = packedAcceptFromWire({ ...wire(good), from: '' });
  t.match((noSender as { problem: string }).problem, /from/);
});

t.test('a learner applies packed slots as it applies values, and serves them back', async (t) => {
  const run = (packedPath: boolean) => {
    const acceptor = new MultiAcceptorCore({ id: 'A' });
    const sm = new KvStateMachine();
    const learner = new MultiLearnerCore({
      id: 'L1',
      peers: ['L1', 'L2'],
      stateMachine: sm,
      snapshotEvery: 0,
      localSlots: acceptor.slots,
    });
    const applied: unknown[] = [];
    for (const m of script.slice(0, 3)) {
      if (packedPath) packedStep(acceptor, received(m));
      else objectStep(acceptor, received(m));
    }
    // slots 5 and 6 first (parked until 1-4 come), then 1-4
    for (const runs of [
      [5, 6],
      [1, 4],
    ]) {
      const out = learner.step({ type: 'mp.chosen', from: 'P', ballot: b1, runs }, 0);
      applied.push(...out.applied);
    }
    const reply = learner.step({ type: 'mp.catchup', from: 'L2', fromSlot: 1, toSlot: 6 }, 0);
    return { sm, applied, learner, reply };
  };
  const p = run(true);
  const o = run(false);
  t.equal(p.learner.applied, 6, 'every chosen slot applied');
  t.same(p.applied, o.applied, 'the same applied records');
  t.same(p.sm.snapshot(), o.sm.snapshot(), 'the same state');
  t.same(p.reply.send, o.reply.send, 'the same catch-up reply (values made from the bytes)');
  for (let s = 1; s <= 6; s++) t.same(p.learner.valueAt(s), o.learner.valueAt(s), `slot ${s}`);
  t.same(p.learner.session('c1', 4), o.learner.session('c1', 4));
  // a slot chosen in a later ballot than the one the acceptor holds is not taken from it
  const late = p.learner.step(
    { type: 'mp.chosen', from: 'P', ballot: ballot(5, 'p/proposer'), runs: [7, 7] },
    0,
  );
  t.same(late.applied, [], 'slot 7 is not applied from an older proposal');
});
