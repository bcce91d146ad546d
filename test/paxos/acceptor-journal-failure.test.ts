/**
 * A Multi-Paxos acceptor whose journal write failed must not answer from what the write held.
 *
 * A `FileLogStore` whose write failed at the disk (EIO at a sync) keeps the failed entries in
 * its in-memory view, so an acceptor restarted by its supervision (`restart`, the library
 * default) that reloaded from the same stores would come back with a record the disk never
 * had, and answer a retransmitted accept with `mp.accepted` and nothing to write: a vote the
 * disk does not hold (two values could then be chosen for a slot after a process restart).
 * Found by review of the acceptor's group commit; the journal now refuses to load or write
 * after such a failure. A full disk is different: the stores roll back to what is durable and
 * the acceptor may reload.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AcceptorJournal } from '../../actors/paxos/acceptor-journal.js';
import { ballot } from '../../actors/paxos/ballot.js';
import {
  MultiAcceptorCore,
  type MultiAcceptorHardState,
} from '../../actors/paxos/multi-acceptor.js';
import { commandValue, type MultiPaxosMessage } from '../../actors/paxos/multi-messages.js';
import { FileHardStateStore } from '../../lib/storage/file-hard-state.js';
import { FileLogStore } from '../../lib/storage/file-log.js';
import { MemoryDisk } from '../../lib/storage/memory-disk.js';
import { MemoryHardStateStore } from '../../lib/storage/memory-hard-state.js';
import { MemoryLogStore } from '../../lib/storage/memory-log.js';

const b1 = ballot(1, 'p/proposer');
const accept = (slot: number): MultiPaxosMessage => ({
  type: 'mp.accept',
  from: 'p/proposer',
  ballot: b1,
  entries: [{ slot, value: commandValue({ clientId: 'c', seq: slot, op: { x: slot } }, 1) }],
  sentAt: 0,
});

t.test('after a failed write at the disk, the journal is not read back', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-journal-fail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const hard = await FileHardStateStore.open<MultiAcceptorHardState>(dir, {
    name: 'paxos-acceptor',
  });
  const log = await FileLogStore.open(path.join(dir, 'acceptor-log'));
  const journal = new AcceptorJournal(hard, log);
  const core = new MultiAcceptorCore({ id: 'a/acceptor' }, await journal.load(), 0);
  const first = core.step(accept(1), 0);
  await journal.persistGroup([first.persist ?? {}]);
  const out = core.step(accept(2), 0);
  t.ok(out.persist, 'the second accept writes');
  // The disk fails the write (as an fdatasync EIO would): nothing of it reaches the file.
  (log as unknown as { writeBatch: () => Promise<void> }).writeBatch = async () => {
    throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  };
  await t.rejects(journal.persistGroup([out.persist ?? {}]), 'the write failed');

  // What MultiPaxosAcceptor.preStart does on a supervised restart: reload from the same journal.
  await t.rejects(journal.load(), { code: 'SYNOD_ERR_PAXOS_JOURNAL_FAILED' }, 'no reload');
  await t.rejects(
    journal.persistGroup([{ hard: { promised: b1, floor: 0 } }]),
    { code: 'SYNOD_ERR_PAXOS_JOURNAL_FAILED' },
    'no further write',
  );
  // Nor does the store itself answer with the record the disk never had.
  await t.rejects(
    log.entries(log.firstIndex(), log.lastIndex() + 1, 1 << 20),
    { code: 'SYNOD_ERR_IO' },
    'the failed store does not serve the failed entry from memory',
  );

  // A process restart (stores reopened from disk) has slot 1 and not slot 2.
  await log.close().catch(() => undefined);
  await hard.close();
  const log2 = await FileLogStore.open(path.join(dir, 'acceptor-log'));
  const hard2 = await FileHardStateStore.open<MultiAcceptorHardState>(dir, {
    name: 'paxos-acceptor',
  });
  const fromDisk = await new AcceptorJournal(hard2, log2).load();
  t.same(
    fromDisk.accepted.map((a) => a.slot),
    [1],
    'the disk has the acknowledged slot 1, not slot 2',
  );
  const restarted = new MultiAcceptorCore({ id: 'a/acceptor' }, fromDisk, 0);
  const again = restarted.step(accept(2), 0);
  t.ok(again.persist, 'the retransmitted accept of slot 2 is written before it is answered');
  await log2.close();
  await hard2.close();
});

t.test('a write refused for lack of space leaves the journal usable', async (t) => {
  const disk = new MemoryDisk();
  const log = await MemoryLogStore.open(disk, { name: 'paxos-acceptor' });
  const hard = await MemoryHardStateStore.open<MultiAcceptorHardState>(disk, {
    name: 'paxos-acceptor',
  });
  // The next append is refused for lack of space, leaving the store unchanged (as the file
  // store's roll-back does).
  let full = false;
  const append = log.append.bind(log);
  log.append = (entries) => {
    if (!full) return append(entries);
    full = false;
    return Promise.reject(Object.assign(new Error('no space'), { code: 'SYNOD_ERR_NO_SPACE' }));
  };
  const journal = new AcceptorJournal(hard, log);
  const core = new MultiAcceptorCore({ id: 'a/acceptor' }, await journal.load(), 0);
  await journal.persistGroup([core.step(accept(1), 0).persist ?? {}]);
  full = true;
  await t.rejects(journal.persistGroup([core.step(accept(2), 0).persist ?? {}]), {
    code: 'SYNOD_ERR_NO_SPACE',
  });
  const reloaded = await journal.load();
  t.same(
    reloaded.accepted.map((a) => a.slot),
    [1],
    'reloads exactly what is durable',
  );
  const core2 = new MultiAcceptorCore({ id: 'a/acceptor' }, reloaded, 0);
  await journal.persistGroup([core2.step(accept(2), 0).persist ?? {}]);
  t.same(
    (await journal.load()).accepted.map((a) => a.slot),
    [1, 2],
    'and writes again once space is freed',
  );
});
