/**
 * The wire and journal forms of slot values: commands encoded once (bytes), entries packed
 * into one byte string on the wire and in the acceptor journal, malformed input refused with
 * a reason, and journals written by the earlier format (one `{ s, b, v }` record per entry,
 * the command as an object) still loading.
 */
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import { ballot } from '../../actors/paxos/ballot.js';
import { KvStateMachine } from '../../actors/paxos/kv-machine.js';
import type { MultiAcceptorHardState } from '../../actors/paxos/multi-acceptor.js';
import { MultiAcceptorCore } from '../../actors/paxos/multi-acceptor.js';
import { MultiLearnerCore } from '../../actors/paxos/multi-learner.js';
import {
  commandOf,
  commandValue,
  decodeCommand,
  fromWire,
  LOCAL_COMMAND,
  type MultiPaxosMessage,
  PACKED_ENTRIES,
  packSlotEntries,
  type SlotEntry,
  type SlotValue,
  toWire,
  unpackSlotEntries,
} from '../../actors/paxos/multi-messages.js';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

const cmd = (seq: number, value: unknown = seq) => ({
  clientId: 'c1',
  seq,
  op: { f: 'write', key: `k${seq}`, value },
});

/**
 * A command value as a peer receives it: `commandValue` also keeps the command itself under a
 * symbol key (LOCAL_COMMAND) for the proposer's own learner, which never crosses a wire.
 */
const cv = (c: Parameters<typeof commandValue>[0], term: number): SlotValue => {
  const v = commandValue(c, term);
  t.ok(LOCAL_COMMAND in v, 'commandValue keeps the command for the local learner');
  return v.k === 'cmd' ? { k: v.k, d: v.d, t: v.t } : v;
};

const entries: SlotEntry[] = [
  { slot: 1, value: cv(cmd(1, 'héllo ✓'), 3) },
  { slot: 2, value: { k: 'noop', t: 3 } },
  { slot: 7, value: { k: 'noop', t: 4, b: 'n1:x:ü:9' } },
  { slot: 2 ** 40, value: cv(cmd(2, { nested: [1, null, true] }), 5) },
];

t.test('packed entries round-trip: commands, no-ops and barriers', async (t) => {
  const back = unpackSlotEntries(packSlotEntries(entries));
  t.equal(back.length, entries.length);
  for (const [i, e] of back.entries()) {
    const want = entries[i] as SlotEntry;
    t.equal(e.slot, want.slot);
    t.same(e.value, want.value);
  }
  const first = back[0]?.value;
  t.ok(first?.k === 'cmd' && typeof decodeCommand(first.d) === 'object');
  if (first?.k === 'cmd') t.same(decodeCommand(first.d), cmd(1, 'héllo ✓'));
  t.same(unpackSlotEntries(packSlotEntries([])), [], 'an empty batch (keep-alive) is empty');
});

t.test('a message crosses the codec packed and comes back equal', async (t) => {
  const accept: MultiPaxosMessage = {
    type: 'mp.accept',
    from: 'a/proposer',
    ballot: ballot(3, 'a/proposer'),
    entries,
    sentAt: 12,
    rid: 4,
  };
  const wire = toWire(accept) as { entries: unknown };
  t.ok(wire.entries instanceof Uint8Array, 'entries travel as one byte string');
  const back = fromWire(decodeValue(encodeValue(wire)));
  t.notOk('problem' in back, 'accepted as well formed');
  const { [PACKED_ENTRIES]: packed, ...rest } = back as typeof back & {
    [PACKED_ENTRIES]?: Uint8Array;
  };
  t.same(rest, accept);
  t.ok(
    packed !== undefined && Buffer.from(packed).equals(Buffer.from(wire.entries as Uint8Array)),
    'the received bytes ride along under a symbol key',
  );
  t.same(
    Object.keys(decodeValue(encodeValue(back)) as object).sort(),
    Object.keys(rest).sort(),
    'which never crosses a wire',
  );
  // The acceptor journals those bytes as they are when the whole accept became records.
  const out = new MultiAcceptorCore({ id: 'A' }).step(back as MultiPaxosMessage);
  t.equal(out.persist?.batch?.packed, packed, 'persisted as received');
  const partial = new MultiAcceptorCore(
    { id: 'A' },
    { promised: ballot(0, ''), floor: 1, accepted: [] },
  );
  t.equal(
    partial.step(back as MultiPaxosMessage).persist?.batch,
    undefined,
    'not when an entry was skipped (slot at or below the floor)',
  );
  const hb: MultiPaxosMessage = {
    type: 'mp.heartbeat',
    from: 'a/proposer',
    ballot: ballot(3, 'a/proposer'),
    chosenUpTo: 9,
  };
  t.equal(toWire(hb), hb, 'messages without entries are sent as they are');
  // object-form entries (e.g. a local send in a test) are still accepted and checked
  t.same(fromWire(accept), accept);
});

t.test('malformed packed entries are refused with a reason (never applied)', async (t) => {
  const good = packSlotEntries(entries);
  const asDecide = (bytes: Uint8Array) =>
    fromWire({ type: 'mp.decide', from: 'p', entries: bytes });
  const problem = (bytes: Uint8Array): string => {
    const r = asDecide(bytes);
    return 'problem' in r ? r.problem : '';
  };
  t.equal(problem(good), '', 'negative control: the intact bytes pass');
  t.match(problem(good.subarray(0, 10)), /truncated header/);
  t.match(problem(good.subarray(0, good.length - 1)), /runs past the end/);
  const kind = good.slice();
  kind[16] = 9;
  t.match(problem(kind), /unknown value kind 9/);
  const slot = good.slice();
  new DataView(slot.buffer).setFloat64(0, -1, true);
  t.match(problem(slot), /bad slot/);
  const frac = good.slice();
  new DataView(frac.buffer).setFloat64(0, 1.5, true);
  t.match(problem(frac), /bad slot/);
  const emptyCmd = packSlotEntries([{ slot: 1, value: { k: 'noop', t: 1 } }]);
  emptyCmd[16] = 0;
  t.match(problem(emptyCmd), /empty command/);
  const badUtf8 = packSlotEntries([{ slot: 1, value: { k: 'noop', t: 1, b: 'ab' } }]);
  badUtf8[21] = 0xff;
  t.match(problem(badUtf8), /not UTF-8/);
  t.match(
    (
      fromWire({
        type: 'mp.accept',
        from: 'p',
        entries: [{ slot: 1, value: { k: 'cmd', t: 1 } }],
      }) as {
        problem: string;
      }
    ).problem,
    /mp.accept/,
    'object-form entries are checked too',
  );
});

t.test('a slot whose bytes are not a command is skipped alike by every learner', async (t) => {
  const bad: SlotEntry = { slot: 1, value: { k: 'cmd', d: encodeValue({ nope: 1 }), t: 1 } };
  const good: SlotEntry = { slot: 2, value: cv(cmd(2), 1) };
  for (const id of ['L1', 'L2']) {
    const sm = new KvStateMachine();
    const l = new MultiLearnerCore({ id, peers: ['L1', 'L2'], stateMachine: sm });
    const out = l.step({ type: 'mp.decide', from: 'P', entries: [bad, good] }, 0);
    t.same(
      out.applied.map((r) => [r.index, r.kind, r.kind === 'noop' ? r.invalid : undefined]),
      [
        [1, 'noop', 'the value is not a command (clientId, seq, op)'],
        [2, 'cmd', undefined],
      ],
      `${id} skipped slot 1 and applied slot 2`,
    );
    t.equal(sm.read('k2'), 2);
  }
  t.match(decodeCommand(new Uint8Array([0xc1])), /./, 'undecodable bytes give a reason');
});

async function journal(disk: MemoryDisk) {
  const hard = await MemoryHardStateStore.open<MultiAcceptorHardState>(disk, { name: 'h' });
  const log = await MemoryLogStore.open(disk, { name: 'j' });
  return { j: new AcceptorJournal(hard, log), log };
}

t.test('the journal writes one entry per accept batch and reloads it', async (t) => {
  const disk = new MemoryDisk();
  const { j, log } = await journal(disk);
  await j.load();
  const core = new MultiAcceptorCore({ id: 'A' });
  const b = ballot(2, 'P');
  const out = core.step({ type: 'mp.accept', from: 'P', ballot: b, entries, sentAt: 0 });
  t.ok(out.persist?.records?.length === entries.length);
  await j.persist(out.persist ?? {});
  t.equal(log.lastIndex() - log.firstIndex() + 1, 1, 'one journal entry for the batch');
  await j.close();
  const again = await journal(disk);
  const state = await again.j.load();
  t.same(state.promised, b);
  t.same(
    state.accepted.map((a) => [a.slot, a.ballot, a.value]),
    entries.map((e) => [e.slot, b, e.value]),
  );
  await again.j.close();
});

t.test('a journal of the earlier format (one object record per entry) still loads', async (t) => {
  const disk = new MemoryDisk();
  const { j, log } = await journal(disk);
  const b1 = ballot(1, 'P');
  const b2 = ballot(2, 'Q');
  const legacy = (index: number, s: number, b: typeof b1, v: unknown) => ({
    index,
    term: b.round,
    type: 'normal' as const,
    data: encodeValue({ s, b, v }),
  });
  await log.append([
    legacy(1, 1, b1, { k: 'cmd', c: cmd(1), t: 1 }),
    legacy(2, 2, b1, { k: 'noop', t: 1 }),
    legacy(3, 1, b2, { k: 'cmd', c: cmd(9), t: 2 }),
  ]);
  await j.close();
  const again = await journal(disk);
  const state = await again.j.load();
  t.same(state.promised, b2, 'promised at least the highest accepted ballot');
  const bySlot = new Map(state.accepted.map((a) => [a.slot, a]));
  const s1 = bySlot.get(1)?.value;
  t.ok(s1?.k === 'cmd' && s1.d instanceof Uint8Array, 'the command is upgraded to bytes');
  if (s1?.k === 'cmd') t.same(decodeCommand(s1.d), cmd(9), 'the later ballot wins');
  t.same(bySlot.get(2)?.value, { k: 'noop', t: 1 });
  // new-format batches append after the old records
  const core = new MultiAcceptorCore({ id: 'A' }, state);
  const out = core.step({
    type: 'mp.accept',
    from: 'R',
    ballot: ballot(3, 'R'),
    entries: [{ slot: 3, value: cv(cmd(3), 3) }],
    sentAt: 0,
  });
  await again.j.persist(out.persist ?? {});
  await again.j.close();
  const third = await journal(disk);
  const s3 = await third.j.load();
  t.same(s3.accepted.map((a) => a.slot).sort(), [1, 2, 3], 'old and new records load together');
  await third.j.close();
});

t.test('a corrupt journal entry is reported, not skipped', async (t) => {
  const disk = new MemoryDisk();
  const { j, log } = await journal(disk);
  await log.append([
    {
      index: 1,
      term: 1,
      type: 'normal',
      data: encodeValue({ b: ballot(1, 'P'), e: new Uint8Array([1, 2]) }),
    },
  ]);
  await t.rejects(j.load(), { code: 'SYNOD_ERR_PAXOS_BAD_STATE', message: /truncated header/ });
});

t.test(
  'journal compaction drops the prefix whose slots are all at or below the floor',
  async (t) => {
    const disk = new MemoryDisk();
    const { j, log } = await journal(disk);
    await j.load();
    const v = (n: number) => cv(cmd(n), 1);
    const rec = (slot: number, b: ReturnType<typeof ballot>) => ({
      slot,
      ballot: b,
      value: v(slot),
    });
    const b1 = ballot(1, 'P');
    const b2 = ballot(2, 'Q');
    await j.persist({ records: [rec(1, b1), rec(2, b1)] });
    await j.persist({ records: [rec(3, b1), rec(4, b1)] });
    await j.persist({ records: [rec(2, b2), rec(5, b2)] }); // slot 2 again, in a later ballot
    t.equal(log.lastIndex(), 3);
    await j.persist({ hard: { promised: b2, floor: 3 }, compactTo: 3 });
    t.equal(log.firstIndex(), 2, 'entry 1 (slots 1–2) is gone; entry 2 holds slot 4 > floor');
    await j.persist({ hard: { promised: b2, floor: 4 }, compactTo: 4 });
    t.equal(log.firstIndex(), 3, 'entry 2 goes once the floor passes slot 4');
    await j.close();
    const again = await journal(disk);
    const state = await again.j.load();
    t.same(state.accepted.map((a) => a.slot).sort(), [5], 'only slots above the floor come back');
    t.equal(state.floor, 4);
    await again.j.close();
  },
);

t.test('commands decode from views into a larger buffer (one wrapper per buffer)', async (t) => {
  const a = encodeValue(['c1', 1, { f: 'write', key: 'k', value: 'v' }]);
  const b = encodeValue(['c2', 2, { bin: Buffer.from([1, 2, 3]) }]);
  const whole = Buffer.concat([Buffer.from([9, 9, 9]), a, b]);
  const va = whole.subarray(3, 3 + a.length);
  const vb = whole.subarray(3 + a.length);
  t.same(decodeCommand(va), { clientId: 'c1', seq: 1, op: { f: 'write', key: 'k', value: 'v' } });
  const cb = decodeCommand(vb);
  t.ok(
    typeof cb !== 'string' && Buffer.isBuffer((cb.op as { bin: unknown }).bin),
    'a bin inside a Buffer view decodes to a Buffer, as before',
  );
  // A plain Uint8Array view of the same bytes (another buffer: an unpacked message, a
  // restarted acceptor's journal): still a Buffer, so a replica that got the bytes on another
  // path hands its state machine the same class.
  const plain = new Uint8Array(whole.length);
  plain.set(whole);
  for (const view of [plain.subarray(3 + a.length), plain.slice(3 + a.length)]) {
    const pb = decodeCommand(view);
    t.ok(
      typeof pb !== 'string' && Buffer.isBuffer((pb.op as { bin: unknown }).bin),
      'and from a Uint8Array (view or whole) to a Buffer too',
    );
  }
  t.match(decodeCommand(whole.subarray(0, 3)), /./, 'bad bytes in a view still give a reason');
});

t.test('the proposer keeps its command only when decoding the bytes gives it back', async (t) => {
  const plain = { clientId: 'c', seq: 1, op: { f: 'write', key: 'k', value: [1, 'x', null] } };
  const v = commandValue(plain, 1);
  t.equal(v.k === 'cmd' && commandOf(v), plain, 'a plain command: the very object');
  for (const [why, op] of [
    ['-0', { value: -0 }],
    ['undefined', { value: undefined }],
    ['a byte array', { value: Buffer.from([1]) }],
    ['a lone surrogate', { value: '\ud800' }],
    ['a Map', { value: new Map() }],
    // biome-ignore lint/suspicious/noSparseArray: a hole is the point
    ['a sparse array', { value: [1, , 3] }],
  ] as const) {
    const c = { clientId: 'c', seq: 2, op };
    const x = commandValue(c, 1);
    t.notOk(LOCAL_COMMAND in x, `${why}: not kept`);
    const got = x.k === 'cmd' ? commandOf(x) : undefined;
    t.same(got, decodeCommand(x.k === 'cmd' ? x.d : new Uint8Array()), `${why}: decoded`);
  }
  t.notOk(
    LOCAL_COMMAND in commandValue({ clientId: 'c', seq: 1.5, op: 1 }, 1),
    'a seq that is not an integer: not kept',
  );
});
