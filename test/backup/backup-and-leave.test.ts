/**
 * A one-off live backup (`synod backup full --cluster`) where something fails after the backup
 * is written: the archive flush, or leaving the cluster. The backup is reported written, with
 * what failed beside it (`archiveError`, `leaveError`; the CLI exits 3 and its warnings say
 * which and what to do), never as a failed backup, and a failed archive write is never
 * blamed on leaving. A failure before the backup is written still fails it. The last three
 * tests are session 14's reviewer's (B1, B2), which failed before: they drive the real
 * `leave` methods of the Raft learner and the Multi-Paxos puller.
 */
import t from 'tap';
import type { BackupSummary } from '../../actors/backup/agent.js';
import { BackupError } from '../../actors/backup/errors.js';
import { LiveBackup } from '../../actors/backup/learner.js';
import {
  afterBackupWarnings,
  backupAndLeave,
  type JoinedAgent,
} from '../../actors/backup/live-cli.js';
import { LivePaxosBackup } from '../../actors/backup/paxos-learner.js';

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
  t.equal(r.archiveError, undefined, 'the archive was flushed');
  const [warning, ...more] = afterBackupWarnings(r);
  t.same(more, []);
  t.match(
    warning,
    /learner backup-x may still be in the cluster's configuration \(SYNOD_ERR_BACKUP_JOIN: /,
  );
  t.match(warning, /synod member list --cluster/);
  t.match(warning, /synod member remove --cluster … --id backup-x --admin-secret-file F/);
});

t.test('an error that is not an Error is still reported as a message', async (t) => {
  const { joined } = fakeJoined({
    leave: () => Promise.reject('socket closed'),
  });
  const r = await backupAndLeave(joined, { kind: 'incr' });
  t.same(r.leaveError, { message: 'socket closed' });
  t.match(
    afterBackupWarnings({ ...r, protocol: 'paxos', agentId: 'p1' })[0],
    /puller p1 did not stop cleanly/,
  );
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

function liveWith(flush: () => Promise<number>) {
  return {
    committedIndex: async () => 40,
    catchUp: async () => ({}) as never,
    backup: async () => summary,
    flush,
    status: async () => ({ archivedTo: 41 }) as never,
  };
}

/** A flush that answers once (backupAndLeave's own, after the backup) and then fails. */
function flushOnceThen(err: Error) {
  let n = 0;
  return async () => {
    n++;
    if (n === 1) return 42;
    throw err;
  };
}

/**
 * A Raft agent joined to a fake cluster whose `leave` is the real `LiveBackup.leave` (it
 * flushes, then leaves the configuration through `membershipLeave`).
 */
function raftJoined(
  flush: () => Promise<number>,
  membershipLeave: (id: string) => Promise<string>,
) {
  const fake = {
    joined: true,
    id: 'backup',
    flush,
    membership: { leave: membershipLeave },
    opts: { system: { stop: async () => undefined }, log: () => undefined },
    raftRef: { address: 'backup/raft' },
    agent: { address: 'backup/agent' },
  };
  return {
    live: liveWith(flush) as never,
    agentId: 'backup',
    protocol: 'raft' as const,
    leave: (opts?: { flush?: boolean }) =>
      (LiveBackup.prototype.leave as (o?: { flush?: boolean }) => Promise<void>).call(fake, opts),
  };
}

t.test('Raft: the learner left and only the final flush failed: an archive warning', async (t) => {
  const flush = flushOnceThen(
    new BackupError('SYNOD_ERR_BACKUP_IO', 'archive: ENOSPC: no space left on device'),
  );
  const removed: string[] = [];
  const joined = raftJoined(flush, async (id) => {
    removed.push(id);
    return `removed ${id}`;
  });
  const r = await backupAndLeave(joined, { kind: 'full' });
  t.same(removed, ['backup'], 'the learner did leave the configuration');
  t.equal(r.leaveError, undefined, 'so no leave error');
  t.match(r.archiveError, { code: 'SYNOD_ERR_BACKUP_IO' });
  const w = afterBackupWarnings(r);
  t.equal(w.length, 1);
  t.match(w[0], /log archive could not be written after index 42 \(SYNOD_ERR_BACKUP_IO: /);
  t.notMatch(w[0], /member remove/, 'no advice to remove a learner that is gone');
});

t.test('Raft: leaving failed and the flush too: both are reported', async (t) => {
  const flush = flushOnceThen(new BackupError('SYNOD_ERR_BACKUP_IO', 'archive: EIO'));
  const joined = raftJoined(flush, async () => {
    throw new BackupError('SYNOD_ERR_BACKUP_JOIN', 'leaving: no leader');
  });
  const r = await backupAndLeave(joined, { kind: 'full' });
  t.match(r.leaveError, { code: 'SYNOD_ERR_BACKUP_JOIN' }, 'the leave failure is not masked');
  t.match(r.archiveError, { code: 'SYNOD_ERR_BACKUP_IO' });
  t.equal(afterBackupWarnings(r).length, 2);
});

t.test('Multi-Paxos: a failed final flush is an archive warning, not a disconnect', async (t) => {
  const flush = flushOnceThen(
    new BackupError('SYNOD_ERR_BACKUP_IO', 'archive: ENOSPC: no space left on device'),
  );
  const fake = {
    flush,
    opts: { system: { stop: async () => undefined } },
    puller: { address: 'p/puller' },
    agent: { address: 'p/agent' },
  };
  const joined = {
    live: liveWith(flush) as never,
    agentId: 'p',
    protocol: 'paxos' as const,
    leave: () => (LivePaxosBackup.prototype.leave as () => Promise<void>).call(fake),
  };
  const r = await backupAndLeave(joined, { kind: 'full' });
  t.equal(r.leaveError, undefined);
  t.match(r.archiveError, { code: 'SYNOD_ERR_BACKUP_IO' });
  const w = afterBackupWarnings(r);
  t.equal(w.length, 1);
  t.notMatch(w[0], /did not stop cleanly|disconnect/);
});

t.test(
  'the first flush failing after the backup is written does not fail the backup',
  async (t) => {
    const joined = {
      live: liveWith(async () => {
        throw new BackupError('SYNOD_ERR_BACKUP_TIMEOUT', 'flush: no answer in 120000 ms');
      }) as never,
      agentId: 'backup',
      protocol: 'raft' as const,
      leave: async () => undefined,
    };
    const r = await backupAndLeave(joined, { kind: 'full' });
    t.equal(r.id, summary.id, 'the written backup is returned');
    t.match(r.archiveError, { code: 'SYNOD_ERR_BACKUP_TIMEOUT' });
    t.equal(r.archivedTo, 41, "the archive's durable index, from the agent's status");
  },
);

t.test(
  'after a failed flush the agent leaves without flushing again (one timeout, not two)',
  async (t) => {
    let flushes = 0;
    const flush = async (): Promise<number> => {
      flushes++;
      throw new BackupError('SYNOD_ERR_BACKUP_TIMEOUT', 'flush: no answer in 120000 ms');
    };
    const removed: string[] = [];
    const r = await backupAndLeave(
      raftJoined(flush, async (id) => {
        removed.push(id);
        return `removed ${id}`;
      }),
      { kind: 'full' },
    );
    t.equal(flushes, 1, 'flushed once');
    t.same(removed, ['backup'], 'and left');
    t.match(r.archiveError, { code: 'SYNOD_ERR_BACKUP_TIMEOUT' });
    t.equal(r.leaveError, undefined);
  },
);
