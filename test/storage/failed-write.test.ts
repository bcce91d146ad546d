/**
 * A FileLogStore whose write or sync failed at the disk (EIO) is finished: it refuses further
 * writes with SYNOD_ERR_IO, and it also refuses to read, because its in-memory view still holds
 * the records of the failed write, which may never have reached the disk. A caller that reloads
 * from the same store instance (an actor restarted by its supervision with a storage factory
 * that returns the instance it already had) gets a clear error instead of a log the disk does not
 * hold. Reopening from disk gives back exactly the acknowledged records. The failure is injected
 * by replacing the store's batch writer, as a failing fdatasync would reject it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { FileLogStore } from '../../lib/storage/file-log.js';
import type { LogEntry } from '../../lib/storage/types.js';

const entry = (index: number): LogEntry => ({
  index,
  term: 1,
  type: 'normal',
  data: Buffer.from(`entry ${index}`),
});

t.test('after a failed sync the store refuses writes and reads', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-log-fail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = await FileLogStore.open(dir);
  await log.append([entry(1), entry(2)]);
  (log as unknown as { writeBatch: () => Promise<void> }).writeBatch = async () => {
    throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  };
  await t.rejects(log.append([entry(3)]), { code: 'SYNOD_ERR_IO' }, 'the write fails');
  await t.rejects(log.append([entry(4)]), { code: 'SYNOD_ERR_IO' }, 'later writes are refused');
  await t.rejects(log.sync(), { code: 'SYNOD_ERR_IO' }, 'sync is refused');
  await t.rejects(
    log.entries(1, 3),
    { code: 'SYNOD_ERR_IO', message: /refuses/ },
    'reads are refused, even of records that were durable',
  );
  await t.rejects(
    log.entries(3, 4),
    { code: 'SYNOD_ERR_IO' },
    'the record of the failed write is not served from memory',
  );
  await log.close();
  await t.rejects(log.entries(1, 2), { code: 'SYNOD_ERR_STORE_CLOSED' }, 'closed is closed');

  const reopened = await FileLogStore.open(dir);
  t.equal(reopened.lastIndex(), 2, 'the disk has the acknowledged records only');
  t.same(
    (await reopened.entries(1, 3)).map((e) => e.data.toString()),
    ['entry 1', 'entry 2'],
    'and reads them back',
  );
  await reopened.append([entry(3)]);
  t.equal(reopened.lastIndex(), 3, 'the reopened store takes the write again');
  await reopened.close();
});
