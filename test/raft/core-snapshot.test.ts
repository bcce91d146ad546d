/**
 * Snapshots, log compaction and InstallSnapshot in chunks (§7), in the pure core.
 */
import t from 'tap';
import { CoreNet } from '../helpers/raft-net.js';

function clusterWithSnapshot(chunk: number) {
  const net = new CoreNet(['a', 'b', 'c'], { snapshotChunkSize: chunk });
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 30; i++) net.propose('a', `value-${i}`);
  net.run(2);
  const snap = net.snapshot('a');
  t.equal(net.core('a').log.firstIndex(), snap.meta.index + 1, 'the leader compacted its log');
  return { net, snap };
}

t.test('a follower behind the compaction point is sent the snapshot in chunks', async (t) => {
  const { net, snap } = clusterWithSnapshot(64);
  const size = snap.data.byteLength;
  net.heal();
  net.run(5);
  const chunks = net.sent.filter((m) => m.type === 'snapshot' && m.to === 'c');
  t.equal(chunks.length, Math.ceil(size / 64), `${size} bytes in 64-byte chunks`);
  t.same(net.commands('c'), net.commands('a'), 'the follower state machine was restored');
  t.equal(net.core('c').log.snapIndex, snap.meta.index);
  t.same(net.core('c').membership(), net.core('a').membership());
  net.propose('a', 'after');
  net.run(2);
  t.same(net.commands('c'), net.commands('a'), 'replication continues after the snapshot');
});

t.test('a lost chunk is resent after a heartbeat response', async (t) => {
  // The default rule: one chunk in flight; a heartbeat response resends it once 20
  // heartbeats went by without an answer (heartbeatTick is 1 here: one beat per round).
  const { net } = clusterWithSnapshot(50);
  let dropped = 0;
  net.filter = (m) => {
    if (m.type === 'snapshot' && m.offset === 100 && dropped === 0) {
      dropped++;
      return false;
    }
    return true;
  };
  const sentAt100 = () =>
    net.sent.filter((m) => m.type === 'snapshot' && m.to === 'c' && m.offset === 100).length;
  net.heal();
  net.run(10);
  t.equal(dropped, 1, 'the chunk at offset 100 was lost');
  t.equal(sentAt100(), 1, 'not resent while it may still be on its way (10 beats)');
  t.notSame(net.commands('c'), net.commands('a'), 'the transfer is waiting');
  net.run(15);
  t.equal(sentAt100(), 2, 'resent once after 20 quiet beats');
  t.same(net.commands('c'), net.commands('a'), 'the transfer completed');
  const offsets = net.sent.filter((m) => m.type === 'snapshot' && m.to === 'c');
  const size = (offsets[0] as { totalSize: number }).totalSize;
  t.equal(offsets.length, Math.ceil(size / 50) + 1, 'every other chunk went once');
});

t.test('the resend interval is configurable and validated', async (t) => {
  const net = new CoreNet(['a', 'b', 'c'], { snapshotChunkSize: 50, snapshotResendBeats: 3 });
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 30; i++) net.propose('a', `value-${i}`);
  net.run(2);
  net.snapshot('a');
  let dropped = 0;
  net.filter = (m) => !(m.type === 'snapshot' && m.offset === 50 && dropped++ === 0);
  net.heal();
  net.run(5);
  t.equal(dropped, 2, 'the lost chunk was resent within 5 beats');
  t.same(net.commands('c'), net.commands('a'));
  for (const bad of [0, 1.5, Number.NaN]) {
    t.throws(
      () => new CoreNet(['a'], { snapshotResendBeats: bad }),
      /snapshotResendBeats must be an integer/,
      `snapshotResendBeats ${bad} is refused`,
    );
  }
});

t.test('a follower that restarts mid-transfer gets the snapshot from the start', async (t) => {
  const { net } = clusterWithSnapshot(40);
  let n = 0;
  net.filter = (m) => {
    if (m.type === 'snapshot' && m.to === 'c' && ++n === 3) {
      net.crash('c');
      net.restart('c');
    }
    return true;
  };
  net.heal();
  net.run(10);
  t.same(net.commands('c'), net.commands('a'));
  const offsets = net.sent
    .filter((m) => m.type === 'snapshot')
    .map((m) => (m as { offset: number }).offset);
  t.ok(offsets.filter((o) => o === 0).length >= 2, 'the transfer restarted at offset 0');
});

t.test('a node restarts from its snapshot plus the log after it', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  for (let i = 0; i < 10; i++) net.propose('a', `v${i}`);
  net.run(2);
  net.snapshot('b');
  for (let i = 10; i < 15; i++) net.propose('a', `v${i}`);
  net.run(2);
  const before = net.commands('b');
  net.crash('b');
  net.restart('b');
  net.run(3);
  t.same(net.commands('b'), before, 'snapshot + replayed entries = same state');
  t.equal(net.commands('b').length, 15);
});

t.test('a stale snapshot is acknowledged without being installed', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.run(2);
  const snap = net.snapshot('a');
  const b = net.core('b');
  const committed = b.log.committed;
  b.step({
    type: 'snapshot',
    from: 'a',
    to: 'b',
    term: b.term,
    meta: snap.meta,
    totalSize: snap.data.byteLength,
    offset: 0,
    data: snap.data,
    done: true,
  });
  const rd = b.ready();
  t.equal(rd.snapshot, undefined);
  const resp = rd.messages.find((m) => m.type === 'appendResp') as { index: number } | undefined;
  t.equal(resp?.index, committed);
  b.advance(rd);
});

t.test('compaction never passes the latest snapshot or the applied index', async (t) => {
  const net = new CoreNet(['a', 'b', 'c']);
  net.elect('a');
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`);
  net.run(2);
  const a = net.core('a');
  a.compact(100);
  t.equal(a.log.snapIndex, 0, 'no snapshot yet: nothing compacted');
  const snap = net.snapshot('a', 2);
  t.equal(a.log.snapIndex, snap.meta.index - 2, 'keeps 2 entries behind the snapshot');
});
