/**
 * The core-level randomized run shared by test/raft/core-random.test.ts and its negative
 * control: random delivery order, drops, duplicates, partitions, crash-restarts, snapshots,
 * transfers and proposals with every invariant checked after every step, then heal and
 * require progress.
 */

import type { RaftMessage } from '../../actors/raft/core/types.js';
import { type AppliedView, RaftInvariants } from '../../actors/raft/invariants.js';
import { CoreNet, cmd, coreView, durableView, pushCoreState, sameState } from './raft-net.js';

export function runCoreFuzz(
  seed: number,
  steps = 1500,
  nodes = 5,
  faults: CoreNet['faults'] = {},
): { commits: number } {
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const net = new CoreNet(ids, { maxSizePerMsg: 64, snapshotChunkSize: 40 }, seed);
  net.faults = faults;
  const rnd = net.random.fork();
  const inv = new RaftInvariants();
  const appliedSeen = new Map<string, number>();
  // The views only change when some node's Raft state or durable records do; a step that
  // changed neither (a dropped message, a tick that only counted) leaves views equal to the
  // ones that passed the last check, which cannot fail again (see pushCoreState).
  let lastSig: unknown[] | undefined;
  const check = () => {
    const sig: unknown[] = [];
    for (const id of ids) {
      pushCoreState(sig, net.core(id), !net.down.has(id));
      const d = net.durable.get(id)!;
      // durable records are replaced, never changed in place (raft-net.ts)
      sig.push(d, d.entries, d.hard, d.snapshot);
    }
    if (sameState(sig, lastSig)) inv.noteUnchanged();
    else {
      inv.check(ids.map((id) => coreView(net.core(id), !net.down.has(id))));
      inv.checkDurable(
        ids.map((id) => durableView(id, net.durable.get(id)!)),
        ids,
      );
      lastSig = sig;
    }
    for (const id of ids) {
      const sm = net.sm.get(id)!;
      const from = appliedSeen.get(id) ?? 0;
      for (let i = Math.min(from, sm.length); i < sm.length; i++) {
        const a = sm[i]!;
        const v: AppliedView = { node: id, index: a.index, term: a.term, command: a.cmd };
        inv.checkApplied(v);
      }
      appliedSeen.set(id, sm.length);
    }
  };
  net.drainAll();
  net.onReady = () => check();
  let n = 0;
  const deliverRandom = () => {
    if (net.queue.length === 0) return;
    const i = rnd.int(net.queue.length);
    const [m] = net.queue.splice(i, 1) as [RaftMessage];
    if (rnd.chance(0.1)) return; // drop
    if (rnd.chance(0.05)) net.queue.push(m); // duplicate
    net.queue.unshift(m);
    net.deliverOne();
  };
  for (let step = 0; step < steps; step++) {
    const r = rnd.next();
    if (r < 0.35) net.tick(rnd.pick(ids));
    else if (r < 0.8) deliverRandom();
    else if (r < 0.9) {
      const l = net.leader();
      if (l && !net.down.has(l.id)) {
        try {
          l.propose(cmd(`c${seed}-${n++}`));
          net.drain(l.id);
        } catch {
          // transfer in progress etc.
        }
      }
    } else if (r < 0.93) {
      const id = rnd.pick(ids);
      if (net.down.has(id)) net.restart(id);
      else if (net.down.size < 2) net.crash(id);
      // restarted nodes appear in the view on their next ready
    } else if (r < 0.96) {
      if (rnd.chance(0.5)) net.heal();
      else {
        const a = rnd.shuffle([...ids]);
        const k = 1 + rnd.int(nodes - 1);
        net.partition([a.slice(0, k), a.slice(k)]);
      }
    } else if (r < 0.98) {
      const id = rnd.pick(ids);
      if (!net.down.has(id) && net.core(id).log.applied > 0) net.snapshot(id, rnd.int(3));
    } else {
      const l = net.leader();
      if (l && rnd.chance(0.3)) {
        try {
          l.transferLeadership(rnd.pick(ids));
          net.drain(l.id);
        } catch {
          // not a voter
        }
      }
    }
    check();
  }
  // Heal, restart everyone, and require progress (liveness).
  net.heal();
  for (const id of ids) if (net.down.has(id)) net.restart(id);
  net.filter = undefined;
  let committedMarker = false;
  for (let round = 0; round < 400 && !committedMarker; round++) {
    net.tickAll();
    net.stabilize();
    check();
    const l = net.leader();
    if (l && round % 20 === 19) {
      try {
        l.propose(cmd(`final-${seed}`));
      } catch {
        // retry next round
      }
      net.stabilize();
    }
    committedMarker = ids.every((id) => net.commands(id).includes(`final-${seed}`));
  }
  if (!committedMarker) throw new Error(`seed ${seed}: no progress after heal`);
  return { commits: inv.committedCount() };
}
