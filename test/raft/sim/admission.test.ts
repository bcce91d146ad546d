/**
 * Which Raft messages a RaftNode lets reach its core (RELIABILITY.md finding F1): messages
 * whose envelope sender is not the node they claim to come from, and messages from nodes
 * outside the current or pending configuration, are dropped and counted; terms are capped
 * far below 2^53. A follower that missed the change adding its new leader still catches up
 * (a member vouches for the leader), and a committed entry that is not a command is skipped
 * on every replica alike instead of stopping the node.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that
 * replays it.
 */
import t from 'tap';
import { MAX_TERM } from '../../../actors/raft/core/messages.js';
import type { RaftMessage } from '../../../actors/raft/core/types.js';
import { encodeValue } from '../../../lib/codec.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(61);

async function commit(c: RaftCluster, op: KvOp, among?: string[]): Promise<number> {
  const end = c.now() + 10_000;
  while (c.now() < end) {
    const l = await c.waitLeader(1000, among);
    if (!l) continue;
    const r = await c.proposeOn(l, op, 1000);
    if (r.ok) return r.index as number;
    await c.sim.runFor(50);
  }
  throw new Error(`${JSON.stringify(op)} did not commit within 10 s (seed ${c.sim.seed})`);
}

/** Sends `ms` to `to`'s Raft actor from an actor address on node `fromNode`. */
function inject(c: RaftCluster, fromNode: string, to: string, ms: Record<string, unknown>[]) {
  c.sim.system(fromNode).send(`${to}/raft`, { type: 'raft', ms }, `${fromNode}/raft`);
}

/** An AppendEntries that would make a follower adopt `term` and replace its whole log. */
function hostileAppend(from: string, to: string, term: number): Record<string, unknown> {
  return {
    type: 'append',
    from,
    to,
    term,
    prevIndex: 0,
    prevTerm: 0,
    commit: 1,
    entries: [{ index: 1, term, type: 'normal', data: new Uint8Array([0xc1, 0xc1]) }],
  };
}

t.test('messages from non-members and forged senders never reach the core', async (t) => {
  const ids = ['a', 'b', 'c', 'x'];
  const c = new RaftCluster({ seed: SEED, ids, voters: ['a', 'b', 'c'] });
  await c.start();
  await commit(c, { f: 'write', k: 'k', v: 1 }, ['a', 'b', 'c']);
  const leader = (await c.waitLeader(1000, ['a', 'b', 'c'])) as string;
  const term = c.core(leader)!.term;
  const followers = ['a', 'b', 'c'].filter((id) => id !== leader);
  const logOf = (id: string) =>
    c
      .core(id)!
      .log.all()
      .map((e) => `${e.index}:${e.term}`);
  const logs = new Map(followers.map((id) => [id, logOf(id)]));

  for (const f of followers) {
    // x is not a member: its own messages are dropped.
    inject(c, 'x', f, [hostileAppend('x', f, term + 5)]);
    // x claims to be the leader: the envelope says x.
    inject(c, 'x', f, [hostileAppend(leader, f, term + 5)]);
    // a member impersonating another member: the envelope names the impersonator.
    const other = followers.find((id) => id !== f) as string;
    inject(c, other, f, [hostileAppend(leader, f, term + 5)]);
    // a member's own message with an absurd term: malformed.
    inject(c, other, f, [{ type: 'heartbeat', from: other, to: f, term: MAX_TERM + 1, commit: 0 }]);
  }
  await c.sim.runFor(300);
  for (const f of followers) {
    const r = c.node(f).rejectedMessages();
    t.ok(r.nonMember >= 1, `${f} dropped the non-member's message (${JSON.stringify(r)})`);
    t.ok(r.forged >= 2, `${f} dropped both messages with a forged sender`);
    t.ok(r.malformed >= 1, `${f} refused the term above MAX_TERM`);
    t.equal(c.core(f)!.term, term, `${f} kept term ${term}`);
    t.same(logOf(f).slice(0, logs.get(f)!.length), logs.get(f), `${f} kept its log`);
  }
  t.equal(c.core('x')!.term, 0, 'x, never added, knows no one and was never stepped up');
  await commit(c, { f: 'write', k: 'k', v: 2 }, ['a', 'b', 'c']);
  t.same(c.fatal, [], 'no node stopped');

  // Negative control: the same injection path with an honest sender does reach the core.
  const f = followers[0] as string;
  const other = followers[1] as string;
  inject(c, other, f, [{ type: 'heartbeat', from: other, to: f, term: term + 7, commit: 0 }]);
  await c.sim.runFor(1);
  t.ok(c.core(f)!.term >= term + 7, `an honest member's higher term is adopted (control)`);
});

t.test('a follower that missed the change adding its new leader catches up', async (t) => {
  const c = new RaftCluster({ seed: SEED + 1, ids: ['a', 'b', 'c', 'd'], voters: ['a', 'b', 'c'] });
  await c.start();
  await commit(c, { f: 'write', k: 'k', v: 1 }, ['a', 'b', 'c']);
  let l = (await c.waitLeader(1000, ['a', 'b', 'c'])) as string;
  // Cut off a follower; it will never see d being added.
  const lagging = ['a', 'b', 'c'].find((id) => id !== l) as string;
  const rest = ['a', 'b', 'c', 'd'].filter((id) => id !== lagging);
  c.partition([rest, [lagging]]);
  const run = async <T>(f: (leader: string) => Promise<T>) => {
    const end = c.now() + 10_000;
    while (c.now() < end) {
      l = (await c.waitLeader(
        1000,
        rest.filter((id) => id !== 'd' || c.core('d')?.config.isVoter('d')),
      )) as string;
      if (l) {
        let out: { ok: boolean } | undefined;
        c.within(f(l), 2000).then(
          () => (out = { ok: true }),
          () => (out = { ok: false }),
        );
        await c.sim.runUntil(() => out !== undefined, { timeout: 2100 });
        if (out?.ok) return;
      }
      await c.sim.runFor(50);
    }
    throw new Error(`no success within 10 s (seed ${c.sim.seed})`);
  };
  await run((id) => c.node(id).addLearner('d'));
  await c.sim.runUntil(() => (c.core('d')?.log.applied ?? 0) >= 3, { timeout: 3000 });
  await run((id) => c.node(id).promote('d', 10));
  await run(async (id) => {
    c.node(id).transferLeadership('d');
    await c.sim.runUntil(() => c.core('d')?.role === 'leader', { timeout: 1500 });
    if (c.core('d')?.role !== 'leader') throw new Error('transfer not done');
  });
  t.equal(c.core('d')!.role, 'leader', 'd, added while the follower was cut off, leads');
  t.notOk(c.core(lagging)!.admits('d'), `${lagging} does not know d yet`);
  await commit(c, { f: 'write', k: 'k', v: 2 }, rest);
  c.heal();
  const caught = await c.sim.runUntil(() => c.machines.get(lagging)?.data.get('k') === 2, {
    timeout: 10_000,
  });
  t.ok(caught, `${lagging} caught up from leader d`);
  t.ok(
    c.node(lagging).rejectedMessages().nonMember > 0,
    `${lagging} had dropped d's messages until a member vouched for d`,
  );
  t.ok(c.core(lagging)!.admits('d'), `${lagging} now admits d`);
  await commit(c, { f: 'write', k: 'k', v: 3 });
  t.ok(
    await c.sim.runUntil(
      () => ['a', 'b', 'c', 'd'].every((id) => c.machines.get(id)?.data.get('k') === 3),
      { timeout: 5000 },
    ),
    'all four apply the next write',
  );
});

t.test('a committed entry that is not a command is skipped alike on every node', async (t) => {
  const ids = ['a', 'b', 'c'];
  const c = new RaftCluster({ seed: SEED + 2, ids });
  await c.start();
  await commit(c, { f: 'write', k: 'k', v: 1 });
  const l = (await c.waitLeader()) as string;
  // Written past the proposal validation, as a buggy or hostile leader could: bytes that
  // are not msgpack, and msgpack that is not a command.
  const core = c.core(l)!;
  core.propose(new Uint8Array([0xc1, 0x00]));
  core.propose(encodeValue({ hello: 'world' }));
  core.propose(encodeValue(7));
  await commit(c, { f: 'write', k: 'k', v: 2 });
  const ok = await c.sim.runUntil(
    () => ids.every((id) => c.machines.get(id)?.data.get('k') === 2),
    { timeout: 5000 },
  );
  t.ok(ok, 'the write after the bad entries applied everywhere');
  for (const id of ids) {
    t.equal(c.node(id).skippedEntries, 3, `${id} skipped the three entries`);
    t.ok(c.node(id).started, `${id} is still running`);
  }
  t.same(c.fatal, [], 'no node stopped');
  const sizes = ids.map((id) => c.machines.get(id)!.applied);
  t.same(new Set(sizes).size, 1, `the state machines applied the same commands (${sizes})`);
});

t.test('terms above MAX_TERM are malformed (validation)', async (t) => {
  const { raftMessageProblem } = await import('../../../actors/raft/core/messages.js');
  const hb = (term: number): RaftMessage =>
    ({ type: 'heartbeat', from: 'a', to: 'b', term, commit: 0 }) as RaftMessage;
  t.equal(raftMessageProblem(hb(MAX_TERM)), undefined, 'MAX_TERM itself is fine');
  t.match(raftMessageProblem(hb(MAX_TERM + 1)), /term/, 'MAX_TERM + 1 is refused');
  t.match(raftMessageProblem(hb(2 ** 53 - 1)), /term/, '2^53 − 1 is refused');
  t.ok(Number.isSafeInteger(MAX_TERM + 1) && MAX_TERM < 2 ** 41, 'far below 2^53');
});
