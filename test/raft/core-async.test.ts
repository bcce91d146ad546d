/**
 * The core's asynchronous storage-write contract (docs/raft.md "Persistence pipeline"):
 * `ready()` may follow `advanceApplied()` before the earlier Ready's entries are durable,
 * entries are handed out once, `advanceStable(mark)` marks them durable, a mark from
 * before a truncation is ignored, and a leader counts its own copy only once durable.
 */
import t from 'tap';
import type { AppendRequest, LogEntry, RaftMessage } from '../../actors/raft/core/types.js';
import { CoreNet, cmd } from '../helpers/raft-net.js';

t.test(
  'entries are handed out once; the next Ready follows before the write is durable',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.queue.length = 0;
    const a = net.core('a');
    const stable0 = a.log.stableIndex;
    a.propose(cmd('x'));
    const rd1 = a.ready();
    t.equal(rd1.entries.length, 1);
    t.ok(rd1.mark, 'a Ready with entries carries a mark');
    a.advanceApplied(rd1);
    a.propose(cmd('y'));
    a.propose(cmd('z'));
    t.ok(a.hasReady());
    const rd2 = a.ready();
    t.same(
      rd2.entries.map((e) => e.index),
      [stable0 + 2, stable0 + 3],
      'only the entries appended since the first hand-out',
    );
    a.advanceApplied(rd2);
    t.equal(a.log.stableIndex, stable0, 'nothing durable yet');
    t.equal(a.status().progress.a?.match, stable0, 'the leader does not count its own copy yet');
    a.advanceStable(rd2.mark as NonNullable<typeof rd2.mark>);
    t.equal(a.log.stableIndex, stable0 + 3, 'the later mark covers every earlier write');
    a.advanceStable(rd1.mark as NonNullable<typeof rd1.mark>);
    t.equal(a.log.stableIndex, stable0 + 3, 'an older mark arriving late changes nothing');
    t.throws(
      () => a.advanceApplied(rd2),
      { code: 'SYNOD_ERR_RAFT_BAD_STATE' },
      'one ack per Ready',
    );
  },
);

t.test(
  'a leader commits without its own durable copy only with a durable majority of others',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.queue.length = 0;
    const a = net.core('a');
    const { index } = a.propose(cmd('x'));
    const rd = a.ready();
    a.advanceApplied(rd);
    const appends = rd.messages.filter((m): m is AppendRequest => m.type === 'append');
    t.equal(appends.length, 2, 'replication leaves before the leader write is durable');
    const ack = (from: string): RaftMessage => ({
      type: 'appendResp',
      from,
      to: 'a',
      term: a.term,
      index,
      reject: false,
    });
    a.step(ack('b'));
    t.equal(a.log.committed < index, true, 'leader (not durable) + b is not counted as two');
    a.advanceStable(rd.mark as NonNullable<typeof rd.mark>);
    t.equal(a.log.committed, index, 'once the leader copy is durable, a + b commit it');

    // The other way round: both followers durable, the leader not.
    const second = a.propose(cmd('y')).index;
    const rd2 = a.ready();
    a.advanceApplied(rd2);
    a.step({ ...ack('b'), index: second } as RaftMessage);
    t.ok(a.log.committed < second);
    a.step({ ...ack('c'), index: second } as RaftMessage);
    t.equal(a.log.committed, second, 'b + c commit it without the leader (thesis §10.2.1)');
  },
);

t.test(
  'a write that completes after its entries were replaced marks nothing durable',
  async (t) => {
    const net = new CoreNet(['a', 'b', 'c']);
    net.elect('a');
    net.stabilize();
    const b = net.core('b');
    const base = b.log.lastIndex();
    const baseTerm = b.log.lastTerm();
    const entries = (term: number, from: number, n: number, tag: string): LogEntry[] =>
      Array.from({ length: n }, (_, i) => ({
        index: from + i,
        term,
        type: 'normal' as const,
        data: cmd(`${tag}${i}`),
      }));
    // An append from the term's leader: entries base+1..base+3, not committed.
    b.step({
      type: 'append',
      from: 'a',
      to: 'b',
      term: baseTerm,
      prevIndex: base,
      prevTerm: baseTerm,
      entries: entries(baseTerm, base + 1, 3, 'old'),
      commit: base,
    });
    const rd1 = b.ready();
    t.equal(rd1.entries.length, 3);
    b.advanceApplied(rd1);
    // A newer leader (c, next term) overwrites base+2.. before that write completes.
    const t2 = baseTerm + 1;
    b.step({
      type: 'append',
      from: 'c',
      to: 'b',
      term: t2,
      prevIndex: base + 1,
      prevTerm: baseTerm,
      entries: entries(t2, base + 2, 2, 'new'),
      commit: base,
    });
    const rd2 = b.ready();
    t.same(
      rd2.entries.map((e) => [e.index, e.term]),
      [
        [base + 2, t2],
        [base + 3, t2],
      ],
      'the replacement is handed out',
    );
    b.advanceApplied(rd2);
    // A third leader (a again, one term later) holds the original entries and rewrites them:
    // index and term at rd1's mark are again what rd1 wrote, but the disk will not hold them
    // until the third write (the second one truncates them first).
    const t3 = t2 + 1;
    b.step({
      type: 'append',
      from: 'a',
      to: 'b',
      term: t3,
      prevIndex: base + 1,
      prevTerm: baseTerm,
      entries: entries(baseTerm, base + 2, 2, 'old').map((e, i) => ({
        ...e,
        data: cmd(`old${i + 1}`),
      })),
      commit: base,
    });
    const rd3 = b.ready();
    b.advanceApplied(rd3);
    const m1 = rd1.mark as NonNullable<typeof rd1.mark>;
    t.ok(b.log.matchTerm(m1.index, m1.term), 'a check by index and term alone would accept rd1');
    b.advanceStable(m1);
    t.equal(
      b.log.stableIndex,
      base,
      'the first write confirms nothing (a truncation came after it)',
    );
    b.advanceStable(rd2.mark as NonNullable<typeof rd2.mark>);
    t.equal(b.log.stableIndex, base, 'neither does the second');
    b.advanceStable(rd3.mark as NonNullable<typeof rd3.mark>);
    t.equal(b.log.stableIndex, base + 3, 'the write covering the last replacement does');
  },
);

t.test('the synchronous contract (advance) still works unchanged', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  for (let i = 0; i < 10; i++) net.propose('a', `v${i}`);
  net.run(3);
  for (const id of ['a', 'b', 'c']) t.equal(net.commands(id).length, 10, id);
  t.equal(net.core('a').log.stableIndex, net.core('a').log.lastIndex());
});
