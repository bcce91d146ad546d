/**
 * A one-off live backup (`synod backup full --cluster`) whose agent cannot leave the cluster
 * after the backup is written: the backup is reported written, with the leave failure beside
 * it (the CLI exits 3 and names the learner to remove), never as a failed backup. A failure
 * before the backup is written still fails it.
 */
import t from 'tap';
import type { BackupSummary } from '../../actors/backup/agent.js';
import { BackupError } from '../../actors/backup/errors.js';
import { backupAndLeave, type JoinedAgent, leftBehind } from '../../actors/backup/live-cli.js';

const summary: BackupSummary = {
  id: '20261128T230000Z-full',
  type: 'full',
  parent: null,
  index: 42,
  term: 3,
  bytes: 1000,
  storedBytes: 900,
  chunks: 2,
  records: 10,
  keyCount: 10,
  promoted: false,
};

function fakeJoined(opts: { leave?: () => Promise<void>; backup?: () => Promise<BackupSummary> }) {
  const calls: string[] = [];
  const live = {
    committedIndex: async () => {
      calls.push('committedIndex');
      return 40;
    },
    catchUp: async () => {
      calls.push('catchUp');
      return {} as never;
    },
    backup: async () => {
      calls.push('backup');
      return opts.backup ? opts.backup() : summary;
    },
    flush: async () => {
      calls.push('flush');
      return 42;
    },
  };
  const joined = {
    live: live as unknown as JoinedAgent['live'],
    agentId: 'backup-x',
    protocol: 'raft' as const,
    leave: async () => {
      calls.push('leave');
      if (opts.leave) await opts.leave();
    },
  };
  return { joined, calls };
}

t.test('a backup whose agent leaves cleanly carries no leave error', async (t) => {
  const { joined, calls } = fakeJoined({});
  const r = await backupAndLeave(joined, { kind: 'full' });
  t.same(calls, ['committedIndex', 'catchUp', 'backup', 'flush', 'leave']);
  t.equal(r.id, summary.id);
  t.equal(r.committedAtRequest, 40);
  t.equal(r.archivedTo, 42);
  t.equal(r.leaveError, undefined);
});

t.test('a written backup is not reported failed when the agent cannot leave', async (t) => {
  const lines: string[] = [];
  const { joined, calls } = fakeJoined({
    leave: async () => {
      throw new BackupError('SYNOD_ERR_BACKUP_JOIN', 'leaving: no leader answered');
    },
  });
  const r = await backupAndLeave(joined, { kind: 'full', log: (l) => lines.push(l) });
  t.same(calls, ['committedIndex', 'catchUp', 'backup', 'flush', 'leave']);
  t.equal(r.id, summary.id, 'the written backup is returned');
  t.same(r.leaveError, { code: 'SYNOD_ERR_BACKUP_JOIN', message: 'leaving: no leader answered' });
  t.ok(
    lines.some((l) => l.includes(summary.id) && l.includes('could not leave')),
    'the log says the backup is written and the agent did not leave',
  );
  const warning = leftBehind(r.protocol, r.agentId, r.id, r.leaveError as never);
  t.match(warning, /backup 20261128T230000Z-full is written and restores/);
  t.match(warning, /learner backup-x could not leave the cluster \(SYNOD_ERR_BACKUP_JOIN: /);
  t.match(warning, /synod member remove --cluster … --id backup-x/);
});

t.test('an error that is not an Error is still reported as a message', async (t) => {
  const { joined } = fakeJoined({
    leave: () => Promise.reject('socket closed'),
  });
  const r = await backupAndLeave(joined, { kind: 'incr' });
  t.same(r.leaveError, { message: 'socket closed' });
  t.match(leftBehind('paxos', 'p1', r.id, r.leaveError as never), /puller p1 could not disconnect/);
});

t.test(
  'a failure before the backup is written fails it, and the agent does not leave here',
  async (t) => {
    const { joined, calls } = fakeJoined({
      backup: async () => {
        throw new BackupError('SYNOD_ERR_BACKUP_IO', 'disk full');
      },
    });
    await t.rejects(backupAndLeave(joined, { kind: 'full' }), { code: 'SYNOD_ERR_BACKUP_IO' });
    t.same(calls, ['committedIndex', 'catchUp', 'backup'], 'leaving is left to close()');
  },
);
