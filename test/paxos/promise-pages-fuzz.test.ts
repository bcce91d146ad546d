/**
 * Session 14 reviewer's fuzz of phase 1 in pages: two candidates and three acceptor cores over
 * a network that drops, duplicates and reorders (every message through msgpack and fromWire),
 * tiny page budgets, acceptors compacting at random between pages, far slots (MAX_SPAN shrunk
 * so they occur), starting from a Paxos-consistent history in which most slots were chosen
 * in ballot 2 while another acceptor holds an older value of ballot 1 (or a ballot-3 copy of
 * the chosen value). Safety: every accept any leader sends for a chosen slot carries the
 * chosen value, and no slot is chosen with two values. Liveness: after faults stop, one of
 * them leads.
 */
import t from 'tap';
import { type Ballot, ballot } from '../../actors/paxos/ballot.js';
import { MultiAcceptorCore, SlotTable } from '../../actors/paxos/multi-acceptor.js';
import { MultiLeaderCore } from '../../actors/paxos/multi-leader.js';
import {
  commandValue,
  fromWire,
  type MultiPaxosMessage,
  type SlotValue,
  toWire,
} from '../../actors/paxos/multi-messages.js';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { Random } from '../../lib/random.js';
import { leaderOptions } from '../helpers/paxos-leader.js';

// CI: 150 seeds; `FUZZ_SEEDS=2000 FUZZ_FROM=S npx tap …` for a long run.
const SEEDS = Number(process.env.FUZZ_SEEDS ?? 150);
const FROM = Number(process.env.FUZZ_FROM ?? 1);

const ACC = ['A', 'B', 'C'];
const key = (v: SlotValue): string =>
  v.k === 'cmd' ? `cmd:${Buffer.from(v.d).toString('hex')}` : `noop:${v.b ?? ''}`;
const cmd = (tag: string, pad: number): SlotValue =>
  commandValue({ clientId: tag, seq: 1, op: { tag, pad: 'x'.repeat(pad) } }, 1);

function wire(m: MultiPaxosMessage): MultiPaxosMessage {
  const back = fromWire(decodeValue(encodeValue(toWire(m))));
  if ('problem' in back && typeof back.problem === 'string') throw new Error(back.problem);
  return back as MultiPaxosMessage;
}

interface Result {
  violation?: string;
  leader?: string;
  pagedPromises: number;
  compactions: number;
  farPages: number;
}

function runSeed(seed: number): Result {
  const rng = new Random(seed);
  const span = 20 + rng.int(40);
  const oldMax = (SlotTable as unknown as { MAX_SPAN: number }).MAX_SPAN;
  (SlotTable as unknown as { MAX_SPAN: number }).MAX_SPAN = rng.chance(0.5) ? span : 1 << 20;
  try {
    const n = 20 + rng.int(80);
    const acceptors = new Map<string, MultiAcceptorCore>();
    const leaseMs = seed % 2 === 1 ? 60 : 0;
    for (const id of ACC) acceptors.set(id, new MultiAcceptorCore({ id, leaseMs }));
    // chosen[slot] = value key; prefix of fully chosen slots (legitimately compactable)
    const chosen = new Map<number, string>();
    const b1 = ballot(1, 'X');
    const b2 = ballot(2, 'Y');
    const b3 = ballot(3, 'Z');
    const byBallot = new Map<string, Map<string, { slot: number; value: SlotValue }[]>>();
    const add = (b: string, a: string, slot: number, value: SlotValue) => {
      let m = byBallot.get(b);
      if (!m) {
        m = new Map();
        byBallot.set(b, m);
      }
      let l = m.get(a);
      if (!l) {
        l = [];
        m.set(a, l);
      }
      l.push({ slot, value });
    };
    let chosenPrefix = 0;
    let prefixOpen = true;
    for (let s = 1; s <= n; s++) {
      const pad = rng.int(100);
      const isChosen = rng.chance(0.8);
      if (isChosen) {
        const Y = cmd(`Y${s}`, pad);
        chosen.set(s, key(Y));
        const third = ACC[rng.int(3)] as string;
        for (const a of ACC) if (a !== third) add('2', a, s, Y);
        const r = rng.int(3);
        if (r === 1) add('1', third, s, cmd(`X${s}`, pad));
        else if (r === 2) add('3', third, s, Y);
        if (prefixOpen) chosenPrefix = s;
      } else {
        prefixOpen = false;
        const a = ACC[rng.int(3)] as string;
        add(rng.chance(0.5) ? '1' : '3', a, s, cmd(`U${s}`, pad));
      }
    }
    const ballots: Record<string, Ballot> = { '1': b1, '2': b2, '3': b3 };
    for (const b of ['1', '2', '3']) {
      for (const [a, entries] of byBallot.get(b) ?? []) {
        // some acceptors had ballot 1 values accepted *before* they promised 2: order by ballot
        (acceptors.get(a) as MultiAcceptorCore).step({
          type: 'mp.accept',
          from: (ballots[b] as Ballot).proposer,
          ballot: ballots[b] as Ballot,
          entries: entries.map((e) => ({ slot: e.slot, value: e.value })),
          sentAt: 0,
        });
      }
    }
    // Every acceptor promised at least ballot 3 (Z ran phase 1 before, with a quorum).
    for (const a of acceptors.values())
      a.step({ type: 'mp.prepare', from: 'Z', ballot: b3, fromSlot: 1 });

    const pageBytes = 1 + rng.int(400);
    const P = new MultiLeaderCore(
      leaderOptions({
        id: 'P',
        promisePageBytes: pageBytes,
        maxBatch: 8,
        leaseMs,
        random: new Random(seed * 7 + 1),
      }),
      5,
      0,
    );
    const P2 = new MultiLeaderCore(
      leaderOptions({
        id: 'P2',
        promisePageBytes: 1 + rng.int(400),
        maxBatch: 8,
        leaseMs,
        random: new Random(seed * 7 + 2),
      }),
      5,
      0,
    );
    const proposers = new Map([
      ['P', P],
      ['P2', P2],
    ]);
    const net: { to: string; msg: MultiPaxosMessage }[] = [];
    // per slot: ballot key -> acceptors that accepted with value
    const votes = new Map<number, Map<string, { who: Set<string>; v: string }>>();
    let violation: string | undefined;
    let paged = 0;
    let compactions = 0;
    let farPages = 0;
    const post = (out: { send: { to: string; msg: MultiPaxosMessage }[] }, faults: boolean) => {
      for (const s of out.send) {
        const m = s.msg;
        if (m.type === 'mp.accept') {
          for (const e of m.entries) {
            const c = chosen.get(e.slot);
            if (c !== undefined && key(e.value) !== c) {
              violation ??= `seed ${seed}: ${m.from} proposes ${key(e.value).slice(0, 40)} for slot ${e.slot}, chosen ${c.slice(0, 40)}`;
            }
          }
        }
        if (m.type === 'mp.promise' && m.more !== undefined) paged++;
        if (!ACC.includes(s.to) && !proposers.has(s.to)) continue; // learners
        if (faults && rng.chance(0.1)) continue;
        net.push({ to: s.to, msg: wire(m) });
        if (faults && rng.chance(0.1)) net.push({ to: s.to, msg: wire(m) });
      }
    };
    let now = 0;
    const end = 6000;
    const healAt = 3000;
    let nextTick = 0;
    while (now < end && violation === undefined) {
      const faults = now < healAt;
      if (net.length === 0 || now >= nextTick) {
        if (now >= nextTick) {
          for (const p of proposers.values()) post(p.tick(now), faults);
          nextTick = now + 10;
        }
        if (net.length === 0) {
          now = nextTick;
          continue;
        }
      }
      now += rng.int(2);
      // random compaction: an acceptor compacts to somewhere in the chosen prefix
      if (rng.chance(0.01) && chosenPrefix > 0) {
        const a = acceptors.get(ACC[rng.int(3)] as string) as MultiAcceptorCore;
        const upTo = 1 + rng.int(chosenPrefix);
        if (upTo > a.compactedFloor) compactions++;
        a.step({ type: 'mp.compact', from: 'L', upTo });
      }
      const i = faults ? rng.int(net.length) : 0;
      const { to, msg } = net.splice(i, 1)[0] as { to: string; msg: MultiPaxosMessage };
      const acc = acceptors.get(to);
      if (acc) {
        if (
          msg.type === 'mp.prepare' &&
          (SlotTable as unknown as { MAX_SPAN: number }).MAX_SPAN < 1000
        )
          farPages++;
        const out = acc.step(msg, now);
        if (msg.type === 'mp.accept') {
          for (const e of msg.entries) {
            const got = acc.acceptedAt(e.slot);
            if (
              !got ||
              got.ballot.round !== msg.ballot.round ||
              got.ballot.proposer !== msg.ballot.proposer
            )
              continue;
            let per = votes.get(e.slot);
            if (!per) {
              per = new Map();
              votes.set(e.slot, per);
            }
            const bk = `${msg.ballot.round}/${msg.ballot.proposer}`;
            let vv = per.get(bk);
            if (!vv) {
              vv = { who: new Set(), v: key(got.value) };
              per.set(bk, vv);
            }
            vv.who.add(to);
            if (vv.who.size >= 2) {
              const c = chosen.get(e.slot);
              if (c !== undefined && c !== vv.v)
                violation ??= `seed ${seed}: slot ${e.slot} chosen twice`;
              chosen.set(e.slot, vv.v);
            }
          }
        }
        post(out, faults);
        continue;
      }
      const p = proposers.get(to);
      if (p) post(p.step(msg, now), faults);
    }
    const leaders = [...proposers.values()].filter((p) => p.isLeader).map((p) => p.view().id);
    const leader = leaders[0];
    if (violation === undefined && leader === undefined)
      violation = `seed ${seed}: nobody leads at the end`;
    return {
      ...(violation !== undefined ? { violation } : {}),
      ...(leader !== undefined ? { leader } : {}),
      pagedPromises: paged,
      compactions,
      farPages,
    };
  } finally {
    (SlotTable as unknown as { MAX_SPAN: number }).MAX_SPAN = oldMax;
  }
}

t.test('paged phase 1 under drops, duplicates, reordering, compaction and far slots', async (t) => {
  let paged = 0;
  let compactions = 0;
  let farPages = 0;
  const failures: string[] = [];
  for (let seed = FROM; seed < FROM + SEEDS; seed++) {
    const r = runSeed(seed);
    paged += r.pagedPromises;
    compactions += r.compactions;
    farPages += r.farPages;
    if (r.violation) failures.push(r.violation);
  }
  t.comment(
    `${SEEDS} seeds: ${paged} paged promises, ${compactions} compactions, ${farPages} prepares with far slots possible`,
  );
  t.same(failures, [], 'no violation');
});
